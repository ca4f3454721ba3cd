"""Publishing a new journey version, and moving partners' campaigns onto it.

A new version (journeys.services.new_version) is a draft copy of a published journey. When
it is published, the brand chooses:

- `move_campaigns="drafts_and_scheduled"`: campaigns that have not started (draft, rejected,
  waiting for approval, scheduled) move to the new version with their slot values kept;
- `mandatory=True`: running (and paused) campaigns move too, and every step not yet sent
  (queued or retrying) is sent with the new version's template (e.g. a legal footer change).

Slot values are re-checked against the new version's slots. A campaign whose values no longer
fit is still moved, and stopped with the reason in words for the partner: a running one is
paused (the partner corrects the values, then resumes), one that had not started goes back
to draft (corrected and launched again). Values of slots the new version no longer has are
dropped; new slots start from their defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select, update

from campaigns.models import Campaign, Send
from campaigns.states import allowed, apply
from campaigns.values import clean_campaign_values, journey_versions
from core import clock
from core.db import db
from core.errors import SlotError, ValidationError
from core.i18n import _
from journeys import services as journeys
from journeys.models import Journey, TemplateVersion

MOVES = ("none", "drafts_and_scheduled")
NOT_STARTED = ("draft", "rejected", "pending_approval", "scheduled")
STARTED = ("running", "paused")
OPEN_SENDS = ("queued", "retry")


@dataclass
class MoveReport:
    """What publishing a version did to partners' campaigns (ids per outcome)."""

    moved: list[int] = field(default_factory=list)
    stopped: list[int] = field(default_factory=list)  # moved, but values need the partner
    left: list[int] = field(default_factory=list)  # stay on the earlier version

    def to_dict(self) -> dict:
        return {"moved": self.moved, "stopped": self.stopped, "left": self.left}


def publish_options(data: dict) -> tuple[str, bool]:
    """Check the publish body {move_campaigns, mandatory}; return them (422 when invalid)."""
    problems: dict[str, str] = {}
    unknown = set(data) - {"move_campaigns", "mandatory"}
    for key in unknown:
        problems[str(key)[:100]] = _("is not a publish option")
    move = data.get("move_campaigns", "none")
    if move not in MOVES:
        problems["move_campaigns"] = _("must be “none” or “drafts_and_scheduled”")
    mandatory = data.get("mandatory", False)
    if not isinstance(mandatory, bool):
        problems["mandatory"] = _("must be true or false")
    if problems:
        raise ValidationError(_("The publish options are invalid."), problems)
    return move, mandatory


def _kept_values(campaign: Campaign, versions: list[TemplateVersion]) -> dict:
    """The campaign's values the new version still has a slot (and a step) for."""
    kept = {}
    for index, version in enumerate(versions):
        names = {slot["name"] for slot in version.slots}
        own = campaign.slot_values.get(str(index)) or {}
        kept[str(index)] = {k: v for k, v in own.items() if k in names}
    return kept


def problems_in_words(err: SlotError, versions: list[TemplateVersion]) -> str:
    """Say which values no longer fit, with the slots' labels: 'Step 1, Headline: …'."""
    labels = {(str(i), s["name"]): s.get("label") or s["name"]
              for i, v in enumerate(versions) for s in v.slots}
    parts = []
    for key, message in err.fields.items():
        bits = key.split(".")
        if len(bits) == 3 and bits[0] == "steps":
            label = labels.get((bits[1], bits[2]), bits[2])
            parts.append(_("step %(n)d, %(label)s: %(problem)s", n=int(bits[1]) + 1,
                           label=label, problem=message))
        else:
            parts.append(f"{key}: {message}")
    return "; ".join(parts)


def _move(campaign: Campaign, journey: Journey, versions: list[TemplateVersion],
          report: MoveReport) -> None:
    campaign_steps = versions[:1] if campaign.kind == "quick_send" else versions
    kept = _kept_values(campaign, campaign_steps)
    started = campaign.status in STARTED
    campaign.journey_id = journey.id
    try:
        campaign.slot_values = clean_campaign_values(kept, campaign_steps, journey.id)
        problem = ""
    except SlotError as err:
        campaign.slot_values = kept  # the partner corrects them before it goes on
        problem = problems_in_words(err, campaign_steps)
    if started:
        # Steps not yet sent use the new version; a step the new version lacks is not sent.
        for index, version in enumerate(campaign_steps):
            db.session.execute(update(Send).where(
                Send.campaign_id == campaign.id, Send.step_index == index,
                Send.status.in_(OPEN_SENDS)).values(template_version_id=version.id,
                                                    journey_id=journey.id,
                                                    updated_at=clock.now()))
        db.session.execute(update(Send).where(
            Send.campaign_id == campaign.id, Send.step_index >= len(campaign_steps),
            Send.status.in_(OPEN_SENDS)).values(status="cancelled",
                                                status_reason="version_removed_step",
                                                updated_at=clock.now()))
    if not problem:
        report.moved.append(campaign.id)
        return
    reason = _("The brand published version %(n)d of “%(journey)s” and some of your values "
               "no longer fit: %(problems)s. Correct them, then %(next)s.", n=journey.version,
               journey=journey.name, problems=problem,
               next=_("resume the campaign") if started else _("launch it again"))
    if started:
        apply(campaign, "pause", reason)
        campaign.status_reason = reason  # also when it was already paused
    elif allowed(campaign, "unschedule"):
        apply(campaign, "unschedule", reason)
        campaign.launched_at = None
        campaign.approved_by = None
    else:
        campaign.status_reason = reason
    report.stopped.append(campaign.id)


def publish_version(journey_id: int, move_campaigns: str = "none",
                    mandatory: bool = False) -> tuple[Journey, MoveReport]:
    """Publish a journey; for a new version, move the chosen campaigns of the earlier one."""
    journey = journeys.get_journey(journey_id)
    previous_id = journey.previous_id
    journey = journeys.publish_journey(journey_id)
    report = MoveReport()
    if previous_id is None:
        return journey, report
    wanted = []
    if move_campaigns == "drafts_and_scheduled":
        wanted += NOT_STARTED
    if mandatory:
        wanted += STARTED
    versions = journey_versions(journey)
    rows = db.session.scalars(select(Campaign).where(Campaign.journey_id == previous_id)
                              .order_by(Campaign.id).with_for_update()).all()
    for campaign in rows:
        if campaign.status in wanted:
            _move(campaign, journey, versions, report)
        elif campaign.status in NOT_STARTED + STARTED:
            report.left.append(campaign.id)
    db.session.commit()
    return journey, report


def campaign_counts(journey_id: int) -> dict[str, int]:
    """Count a journey's campaigns that could move: {"not_started": n, "started": n}."""
    rows = db.session.execute(select(Campaign.status, func.count()).where(
        Campaign.journey_id == journey_id).group_by(Campaign.status)).all()
    by_status = dict(rows)
    return {"not_started": sum(by_status.get(s, 0) for s in NOT_STARTED),
            "started": sum(by_status.get(s, 0) for s in STARTED)}


def values_problem(campaign: Campaign) -> str:
    """Say in words why a campaign's values do not fit its journey's version ('' if they do)."""
    journey = db.session.get(Journey, campaign.journey_id)
    versions = journey_versions(journey)
    versions = versions[:1] if campaign.kind == "quick_send" else versions
    try:
        clean_campaign_values(campaign.slot_values, versions, campaign.journey_id)
    except SlotError as err:
        return problems_in_words(err, versions)
    return ""
