"""RQ jobs of the campaigns package: they take send ids, never ORM objects.

No app is created here: `flask worker` builds the app once per process and runs every job
inside its app context (campaigns/worker.py).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Mapping
from datetime import timedelta
from urllib.parse import quote

from flask import current_app
from sqlalchemy import select

from accounts.models import Partner
from campaigns import ledger
from campaigns.models import Campaign, CampaignMember, Contact
from core import clock
from core.db import db
from delivery.base import Backend, OutgoingMessage, get_backend
from journeys.models import TemplateVersion

log = logging.getLogger(__name__)

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


# --------------------------------------------------------------------------- rate limits


class RateLimiter:
    """Fixed one-second windows per partner and overall, shared through Redis when present.

    Counting uses INCRBY + EXPIRE on a key per window, so any number of worker processes on
    any number of machines share one budget. Without Redis (embedded mode: one process) the
    windows live in this process.
    """

    def __init__(self, redis_client=None) -> None:  # noqa: ANN001 - redis.Redis | None
        self.redis = redis_client
        self.local: dict[str, int] = {}

    def _take(self, key: str, wanted: int, limit: int) -> int:
        """Take up to `wanted` units from the window `key` of size `limit`; return granted."""
        if wanted <= 0:
            return 0
        if self.redis is not None:
            pipe = self.redis.pipeline()
            pipe.incrby(key, wanted)
            pipe.expire(key, 5)
            total = int(pipe.execute()[0])
            granted = max(0, min(wanted, limit - (total - wanted)))
            if granted < wanted:
                self.redis.decrby(key, wanted - granted)
            return granted
        used = self.local.get(key, 0)
        granted = max(0, min(wanted, limit - used))
        self.local = {k: v for k, v in self.local.items() if k.endswith(key[-12:])}
        self.local[key] = used + granted
        return granted

    def _give_back(self, key: str, units: int) -> None:
        if units <= 0:
            return
        if self.redis is not None:
            self.redis.decrby(key, units)
        else:
            self.local[key] = self.local.get(key, 0) - units

    def admit(
        self, rows: list[ledger.Claimed], global_limit: int, partner_limit: int
    ) -> tuple[list[ledger.Claimed], list[ledger.Claimed]]:
        """Split rows into those the limits let out this second and those to hold back."""
        if global_limit <= 0 and partner_limit <= 0:
            return rows, []
        window = clock.now().strftime("%Y%m%d%H%M%S")
        by_partner: dict[int, list[ledger.Claimed]] = defaultdict(list)
        for row in rows:
            by_partner[row.partner_id].append(row)
        allowed: list[ledger.Claimed] = []
        held: list[ledger.Claimed] = []
        for partner_id, group in by_partner.items():
            n = len(group)
            partner_key = f"lastmile:rate:p{partner_id}:{window}"
            if partner_limit > 0:
                n = self._take(partner_key, n, partner_limit)
            granted = n
            if global_limit > 0:
                granted = self._take(f"lastmile:rate:all:{window}", n, global_limit)
                if partner_limit > 0:
                    self._give_back(partner_key, n - granted)
            allowed.extend(group[:granted])
            held.extend(group[granted:])
        return allowed, held


_limiters: dict[str, RateLimiter] = {}


def rate_limiter(config: Mapping) -> RateLimiter:
    """Return this process's limiter for the configured Redis (or the in-process one)."""
    url = str(config.get("REDIS_URL") or "")
    if url not in _limiters:
        client = None
        if url:
            import redis

            client = redis.Redis.from_url(url)
        _limiters[url] = RateLimiter(client)
    return _limiters[url]


# --------------------------------------------------------------------------- the backend

BACKEND_KEYS = ("DELIVERY_BACKEND", "SMTP_HOST", "SMTP_PORT", "SMTP_USERNAME", "SMTP_PASSWORD",
                "SMTP_SECURITY", "SES_REGION", "SES_ENDPOINT_URL", "SES_CONFIGURATION_SET",
                "OUTBOX_DIR")
_backend: tuple[tuple, Backend] | None = None


def delivery_backend(config: Mapping) -> Backend:
    """Return this process's backend for `config`, kept open across batches.

    Opening an SMTP session (or an SES client) costs more than sending dozens of messages;
    the SMTP backend checks a kept connection with NOOP before reusing it.
    """
    global _backend
    key = tuple(str(config.get(name) or "") for name in BACKEND_KEYS)
    if _backend is not None and _backend[0] == key:
        return _backend[1]
    drop_backend()
    _backend = (key, get_backend(config))
    return _backend[1]


def drop_backend() -> None:
    """Close and forget this process's kept backend."""
    global _backend
    if _backend is not None:
        try:
            _backend[1].close()
        except Exception:  # noqa: BLE001 - closing a broken connection may fail; it is gone
            log.debug("closing the delivery backend failed", exc_info=True)
        _backend = None


# --------------------------------------------------------------------------- the job


def send_batch(send_ids: list[int]) -> dict[str, int]:
    """Claim the given sends, render, build and deliver them, and record every outcome."""
    return deliver_due(send_ids=[int(i) for i in send_ids], limit=len(send_ids))


def _headers(config: Mapping, send_id: int, campaign_id: int,
             unsubscribe_url: str) -> dict[str, str]:
    # The header and the body's footer link are one URL (signed once, in compose_message).
    brand_address = str(config["BRAND_FROM_EMAIL"])
    domain = brand_address.rpartition("@")[2] or "localhost"
    token = unsubscribe_url.rsplit("/", 1)[-1]
    return {
        "message_id": f"lastmile.{send_id}.{campaign_id}@{domain}",
        "list_unsubscribe_url": unsubscribe_url,
        "list_unsubscribe_mailto": (
            f"mailto:{brand_address}?subject={quote('unsubscribe ' + token)}"
        ),
    }


def deliver_due(
    *,
    send_ids: list[int] | None = None,
    limit: int = 200,
    lease_seconds: float = ledger.DEFAULT_LEASE_SECONDS,
    time_budget: float | None = None,
) -> dict[str, int]:
    """Claim up to `limit` due sends (or the given ids) and deliver them; return counts.

    The job stops itself once `time_budget` (default: half the lease) is spent, handing the
    rows it has not tried back to the queue, so it ends long before its lease runs out or RQ's
    timeout kills it. A kill can still land inside one stalled chunk (every SMTP command has
    its own timeout); then at most that chunk's accepted mail can go out again.
    """
    stop_at = time.monotonic() + (lease_seconds / 2 if time_budget is None else time_budget)
    from campaigns.compose import compose_message
    from delivery.mime import build_message

    config = current_app.config
    with _PhaseTimer("db"):
        claimed = ledger.claim_batch(limit, lease_seconds, send_ids)
    if not claimed:
        return {}
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
    remaining = list(allowed)
    try:
        while remaining:
            chunk, remaining = remaining[:COMMIT_EVERY], remaining[COMMIT_EVERY:]
            outcomes: list[tuple[ledger.Claimed, str, str | None, str]] = []
            messages = []
            by_id: dict[int, ledger.Claimed] = {}
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
                            **_headers(config, row.id, row.campaign_id,
                                       rendered.unsubscribe_url),
                        )
                except Exception as exc:  # noqa: BLE001 - one bad row must not sink the batch
                    log.exception("send %s: could not build the message", row.id)
                    outcomes.append((row, "permanent", None, f"render: {exc}"[:500]))
                    continue
                messages.append(OutgoingMessage(row.id, brand_address, row.email, data))
                by_id[row.id] = row
            with _PhaseTimer("smtp"):
                results = backend.deliver(messages) if messages else []
            quota_hit = False
            for result in results:
                outcomes.append((by_id[result.send_id], result.outcome,
                                 result.provider_message_id, result.error))
                quota_hit = quota_hit or result.outcome == "quota"
            with _PhaseTimer("db"):
                for status, n in ledger.record_outcomes(outcomes, campaigns).items():
                    counts[status] += n
            STATS["messages"] += sum(1 for o in outcomes if o[1] == "sent")
            if quota_hit:
                for campaign_id in {o[0].campaign_id for o in outcomes if o[1] == "quota"}:
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
