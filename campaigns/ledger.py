"""The sends ledger: one row per (campaign, step, contact) and the one table of its moves.

The database is the ledger and Redis only the doorbell (DESIGN invariant 3): every change of a
send's status happens here, in a transaction, guarded by the status the row must have. Jobs
carry ids; whoever claims a row first owns it until its lease expires, and the outcome is
written only while the claim (status `claimed` with the same attempt number) still holds.

Queued rows that the scheduler handed to Redis carry `lease_expires_at` as an "enqueued until"
mark: the scheduler skips them until the mark passes, so a lost Redis job only delays the row.

Journeys: a step's row is inserted when the previous step's row reaches `sent` (or `skipped`),
in the same transaction, due `delay_hours` after that moment. A step whose condition does not
hold becomes `skipped` (reason `condition:<cond>`) and the contact's path continues with the
next step, timed from the skip. `failed`, `suppressed` and `cancelled` end the path.
Conditions read the previous step's human engagement only (events with machine = false); a
click counts as an open, since a reader who clicked has opened the message.
"""

from __future__ import annotations

import logging
import random
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import Connection, and_, bindparam, exists, func, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from accounts.models import Partner
from campaigns import schedule, sharing
from campaigns.digest import EmailDigest
from campaigns.models import Campaign, CampaignMember, Contact, Send, Suppression
from campaigns.states import allowed, apply
from campaigns.suppression import add_suppressions
from core import clock
from core.db import db
from core.errors import StateError
from core.i18n import _
from journeys.models import JourneyStep

log = logging.getLogger(__name__)

# The state machine of a send. `claimed -> claimed` is another worker taking over a row whose
# lease expired; `claimed -> queued` hands back a row a rate limit did not let out (no attempt
# is counted); `claimed -> retry` is also the scheduler reaping an expired lease.
TRANSITIONS: dict[str, frozenset[str]] = {
    "queued": frozenset({"claimed", "cancelled", "skipped"}),
    "claimed": frozenset({"sent", "retry", "failed", "suppressed", "skipped", "claimed",
                          "queued"}),
    "retry": frozenset({"claimed", "cancelled", "skipped"}),
    "sent": frozenset(),
    "failed": frozenset(),
    "suppressed": frozenset(),
    "skipped": frozenset(),
    "cancelled": frozenset(),
}
OPEN_STATUSES = ("queued", "claimed", "retry")
MAX_ATTEMPTS = 8
BACKOFF_BASE_SECONDS = 60.0
BACKOFF_CAP_SECONDS = 3600.0
# A claim's lease is short and renewed by the job's heartbeat while it works
# (sending.LeaseHeartbeat): a worker killed with SIGKILL leaves rows that come due again
# within a lease, while a slow but live job keeps its rows. No job holds rows longer than
# MAX_HOLD_SECONDS (the heartbeat stops renewing then), whatever happens to it.
DEFAULT_LEASE_SECONDS = 60
MAX_HOLD_SECONDS = 300
DEFAULT_ENQUEUE_SECONDS = 120


def can_move(current: str, to: str) -> bool:
    """Tell whether a send in status `current` may move to `to`."""
    return to in TRANSITIONS.get(current, frozenset())


def _sources(*pairs: tuple[str, str]) -> list[str]:
    """Return the statuses from which every move in `pairs` is allowed (checks the table)."""
    for current, to in pairs:
        if not can_move(current, to):
            raise AssertionError(f"send move {current} -> {to} is not in TRANSITIONS")
    return sorted({current for current, _ in pairs})


def _insert(table):  # noqa: ANN001, ANN202 - dialect-specific Insert with on_conflict_do_nothing
    if db.engine.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def backoff_seconds(attempts: int) -> float:
    """Return the jittered exponential delay before attempt number `attempts + 1`."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(attempts - 1, 0))
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not crypto


# --------------------------------------------------------------------------- scheduling


def _steps(journey_id: int) -> list[JourneyStep]:
    return list(
        db.session.execute(
            select(JourneyStep)
            .where(JourneyStep.journey_id == journey_id)
            .order_by(JourneyStep.position)
        ).scalars()
    )


def _step_plan(journey_id: int) -> list[tuple[int | None, float]]:
    """Return [(template_version_id, delay_hours)] per step, remembered for the session.

    A published journey's steps never change, so one read per session (one job) is enough.
    """
    cache = db.session.info.setdefault("lastmile_step_plans", {})
    if journey_id not in cache:
        cache[journey_id] = [(s.template_version_id, float(s.delay_hours or 0))
                             for s in _steps(journey_id)]
    return cache[journey_id]


def _start_due(now: datetime) -> object:
    """A scheduled campaign may start once its starts_at has come (NULL: at once)."""
    return and_(Campaign.status == "scheduled",
                or_(Campaign.starts_at.is_(None), Campaign.starts_at <= now))


def start_scheduled_campaigns(limit: int = 5) -> int:
    """Start scheduled campaigns whose start time has come; return how many started.

    Launch and approve only move a campaign to `scheduled`, so the request answers at once;
    queuing step 0 for every member (one INSERT ... SELECT, seconds for 100k members) is the
    scheduler's job. A campaign with a send time waits in `scheduled` until its `starts_at`:
    the database says when, so a restarted scheduler or worker cannot send early. Each
    campaign starts in its own transaction, a few per tick so due mail keeps flowing; one
    that cannot start is cancelled with the reason, never retried forever.
    """
    ids = db.session.scalars(select(Campaign.id).where(_start_due(clock.now()))
                             .order_by(Campaign.id).limit(limit)).all()
    db.session.rollback()
    started = 0
    for campaign_id in ids:
        try:
            if schedule_campaign(campaign_id):
                started += 1
            db.session.commit()
        except StateError as err:
            db.session.rollback()
            log.error("campaign %s cannot start: %s", campaign_id, err.message)
            _give_up(campaign_id, f"Could not start: {err.message}")
        except Exception:  # noqa: BLE001 - one campaign must not stop the scheduler
            db.session.rollback()
            log.exception("campaign %s: starting failed; will try again next tick", campaign_id)
    return started


def _give_up(campaign_id: int, reason: str) -> None:
    campaign = db.session.get(Campaign, campaign_id)
    if campaign is not None and allowed(campaign, "cancel"):
        apply(campaign, "cancel", reason)
        db.session.commit()


def schedule_campaign(campaign_id: int) -> int:
    """Move a scheduled campaign to running and queue step 0 for every member; return count.

    No commit: the caller commits, so the status and the first sends become visible together.
    A campaign another scheduler (or a request rescheduling it) holds, has already started or
    whose start time has not come (it was rescheduled meanwhile) is skipped (returns 0).
    Step 0 is due at the send time (or now, if that has passed); per recipient, at each
    contact's own local time (`_localize_first_step`).
    """
    now = clock.now()
    campaign = db.session.execute(
        select(Campaign).where(Campaign.id == campaign_id, _start_due(now))
        .with_for_update(skip_locked=True)
    ).scalar_one_or_none()
    if campaign is None:
        return 0
    steps = _steps(campaign.journey_id)
    if not steps or steps[0].template_version_id is None:
        raise StateError("The campaign's journey has no published first step.")
    apply(campaign, "start")
    if campaign.launched_at is None:
        campaign.launched_at = now
    first = steps[0]
    first_delay = timedelta(hours=float(first.delay_hours or 0))
    base = max(now, campaign.send_at or now)
    rows = (
        select(
            literal(campaign.id),
            literal(0),
            Contact.id,
            literal(campaign.partner_id),
            literal(campaign.journey_id),
            literal(first.template_version_id),
            Contact.email,
            literal("queued"),
            literal(base + first_delay),
            literal(0),
            literal(""),
            literal(""),
            literal(now),
            literal(now),
        )
        .select_from(CampaignMember)
        .join(Contact, Contact.id == CampaignMember.contact_id)
        .where(CampaignMember.campaign_id == campaign.id)
    )
    stmt = _insert(Send.__table__).from_select(
        ["campaign_id", "step_index", "contact_id", "partner_id", "journey_id",
         "template_version_id", "email", "status", "due_at", "attempts", "last_error",
         "status_reason", "created_at", "updated_at"],
        rows,
    ).on_conflict_do_nothing(index_elements=["campaign_id", "step_index", "contact_id"])
    inserted = db.session.execute(stmt).rowcount
    if inserted is None or inserted < 0:  # some drivers do not report INSERT ... SELECT
        inserted = db.session.execute(
            select(func.count()).select_from(Send).where(Send.campaign_id == campaign.id)
        ).scalar_one()
    if campaign.recipient_timezone and campaign.send_at is not None:
        _localize_first_step(campaign, now, first_delay)
    log.info("campaign %s running: %s step-0 sends queued", campaign.id, inserted)
    return inserted


def _localize_first_step(campaign: Campaign, now: datetime, delay: timedelta) -> int:
    """Make each step-0 row due at send_at's wall-clock time in its contact's zone.

    Contacts whose attribute `timezone` is a known IANA name get their own local time (or
    now, if it has passed there); the others keep the campaign's send_at. Returns how many
    rows moved. One UPDATE per zone and chunk of contacts.
    """
    assert campaign.send_at is not None
    zone_of = db.session.execute(
        select(Contact.id, Contact.attributes["timezone"].as_string())
        .join(CampaignMember, CampaignMember.contact_id == Contact.id)
        .where(CampaignMember.campaign_id == campaign.id)
    ).all()
    by_zone: dict[str, list[int]] = defaultdict(list)
    for contact_id, zone in zone_of:
        if schedule.is_zone(zone) and zone != campaign.timezone:
            by_zone[zone].append(contact_id)
    moved = 0
    for zone, contact_ids in by_zone.items():
        due = max(now, schedule.recipient_due(campaign.send_at, campaign.timezone, zone)) + delay
        for start in range(0, len(contact_ids), 1000):
            result = db.session.execute(
                update(Send)
                .where(Send.campaign_id == campaign.id, Send.step_index == 0,
                       Send.status == "queued",
                       Send.contact_id.in_(contact_ids[start:start + 1000]))
                .values(due_at=due)
            )
            moved += result.rowcount or 0
    return moved


def cancel_campaign_sends(campaign_id: int) -> int:
    """Cancel a campaign's sends not yet handed to a provider (no commit); return how many.

    Rows a worker holds finish their delivery; their next steps are never queued because the
    campaign is cancelled, and the scheduler tidies any that slipped in meanwhile.
    """
    sources = _sources(("queued", "cancelled"), ("retry", "cancelled"))
    result = db.session.execute(
        update(Send)
        .where(Send.campaign_id == campaign_id, Send.status.in_(sources))
        .values(status="cancelled", status_reason="campaign_cancelled",
                lease_expires_at=None, updated_at=clock.now())
    )
    return result.rowcount or 0


def forget_contact_sends(contact_id: int) -> list[int]:
    """Erase a contact from the ledger (no commit); return the ids of its sends.

    Its open sends are cancelled; every send of it stays for the counts and rollups but loses
    what identifies the person: contact_id becomes NULL, email '', last_error (which may quote
    the address) '', and the stored link targets (which may carry merge fields) []. The rows
    are locked first; while a worker holds one (status claimed) the erasure is refused, since
    that message is being delivered right now.
    """
    rows = db.session.execute(
        select(Send.id, Send.status).where(Send.contact_id == contact_id).with_for_update()
    ).all()
    if any(status == "claimed" for _id, status in rows):
        raise StateError(_("A message to this contact is being sent right now. Try again in a "
                           "few minutes."))
    if not rows:
        return []
    now = clock.now()
    sources = _sources(("queued", "cancelled"), ("retry", "cancelled"))
    db.session.execute(
        update(Send)
        .where(Send.contact_id == contact_id, Send.status.in_(sources))
        .values(status="cancelled", status_reason="contact_erased", lease_expires_at=None,
                updated_at=now)
    )
    db.session.execute(
        update(Send).where(Send.contact_id == contact_id)
        .values(contact_id=None, email="", last_error="", link_targets=[], updated_at=now)
    )
    return [send_id for send_id, _status in rows]


def complete_if_done(campaign_id: int) -> bool:
    """Mark a running campaign completed when none of its sends is open; tell if it did."""
    open_rows = exists().where(Send.campaign_id == campaign_id, Send.status.in_(OPEN_STATUSES))
    if db.session.execute(select(open_rows)).scalar():
        return False
    campaign = db.session.execute(
        select(Campaign).where(Campaign.id == campaign_id).with_for_update()
    ).scalar_one_or_none()
    # Re-check under the campaign's row lock: a next step may have been queued meanwhile.
    if (
        campaign is None
        or campaign.status != "running"
        or db.session.execute(select(open_rows)).scalar()
    ):
        db.session.rollback()
        return False
    apply(campaign, "complete")
    db.session.commit()
    log.info("campaign %s completed", campaign_id)
    return True


def pause_campaign(campaign_id: int, reason: str) -> None:
    """Pause a running campaign with a reason partners can read (e.g. a provider quota)."""
    campaign = db.session.execute(
        select(Campaign).where(Campaign.id == campaign_id).with_for_update()
    ).scalar_one_or_none()
    if campaign is not None and allowed(campaign, "pause"):
        apply(campaign, "pause", reason)
        log.warning("campaign %s paused: %s", campaign_id, reason)
    db.session.commit()


# --------------------------------------------------------------------------- scheduler side


def _running_campaign() -> object:
    return exists().where(Campaign.id == Send.campaign_id, Campaign.status == "running")


def _active_partner() -> object:
    return ~exists().where(Partner.id == Send.partner_id, Partner.deactivated_at.is_not(None))


def reap_expired_leases() -> int:
    """Turn claims whose lease expired (their worker died) into due retries; return count."""
    now = clock.now()
    _sources(("claimed", "retry"))
    result = db.session.execute(
        update(Send)
        .where(Send.status == "claimed", Send.lease_expires_at <= now)
        .values(status="retry", due_at=now, lease_expires_at=None,
                last_error="lease expired (worker stopped mid-batch)", updated_at=now)
    )
    db.session.commit()
    return result.rowcount or 0


def tidy_stopped_campaigns() -> int:
    """Cancel open rows left behind in cancelled campaigns (a step queued during a cancel)."""
    now = clock.now()
    sources = _sources(("queued", "cancelled"), ("retry", "cancelled"))
    stopped = exists().where(Campaign.id == Send.campaign_id, Campaign.status == "cancelled")
    result = db.session.execute(
        update(Send)
        .where(Send.status.in_(sources), stopped)
        .values(status="cancelled", status_reason="campaign_cancelled",
                lease_expires_at=None, updated_at=now)
    )
    db.session.commit()
    return result.rowcount or 0


def take_due_ids(limit: int, enqueue_seconds: float = DEFAULT_ENQUEUE_SECONDS) -> list[int]:
    """Mark up to `limit` due rows as handed to the queue until a timeout; return their ids.

    A row stays `queued`/`retry`; only its "enqueued until" mark moves, so if the job is lost
    (Redis flushed or down) the row comes due again once the mark passes.
    """
    now = clock.now()
    due = (
        select(Send.id)
        .where(
            Send.status.in_(_sources(("queued", "claimed"), ("retry", "claimed"))),
            Send.due_at <= now,
            or_(Send.lease_expires_at.is_(None), Send.lease_expires_at <= now),
            _running_campaign(),
            _active_partner(),
        )
        .order_by(Send.due_at, Send.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=Send)
    )
    ids = list(db.session.execute(due).scalars())
    if ids:
        db.session.execute(
            update(Send)
            .where(Send.id.in_(ids))
            .values(lease_expires_at=now + timedelta(seconds=enqueue_seconds))
        )
    db.session.commit()
    return ids


def running_campaign_ids() -> list[int]:
    """Return the ids of running campaigns."""
    return list(
        db.session.execute(select(Campaign.id).where(Campaign.status == "running")).scalars()
    )


# --------------------------------------------------------------------------- worker side


@dataclass
class Claimed:
    """One claimed row, with what rendering and delivery need to know about it."""

    id: int
    attempts: int
    campaign_id: int
    step_index: int
    contact_id: int
    partner_id: int
    email: str
    template_version_id: int


def claim_batch(
    limit: int,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    send_ids: Sequence[int] | None = None,
) -> list[Claimed]:
    """Claim due rows (the given ids, or any due ones), then drop the ones consent forbids.

    One transaction: claim with SKIP LOCKED (two jobs holding the same ids cannot both win),
    re-check suppression and consent (-> suppressed with the reason), evaluate step
    conditions (-> skipped), then apply the brand's sharing rules (campaigns.sharing: the
    frequency cap and the same-journey window, -> suppressed with the reason) under a lock
    per address. Returns the rows this caller now owns and must deliver.
    """
    now = clock.now()
    claimable = or_(
        and_(Send.status.in_(_sources(("queued", "claimed"), ("retry", "claimed"))),
             Send.due_at <= now),
        and_(Send.status == "claimed", Send.lease_expires_at <= now),
    )
    # An inactive partner's sends stay where they are, unclaimed, until it is reactivated.
    pick = select(Send.id).where(claimable, _running_campaign(), _active_partner())
    if send_ids is not None:
        if not send_ids:
            return []
        pick = pick.where(Send.id.in_(list(send_ids)))
    pick = pick.order_by(Send.due_at, Send.id).limit(limit).with_for_update(
        skip_locked=True, of=Send
    )
    if db.engine.dialect.name == "postgresql":
        # A CTE is evaluated once; with IN (subquery) the planner may re-run the LIMIT.
        picked = pick.cte("picked")
        target = Send.id.in_(select(picked.c.id))
    else:
        target = Send.id.in_(pick.scalar_subquery())
    rows = db.session.execute(
        update(Send)
        .where(target, claimable)
        .values(status="claimed", attempts=Send.attempts + 1,
                lease_expires_at=now + timedelta(seconds=lease_seconds), updated_at=now)
        .returning(Send.id, Send.attempts, Send.campaign_id, Send.step_index,
                   Send.contact_id, Send.partner_id, Send.email, Send.template_version_id)
    ).all()
    claimed = [Claimed(*row) for row in rows]
    if claimed:
        excluded = _suppress_excluded(claimed, now)
        excluded |= _skip_unmet_conditions([c for c in claimed if c.id not in excluded], now)
        excluded |= _hold_back_shared([c for c in claimed if c.id not in excluded], now)
        claimed = [c for c in claimed if c.id not in excluded]
    db.session.commit()
    return claimed


def _suppress_excluded(claimed: list[Claimed], now: datetime) -> set[int]:
    """Mark claimed rows whose address is suppressed or whose contact has no consent."""
    ids = [c.id for c in claimed]
    found = db.session.execute(
        select(Send.id, Suppression.reason, Contact.consent)
        .join(Contact, Contact.id == Send.contact_id)
        .outerjoin(Suppression, Suppression.email_hash == EmailDigest(Send.email))
        .where(Send.id.in_(ids), or_(Suppression.id.is_not(None), Contact.consent.is_(False)))
    ).all()
    reasons: dict[int, str] = {}
    for send_id, suppression_reason, consent in found:
        reasons[send_id] = suppression_reason or ("no_consent" if not consent else "suppressed")
    _sources(("claimed", "suppressed"))
    for send_id, reason in reasons.items():
        db.session.execute(
            update(Send)
            .where(Send.id == send_id, Send.status == "claimed")
            .values(status="suppressed", status_reason=reason, lease_expires_at=None,
                    updated_at=now)
        )
    return set(reasons)


def _hold_back_shared(claimed: list[Claimed], now: datetime) -> set[int]:
    """Suppress claimed rows the brand's sharing rules hold back (frequency cap, same journey
    sent by another partner); the reason says which, never who."""
    held = sharing.hold_back(claimed, now)
    _sources(("claimed", "suppressed"))
    for send_id, reason in held.items():
        db.session.execute(
            update(Send)
            .where(Send.id == send_id, Send.status == "claimed")
            .values(status="suppressed", status_reason=reason, lease_expires_at=None,
                    updated_at=now)
        )
    if held:
        log.info("%s send(s) held back by the brand's sharing rules", len(held))
    return set(held)


CONDITION_EVENT = {"opened": ("open", "click"), "clicked": ("click",)}

# (campaign_id, step_index, contact_id) of sends -> the kinds of human engagement each saw
# ("open", "click"). Tracking records engagement and sits above campaigns in the layers, so
# create_app registers its lookup under this key instead of the ledger importing tracking.
EngagementLookup = Callable[[Sequence[tuple[int, int, int]]],
                            dict[tuple[int, int, int], set[str]]]
ENGAGEMENT_EXTENSION = "lastmile.engagement_lookup"


def engagement_lookup() -> EngagementLookup:
    """Return the human-engagement lookup the app registered (tracking.analytics)."""
    lookup = current_app.extensions.get(ENGAGEMENT_EXTENSION)
    if lookup is None:
        raise RuntimeError("no engagement lookup registered: build the app with create_app()")
    return lookup


def _skip_unmet_conditions(claimed: list[Claimed], now: datetime) -> set[int]:
    """Skip later-step rows whose condition on the previous step's engagement fails."""
    later = [c for c in claimed if c.step_index > 0]
    if not later:
        return set()
    campaigns = {c.campaign_id for c in later}
    journey_of = dict(
        db.session.execute(
            select(Campaign.id, Campaign.journey_id).where(Campaign.id.in_(campaigns))
        ).all()
    )
    conditions: dict[tuple[int, int], str] = {
        (journey_id, position): condition
        for journey_id, position, condition in db.session.execute(
            select(JourneyStep.journey_id, JourneyStep.position, JourneyStep.condition).where(
                JourneyStep.journey_id.in_(set(journey_of.values()))
            )
        ).all()
    }
    guarded = [
        c for c in later
        if conditions.get((journey_of[c.campaign_id], c.step_index), "always") != "always"
    ]
    if not guarded:
        return set()
    # Engagement of each guarded row's previous step, as recorded by tracking (human only).
    seen_by_previous = engagement_lookup()(
        [(c.campaign_id, c.step_index - 1, c.contact_id) for c in guarded])
    kinds = {(campaign_id, step_index + 1, contact_id): seen
             for (campaign_id, step_index, contact_id), seen in seen_by_previous.items()}
    skipped: list[Claimed] = []
    _sources(("claimed", "skipped"))
    for c in guarded:
        condition = conditions[(journey_of[c.campaign_id], c.step_index)]
        seen = kinds.get((c.campaign_id, c.step_index, c.contact_id), set())
        wanted = condition.removeprefix("not_")
        happened = bool(seen & set(CONDITION_EVENT[wanted]))
        holds = happened if condition == wanted else not happened
        if not holds:
            db.session.execute(
                update(Send)
                .where(Send.id == c.id, Send.status == "claimed")
                .values(status="skipped", status_reason=f"condition:{condition}",
                        lease_expires_at=None, updated_at=now)
            )
            skipped.append(c)
    queue_next_steps(skipped, now)
    return {c.id for c in skipped}


def queue_next_steps(done: Iterable[Claimed], at: datetime,
                     campaigns: dict[int, Campaign] | None = None) -> int:
    """Insert each contact's next step (if any), due its delay after `at`; no commit."""
    done = list(done)
    if not done:
        return 0
    wanted = {d.campaign_id for d in done} - set(campaigns or {})
    campaigns = dict(campaigns or {})
    if wanted:
        campaigns.update({
            c.id: c for c in db.session.execute(
                select(Campaign).where(Campaign.id.in_(wanted))).scalars()
        })
    values = []
    for row in done:
        campaign = campaigns[row.campaign_id]
        if campaign.kind == "quick_send" or campaign.status == "cancelled":
            continue
        plan = _step_plan(campaign.journey_id)
        nxt = row.step_index + 1
        if nxt >= len(plan) or plan[nxt][0] is None:
            continue
        version_id, delay_hours = plan[nxt]
        values.append({
            "campaign_id": row.campaign_id, "step_index": nxt, "contact_id": row.contact_id,
            "partner_id": row.partner_id, "journey_id": campaign.journey_id,
            "template_version_id": version_id, "email": row.email,
            "status": "queued", "due_at": at + timedelta(hours=delay_hours),
            "attempts": 0, "last_error": "", "status_reason": "", "created_at": at,
            "updated_at": at,
        })
    if not values:
        return 0
    db.session.execute(
        _insert(Send.__table__).on_conflict_do_nothing(
            index_elements=["campaign_id", "step_index", "contact_id"]
        ),
        values,
    )
    return len(values)


def _owned(row: Claimed) -> object:
    """Guard an outcome write: the row is still claimed by this very attempt."""
    return and_(Send.id == row.id, Send.status == "claimed", Send.attempts == row.attempts)


_SENDS = Send.__table__
# One statement per outcome kind, executed for many rows at once (psycopg pipelines them).
_OWNED_BY_PARAMS = and_(_SENDS.c.id == bindparam("b_id"), _SENDS.c.status == "claimed",
                        _SENDS.c.attempts == bindparam("b_attempts"))


# Enhanced status codes 5.1.x (bad destination mailbox/address) and the common wordings of
# "no such user" mark a synchronous hard bounce; policy or content rejections do not.
HARD_BOUNCE = re.compile(
    r"\b5\.1\.(?:1|2|3|10)\b|user unknown|no such (?:user|mailbox)|mailbox (?:does not|doesn't) "
    r"exist|unknown (?:user|recipient)",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one claimed row's delivery attempt, to be written by record_outcomes."""

    row: Claimed
    outcome: str  # sent, transient, permanent or quota (delivery.base)
    provider_message_id: str | None = None
    error: str = ""
    # For a sent row: each link's redirect target by index, '' for a non-http(s) one
    # (sending.redirect_targets); stored on the row so a click never has to render the mail.
    link_targets: Sequence[str] = ()


def record_outcomes(
    outcomes: list[Outcome],
    campaigns: dict[int, Campaign] | None = None,
) -> dict[str, int]:
    """Write one group of delivery outcomes in one transaction; return counts per status.

    Sent rows get their provider message id and link targets and queue their next step, in
    the same transaction. Every write is guarded by the claim (status claimed, same attempt
    number): a row taken over by another worker meanwhile is left to its new owner (counted
    as lost). One UPDATE per outcome kind, whatever the number of rows.
    """
    now = clock.now()
    _sources(("claimed", "sent"), ("claimed", "retry"), ("claimed", "failed"))
    groups: dict[str, list[dict]] = defaultdict(list)
    sent: list[Claimed] = []
    hard_bounces: list[str] = []
    for o in outcomes:
        row, outcome, error = o.row, o.outcome, o.error
        params = {"b_id": row.id, "b_attempts": row.attempts}
        if outcome == "sent":
            groups["sent"].append({**params, "b_pid": o.provider_message_id,
                                   "b_links": list(o.link_targets)})
            sent.append(row)
        elif outcome == "quota":
            groups["quota"].append({**params, "b_error": error or "quota exceeded"})
        elif outcome == "transient" and row.attempts < MAX_ATTEMPTS:
            due = now + timedelta(seconds=backoff_seconds(row.attempts))
            groups["retry"].append({**params, "b_error": error or "transient failure",
                                    "b_due": due})
        else:
            groups["failed"].append({
                **params, "b_error": error or outcome,
                "b_reason": "rejected" if outcome == "permanent" else "attempts",
            })
            if outcome == "permanent" and HARD_BOUNCE.search(error or ""):
                hard_bounces.append(row.email)
    values = {
        "sent": {"status": "sent", "sent_at": now, "provider_message_id": bindparam("b_pid"),
                 "link_targets": bindparam("b_links", type_=_SENDS.c.link_targets.type),
                 "last_error": "", "status_reason": ""},
        "retry": {"status": "retry", "last_error": bindparam("b_error"),
                  "due_at": bindparam("b_due")},
        # A quota is not the recipient's fault: hand the attempt back and wait for resume.
        "quota": {"status": "retry", "last_error": bindparam("b_error"), "due_at": now,
                  "attempts": _SENDS.c.attempts - 1},
        "failed": {"status": "failed", "last_error": bindparam("b_error"),
                   "status_reason": bindparam("b_reason")},
    }
    counts: dict[str, int] = {}
    for kind, params in groups.items():
        result = db.session.execute(
            update(_SENDS).where(_OWNED_BY_PARAMS)
            .values(lease_expires_at=None, updated_at=now, **values[kind]),
            params,
        )
        written = result.rowcount if result.rowcount is not None and result.rowcount >= 0 \
            else len(params)
        status = "retry" if kind == "quota" else kind
        counts[status] = counts.get(status, 0) + written
        if written < len(params):
            log.warning("%s outcome(s) (%s) found their claim taken over by another worker",
                        len(params) - written, kind)
            counts["lost"] = counts.get("lost", 0) + len(params) - written
    # Inserting the next step is idempotent (unique key), so it is safe even for a row whose
    # claim was taken over: its new owner would insert the very same row.
    queue_next_steps(sent, now, campaigns)
    if hard_bounces:
        # A mailbox the receiving server says does not exist is a hard bounce: never again.
        add_suppressions(hard_bounces, "bounced", "SMTP: mailbox does not exist")
    db.session.commit()
    return counts


def renew_leases(connection: Connection, rows: Sequence[Claimed], lease_seconds: float) -> int:
    """Extend the lease of the rows still claimed by these very attempts; return how many.

    Runs on its own connection (the heartbeat thread's), in its own short transaction.
    """
    if not rows:
        return 0
    result = connection.execute(
        update(_SENDS).where(_OWNED_BY_PARAMS)
        .values(lease_expires_at=clock.now() + timedelta(seconds=lease_seconds))
        .execution_options(synchronize_session=False),
        [{"b_id": r.id, "b_attempts": r.attempts} for r in rows],
    )
    connection.commit()
    return result.rowcount if result.rowcount is not None and result.rowcount >= 0 else 0


def release_claims(rows: Iterable[Claimed], due_at: datetime | None = None) -> int:
    """Hand claimed rows back to the queue without counting an attempt (rate limit, pause)."""
    now = clock.now()
    _sources(("claimed", "queued"))
    released = 0
    for row in rows:
        result = db.session.execute(
            update(Send)
            .where(_owned(row))
            .values(status="queued", attempts=Send.attempts - 1, lease_expires_at=None,
                    due_at=due_at or now, updated_at=now)
        )
        released += result.rowcount or 0
    db.session.commit()
    return released
