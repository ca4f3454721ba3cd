"""A campaign's members: who it goes to, each one's overrides, and who was left out and why."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from sqlalchemy import case, func, insert, literal, literal_column, select
from sqlalchemy.dialects import postgresql, sqlite

from campaigns import audiences, sharing
from campaigns.contacts import CONTACT_STATUSES, search_contacts, status_column, with_status
from campaigns.models import Campaign, CampaignMember, Contact
from campaigns.states import allowed, apply, require_editable
from campaigns.suppression import suppression_reasons
from campaigns.values import campaign_versions, clean_overrides
from core import clock
from core.db import db
from core.errors import NotFound, ValidationError
from core.i18n import _, lazy_gettext
from core.validate import is_db_id

MAX_MEMBERS_PER_CALL = 10_000
# A segment or filter adds everyone matching in one statement; the answer lists this many
# of the people left out (the counts per reason cover all of them).
EXCLUDED_LISTED = 100

# Why a contact was left out, in words (the API sends both; pages use web/labels.py).
EXCLUSION_LABELS = {
    "no_consent": lazy_gettext("No consent to email"),
    "unsubscribed": lazy_gettext("Unsubscribed"),
    "bounced": lazy_gettext("Email address bounced"),
    "complained": lazy_gettext("Marked an email as spam"),
    "manual": lazy_gettext("Blocked by the brand"),
    "suppressed": lazy_gettext("Blocked by the brand"),
    "duplicate": lazy_gettext("Already in this campaign"),
    "already_member": lazy_gettext("Already in this campaign"),
    "not_found": lazy_gettext("Contact not found (perhaps deleted)"),
    **sharing.REASON_LABELS,
}


def exclusion_label(reason: str) -> str:
    """Return why a contact was left out, in words."""
    label = EXCLUSION_LABELS.get(reason)
    return str(label) if label is not None else reason.replace("_", " ").capitalize()


def _exclusions(counts: Counter) -> list[dict]:
    return [{"reason": reason, "label": exclusion_label(reason), "count": n}
            for reason, n in sorted(counts.items(), key=lambda item: (-item[1], item[0]))]


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
    shared = _shared_exclusions(campaign, [c.id for c in contacts.values()])
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
        reason = (suppressed.get(contact.email) or (None if contact.consent else "no_consent")
                  or shared.get(contact_id))
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
    for item in excluded:
        item["label"] = exclusion_label(item["reason"])
    return {"added": len(rows), "excluded": excluded,
            "exclusions": _exclusions(Counter(item["reason"] for item in excluded)),
            "members": member_count(campaign.id)}


def _shared_exclusions(campaign: Campaign, contact_ids: list[int]) -> dict[int, str]:
    """Return {contact id: reason} for the contacts the brand's sharing rules leave out."""
    rules = sharing.audience_exclusions(campaign.journey_id, campaign.partner_id)
    if not rules or not contact_ids:
        return {}
    reason = case(*[(condition, literal(code)) for condition, code in rules], else_=None)
    found = db.session.execute(
        select(Contact.id, reason).where(Contact.id.in_(contact_ids))).all()
    return {contact_id: why for contact_id, why in found if why}


def add_members(campaign: Campaign, contact_ids: Any, overrides: Any = None) -> dict:
    """Add contacts to a draft campaign; report each one left out with its reason."""
    result = stage_members(campaign, contact_ids, overrides)
    db.session.commit()
    return result


def add_matching(campaign: Campaign, q: str = "", *, tags: Iterable[str] = (),
                 status: str | None = None) -> dict:
    """Add every contact matching the contact list's search (text, tags, status) at once.

    The search is the shared audience filter, so the brand's sharing rules hold people back
    here as they do for a segment; the answer is `add_audience`'s.
    """
    return add_audience(campaign, audiences.clean_query_args(q, list(tags), status))


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
def _lock_editable(campaign: Campaign) -> None:
    """Lock the campaign row and check it is still editable (a launch waits for us)."""
    db.session.execute(select(Campaign.id).where(Campaign.id == campaign.id).with_for_update())
    db.session.refresh(campaign)
    require_editable(campaign)


def add_audience(campaign: Campaign, audience: dict) -> dict:
    """Add everyone matching a cleaned filter (or a segment's) to a draft campaign at once.

    One INSERT ... SELECT, whatever the number of contacts. A contact is left out when it
    cannot be emailed (its status), is already a member, or the brand's sharing rules hold it
    back; the answer counts each reason and lists the first people left out.
    """
    _lock_editable(campaign)
    member = select(CampaignMember.id).where(CampaignMember.campaign_id == campaign.id,
                                             CampaignMember.contact_id == Contact.id).exists()
    from_status = status_column()
    whens = [(member, literal("duplicate")),
             (from_status != "mailable", from_status)]
    whens += [(condition, literal(code)) for condition, code
              in sharing.audience_exclusions(campaign.journey_id, campaign.partner_id)]
    reason = case(*whens, else_=None).label("reason")
    matched = audiences.audience_select(campaign.partner_id, [audience],
                                        Contact.id.label("contact_id"), reason).subquery()
    counts = Counter({code: n for code, n in db.session.execute(
        select(matched.c.reason, func.count()).group_by(matched.c.reason)).all()})
    chosen = counts.pop(None, 0)
    excluded = [{"contact_id": contact_id, "reason": code, "label": exclusion_label(code)}
                for contact_id, code in db.session.execute(
                    select(matched.c.contact_id, matched.c.reason)
                    .where(matched.c.reason.is_not(None))
                    .order_by(matched.c.contact_id).limit(EXCLUDED_LISTED)).all()]
    added = 0
    if chosen:
        dialect = db.engine.dialect.name
        empty = literal_column("CAST('{}' AS JSON)" if dialect == "postgresql" else "'{}'")
        rows = select(literal(campaign.id), matched.c.contact_id, empty,
                      literal(clock.now())).where(matched.c.reason.is_(None))
        insert_into = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(
            CampaignMember.__table__)
        result = db.session.execute(
            insert_into.from_select(["campaign_id", "contact_id", "overrides", "added_at"],
                                    rows)
            .on_conflict_do_nothing(index_elements=["campaign_id", "contact_id"]))
        added = result.rowcount if result.rowcount is not None and result.rowcount >= 0 \
            else chosen
    if allowed(campaign, "edit"):
        apply(campaign, "edit", "edited after rejection")
    db.session.commit()
    return {"added": added, "matched": chosen + sum(counts.values()), "excluded": excluded,
            "exclusions": _exclusions(counts), "members": member_count(campaign.id)}


def add_members_request(campaign: Campaign, data: dict) -> dict:
    """Add members from an API body: `contact_ids` (+ `overrides`), `segment_id` or `filter`.

    Exactly one of the three; a segment must be the campaign's partner's (404 otherwise).
    """
    unknown = set(data) - {"contact_ids", "overrides", "segment_id", "filter"}
    if unknown:
        raise ValidationError(_("Members are invalid."),
                              {k[:100]: _("is not a members field") for k in unknown})
    given = [k for k in ("contact_ids", "segment_id", "filter") if k in data]
    if len(given) != 1:
        raise ValidationError(_("Members are invalid."), {
            "contact_ids": _("send exactly one of contact_ids, segment_id or filter")})
    if given[0] == "contact_ids":
        return add_members(campaign, data["contact_ids"], data.get("overrides"))
    if "overrides" in data:
        raise ValidationError(_("Members are invalid."), {
            "overrides": _("can only be sent with contact_ids")})
    require_editable(campaign)
    if given[0] == "segment_id":
        segment = audiences.partner_segment(campaign.partner_id, data["segment_id"])
        return add_audience(campaign, audiences.clean_filter(segment.filter or {}))
    return add_audience(campaign, audiences.clean_filter(data["filter"]))


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


def set_member_overrides(campaign: Campaign, contact_id: int, values: dict) -> dict:
    """Give one member of a draft campaign their own slot values ({"step": {slot: value}}).

    Empty `values` puts the member back on the campaign's values. The values are checked like
    the campaign's own (limits, sanitizing, the brand's rules); returns what is stored.
    """
    require_editable(campaign)
    member = db.session.scalar(select(CampaignMember).where(
        CampaignMember.campaign_id == campaign.id, CampaignMember.contact_id == contact_id))
    if member is None:
        raise NotFound(_("This client is not in the campaign."))
    cleaned = (clean_overrides(campaign, {contact_id: values}, campaign_versions(campaign))
               if values else {})
    member.overrides = cleaned.get(contact_id, {})
    if allowed(campaign, "edit"):
        apply(campaign, "edit", "edited after rejection")
    db.session.commit()
    return member.overrides


def member_count(campaign_id: int) -> int:
    """Count a campaign's members."""
    return db.session.scalar(
        select(func.count()).select_from(CampaignMember)
        .where(CampaignMember.campaign_id == campaign_id)
    ) or 0
