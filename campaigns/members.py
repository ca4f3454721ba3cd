"""A campaign's members: who it goes to, each one's overrides, and who was left out and why."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, insert, select

from campaigns.models import Campaign, CampaignMember, Contact
from campaigns.states import allowed, apply, require_editable
from campaigns.suppression import suppression_reasons
from campaigns.values import campaign_versions, clean_overrides
from core import clock
from core.db import db
from core.errors import NotFound, ValidationError
from core.validate import is_db_id

MAX_MEMBERS_PER_CALL = 10_000


def _parse_ids(raw: Any) -> list[int]:
    if not isinstance(raw, list) or not raw:
        raise ValidationError("Members are invalid.", {"contact_ids": "must be a non-empty list"})
    if len(raw) > MAX_MEMBERS_PER_CALL:
        raise ValidationError("Members are invalid.",
                              {"contact_ids": f"at most {MAX_MEMBERS_PER_CALL} per call"})
    if not all(is_db_id(i) for i in raw):
        raise ValidationError("Members are invalid.", {"contact_ids": "must be contact ids"})
    return raw


def stage_members(campaign: Campaign, contact_ids: Any, overrides: Any) -> dict:
    require_editable(campaign)
    ids = _parse_ids(contact_ids)
    versions = campaign_versions(campaign)
    cleaned_overrides = clean_overrides(campaign, overrides, versions)
    contacts = {
        c.id: c for c in db.session.scalars(
            select(Contact).where(Contact.id.in_(set(ids)),
                                  Contact.partner_id == campaign.partner_id))
    }
    existing = dict(db.session.execute(
        select(CampaignMember.contact_id, CampaignMember.id)
        .where(CampaignMember.campaign_id == campaign.id)
    ).all())
    for contact_id in cleaned_overrides:
        if contact_id not in ids and contact_id not in existing:
            raise ValidationError("Members are invalid.", {
                f"overrides.{contact_id}": "is neither in contact_ids nor already a member"})
    suppressed = suppression_reasons([c.email for c in contacts.values()])
    excluded: list[dict] = []
    rows: list[dict] = []
    seen: set[int] = set()
    now = clock.now()
    for contact_id in ids:
        contact = contacts.get(contact_id)
        if contact is None:
            excluded.append({"contact_id": contact_id, "reason": "not_found"})
            continue
        if contact_id in seen or contact_id in existing:
            excluded.append({"contact_id": contact_id, "reason": "duplicate"})
            continue
        seen.add(contact_id)
        reason = suppressed.get(contact.email) or (None if contact.consent else "no_consent")
        if reason:
            excluded.append({"contact_id": contact_id, "reason": reason})
            continue
        rows.append({"campaign_id": campaign.id, "contact_id": contact_id,
                     "overrides": cleaned_overrides.get(contact_id, {}), "added_at": now})
    if rows:
        db.session.execute(insert(CampaignMember), rows)
    # Overrides for contacts that were already members replace their previous overrides.
    for contact_id, stored in cleaned_overrides.items():
        if contact_id in existing:
            member = db.session.get(CampaignMember, existing[contact_id])
            if member is not None:
                member.overrides = stored
    if allowed(campaign, "edit"):
        apply(campaign, "edit", "edited after rejection")
    db.session.flush()
    return {"added": len(rows), "excluded": excluded}


def add_members(campaign: Campaign, contact_ids: Any, overrides: Any = None) -> dict:
    """Add contacts to a draft campaign; report each one left out with its reason."""
    result = stage_members(campaign, contact_ids, overrides)
    db.session.commit()
    return result


def remove_member(campaign: Campaign, contact_id: int) -> None:
    """Remove a contact from a draft campaign."""
    require_editable(campaign)
    member = db.session.scalar(select(CampaignMember).where(
        CampaignMember.campaign_id == campaign.id, CampaignMember.contact_id == contact_id))
    if member is None:
        raise NotFound("Member not found.")
    db.session.delete(member)
    db.session.commit()


def member_overrides(campaign_id: int, contact_id: int) -> dict:
    """Return a member's stored overrides ({"step": {slot: value}}), {} if none."""
    overrides = db.session.scalar(select(CampaignMember.overrides).where(
        CampaignMember.campaign_id == campaign_id, CampaignMember.contact_id == contact_id))
    return overrides or {}


def member_count(campaign_id: int) -> int:
    """Count a campaign's members."""
    return db.session.scalar(
        select(func.count()).select_from(CampaignMember)
        .where(CampaignMember.campaign_id == campaign_id)
    ) or 0
