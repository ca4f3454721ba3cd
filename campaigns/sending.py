"""The send path after launch, in the order mail flows:

1. `scheduler_tick` (run every second by `flask scheduler`, or by the embedded worker) starts
   launched campaigns, whose members get step-0 rows in the ledger, and hands due send ids to
   the RQ queue in batches.
2. `send_batch` (the RQ job) claims those rows in the ledger, composes each recipient's
   message, builds its MIME bytes, hands them to the delivery backend and records every
   outcome in the ledger (a sent row with its link targets, where its clicks redirect).
3. `compose_message` renders one recipient's message exactly as sent. Its inputs come from
   `message_inputs`, which `preview_campaign` resolves too, so what a partner previews is what
   a recipient receives.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from flask import current_app
from redis import Redis
from rq import Queue
from sqlalchemy import select

from accounts.models import Partner
from campaigns import compliance, ledger
from campaigns.members import member_overrides
from campaigns.models import Campaign, CampaignMember, Contact
from core import clock
from core.db import db
from core.errors import NotFound
from core.i18n import _
from core.tokens import HONEYPOT_LINK, make_token
from core.validate import is_http_url
from delivery.backends import delivery_backend, drop_backend
from delivery.base import OutgoingMessage
from delivery.mime import build_message, new_message_id
from delivery.ratelimit import rate_limiter
from journeys.models import JourneyStep, TemplateVersion
from personalization.context import brand_context, sample_contact
from personalization.preview import Preview, preview_version
from personalization.render import render_message

log = logging.getLogger(__name__)

QUEUE_NAME = "sends"
# A job must end before its rows' heartbeat stops (ledger.MAX_HOLD_SECONDS), or another
# worker could take them over while it still sends.
JOB_TIMEOUT = ledger.MAX_HOLD_SECONDS - 30
# What a job spends before it hands its untried rows back (deliver_due's time_budget).
JOB_BUDGET_SECONDS = ledger.MAX_HOLD_SECONDS / 2
ENQUEUE_GROUP = 50  # batches per Redis pipeline

# Outcomes are committed after every this-many messages: the span between the server's
# "250 accepted" and our commit is the only place a duplicate can come from after a crash.
COMMIT_EVERY = 10

# Per-process time spent in each phase (seconds) and message counts; bench/send.py reads them.
STATS: dict[str, float] = defaultdict(float)


class _PhaseTimer:
    """Add the wall time of a `with` block to STATS[name]."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.started = 0.0

    def __enter__(self) -> None:
        self.started = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        STATS[self.name] += time.perf_counter() - self.started


# --------------------------------------------------------------------------- 1. the scheduler tick


def send_queue(connection: Redis) -> Queue:
    """Return the queue send batches travel on."""
    return Queue(QUEUE_NAME, connection=connection)


def enqueue_batches(queue: Queue, batches: list[list[int]]) -> int:
    """Enqueue one `send_batch` job per batch of ids through one pipeline; return jobs."""
    for start in range(0, len(batches), ENQUEUE_GROUP):
        group = batches[start:start + ENQUEUE_GROUP]
        with queue.connection.pipeline() as pipe:
            queue.enqueue_many(
                [
                    Queue.prepare_data(
                        send_batch, args=(ids,), timeout=JOB_TIMEOUT, result_ttl=0,
                        failure_ttl=7 * 86400, description=f"send_batch({len(ids)} sends)",
                    )
                    for ids in group
                ],
                pipeline=pipe,
            )
            pipe.execute()
    return len(batches)


def housekeeping() -> dict[str, int]:
    """Start scheduled campaigns, reap expired leases, tidy and complete; return counts."""
    counts = {
        "started": ledger.start_scheduled_campaigns(),
        "reaped": ledger.reap_expired_leases(),
        "tidied": ledger.tidy_stopped_campaigns(),
        "completed": sum(ledger.complete_if_done(cid) for cid in ledger.running_campaign_ids()),
    }
    return {k: v for k, v in counts.items() if v}


def scheduler_tick(
    queue: Queue,
    batch_size: int = 200,
    enqueue_seconds: float = ledger.DEFAULT_ENQUEUE_SECONDS,
) -> dict[str, int]:
    """Run one scheduler pass: housekeeping, then hand every due row to the queue as ids."""
    counts = housekeeping()
    rows = jobs = 0
    while True:
        ids = ledger.take_due_ids(batch_size * ENQUEUE_GROUP, enqueue_seconds)
        if not ids:
            break
        batches = [ids[i:i + batch_size] for i in range(0, len(ids), batch_size)]
        try:
            jobs += enqueue_batches(queue, batches)
        except Exception:  # noqa: BLE001 - Redis down: the rows' marks expire, mail is delayed
            log.exception("could not enqueue %s sends; they come due again later", len(ids))
            counts["enqueue_failed"] = len(ids)
            break
        rows += len(ids)
        if len(ids) < batch_size * ENQUEUE_GROUP:
            break
    if rows:
        counts.update(enqueued=rows, jobs=jobs)
    return counts


# --------------------------------------------------------------------------- 2. the job


class LeaseHeartbeat:
    """Renew the leases of a job's claimed rows from a thread while the job works on them.

    A live job keeps its rows however slow a chunk is; a killed one stops renewing, so its rows
    come due again within one lease instead of waiting out a long one. The job asks `holds()`
    before each chunk: if renewals have failed (the database is away) for half a lease, it
    stops sending, since its rows may soon be another worker's. After `max_hold` seconds the
    heartbeat stops renewing, so no job, however stuck, keeps rows longer than that.
    """

    def __init__(self, rows: list[ledger.Claimed], lease_seconds: float,
                 max_hold: float = ledger.MAX_HOLD_SECONDS) -> None:
        self.rows = rows
        self.lease_seconds = lease_seconds
        self.interval = max(lease_seconds / 4, 0.05)
        self.engine = db.engine
        started = time.monotonic()
        self.renewed_at = started  # the claim itself set the first lease
        self.give_up_at = started + max_hold
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease-heartbeat", daemon=True)

    def __enter__(self) -> LeaseHeartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def holds(self) -> bool:
        """Tell whether the leases were renewed recently enough to go on sending."""
        return time.monotonic() - self.renewed_at < self.lease_seconds / 2

    def _run(self) -> None:
        while not self._stop.wait(self.interval) and time.monotonic() < self.give_up_at:
            try:
                with self.engine.connect() as connection:
                    ledger.renew_leases(connection, self.rows, self.lease_seconds)
                self.renewed_at = time.monotonic()
            except Exception as exc:  # noqa: BLE001 - the database may be away; holds() tells
                log.warning("could not renew the leases of %s sends: %s", len(self.rows),
                            str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__)


def lease_seconds_of(config: Mapping) -> float:
    """Return the configured lease of a claim (SEND_LEASE_SECONDS), at least one second."""
    try:
        return max(1.0, float(config.get("SEND_LEASE_SECONDS") or ledger.DEFAULT_LEASE_SECONDS))
    except (TypeError, ValueError):
        return float(ledger.DEFAULT_LEASE_SECONDS)


def send_batch(send_ids: list[int]) -> dict[str, int]:
    """Claim the given sends, render, build and deliver them, and record every outcome."""
    return deliver_due(send_ids=[int(i) for i in send_ids], limit=len(send_ids))


def _headers(config: Mapping, unsubscribe_url: str) -> dict[str, str]:
    # The header and the body's footer link are one URL (signed once, in compose_message).
    brand_address = str(config["BRAND_FROM_EMAIL"])
    token = unsubscribe_url.rsplit("/", 1)[-1]
    return {
        # Random, so globally unique; the send id is in X-Lastmile-Send-Id (build_message).
        "message_id": new_message_id(brand_address),
        "list_unsubscribe_url": unsubscribe_url,
        "list_unsubscribe_mailto": (
            f"mailto:{brand_address}?subject={quote('unsubscribe ' + token)}"
        ),
    }


def deliver_due(
    *,
    send_ids: list[int] | None = None,
    limit: int = 200,
    lease_seconds: float | None = None,
    time_budget: float | None = None,
) -> dict[str, int]:
    """Claim up to `limit` due sends (or the given ids) and deliver them; return counts.

    The claim's lease (default SEND_LEASE_SECONDS) is renewed by a heartbeat while the job
    works (LeaseHeartbeat). The job stops itself once `time_budget` (default
    JOB_BUDGET_SECONDS) is spent, handing the rows it has not tried back to the queue, so it
    ends long before RQ's timeout kills it. A kill can still land inside one chunk; then at
    most that chunk's accepted mail can go out again.
    """
    stop_at = time.monotonic() + (JOB_BUDGET_SECONDS if time_budget is None else time_budget)
    config = current_app.config
    lease = lease_seconds_of(config) if lease_seconds is None else lease_seconds
    with _PhaseTimer("db"):
        claimed = ledger.claim_batch(limit, lease, send_ids)
    if not claimed:
        return {}
    with LeaseHeartbeat(claimed, lease) as heartbeat:
        return _deliver_claimed(claimed, config, stop_at, heartbeat)


def _deliver_claimed(claimed: list[ledger.Claimed], config: Mapping, stop_at: float,
                     heartbeat: LeaseHeartbeat) -> dict[str, int]:
    allowed, held = rate_limiter(config).admit(
        claimed, int(config.get("RATE_LIMIT_GLOBAL") or 0),
        int(config.get("RATE_LIMIT_PARTNER") or 0),
    )
    counts: dict[str, int] = defaultdict(int)
    if held:
        with _PhaseTimer("db"):
            ledger.release_claims(held, due_at=clock.now() + timedelta(seconds=1))
        counts["rate_limited"] += len(held)
    if not allowed:
        return dict(counts)
    with _PhaseTimer("db"):
        contacts = {
            c.id: c for c in db.session.execute(
                select(Contact).where(Contact.id.in_({r.contact_id for r in allowed}))
            ).scalars()
        }
        campaigns = {
            c.id: c for c in db.session.execute(
                select(Campaign).where(Campaign.id.in_({r.campaign_id for r in allowed}))
            ).scalars()
        }
        overrides: dict[tuple[int, int], dict] = {
            (campaign_id, contact_id): stored or {}
            for campaign_id, contact_id, stored in db.session.execute(
                select(CampaignMember.campaign_id, CampaignMember.contact_id,
                       CampaignMember.overrides).where(
                    CampaignMember.campaign_id.in_(campaigns),
                    CampaignMember.contact_id.in_(contacts),
                )
            ).all()
        }
        versions = {
            v.id: v for v in db.session.execute(
                select(TemplateVersion).where(
                    TemplateVersion.id.in_({r.template_version_id for r in allowed}))
            ).scalars()
        }
        partners = {
            p.id: p for p in db.session.execute(
                select(Partner).where(Partner.id.in_({r.partner_id for r in allowed}))
            ).scalars()
        }
    brand_name = str(config["BRAND_NAME"])
    brand_address = str(config["BRAND_FROM_EMAIL"])
    backend = delivery_backend(config)
    remaining = _hold_back(allowed, campaigns, overrides, versions, counts)
    try:
        while remaining:
            if not heartbeat.holds():
                # Leases not renewed for half a lease: another worker may own these rows soon.
                log.warning("leases not renewed; %s untried sends left to their leases",
                            len(remaining))
                counts["unrenewed"] += len(remaining)
                break
            chunk, remaining = remaining[:COMMIT_EVERY], remaining[COMMIT_EVERY:]
            outcomes: list[ledger.Outcome] = []
            messages = []
            by_id: dict[int, tuple[ledger.Claimed, list[str]]] = {}
            for row in chunk:
                campaign = campaigns[row.campaign_id]
                try:
                    with _PhaseTimer("render"):
                        rendered = compose_message(
                            campaign, row.step_index, contacts[row.contact_id],
                            partners[row.partner_id], send_id=row.id, config=config,
                            overrides=overrides.get((row.campaign_id, row.contact_id), {}),
                            version=versions[row.template_version_id],
                        )
                    with _PhaseTimer("mime"):
                        data = build_message(
                            from_name=f"{campaign.sender_name} via {brand_name}",
                            from_email=brand_address,
                            reply_to=campaign.sender_reply_to,
                            reply_to_name=campaign.sender_name,
                            to=row.email,
                            subject=rendered.subject,
                            html=rendered.html,
                            text=rendered.text,
                            send_id=row.id,
                            **_headers(config, rendered.unsubscribe_url),
                        )
                except Exception as exc:  # noqa: BLE001 - one bad row must not sink the batch
                    log.exception("send %s: could not build the message", row.id)
                    outcomes.append(ledger.Outcome(row, "permanent",
                                                   error=f"render: {exc}"[:500]))
                    continue
                messages.append(OutgoingMessage(row.id, brand_address, row.email, data))
                by_id[row.id] = (row, redirect_targets(rendered.link_targets))
            with _PhaseTimer("smtp"):
                results = backend.deliver(messages) if messages else []
            quota_hit = False
            for result in results:
                row, targets = by_id[result.send_id]
                outcomes.append(ledger.Outcome(row, result.outcome, result.provider_message_id,
                                               result.error, targets))
                quota_hit = quota_hit or result.outcome == "quota"
            with _PhaseTimer("db"):
                for status, n in ledger.record_outcomes(outcomes, campaigns).items():
                    counts[status] += n
            STATS["messages"] += sum(1 for o in outcomes if o.outcome == "sent")
            if quota_hit:
                for campaign_id in {o.row.campaign_id for o in outcomes if o.outcome == "quota"}:
                    ledger.pause_campaign(campaign_id, "SES daily quota exceeded")
                with _PhaseTimer("db"):
                    counts["released"] += ledger.release_claims(remaining)
                break
            if remaining and time.monotonic() >= stop_at:
                log.warning("batch over its time budget: %s untried sends back to the queue",
                            len(remaining))
                with _PhaseTimer("db"):
                    counts["released"] += ledger.release_claims(remaining)
                break
    except BaseException:
        # The connection's state is unknown after an error: start afresh next batch. Rows
        # not yet tried go straight back to the queue instead of waiting out their lease.
        drop_backend()
        with contextlib.suppress(Exception):  # the database may be what failed
            db.session.rollback()
            ledger.release_claims(remaining)
        raise
    log.info("batch of %s: %s", len(claimed), dict(counts))
    return dict(counts)


def _hold_back(rows: list[ledger.Claimed], campaigns: dict[int, Campaign],
               overrides: dict[tuple[int, int], dict], versions: dict[int, TemplateVersion],
               counts: dict[str, int]) -> list[ledger.Claimed]:
    """Keep back what breaks the brand's compliance rules (campaigns.compliance); return the rest.

    A rule may have been added after the campaign was approved. When the campaign's own values
    break one, the campaign is paused with the reason (the partner corrects them, then
    resumes) and its rows go back to the queue; when only a member's override does, that one
    message is not sent (failed, with the reason).
    """
    rules: dict[int, list] = {}
    paused: dict[int, str] = {}
    kept, back, refused = [], [], []
    for row in rows:
        campaign = campaigns[row.campaign_id]
        if campaign.journey_id not in rules:
            rules[campaign.journey_id] = compliance.rules_for(campaign.journey_id)
        if row.campaign_id in paused:
            back.append(row)
            continue
        own_problem, member_problem = compliance.send_problem(
            campaign.slot_values, overrides.get((row.campaign_id, row.contact_id), {}),
            row.step_index, versions[row.template_version_id], rules[campaign.journey_id])
        if own_problem:
            paused[row.campaign_id] = own_problem
            back.append(row)
        elif member_problem:
            refused.append(ledger.Outcome(row, "permanent", error=_(
                "Held back by the brand's rules: %(p)s", p=member_problem)[:500]))
        else:
            kept.append(row)
    if not (back or refused):
        return kept
    with _PhaseTimer("db"):
        for campaign_id, problem in paused.items():
            ledger.pause_campaign(campaign_id, _(
                "Held back: your values break the brand's rules (%(p)s). Correct them, then "
                "resume the campaign.", p=problem))
        counts["held_back"] += len(back) + len(refused)
        ledger.release_claims(back)
        for status, n in ledger.record_outcomes(refused, campaigns).items():
            counts[status] += n
    return kept


# --------------------------------------------------------------------------- 3. one message

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


def redirect_targets(link_targets: Iterable[object]) -> list[str]:
    """Return the targets a click may redirect to, by link index: '' for any not http(s).

    The one rule for click redirects: the worker stores this list on the sent row, and a
    click on mail sent before that (tracking.services.compute_link_targets) applies it too.
    """
    return [url if isinstance(url, str) and is_http_url(url) else "" for url in link_targets]


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


@dataclass(frozen=True)
class MessageInputs:
    """Everything a campaign step renders with for one contact, resolved as the sender does."""

    version: TemplateVersion
    slot_values: dict
    contact: dict
    partner: dict
    sender: dict
    brand: dict


def message_inputs(campaign: Campaign, step_index: int, contact: Contact | dict,
                   partner: Any, *, config: Mapping, overrides: dict | None = _LOOKUP,
                   version: TemplateVersion | None = None) -> MessageInputs:
    """Resolve a step's pinned version, values (member overrides applied) and merge fields.

    Pass `overrides` (the member's stored overrides, {} for none) and `version` when you
    already loaded them in bulk; otherwise they are read here (one indexed query each).
    """
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
    return MessageInputs(
        version=version, slot_values=slot_values_for(campaign, step_index, overrides),
        contact=contact_ctx, partner=partner_ctx,
        sender={"name": campaign.sender_name, "reply_to": campaign.sender_reply_to},
        brand=brand_context(config),
    )


def compose_message(campaign: Campaign, step_index: int, contact: Contact | dict,
                    partner: Any, *, send_id: int | None, config: Mapping,
                    overrides: dict | None = _LOOKUP,
                    version: TemplateVersion | None = None) -> Composed:
    """Render a campaign step for one contact, with tracking when `send_id` is given.

    Inputs are resolved by `message_inputs` (see there for `overrides` and `version`), as
    `preview_campaign` resolves them.
    """
    inputs = message_inputs(campaign, step_index, contact, partner, config=config,
                            overrides=overrides, version=version)
    version = inputs.version
    args = (version, inputs.slot_values, inputs.contact, inputs.partner, inputs.sender,
            inputs.brand)
    targets: dict[int, str] = {}
    if send_id is None:
        rendered = render_message(*args)
        unsubscribe_url = "#"
    else:
        base = str(config["PUBLIC_BASE_URL"]).rstrip("/")
        secret = str(config["SECRET_KEY"])
        pixel_url, unsubscribe_url = tracking_urls(config, send_id)

        def link_url(index: int, url: str) -> str:
            targets[index] = url
            return f"{base}/t/c/{make_token(secret, 'click', send_id, index)}"

        honeypot = f"{base}/t/c/{make_token(secret, 'click', send_id, HONEYPOT_LINK)}"
        rendered = render_message(*args, link_url=link_url, unsubscribe_url=unsubscribe_url,
                                  open_pixel_url=pixel_url, honeypot_url=honeypot)
    link_targets = () if send_id is None else tuple(
        targets.get(i, "") for i in range(len(version.links or [])))
    return Composed(subject=rendered.subject, html=rendered.html, text=rendered.text,
                    unsubscribe_url=unsubscribe_url, template_version_id=version.id,
                    link_targets=link_targets)


def preview_campaign(campaign: Campaign, step_index: int, contact: Contact | dict | None,
                     partner: Any, *, config: Mapping, overrides: dict | None = _LOOKUP) -> Preview:
    """Preview a campaign step for one contact exactly as `compose_message` sends it, untracked.

    `contact` None previews with the sample contact. For a stored contact the member's
    overrides are read unless given; pass `overrides={}` for an unsaved campaign. Raises
    NotFound for a step the campaign does not have.
    """
    inputs = message_inputs(campaign, step_index,
                            sample_contact() if contact is None else contact, partner,
                            config=config, overrides=overrides)
    # The values were validated when the campaign was saved: render them as the sender does.
    return preview_version(inputs.version, inputs.slot_values, inputs.contact, inputs.partner,
                           inputs.sender, inputs.brand, validate=False)
