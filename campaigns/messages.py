"""Messages: one send row as the API shows it, and a campaign's counts per message status."""

from __future__ import annotations

from sqlalchemy import func, select

from campaigns.models import Send
from core.db import db
from core.i18n import lazy_gettext

MESSAGE_STATUS = {"claimed": "sending"}


# The API's message states: a row waiting for its retry is still queued (attempts and
# last_error say why); skipped and cancelled are Lastmile's additions.
MESSAGE_API_STATUS = {"claimed": "sending", "retry": "queued"}
COUNT_KEYS = ("queued", "sending", "retry", "sent", "failed", "suppressed", "skipped",
              "cancelled")


def get_send(send_id: int) -> Send | None:
    """Return a send (message) by id (callers pass it through `visible()`)."""
    return db.session.get(Send, send_id)


def message_json(send: Send) -> dict:
    """Serialize one message (send row) for the API."""
    return {
        "id": send.id,
        "status": MESSAGE_API_STATUS.get(send.status, send.status),
        "next_attempt_at": send.due_at.isoformat() if send.status == "retry" else None,
        "status_reason": send.status_reason,
        "attempts": send.attempts,
        "last_error": send.last_error,
        "campaign_id": send.campaign_id,
        "step": send.step_index,
        "contact_id": send.contact_id,
        "email": send.email,
        "due_at": send.due_at.isoformat() if send.due_at else None,
        "sent_at": send.sent_at.isoformat() if send.sent_at else None,
        "provider_message_id": send.provider_message_id,
    }


def message_counts(campaign_id: int) -> dict[str, int]:
    """Count a campaign's sends per API status (claimed shows as sending)."""
    counts = dict.fromkeys(COUNT_KEYS, 0)
    rows = db.session.execute(
        select(Send.status, func.count()).where(Send.campaign_id == campaign_id)
        .group_by(Send.status)
    ).all()
    for status, n in rows:
        key = MESSAGE_STATUS.get(status, status)
        counts[key] = counts.get(key, 0) + n
    counts["total"] = sum(n for _s, n in rows)
    return counts


# A message's status in words, for people (the contact timeline); `status_reason` refines it.
STATUS_WORDS = {
    "queued": lazy_gettext("Waiting to be sent"),
    "claimed": lazy_gettext("Being sent"),
    "retry": lazy_gettext("Waiting to try again (the mail server did not accept it yet)"),
    "sent": lazy_gettext("Sent"),
    "failed": lazy_gettext("Not delivered: the mail server refused it"),
    "suppressed": lazy_gettext("Not sent: this person cannot be emailed"),
    "skipped": lazy_gettext("Skipped: the journey's condition was not met"),
    "cancelled": lazy_gettext("Cancelled before it was sent"),
}
REASON_WORDS = {
    ("failed", "attempts"): lazy_gettext("Not delivered after several attempts"),
    ("suppressed", "unsubscribed"): lazy_gettext("Not sent: this person had unsubscribed"),
    ("suppressed", "bounced"): lazy_gettext("Not sent: the address had bounced"),
    ("suppressed", "complained"): lazy_gettext("Not sent: this person had marked an email as "
                                               "spam"),
    ("suppressed", "no_consent"): lazy_gettext("Not sent: no consent to email"),
    ("suppressed", "manual"): lazy_gettext("Not sent: the brand blocked this address"),
}


def status_words(status: str, reason: str = "") -> str:
    """Return a message's status (ledger status and reason) as a sentence people read."""
    return str(REASON_WORDS.get((status, reason)) or STATUS_WORDS.get(status, status))
