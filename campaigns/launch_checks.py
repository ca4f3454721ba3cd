"""What a partner should know before launching a campaign: the launcher's last step.

- `recipient_flags`: counts of members the message will treat differently (no first name,
  no longer mailable, no time zone of their own when sending in each recipient's zone);
- `unnamed_greeting`: the line a recipient without a first name sees instead of "Hi Ann,";
- `lock_status`: whether every step, rendered with the campaign's values, keeps the brand's
  locked content intact (the brand-lock proof of personalization/lock.py).

Each is a few queries or renders, whatever the campaign's size.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select

from campaigns import schedule
from campaigns.contacts import status_column, with_status
from campaigns.models import Campaign, CampaignMember, Contact
from campaigns.sending import preview_campaign
from campaigns.values import campaign_versions
from core.db import db
from personalization.context import sample_contact

# A name no real recipient has: where it appears in a render is where the first name goes.
_MARKER = "Qzxvbnmkjwq"


def _members(campaign_id: int):
    return select(func.count()).select_from(CampaignMember).join(
        Contact, Contact.id == CampaignMember.contact_id).where(
        CampaignMember.campaign_id == campaign_id)


def recipient_flags(campaign: Campaign) -> dict[str, int]:
    """Return {flag: number of members} for the flags that apply (zero counts left out).

    `no_first_name`: the contact has no first name. `cannot_email`: the contact can no
    longer be emailed (unsubscribed, bounced... since it was added); the send skips it.
    `no_timezone`: sending in each recipient's time zone, the contact has none we know.
    """
    flags: dict[str, int] = {}
    flags["no_first_name"] = db.session.scalar(
        _members(campaign.id).where(func.trim(Contact.first_name) == "")) or 0
    flags["cannot_email"] = db.session.scalar(
        with_status(select(func.count()).select_from(Contact))
        .join(CampaignMember, CampaignMember.contact_id == Contact.id)
        .where(CampaignMember.campaign_id == campaign.id, status_column() != "mailable")) or 0
    if campaign.recipient_timezone:
        zones = db.session.scalars(
            select(Contact.attributes["timezone"].as_string())
            .join(CampaignMember, CampaignMember.contact_id == Contact.id)
            .where(CampaignMember.campaign_id == campaign.id))
        flags["no_timezone"] = sum(1 for zone in zones if not schedule.is_zone(zone))
    return {name: count for name, count in flags.items() if count}


def unnamed_greeting(campaign: Campaign, partner: Any, config: Mapping) -> str:
    """Return the line of the first step where the first name goes, as a recipient without
    one reads it ("Hi there,"); "" if the first step does not use the first name."""
    named, unnamed = sample_contact(), sample_contact()
    named["first_name"], unnamed["first_name"] = _MARKER, ""
    with_name = preview_campaign(campaign, 0, named, partner, config=config, overrides={})
    without = preview_campaign(campaign, 0, unnamed, partner, config=config, overrides={})
    lines = [line.strip() for line in with_name.text.splitlines()]
    others = [line.strip() for line in without.text.splitlines()]
    for i, line in enumerate(lines):
        if _MARKER in line:
            return others[i] if len(lines) == len(others) and others[i] else ""
    return ""


def lock_status(campaign: Campaign, partner: Any, config: Mapping) -> list[bool]:
    """Return, per step, whether the brand's locked content is intact with these values."""
    return [preview_campaign(campaign, step, None, partner, config=config,
                             overrides={}).locked_regions_intact
            for step in range(len(campaign_versions(campaign)))]
