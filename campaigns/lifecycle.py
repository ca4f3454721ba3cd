"""A campaign's life: create and edit, launch (to approval or the scheduler), approve or
reject, pause, resume, cancel, quick send, and what an approver reviews.

Every status change goes through the action table in `campaigns.states`; the scheduler
(`campaigns.sending`) turns a launched campaign into send rows in the ledger.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from accounts.models import Partner, User
from campaigns import compliance, ledger, schedule
from campaigns.members import member_count, stage_members
from campaigns.models import Campaign, CampaignMember
from campaigns.states import allowed, apply, require_editable
from campaigns.values import (
    CONTROL,
    campaign_versions,
    catalog_journey_for,
    clean_campaign_values,
    clean_sender,
    journey_versions,
)
from campaigns.versions import values_problem
from core import clock
from core.db import db
from core.errors import StateError, ValidationError
from core.i18n import _
from journeys import states as journey_states
from journeys.models import Journey

# When it goes out (campaigns.schedule); changeable until the campaign starts.
SCHEDULE_FIELDS = frozenset({"send_at", "timezone", "recipient_timezone"})
CONTENT_FIELDS = frozenset({"name", "slot_values", "sender"})
CAMPAIGN_FIELDS = frozenset({"journey_id", "name", "slot_values", "sender"}) | SCHEDULE_FIELDS
QUICK_SEND_FIELDS = frozenset({"journey_id", "contact_ids", "slot_values", "sender", "overrides",
                               "name"}) | SCHEDULE_FIELDS


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
    values = clean_campaign_values(data.get("slot_values"), versions, journey.id)
    campaign = Campaign(partner_id=partner.id, journey_id=journey.id, created_by=user.id,
                        name=name.strip()[:200], kind=kind, status="draft", slot_values=values,
                        sender_name=sender_name, sender_reply_to=reply_to, status_reason="",
                        recipient_timezone=False)
    _set_schedule(campaign, data)
    db.session.add(campaign)
    db.session.flush()
    return campaign


def create_campaign(partner: Partner, user: User, data: dict) -> Campaign:
    """Create a draft campaign from a JSON body {journey_id, name, slot_values, sender}."""
    campaign = _create_campaign(partner, user, data, kind="journey", allowed=CAMPAIGN_FIELDS)
    db.session.commit()
    return campaign


def _set_schedule(campaign: Campaign, data: dict) -> None:
    """Apply the schedule fields present in `data` (send_at, timezone, recipient_timezone).

    Every problem is reported at once (422) and nothing is changed. `send_at: null` clears
    the schedule (send as soon as launched or approved). `timezone` alone keeps the instant
    and changes the zone it is shown in (and, per recipient, whose wall-clock time is meant).
    """
    if not SCHEDULE_FIELDS & data.keys():
        return
    problems: dict[str, str] = {}
    zone = campaign.timezone
    if "timezone" in data:
        try:
            zone = None if data["timezone"] is None else schedule.clean_timezone(data["timezone"])
        except ValidationError as err:
            problems.update(err.fields)
    send_at = campaign.send_at
    if "send_at" in data:
        try:
            send_at = None if data["send_at"] is None else schedule.parse_send_at(
                data["send_at"], clock.now())
        except ValidationError as err:
            problems.update(err.fields)
    per_recipient = campaign.recipient_timezone
    if "recipient_timezone" in data:
        if isinstance(data["recipient_timezone"], bool):
            per_recipient = data["recipient_timezone"]
        else:
            problems["recipient_timezone"] = _("must be true or false")
    if problems:
        raise ValidationError(_("The schedule is invalid."), problems)
    if send_at is not None and zone is None:
        zone = "UTC"
    campaign.send_at, campaign.timezone = send_at, zone
    campaign.recipient_timezone = bool(per_recipient)
    campaign.starts_at = schedule.start_instant(send_at, zone, campaign.recipient_timezone)


def _lock(campaign: Campaign) -> None:
    """Re-read the campaign under a row lock: the scheduler may have started it meanwhile."""
    if campaign in db.session:
        db.session.refresh(campaign, with_for_update=True)


def update_campaign(campaign: Campaign, user: User, data: dict) -> Campaign:
    """Change a campaign's content (draft or rejected; rejected -> draft) or its send time.

    The send time (`send_at`, `timezone`, `recipient_timezone`) may change until the campaign
    starts: in draft, rejected, pending_approval and scheduled (the action `reschedule`).
    Content is frozen from launch on: a scheduled or pending campaign must be taken back to
    draft first (`unschedule_campaign`).
    """
    problems = _unknown_fields(data, CONTENT_FIELDS | SCHEDULE_FIELDS)
    if problems:
        raise ValidationError("Only slot values can be personalized.", problems,
                              code="locked_content")
    _lock(campaign)
    content, timing = CONTENT_FIELDS & data.keys(), SCHEDULE_FIELDS & data.keys()
    if campaign.status == "paused" and content == {"slot_values"} and not timing \
            and values_problem(campaign):
        # Paused because its values no longer fit (a mandatory new version, a compliance rule
        # added after approval): the partner corrects them in place, then resumes. A campaign
        # whose values fit stays frozen while paused, as it was approved.
        campaign.slot_values = clean_campaign_values(data["slot_values"],
                                                     campaign_versions(campaign),
                                                     campaign.journey_id)
        db.session.commit()
        return campaign
    if content and allowed(campaign, "unschedule"):
        raise StateError(_("Its content is locked while it waits to go out. Move it back to "
                           "draft first, change it, then launch it again."),
                         fields={"status": campaign.status})
    if content or not timing:
        require_editable(campaign)
    if timing and not allowed(campaign, "reschedule"):
        raise StateError(_("It has already started; its send time can no longer change."),
                         fields={"status": campaign.status})
    partner = db.session.get(Partner, campaign.partner_id)
    journey = db.session.get(Journey, campaign.journey_id)
    versions = campaign_versions(campaign, journey)
    if "slot_values" in data:
        campaign.slot_values = clean_campaign_values(data["slot_values"], versions,
                                                     campaign.journey_id)
    if "sender" in data:
        campaign.sender_name, campaign.sender_reply_to = clean_sender(data["sender"], partner,
                                                                      user)
    if "name" in data:
        name = data["name"]
        if not isinstance(name, str) or not name.strip() or len(name) > 200 \
                or CONTROL.search(name):
            raise ValidationError("Campaign is invalid.", {"name": "must be one line of text"})
        campaign.name = name.strip()
    if timing:
        _set_schedule(campaign, data)
        apply(campaign, "reschedule")
    if content and allowed(campaign, "edit"):
        apply(campaign, "edit", "edited after rejection")
    db.session.commit()
    return campaign


LAUNCH_STEPS = 4  # campaign, audience, personalize, preview & send (web/launcher.py)


def record_launch_step(campaign: Campaign, done: int) -> Campaign:
    """Remember that the partner completed the launcher's steps up to `done` (1..3).

    Progress only grows: going back to an earlier step keeps what was completed after it.
    Only a campaign whose content can still change (draft, rejected) records progress.
    """
    require_editable(campaign)
    if not 1 <= done < LAUNCH_STEPS:
        raise ValidationError(_("There is no such step."), {"step": _("must be 1 to 3")})
    if done > (campaign.launch_steps_done or 0):
        campaign.launch_steps_done = done
        db.session.commit()
    return campaign


def unschedule_campaign(campaign: Campaign) -> Campaign:
    """Take a scheduled (not yet started) or pending campaign back to draft to change it.

    It keeps its send time; launching it again schedules it again, through approval when the
    journey requires it (an earlier approval no longer holds for changed content).
    """
    _lock(campaign)
    apply(campaign, "unschedule", _("back to draft"))
    campaign.launched_at = None
    campaign.approved_by = None
    db.session.commit()
    return campaign


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


def step_count(campaign: Campaign) -> int:
    """Return how many steps a campaign sends."""
    return len(campaign_versions(campaign))


def _launch(campaign: Campaign) -> str:
    if not allowed(campaign, "schedule"):
        raise StateError(f"Only a draft campaign can be launched; this one is {campaign.status}.",
                         fields={"status": campaign.status})
    if campaign.send_at is not None and campaign.send_at <= clock.now():
        raise ValidationError(_("The scheduled time has passed."), {
            "send_at": _("is in the past; choose a later time, or clear it to send as soon as "
                         "the campaign is launched")})
    if member_count(campaign.id) == 0:
        raise StateError("Add at least one contact before launching.",
                         fields={"members": "none"})
    journey = db.session.get(Journey, campaign.journey_id)
    if journey is None or not journey_states.allowed(journey, "pick"):
        raise StateError("The journey is no longer published; this campaign cannot launch.")
    problem = values_problem(campaign)
    if problem:  # moved to a new journey version whose slots its values no longer fit
        raise ValidationError(_("Some values no longer fit the journey: %(p)s.", p=problem),
                              {"slot_values": problem})
    if journey.requires_approval:
        apply(campaign, "submit")
        db.session.flush()
        return campaign.status
    # The scheduler queues the first step on its first tick at or after the campaign's
    # starts_at (ledger.start_scheduled_campaigns): a launch answers at once however many
    # members the campaign has, and nothing starts before its send time.
    apply(campaign, "schedule")
    campaign.launched_at = clock.now()
    return campaign.status


def launch_campaign(campaign: Campaign, data: dict | None = None) -> str:
    """Launch a draft: to approval if the journey requires it, else scheduled.

    `data` may set the send time in the same step (send_at, timezone, recipient_timezone);
    without a send_at the campaign starts on the scheduler's next tick.
    """
    data = data or {}
    problems = _unknown_fields(data, SCHEDULE_FIELDS)
    if problems:
        raise ValidationError(_("Only the send time can be given at launch."), problems)
    _lock(campaign)
    if data and allowed(campaign, "schedule"):
        _set_schedule(campaign, data)
    status = _launch(campaign)
    db.session.commit()
    return status


def rules_problem(campaign: Campaign) -> str:
    """Say in words how a campaign's values or overrides break the brand's rules ('' if not)."""
    versions = campaign_versions(campaign)
    rules = compliance.rules_for(campaign.journey_id)
    if not rules:
        return ""
    problems = compliance.step_problems(campaign.slot_values, versions, rules)
    for overrides in db.session.scalars(select(CampaignMember.overrides).where(
            CampaignMember.campaign_id == campaign.id)):
        problems.update(compliance.step_problems(overrides or {}, versions, rules))
    return compliance.in_words(problems, versions)


def approve_campaign(campaign: Campaign, user: User) -> Campaign:
    """Approve a pending campaign (brand roles) and schedule it.

    It then waits for its send time; approved after that time has passed, it starts at once.
    """
    _lock(campaign)
    if allowed(campaign, "approve"):
        problem = rules_problem(campaign)
        if problem:
            raise StateError(_("It breaks the brand's rules: %(p)s. Reject it with a reason.",
                               p=problem), fields={"slot_values": problem})
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
    # The next submission's approver sees what changed since, and why this one was refused.
    campaign.previous_submission = {"slot_values": campaign.slot_values,
                                    "reason": reason.strip(),
                                    "rejected_at": clock.now().isoformat()}
    db.session.commit()
    return campaign


def pause_campaign(campaign: Campaign, reason: str = "paused by user") -> Campaign:
    """Pause a scheduled or running campaign; due sends wait until it resumes."""
    apply(campaign, "pause", reason)
    db.session.commit()
    return campaign


def resume_campaign(campaign: Campaign) -> Campaign:
    """Resume a paused campaign (its values must fit its journey's version first)."""
    if allowed(campaign, "resume"):
        problem = values_problem(campaign)
        if problem:
            raise StateError(_("Correct the values first: %(p)s.", p=problem),
                             fields={"slot_values": problem})
    apply(campaign, "resume", "resumed")
    db.session.commit()
    return campaign


def cancel_campaign(campaign: Campaign, reason: str = "cancelled by user") -> Campaign:
    """Cancel a campaign; its queued and retrying sends are cancelled, sent ones stay."""
    _lock(campaign)
    launched = campaign.status not in ("draft", "pending_approval", "rejected")
    apply(campaign, "cancel", reason)
    if launched:
        db.session.flush()
        ledger.cancel_campaign_sends(campaign.id)
    db.session.commit()
    return campaign


def quick_send(partner: Partner, user: User, data: dict) -> tuple[Campaign, dict]:
    """Create, fill and launch a one-step campaign in one transaction; return it and members."""
    fields = {k: v for k, v in data.items() if k not in ("contact_ids", "overrides")}
    campaign = _create_campaign(partner, user, fields, kind="quick_send",
                                allowed=QUICK_SEND_FIELDS)
    result = stage_members(campaign, data.get("contact_ids"), data.get("overrides"))
    if result["added"] == 0:
        raise ValidationError(
            "None of these contacts can be mailed; nothing was sent.",
            {"contact_ids": "every contact was excluded"}, code="no_recipients",
        )
    _launch(campaign)
    db.session.commit()
    return campaign, result


def _since_rejection(campaign: Campaign, versions: list) -> dict | None:
    """What changed since the brand last rejected this campaign, and the reason it gave."""
    before = campaign.previous_submission
    if not before:
        return None
    old = before.get("slot_values") or {}
    changed = []
    for i, version in enumerate(versions):
        for slot in version.slots:
            name = slot["name"]
            was = (old.get(str(i)) or {}).get(name, slot.get("default", ""))
            now = (campaign.slot_values.get(str(i)) or {}).get(name, slot.get("default", ""))
            if was != now:
                changed.append({"step": i, "slot": name, "label": slot.get("label", name),
                                "before": was, "after": now})
    return {"reason": before.get("reason", ""), "rejected_at": before.get("rejected_at"),
            "slots": changed}


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
        "previous": _since_rejection(campaign, versions),
        "sender": {"name": campaign.sender_name, "reply_to": campaign.sender_reply_to},
        "steps": steps,
        "overrides": {"members": members_with_overrides, "slots": overridden},
        "members": member_count(campaign.id),
    }
