"""A campaign's members: who it goes to, each one's overrides, and who was left out and why."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, insert, select

from campaigns.contacts import CONTACT_STATUSES, search_contacts, status_column, with_status
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


def add_matching(campaign: Campaign, q: str = "", *, tags: Iterable[str] = (),
                 status: str | None = None) -> dict:
    """Add every contact of the campaign's partner matching a search (one call, no page cap).

    The match is `contacts.search_contacts(q, tags, status)`, read page by page; each page is
    staged like `add_members` (exclusions with their reason) and all is committed at once.
    Returns {"matched", "added", "excluded"}.
    """
    require_editable(campaign)
    tags = list(tags)
    added, excluded, matched, page = 0, [], 0, 1
    while True:
        rows, total = search_contacts(campaign.partner_id, q, tags=tags, status=status,
                                      page=page, per_page=MAX_MEMBERS_PER_CALL)
        if not rows:
            break
        matched += len(rows)
        result = stage_members(campaign, [contact.id for contact, _status in rows], None)
        added += result["added"]
        excluded += result["excluded"]
        if page * MAX_MEMBERS_PER_CALL >= total:
            break
        page += 1
    db.session.commit()
    return {"matched": matched, "added": added, "excluded": excluded}


def unmailable_matching(partner_id: int, q: str = "", *, tags: Iterable[str] = (),
                        status: str | None = None, limit: int = 100
                        ) -> tuple[dict[str, int], list[tuple[Contact, str]]]:
    """Who of a search's matches cannot be emailed and why: ({status: count}, first rows).

    The statuses are the contact statuses other than `mailable` (unsubscribed, bounced, no
    consent...); such contacts are never added to a campaign.
    """
    tags = list(tags)
    counts: dict[str, int] = {}
    rows: list[tuple[Contact, str]] = []
    for reason in CONTACT_STATUSES[1:]:
        if status is not None and status != reason:
            continue
        page, total = search_contacts(partner_id, q, tags=tags, status=reason, page=1,
                                      per_page=max(0, limit - len(rows)) or 1)
        if total:
            counts[reason] = total
            rows += page[:max(0, limit - len(rows))]
    return counts, rows


def list_members(campaign_id: int, q: str = "", page: int = 1, per_page: int = 50
                 ) -> tuple[list[tuple[Contact, str]], int]:
    """Return one page of a campaign's members (contact, status now) matching `q`, and the total."""
    where = [CampaignMember.campaign_id == campaign_id]
    q = (q or "").strip()
    if q:
        pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append(Contact.email.ilike(pattern, escape="\\")
                     | Contact.first_name.ilike(pattern, escape="\\")
                     | Contact.last_name.ilike(pattern, escape="\\"))
    total = db.session.scalar(select(func.count()).select_from(CampaignMember)
                              .join(Contact, Contact.id == CampaignMember.contact_id)
                              .where(*where)) or 0
    rows = db.session.execute(
        with_status(select(Contact, status_column())).join(
            CampaignMember, CampaignMember.contact_id == Contact.id).where(*where)
        .order_by(Contact.id).limit(per_page).offset((page - 1) * per_page)).all()
    return [(contact, status) for contact, status in rows], total


def member_ids_among(campaign_id: int, contact_ids: Iterable[int]) -> set[int]:
    """Return which of these contacts are already members of the campaign (one query)."""
    ids = list(contact_ids)
    if not ids:
        return set()
    return set(db.session.scalars(select(CampaignMember.contact_id).where(
        CampaignMember.campaign_id == campaign_id, CampaignMember.contact_id.in_(ids))))


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
