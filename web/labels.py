"""Words, not codes: the one place that turns status and reason codes into words people read.

Pages use the Jinja filters registered in web/base.py: `{{ campaign.status | campaign_status }}`,
`{{ send.status | message_status }}`, `{{ row.reason | exclusion_reason }}`, and
`field_errors_in_words(fields, versions)` for error lists keyed like ``steps.0.headline``.
"""

from __future__ import annotations

import re

from flask_babel import format_currency

from campaigns import members
from core.i18n import _, lazy_gettext

CAMPAIGN_STATUS = {
    "draft": lazy_gettext("Draft: not sent yet"),
    "pending_approval": lazy_gettext("Waiting for brand approval"),
    "rejected": lazy_gettext("Not approved by the brand"),
    "scheduled": lazy_gettext("Scheduled"),
    "running": lazy_gettext("Sending"),
    "paused": lazy_gettext("Paused"),
    "completed": lazy_gettext("Sent"),
    "cancelled": lazy_gettext("Cancelled"),
}

MESSAGE_STATUS = {
    "queued": lazy_gettext("Waiting to be sent"),
    "claimed": lazy_gettext("Being sent"),
    "sent": lazy_gettext("Sent"),
    "retry": lazy_gettext("Trying again soon"),
    "failed": lazy_gettext("Could not be sent"),
    "suppressed": lazy_gettext("Not sent: this person cannot be emailed"),
    "skipped": lazy_gettext("Skipped: the step's condition was not met"),
    "cancelled": lazy_gettext("Cancelled"),
    "sending": lazy_gettext("Being sent"),
    "pending": lazy_gettext("Not sent yet"),
}

# The campaign page's count tiles: short words for the same codes.
MESSAGE_COUNT = {
    "queued": lazy_gettext("waiting to go"),
    "sending": lazy_gettext("being sent"),
    "sent": lazy_gettext("sent"),
    "retry": lazy_gettext("trying again"),
    "failed": lazy_gettext("could not be sent"),
    "suppressed": lazy_gettext("cannot be emailed"),
}

# Why a contact was left out: the words the API sends beside each code (campaigns.members),
# the brand's sharing rules included (never which partner mailed them).
EXCLUSION_REASON = members.EXCLUSION_LABELS

MESSAGE_REASON = {
    "campaign_cancelled": lazy_gettext("the campaign was cancelled"),
    "contact_erased": lazy_gettext("the contact was deleted"),
    "frequency_cap": lazy_gettext("the brand's limit on how many emails one person gets was "
                                  "reached"),
    "recently_sent_by_another_partner": lazy_gettext("this person recently got this journey "
                                                     "from another partner of the brand"),
}

JOURNEY_STATUS = {
    "draft": lazy_gettext("Draft"),
    "published": lazy_gettext("Published"),
    "archived": lazy_gettext("Archived"),
    "retired": lazy_gettext("Retired"),
}

# Keys of campaign forms other than slot values.
FIELD_LABELS = {
    "name": lazy_gettext("Campaign name"),
    "sender.name": lazy_gettext("Sender name"),
    "sender.reply_to": lazy_gettext("Reply-to"),
    "send_at": lazy_gettext("Send time"),
    "date": lazy_gettext("Date"),
    "time": lazy_gettext("Time"),
    "timezone": lazy_gettext("Time zone"),
    "contact_ids": lazy_gettext("Recipients"),
    "journey_id": lazy_gettext("Email"),
    "status": lazy_gettext("Status"),
    "members": lazy_gettext("Recipients"),
    "slot_values": lazy_gettext("Your texts"),
}

ROLE_NAME = {
    "brand_admin": lazy_gettext("brand administrator"),
    "brand_marketer": lazy_gettext("brand marketer"),
    "partner_admin": lazy_gettext("partner administrator"),
    "partner_user": lazy_gettext("partner user"),
}
INVITATION_STATUS = {
    "pending": lazy_gettext("Waiting"),
    "accepted": lazy_gettext("Accepted"),
    "expired": lazy_gettext("Expired"),
    "revoked": lazy_gettext("Withdrawn"),
}

ACTIVATION_STAGE = {
    "new": lazy_gettext("Not invited yet"),
    "invited": lazy_gettext("Invited"),
    "joined": lazy_gettext("Joined"),
    "profile_complete": lazy_gettext("Profile complete"),
    "first_campaign": lazy_gettext("First campaign"),
    "first_send": lazy_gettext("First email sent"),
}


def activation_stage(code: str | None) -> str:
    return _words(ACTIVATION_STAGE, code)


def role_name(code: str | None) -> str:
    return _words(ROLE_NAME, code)


def invitation_status(code: str | None) -> str:
    return _words(INVITATION_STATUS, code)


_STEP_KEY = re.compile(r"^steps\.(\d+)\.(.+)$")


def _words(table: dict, code: str | None) -> str:
    if not code:
        return ""
    label = table.get(code)
    return str(label) if label is not None else str(code).replace("_", " ").capitalize()


def campaign_status(code: str | None) -> str:
    return _words(CAMPAIGN_STATUS, code)


def message_status(code: str | None) -> str:
    return _words(MESSAGE_STATUS, code)


def message_count(code: str | None) -> str:
    return _words(MESSAGE_COUNT, code)


def exclusion_reason(code: str | None) -> str:
    return _words(EXCLUSION_REASON, code)


def message_reason(code: str | None) -> str:
    """Why a message was not sent, in words (suppression reasons, cancellations, conditions)."""
    if not code:
        return ""
    if code.startswith("condition:"):
        return _("the step's condition was not met")
    if code in MESSAGE_REASON:
        return str(MESSAGE_REASON[code])
    return exclusion_reason(code).lower() if code in EXCLUSION_REASON else \
        code.replace("_", " ")


def journey_status(code: str | None) -> str:
    return _words(JOURNEY_STATUS, code)


def field_label(key: str, versions: list | None = None) -> str:
    """Say which field a key names: ``steps.0.headline`` → "Step 1 · Headline"."""
    match = _STEP_KEY.match(key)
    if match:
        index, name = int(match.group(1)), match.group(2)
        label = name.replace("_", " ").capitalize()
        if versions and index < len(versions):
            for slot in versions[index].slots or []:
                if slot.get("name") == name:
                    label = slot.get("label") or label
                    break
        return _("Step %(n)d · %(label)s", n=index + 1, label=label)
    if key in FIELD_LABELS:
        return str(FIELD_LABELS[key])
    return key.replace("_", " ").replace(".", " · ").capitalize()


def field_errors_in_words(fields: dict | None, versions: list | None = None) -> list[str]:
    """Turn {key: problem} into lines a partner reads: "Step 1 · Headline: at most 80 ..."."""
    return [f"{field_label(str(k), versions)}: {v}" for k, v in (fields or {}).items()]


# Why an open or click was counted as a machine's (tracking/bots.py reasons).
MACHINE_REASON = {
    "apple_mail_privacy": lazy_gettext("Apple Mail privacy protection loaded the images"),
    "apple_proxy": lazy_gettext("fetched by Apple's mail servers"),
    "honeypot_link": lazy_gettext("a hidden link only machines follow"),
    "head_request": lazy_gettext("a link checker tested the link"),
    "prefetch_request": lazy_gettext("the browser preloaded the link"),
    "microsoft_safe_links": lazy_gettext("Microsoft's mail security checked the link"),
    "mimecast": lazy_gettext("Mimecast's mail security checked it"),
    "proofpoint": lazy_gettext("Proofpoint's mail security checked it"),
    "barracuda": lazy_gettext("Barracuda's mail security checked it"),
    "link_preview": lazy_gettext("a chat or social app previewed the link"),
    "scanner_user_agent": lazy_gettext("a security scanner or program, not a browser"),
    "image_proxy": lazy_gettext("an email image service, not a person"),
    "clicked_every_link": lazy_gettext("every link was opened within seconds"),
    "unread_click_not_a_browser": lazy_gettext(
        "opened by a program before the email could have been read"),
    # Reasons recorded before classification was based on evidence (kept for old events).
    "click_too_soon_after_delivery": lazy_gettext("clicked seconds after delivery"),
    "google_image_proxy": lazy_gettext("an email image service, not a person"),
    "yahoo_mail_proxy": lazy_gettext("an email image service, not a person"),
    "microsoft_image_proxy": lazy_gettext("an email image service, not a person"),
}

EVENT_KIND = {
    "open": lazy_gettext("Opened"),
    "click": lazy_gettext("Clicked a link"),
    "unsubscribe": lazy_gettext("Unsubscribed"),
    "bounce": lazy_gettext("Bounced"),
    "complaint": lazy_gettext("Marked as spam"),
    "delivery": lazy_gettext("Delivered"),
}


def machine_reason(code: str | None) -> str:
    """Why an open or click counts as a machine's, in words."""
    if not code:
        return ""
    return str(MACHINE_REASON[code]) if code in MACHINE_REASON else _("not a person")


def event_kind(code: str | None) -> str:
    return _words(EVENT_KIND, code)


def money(value: float | None, currency: str = "USD") -> str:
    """A conversion value in the user's locale with its currency ("$1,234.50")."""
    if value is None:
        return ""
    return format_currency(value, currency)


FILTERS = {"campaign_status": campaign_status, "message_status": message_status,
           "message_count": message_count,
           "exclusion_reason": exclusion_reason, "message_reason": message_reason,
           "journey_status": journey_status, "machine_reason": machine_reason,
           "event_kind": event_kind, "money": money, "role_name": role_name,
           "invitation_status": invitation_status, "activation_stage": activation_stage}
