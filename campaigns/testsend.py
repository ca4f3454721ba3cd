"""Send me a test: a campaign's steps, exactly as a recipient gets them, to the signed-in user.

Each message is composed by `campaigns.sending.compose_message`, the function the worker sends
with, for the sample contact (or one of the partner's own contacts, with that member's
overrides) and built by `delivery.mime.build_message` as the worker builds it. Three
differences, all on purpose:

- it goes to the signed-in user's own address, never to a contact;
- its subject starts with `[TEST] `;
- it is untracked: no send row in the ledger, no open pixel, links straight to their targets,
  so analytics never see it (and no unsubscribe link that could suppress anyone).

Delivery is synchronous, while the caller waits: a test is a handful of messages to one
person who is looking at the screen for them, so the answer can say truthfully whether the
mail server took them, and it needs no worker to be running. Each SMTP step gives up after
`TIMEOUT_SECONDS` (at most SMTP_TIMEOUT), and the first failure ends the test, so a dead
mail server costs the request seconds, never minutes. Requests are counted in `test_sends`
(LIMIT_PER_HOUR per campaign, rolling hour), committed before the server is contacted.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from math import ceil
from typing import Any

from sqlalchemy import select

from accounts.models import Partner, User
from campaigns.models import Campaign, Contact, TestSend
from campaigns.sending import compose_message
from campaigns.values import campaign_versions
from core import clock
from core.db import db
from core.errors import DeliveryFailed, RateLimited, ValidationError
from core.i18n import _, ngettext
from delivery.backends import deliver_now
from delivery.base import OutgoingMessage
from delivery.mime import build_message, new_message_id
from personalization.context import sample_contact

log = logging.getLogger(__name__)

TEST_PREFIX = "[TEST] "
LIMIT_PER_HOUR = 10
WINDOW = timedelta(hours=1)
TIMEOUT_SECONDS = 10.0
# The header that marks a test message (the outbox files it under the test's id).
TEST_HEADER = "X-Lastmile-Test-Send"


def _steps(campaign: Campaign, step: Any) -> list[int]:
    count = len(campaign_versions(campaign))  # a quick send has its first step only
    if step is None:
        return list(range(count))
    if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step < count:
        raise ValidationError(_("There is no such step."), {
            "step": ngettext("must be 0 (this campaign has one step)",
                             "must be a step number from 0 to %(last)s", count, last=count - 1)})
    return [step]


def _check_rate(campaign: Campaign) -> None:
    """Refuse (429) an 11th test of a campaign within an hour; the caller holds its row lock."""
    now = clock.now()
    recent = list(db.session.scalars(
        select(TestSend.created_at).where(TestSend.campaign_id == campaign.id,
                                          TestSend.created_at > now - WINDOW)
        .order_by(TestSend.created_at.desc())))
    if len(recent) < LIMIT_PER_HOUR:
        return
    # The request frees a place when the LIMIT-th newest test leaves the window.
    free_at = recent[LIMIT_PER_HOUR - 1] + WINDOW
    minutes = max(1, ceil((free_at - now).total_seconds() / 60))
    raise RateLimited(ngettext(
        "You can send %(limit)s test messages of a campaign per hour. Try again in a minute.",
        "You can send %(limit)s test messages of a campaign per hour. Try again in "
        "%(num)s minutes.", minutes, limit=LIMIT_PER_HOUR))


def send_test(campaign: Campaign, user: User, *, config: Mapping, step: Any = None,
              contact: Contact | None = None) -> TestSend:
    """Mail the campaign's steps (or one `step`) to `user` only, marked [TEST]; return the record.

    `contact` (one of the campaign's partner's contacts, already checked by the caller)
    personalizes the messages as that recipient would get them; by default the sample
    contact does. Raises 422 for a step the campaign does not have, 429 over the limit and
    502 when the mail server does not take a message (the request is still counted).
    """
    steps = _steps(campaign, step)
    # Serialize tests of one campaign so two requests cannot both take the last place.
    db.session.execute(select(Campaign.id).where(Campaign.id == campaign.id).with_for_update())
    _check_rate(campaign)
    partner = db.session.get(Partner, campaign.partner_id)
    record = TestSend(campaign_id=campaign.id, partner_id=campaign.partner_id, user_id=user.id,
                      email=user.email, steps=steps, status="sending", error="",
                      created_at=clock.now())
    db.session.add(record)
    db.session.flush()
    brand_name = str(config["BRAND_NAME"])
    brand_address = str(config["BRAND_FROM_EMAIL"])
    messages = []
    for index in steps:
        # send_id=None: rendered exactly as sent, without tracking (compose_message).
        composed = compose_message(campaign, index,
                                   sample_contact() if contact is None else contact, partner,
                                   send_id=None, config=config)
        try:
            data = build_message(
                message_id=new_message_id(brand_address),
                from_name=f"{campaign.sender_name} via {brand_name}",
                from_email=brand_address,
                reply_to=campaign.sender_reply_to,
                reply_to_name=campaign.sender_name,
                to=user.email,
                subject=TEST_PREFIX + composed.subject,
                html=composed.html,
                text=composed.text,
                list_unsubscribe_url="",
                list_unsubscribe_mailto="",
                send_id=0,
                extra_headers={TEST_HEADER: str(record.id)},
            )
        except ValueError as exc:
            raise ValidationError(_("This test message cannot be built."),
                                  {"email": str(exc)}) from exc
        messages.append(OutgoingMessage(0, brand_address, user.email, data))
    db.session.commit()  # counted (and the campaign's lock released) before the server is asked
    error = deliver_now(messages, config, TIMEOUT_SECONDS)
    record.status, record.error = ("failed", error[:500]) if error else ("sent", "")
    db.session.commit()
    if error:
        log.warning("test send %s of campaign %s failed: %s", record.id, campaign.id, error)
        raise DeliveryFailed(
            _("The mail server did not take the test message, so nothing reached you: "
              "%(error)s", error=error[:300]),
            {"delivery": error[:300]})
    return record


def last_test(campaign: Campaign) -> TestSend | None:
    """Return the campaign's most recent test send, if any."""
    return db.session.scalar(select(TestSend).where(TestSend.campaign_id == campaign.id)
                             .order_by(TestSend.id.desc()).limit(1))


def json_of(record: TestSend) -> dict:
    """Serialize a test send for the API."""
    return {"id": record.id, "campaign_id": record.campaign_id, "to": record.email,
            "steps": list(record.steps or []), "status": record.status,
            "created_at": record.created_at.isoformat()}
