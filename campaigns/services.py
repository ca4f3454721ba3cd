"""Campaigns: suppression, personalized runs of a journey, members, approvals and quick sends.

A partner never supplies template source: a campaign stores validated slot *values* per step
(`{"0": {slot: value}}`) and pins the journey, whose steps pin published template versions.
Status changes go through `campaigns.states.apply`; the scheduler (`campaigns.ledger`)
turns a launched campaign into send rows.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from accounts.models import Partner, User
from campaigns.contacts import InvalidEmail, loose_email, normalize_email
from campaigns.models import (
    SUPPRESSION_REASONS,
    Campaign,
    CampaignMember,
    Contact,
    Send,
    Suppression,
)
from campaigns.states import EDITABLE, allowed, apply
from core import clock
from core.db import db
from core.errors import NotFound, SlotError, StateError, ValidationError
from journeys.models import Journey, TemplateVersion
from personalization.slots import clean_slot_values

MAX_MEMBERS_PER_CALL = 10_000
CAMPAIGN_FIELDS = frozenset({"journey_id", "name", "slot_values", "sender"})
QUICK_SEND_FIELDS = frozenset({"journey_id", "contact_ids", "slot_values", "sender", "overrides",
                               "name"})
# Markup in a plain-text slot is an attempt to inject template content: refuse it loudly
# rather than let it render as escaped text the partner did not expect.
MARKUP = re.compile(r"<\s*/?\s*[A-Za-z!?][^>]*>|\{\{|\{%")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MESSAGE_STATUS = {"claimed": "sending"}
# The API's message states: a row waiting for its retry is still queued (attempts and
# last_error say why); skipped and cancelled are Lastmile's additions.
MESSAGE_API_STATUS = {"claimed": "sending", "retry": "queued"}
COUNT_KEYS = ("queued", "sending", "retry", "sent", "failed", "suppressed", "skipped",
              "cancelled")


# ---------------------------------------------------------------------------------- suppression


def suppress_email(email: str, reason: str, detail: str = "") -> bool:
    """Add an address to the brand-wide suppression list (idempotent); True if newly added."""
    added = add_suppressions([email], reason, detail) > 0
    db.session.commit()
    return added


def add_suppressions(emails: list[str], reason: str, detail: str = "") -> int:
    """Suppress addresses inside the caller's transaction (no commit); return how many are new."""
    if reason not in SUPPRESSION_REASONS:
        raise ValueError(f"unknown suppression reason {reason!r}")
    keys = sorted({k for k in (loose_email(e) for e in emails) if k})
    if not keys:
        return 0
    dialect = postgresql if db.engine.dialect.name == "postgresql" else sqlite
    now = clock.now()
    # ON CONFLICT DO NOTHING keeps it idempotent even when two webhooks race for one address.
    stmt = dialect.insert(Suppression.__table__).values(
        [{"email": k, "reason": reason, "detail": (detail or "")[:2000], "created_at": now}
         for k in keys]
    ).on_conflict_do_nothing(index_elements=["email"]).returning(Suppression.__table__.c.id)
    return len(db.session.execute(stmt).all())


def is_suppressed(email: str) -> bool:
    """Tell whether an address is on the brand-wide suppression list."""
    key = loose_email(email)
    return db.session.scalar(select(Suppression.id).where(Suppression.email == key)) is not None


def suppression_reasons(emails: list[str]) -> dict[str, str]:
    """Return {normalized email: suppression reason} for those of `emails` that are suppressed."""
    keys = list({loose_email(e) for e in emails})
    found: dict[str, str] = {}
    for start in range(0, len(keys), 5000):
        batch = keys[start:start + 5000]
        found.update(db.session.execute(
            select(Suppression.email, Suppression.reason).where(Suppression.email.in_(batch))
        ).all())
    return found


def exclusion_reason(contact: Contact) -> str | None:
    """Return why a contact must not be mailed (a suppression reason or no_consent)."""
    reason = db.session.scalar(
        select(Suppression.reason).where(Suppression.email == loose_email(contact.email))
    )
    if reason:
        return reason
    if not contact.consent:
        return "no_consent"
    return None


# --------------------------------------------------------------------------- journey and slots


def catalog_journey_for(journey_id: Any, partner: Partner) -> Journey:
    """Return a published journey in the partner's catalog, or 404 like a missing one."""
    from journeys.services import journey_visible_to

    if not isinstance(journey_id, int) or isinstance(journey_id, bool):
        raise ValidationError("Campaign is invalid.", {"journey_id": "must be a journey id"})
    journey = db.session.get(Journey, journey_id)
    if journey is None or not journey_visible_to(journey, partner):
        raise NotFound("Journey not found.")
    return journey


def journey_versions(journey: Journey) -> list[TemplateVersion]:
    """Return the pinned template version of each step, in step order."""
    versions = []
    for step in journey.steps:
        version = step.template_version
        if version is None:  # a published journey always pins; defend against bad data
            raise StateError(f"Journey step {step.position} has no published template.")
        versions.append(version)
    return versions


def _markup_problems(version: TemplateVersion, values: dict) -> dict[str, str]:
    kinds = {slot["name"]: slot["type"] for slot in version.slots}
    problems = {}
    for name, value in values.items():
        if kinds.get(name) not in (None, "richtext") and isinstance(value, str) \
                and MARKUP.search(value):
            problems[name] = "must be plain text (no HTML, MJML or template tags)"
    return problems


def _split_by_step(values: Any, versions: list[TemplateVersion], where: str,
                   problems: dict[str, str]) -> dict[int, dict]:
    """Turn the per-step or flat form into {step index: {slot: value}}; record key problems."""
    if values is None:
        return {}
    if not isinstance(values, dict):
        problems[where] = "must be an object"
        return {}
    per_step = bool(values) and all(
        isinstance(k, str) and k.isdigit() and isinstance(v, dict) for k, v in values.items()
    )
    if per_step:
        out = {}
        for key, step_values in values.items():
            index = int(key)
            if index >= len(versions):
                problems[f"{where}.{key}"] = f"the journey has no step {index}"
            else:
                out[index] = step_values
        return out
    declared = {slot["name"] for v in versions for slot in v.slots}
    out = {i: {} for i in range(len(versions))}
    for name, value in values.items():
        if name not in declared:
            problems[f"{where}.{str(name)[:100]}"] = "is not a slot of this journey"
            continue
        for i, version in enumerate(versions):
            if any(slot["name"] == name for slot in version.slots):
                out[i][name] = value
    return out


def clean_campaign_values(values: Any, versions: list[TemplateVersion],
                          where: str = "slot_values") -> dict[str, dict[str, str]]:
    """Validate slot values for every step; return {"i": cleaned} or raise one SlotError."""
    problems: dict[str, str] = {}
    by_step = _split_by_step(values, versions, where, problems)
    cleaned: dict[str, dict[str, str]] = {}
    for i, version in enumerate(versions):
        step_values = by_step.get(i, {})
        for name, message in _markup_problems(version, step_values).items():
            problems[f"steps.{i}.{name}"] = message
        try:
            cleaned[str(i)] = clean_slot_values(version.slots, step_values)
        except SlotError as err:
            for name, message in err.fields.items():
                problems[f"steps.{i}.{name}"] = message
    if problems:
        raise SlotError("Some slot values are invalid.", problems)
    return cleaned


def clean_sender(sender: Any, partner: Partner, user: User) -> tuple[str, str]:
    """Validate {name, reply_to}; default to the partner's name and the user's address."""
    problems: dict[str, str] = {}
    if sender is None:
        sender = {}
    if not isinstance(sender, dict):
        raise ValidationError("Campaign is invalid.", {"sender": "must be an object"})
    for key in set(sender) - {"name", "reply_to"}:
        problems[f"sender.{key}"] = "is not a sender field"
    name = sender.get("name") or partner.name
    if not isinstance(name, str):
        problems["sender.name"] = "must be a string"
    elif CONTROL.search(name):
        problems["sender.name"] = "must be one line without control characters"
    elif len(name.strip()) > 100 or not name.strip():
        problems["sender.name"] = "must be 1 to 100 characters"
    reply_to = sender.get("reply_to")
    if reply_to in (None, ""):
        reply_to = user.email  # the account's own address, accepted when the user was created
    elif not isinstance(reply_to, str):
        problems["sender.reply_to"] = "must be an email address"
    else:
        try:
            reply_to = normalize_email(reply_to)
        except InvalidEmail as exc:
            problems["sender.reply_to"] = str(exc)
    if problems:
        raise ValidationError("Sender is invalid.", problems)
    return name.strip(), str(reply_to)


def _unknown_fields(data: dict, allowed: frozenset[str]) -> dict[str, str]:
    return {
        str(key)[:100]: (
            "template content cannot be sent; supply slot values only"
            if key in ("mjml", "html", "template", "subject", "preheader", "steps", "text",
                       "template_id", "template_version_id", "slots")
            else "is not a campaign field"
        )
        for key in data if key not in allowed
    }


# ------------------------------------------------------------------------------------ campaigns


def _create_campaign(partner: Partner, user: User, data: dict, *, kind: str,
                     allowed: frozenset[str]) -> Campaign:
    problems = _unknown_fields(data, allowed)
    if problems:
        raise ValidationError("Only slot values can be personalized.", problems,
                              code="locked_content")
    journey = catalog_journey_for(data.get("journey_id"), partner)
    if kind == "quick_send" and not journey.quick_send:
        raise ValidationError("This journey is not available for quick sends.",
                              {"journey_id": "journey does not allow quick send"},
                              code="quick_send_not_allowed")
    versions = journey_versions(journey)
    if kind == "quick_send":
        versions = versions[:1]
    name = data.get("name") or (f"Quick send: {journey.name}" if kind == "quick_send"
                                else journey.name)
    if not isinstance(name, str) or len(name) > 200 or CONTROL.search(name):
        raise ValidationError("Campaign is invalid.", {"name": "must be one line of text"})
    sender_name, reply_to = clean_sender(data.get("sender"), partner, user)
    values = clean_campaign_values(data.get("slot_values"), versions)
    campaign = Campaign(partner_id=partner.id, journey_id=journey.id, created_by=user.id,
                        name=name.strip()[:200], kind=kind, status="draft", slot_values=values,
                        sender_name=sender_name, sender_reply_to=reply_to, status_reason="")
    db.session.add(campaign)
    db.session.flush()
    return campaign


def create_campaign(partner: Partner, user: User, data: dict) -> Campaign:
    """Create a draft campaign from a JSON body {journey_id, name, slot_values, sender}."""
    campaign = _create_campaign(partner, user, data, kind="journey", allowed=CAMPAIGN_FIELDS)
    db.session.commit()
    return campaign


def update_campaign(campaign: Campaign, user: User, data: dict) -> Campaign:
    """Change a draft (or rejected) campaign's name, slot values or sender; rejected -> draft."""
    _require_editable(campaign)
    problems = _unknown_fields(data, frozenset({"name", "slot_values", "sender"}))
    if problems:
        raise ValidationError("Only slot values can be personalized.", problems,
                              code="locked_content")
    partner = db.session.get(Partner, campaign.partner_id)
    journey = db.session.get(Journey, campaign.journey_id)
    versions = campaign_versions(campaign, journey)
    if "slot_values" in data:
        campaign.slot_values = clean_campaign_values(data["slot_values"], versions)
    if "sender" in data:
        campaign.sender_name, campaign.sender_reply_to = clean_sender(data["sender"], partner,
                                                                      user)
    if "name" in data:
        name = data["name"]
        if not isinstance(name, str) or not name.strip() or len(name) > 200 \
                or CONTROL.search(name):
            raise ValidationError("Campaign is invalid.", {"name": "must be one line of text"})
        campaign.name = name.strip()
    if allowed(campaign, "edit"):
        apply(campaign, "edit", "edited after rejection")
    db.session.commit()
    return campaign


def campaign_versions(campaign: Campaign, journey: Journey | None = None) -> list[TemplateVersion]:
    """Return the template versions a campaign sends, in step order (quick send: first only)."""
    journey = journey or db.session.get(Journey, campaign.journey_id)
    versions = journey_versions(journey)
    return versions[:1] if campaign.kind == "quick_send" else versions


def _require_editable(campaign: Campaign) -> None:
    if campaign.status not in EDITABLE:
        raise StateError(f"A {campaign.status} campaign can no longer be changed.",
                         fields={"status": campaign.status})


def get_campaign(campaign_id: int) -> Campaign | None:
    """Return a campaign by id (callers pass it through `visible()`)."""
    return db.session.get(Campaign, campaign_id)


def list_campaigns(partner_id: int | None, status: str | None = None, page: int = 1,
                   per_page: int = 50) -> tuple[list[Campaign], int]:
    """Return one page of campaigns (newest first): one partner's, or all for the brand."""
    query = select(Campaign)
    if partner_id is not None:
        query = query.where(Campaign.partner_id == partner_id)
    if status:
        query = query.where(Campaign.status == status)
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = db.session.scalars(query.order_by(Campaign.id.desc()).limit(per_page)
                              .offset((page - 1) * per_page)).all()
    return list(rows), total


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


def member_count(campaign_id: int) -> int:
    """Count a campaign's members."""
    return db.session.scalar(
        select(func.count()).select_from(CampaignMember)
        .where(CampaignMember.campaign_id == campaign_id)
    ) or 0


# -------------------------------------------------------------------------------------- members


def _parse_ids(raw: Any) -> list[int]:
    if not isinstance(raw, list) or not raw:
        raise ValidationError("Members are invalid.", {"contact_ids": "must be a non-empty list"})
    if len(raw) > MAX_MEMBERS_PER_CALL:
        raise ValidationError("Members are invalid.",
                              {"contact_ids": f"at most {MAX_MEMBERS_PER_CALL} per call"})
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in raw):
        raise ValidationError("Members are invalid.", {"contact_ids": "must be contact ids"})
    return raw


def _clean_overrides(campaign: Campaign, raw: Any, versions: list[TemplateVersion]
                     ) -> dict[int, dict[str, dict[str, str]]]:
    """Validate {contact_id: values} against the campaign's values; return stored overrides."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValidationError("Members are invalid.", {"overrides": "must be an object"})
    problems: dict[str, str] = {}
    out: dict[int, dict[str, dict[str, str]]] = {}
    for key, values in raw.items():
        try:
            contact_id = int(key)
        except (TypeError, ValueError):
            problems[f"overrides.{str(key)[:40]}"] = "must be keyed by contact id"
            continue
        where = f"overrides.{contact_id}"
        split_problems: dict[str, str] = {}
        by_step = _split_by_step(values, versions, where, split_problems)
        problems.update(split_problems)
        stored: dict[str, dict[str, str]] = {}
        for i, version in enumerate(versions):
            own = by_step.get(i) or {}
            if not own:
                continue
            if not isinstance(own, dict):
                problems[f"{where}.steps.{i}"] = "must be an object"
                continue
            for name, message in _markup_problems(version, own).items():
                problems[f"{where}.steps.{i}.{name}"] = message
            merged = {**campaign.slot_values.get(str(i), {}), **own}
            try:
                cleaned = clean_slot_values(version.slots, merged)
            except SlotError as err:
                for name, message in err.fields.items():
                    problems[f"{where}.steps.{i}.{name}"] = message
                continue
            stored[str(i)] = {name: cleaned[name] for name in own if name in cleaned}
        out[contact_id] = stored
    if problems:
        raise SlotError("Some member overrides are invalid.", problems)
    return out


def _add_members(campaign: Campaign, contact_ids: Any, overrides: Any) -> dict:
    _require_editable(campaign)
    ids = _parse_ids(contact_ids)
    versions = campaign_versions(campaign)
    cleaned_overrides = _clean_overrides(campaign, overrides, versions)
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
    result = _add_members(campaign, contact_ids, overrides)
    db.session.commit()
    return result


def remove_member(campaign: Campaign, contact_id: int) -> None:
    """Remove a contact from a draft campaign."""
    _require_editable(campaign)
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


# --------------------------------------------------------------------------- launch & approvals


def _launch(campaign: Campaign) -> str:
    if not allowed(campaign, "schedule"):
        raise StateError(f"Only a draft campaign can be launched; this one is {campaign.status}.",
                         fields={"status": campaign.status})
    if member_count(campaign.id) == 0:
        raise StateError("Add at least one contact before launching.",
                         fields={"members": "none"})
    journey = db.session.get(Journey, campaign.journey_id)
    if journey is None or journey.status != "published":
        raise StateError("The journey is no longer published; this campaign cannot launch.")
    if journey.requires_approval:
        apply(campaign, "submit")
        db.session.flush()
        return campaign.status
    # The scheduler queues the first step on its next tick (ledger.start_scheduled_campaigns):
    # a launch answers at once however many members the campaign has.
    apply(campaign, "schedule")
    campaign.launched_at = clock.now()
    return campaign.status


def launch_campaign(campaign: Campaign) -> str:
    """Launch a draft: to approval if the journey requires it, else scheduled at once."""
    status = _launch(campaign)
    db.session.commit()
    return status


def approve_campaign(campaign: Campaign, user: User) -> Campaign:
    """Approve a pending campaign (brand roles) and schedule it."""
    apply(campaign, "approve")
    campaign.approved_by = user.id
    campaign.launched_at = clock.now()
    db.session.commit()
    return campaign


def reject_campaign(campaign: Campaign, user: User, reason: Any) -> Campaign:
    """Reject a pending campaign with a reason the partner sees."""
    if not isinstance(reason, str) or not reason.strip():
        raise ValidationError("A rejection needs a reason.", {"reason": "is required"})
    if len(reason) > 2000:
        raise ValidationError("Reason is too long.", {"reason": "at most 2000 characters"})
    apply(campaign, "reject", reason.strip())
    campaign.approved_by = None
    db.session.commit()
    return campaign


def pause_campaign(campaign: Campaign, reason: str = "paused by user") -> Campaign:
    """Pause a scheduled or running campaign; due sends wait until it resumes."""
    apply(campaign, "pause", reason)
    db.session.commit()
    return campaign


def resume_campaign(campaign: Campaign) -> Campaign:
    """Resume a paused campaign."""
    apply(campaign, "resume", "resumed")
    db.session.commit()
    return campaign


def cancel_campaign(campaign: Campaign, reason: str = "cancelled by user") -> Campaign:
    """Cancel a campaign; its queued and retrying sends are cancelled, sent ones stay."""
    launched = campaign.status not in ("draft", "pending_approval", "rejected")
    apply(campaign, "cancel", reason)
    if launched:
        from campaigns.ledger import cancel_campaign_sends

        db.session.flush()
        cancel_campaign_sends(campaign.id)
    db.session.commit()
    return campaign


# ------------------------------------------------------------------------------------ quick send


def quick_send(partner: Partner, user: User, data: dict) -> tuple[Campaign, dict]:
    """Create, fill and launch a one-step campaign in one transaction; return it and members."""
    fields = {k: v for k, v in data.items() if k not in ("contact_ids", "overrides")}
    campaign = _create_campaign(partner, user, fields, kind="quick_send",
                                allowed=QUICK_SEND_FIELDS)
    result = _add_members(campaign, data.get("contact_ids"), data.get("overrides"))
    if result["added"] == 0:
        raise ValidationError(
            "None of these contacts can be mailed; nothing was sent.",
            {"contact_ids": "every contact was excluded"}, code="no_recipients",
        )
    _launch(campaign)
    db.session.commit()
    return campaign, result


# ------------------------------------------------------------------------------------- changes


def campaign_changes(campaign: Campaign) -> dict:
    """Return only what differs from the journey's defaults (what an approver must review)."""
    versions = campaign_versions(campaign)
    steps = []
    for i, version in enumerate(versions):
        defaults = {slot["name"]: slot.get("default", "") for slot in version.slots}
        labels = {slot["name"]: slot.get("label", slot["name"]) for slot in version.slots}
        values = campaign.slot_values.get(str(i), {})
        changed = {
            name: {"label": labels[name], "default": defaults[name], "value": value}
            for name, value in values.items() if name in defaults and value != defaults[name]
        }
        if changed:
            steps.append({"step": i, "template": version.name, "slots": changed})
    overridden: dict[str, int] = {}
    members_with_overrides = 0
    for overrides in db.session.scalars(select(CampaignMember.overrides).where(
            CampaignMember.campaign_id == campaign.id)):
        if overrides:
            members_with_overrides += 1
            for step, slots in overrides.items():
                for name in slots:
                    key = f"steps.{step}.{name}"
                    overridden[key] = overridden.get(key, 0) + 1
    return {
        "campaign_id": campaign.id,
        "journey_id": campaign.journey_id,
        "sender": {"name": campaign.sender_name, "reply_to": campaign.sender_reply_to},
        "steps": steps,
        "overrides": {"members": members_with_overrides, "slots": overridden},
        "members": member_count(campaign.id),
    }


# ------------------------------------------------------------------------------------ messages


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


def step_count(campaign: Campaign) -> int:
    """Return how many steps a campaign sends."""
    return len(campaign_versions(campaign))

