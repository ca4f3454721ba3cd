"""Consent history: every change of a contact's consent, with who, when, how and from what.

Writers record an event in their own transaction (no commit here):
- a contact created or changed through the web form (`form`) or the API (`api`);
- a CSV import that gives or changes consent (`import`, with the uploader and the file name);
- a brand-wide suppression: a one-click unsubscribe (`unsubscribe`), a hard bounce
  (`bounce`: mail stops, consent is left as it was) or a spam complaint (`complaint`), for
  every partner's contact with that address (campaigns.suppression.add_suppressions).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, String, func, insert, literal, select, update

from accounts.models import User
from campaigns.digest import email_digest
from campaigns.models import CONSENT_SOURCES, ConsentEvent, Contact
from core import clock
from core.db import db
from core.i18n import lazy_gettext

DETAIL_MAX = 500
# How each source reads on the contact page: "... via the contact form".
SOURCE_WORDS = {
    "form": lazy_gettext("the contact form"),
    "import": lazy_gettext("a CSV import"),
    "api": lazy_gettext("the API"),
    "unsubscribe": lazy_gettext("the unsubscribe link in an email"),
    "bounce": lazy_gettext("a bounce: the address does not accept mail"),
    "complaint": lazy_gettext("a spam complaint about an email"),
}
# Suppression reason -> (consent source, consent afterwards; None leaves it unchanged).
SUPPRESSION_SOURCES: dict[str, tuple[str, bool | None]] = {
    "unsubscribed": ("unsubscribe", False),
    "complained": ("complaint", False),
    "bounced": ("bounce", None),
}

# (user id, file name) of the import job running in this context (campaigns.contacts_import).
def record_consent(contact: Contact, consent: bool | None, source: str, *, detail: str = "",
                   user_id: int | None = None, at: datetime | None = None) -> ConsentEvent:
    """Add one consent event for a contact (no commit)."""
    if source not in CONSENT_SOURCES:
        raise ValueError(f"unknown consent source {source!r}")
    event = ConsentEvent(contact_id=contact.id, partner_id=contact.partner_id, consent=consent,
                         source=source, detail=(detail or "")[:DETAIL_MAX], user_id=user_id,
                         created_at=at or clock.now())
    db.session.add(event)
    return event


def record_suppressed_addresses(emails: list[str], reason: str, detail: str = "") -> None:
    """Record a suppression in the history of every contact (any partner) with these addresses.

    `emails` are normalized addresses; contacts are found by the hash of theirs (indexed).
    An unsubscribe or a complaint also withdraws those contacts' consent; a bounce leaves it.
    Two statements whatever the number of contacts (no commit).
    """
    if reason not in SUPPRESSION_SOURCES or not emails:
        return
    source, consent = SUPPRESSION_SOURCES[reason]
    now = clock.now()
    hashes = [email_digest(e) for e in emails]
    affected = select(Contact.id, Contact.partner_id, literal(consent, Boolean),
                      literal(source, String), literal((detail or "")[:DETAIL_MAX], String),
                      literal(now)).where(Contact.email_hash.in_(hashes))
    db.session.execute(insert(ConsentEvent).from_select(
        ["contact_id", "partner_id", "consent", "source", "detail", "created_at"], affected))
    if consent is False:
        db.session.execute(update(Contact).where(Contact.email_hash.in_(hashes),
                                                 Contact.consent.is_(True))
                           .values(consent=False, updated_at=now))


def consent_history(contact_id: int, page: int = 1, per_page: int = 50
                    ) -> tuple[list[dict], int]:
    """Return one page of a contact's consent events, newest first, and their total."""
    total = db.session.scalar(select(func.count()).select_from(ConsentEvent)
                              .where(ConsentEvent.contact_id == contact_id)) or 0
    rows = db.session.execute(
        select(ConsentEvent, User.name, User.email)
        .outerjoin(User, User.id == ConsentEvent.user_id)
        .where(ConsentEvent.contact_id == contact_id)
        .order_by(ConsentEvent.created_at.desc(), ConsentEvent.id.desc())
        .limit(per_page).offset((page - 1) * per_page)
    ).all()
    return [consent_json(event, name or email or "") for event, name, email in rows], total


def consent_json(event: ConsentEvent, user_name: str = "") -> dict:
    """Serialize one consent event (the API's ConsentEvent)."""
    return {"id": event.id, "consent": event.consent, "source": event.source,
            "source_label": str(SOURCE_WORDS[event.source]), "detail": event.detail,
            "user_id": event.user_id, "user_name": user_name,
            "created_at": event.created_at.isoformat()}

