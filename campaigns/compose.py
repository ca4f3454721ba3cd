"""Compose one recipient's message exactly as it is sent: shared by the preview and the worker.

Slot values are the campaign's validated values for the step merged with the member's
overrides; with a `send_id` every tracked link becomes a signed click token and the message
gets the open pixel and its own unsubscribe URL. Without one (a preview) links stay original.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from campaigns.models import Campaign, Contact
from core.db import db
from core.errors import NotFound
from journeys.models import JourneyStep, TemplateVersion
from personalization.context import brand_context
from tracking.bots import HONEYPOT_LINK
from tracking.tokens import make_token

_LOOKUP: Any = object()



@dataclass(frozen=True)
class Composed:
    """A personalized message plus what the sender needs to build its headers."""

    subject: str
    html: str
    text: str
    unsubscribe_url: str
    template_version_id: int
    # With a send: each link's rendered target, by index (where a click on it redirects).
    link_targets: tuple[str, ...] = ()


def step_version(campaign: Campaign, step_index: int) -> TemplateVersion:
    """Return the pinned template version of a campaign's step (404 if there is no such step)."""
    if campaign.kind == "quick_send" and step_index != 0:
        raise NotFound("Quick sends have only step 0.")
    # A published journey's pins never change, so the session may remember them; the
    # version row itself then comes from the identity map without another query.
    cache = db.session.info.setdefault("lastmile_step_versions", {})
    key = (campaign.journey_id, step_index)
    version_id = cache.get(key)
    if version_id is None:
        version_id = db.session.scalar(select(JourneyStep.template_version_id).where(
            JourneyStep.journey_id == campaign.journey_id, JourneyStep.position == step_index))
        if version_id is None:
            raise NotFound(f"The journey has no step {step_index}.")
        cache[key] = version_id
    version = db.session.get(TemplateVersion, version_id)
    if version is None:
        raise NotFound(f"The journey has no step {step_index}.")
    return version


def tracking_urls(config: Mapping, send_id: int) -> tuple[str, str]:
    """Return (open pixel URL, unsubscribe URL) for a send."""
    base = str(config["PUBLIC_BASE_URL"]).rstrip("/")
    secret = str(config["SECRET_KEY"])
    return (f"{base}/t/o/{make_token(secret, 'open', send_id)}",
            f"{base}/u/{make_token(secret, 'unsubscribe', send_id)}")


def slot_values_for(campaign: Campaign, step_index: int, overrides: dict | None) -> dict:
    """Return the campaign's values for a step with the member's overrides applied."""
    values = dict((campaign.slot_values or {}).get(str(step_index), {}))
    values.update((overrides or {}).get(str(step_index), {}))
    return values


def compose_message(campaign: Campaign, step_index: int, contact: Contact | dict,
                    partner: Any, *, send_id: int | None, config: Mapping,
                    overrides: dict | None = _LOOKUP,
                    version: TemplateVersion | None = None) -> Composed:
    """Render a campaign step for one contact, with tracking when `send_id` is given.

    Pass `overrides` (the member's stored overrides, {} for none) and `version` when you
    already loaded them in bulk; otherwise they are read here (one indexed query each).
    """
    from campaigns.services import member_overrides
    from personalization.render import render_message

    if version is None:
        version = step_version(campaign, step_index)
    if isinstance(contact, Contact):
        if overrides is _LOOKUP:
            overrides = member_overrides(campaign.id, contact.id)
        contact_ctx = contact.template_context()
    else:
        overrides = {} if overrides is _LOOKUP else overrides
        contact_ctx = contact
    partner_ctx = partner.template_context() if hasattr(partner, "template_context") else partner
    sender = {"name": campaign.sender_name, "reply_to": campaign.sender_reply_to}
    brand = brand_context(config)
    values = slot_values_for(campaign, step_index, overrides)
    targets: dict[int, str] = {}
    if send_id is None:
        rendered = render_message(version, values, contact_ctx, partner_ctx, sender, brand)
        unsubscribe_url = "#"
    else:
        base = str(config["PUBLIC_BASE_URL"]).rstrip("/")
        secret = str(config["SECRET_KEY"])
        pixel_url, unsubscribe_url = tracking_urls(config, send_id)

        def link_url(index: int, url: str) -> str:
            targets[index] = url
            return f"{base}/t/c/{make_token(secret, 'click', send_id, index)}"

        honeypot = f"{base}/t/c/{make_token(secret, 'click', send_id, HONEYPOT_LINK)}"
        rendered = render_message(version, values, contact_ctx, partner_ctx, sender, brand,
                                  link_url=link_url, unsubscribe_url=unsubscribe_url,
                                  open_pixel_url=pixel_url, honeypot_url=honeypot)
    link_targets = () if send_id is None else tuple(
        targets.get(i, "") for i in range(len(version.links or [])))
    return Composed(subject=rendered.subject, html=rendered.html, text=rendered.text,
                    unsubscribe_url=unsubscribe_url, template_version_id=version.id,
                    link_targets=link_targets)
