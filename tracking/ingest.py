"""Event ingest: the request path appends one entry to a Redis stream; a drainer moves entries
into PostgreSQL, maintaining per-send engagement rows and rollup counters in the same commit.

Durability: the request answers only after XADD returned (with Redis running
`appendfsync always`, the entry is on disk by then). The drainer reads with XREADGROUP,
commits the events (each keyed by its stream id, unique in `events`), and only then XACKs.
A drainer killed between commit and XACK re-reads the entry and the unique key turns the
second insert into a no-op, so nothing is lost and nothing is counted twice.

Without Redis (embedded mode) hits are applied to the database straight away.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

import redis
from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite

from campaigns.models import Send
from core.db import db
from journeys.models import TemplateVersion
from tracking import bots
from tracking.models import NO_LINK, ROLLUP_COUNTERS, EngagementRollup, Event, SendEngagement

log = logging.getLogger("lastmile.tracking")

STREAM = "lastmile:events"
GROUP = "drainers"
# Kinds that only move counters (no event row): a transient bounce is "counted only".
COUNTER_ONLY_KINDS = ("soft_bounce",)


@dataclass
class Hit:
    """One accepted engagement, before classification."""

    kind: str
    send_id: int
    occurred_at: datetime
    link_index: int | None = None
    user_agent: str = ""
    ip: str = ""
    key: str = field(default_factory=lambda: new_key())
    how: str = ""  # '' for a GET, bots.HOW_HEAD or bots.HOW_PREFETCH


def new_key() -> str:
    """Return a fresh idempotency key for a hit written straight to the database."""
    return "db:" + uuid.uuid4().hex


def hit_fields(kind: str, send_id: int, link_index: int | None, user_agent: str, ip: str,
               at: datetime, how: str = "") -> dict[str, str]:
    """Return the stream entry fields for a hit (short names: this runs per request)."""
    fields = {"k": kind, "s": str(send_id), "l": "" if link_index is None else str(link_index),
              "t": at.isoformat(), "u": user_agent[:1000], "i": ip[:64]}
    if how:
        fields["m"] = how
    return fields


def hit_from_entry(entry_id: str, fields: dict) -> Hit | None:
    """Parse a stream entry back into a Hit (None if it is malformed)."""
    try:
        f = {_s(k): _s(v) for k, v in fields.items()}
        return Hit(kind=f["k"], send_id=int(f["s"]),
                   link_index=int(f["l"]) if f.get("l") else None,
                   occurred_at=datetime.fromisoformat(f["t"]), user_agent=f.get("u", ""),
                   ip=f.get("i", ""), key="rs:" + entry_id, how=f.get("m", ""))
    except (KeyError, ValueError):
        return None


def _s(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _insert(table):  # noqa: ANN001, ANN202 - dialect-specific INSERT with ON CONFLICT
    return (postgresql.insert if db.engine.dialect.name == "postgresql" else sqlite.insert)(table)


_LINK_COUNTS: dict[int, int] = {}  # published versions never change, so this never goes stale


def _link_counts(version_ids: set[int]) -> dict[int, int]:
    missing = version_ids - _LINK_COUNTS.keys()
    if missing:
        rows = db.session.execute(
            select(TemplateVersion.id, TemplateVersion.links).where(
                TemplateVersion.id.in_(missing))
        ).all()
        for vid, links in rows:
            _LINK_COUNTS[vid] = len(links or [])
    return {v: _LINK_COUNTS.get(v, 0) for v in version_ids}


def _recent_clicks(send_ids: list[int], since: datetime) -> dict[int, dict[int, datetime]]:
    out: dict[int, dict[int, datetime]] = defaultdict(dict)
    rows = db.session.execute(
        select(Event.send_id, Event.link_index, Event.occurred_at).where(
            Event.send_id.in_(send_ids), Event.kind == "click", Event.occurred_at >= since)
    ).all()
    for send_id, link_index, at in rows:
        if link_index is not None:
            out[send_id][link_index] = max(at, out[send_id].get(link_index, at))
    return out


def _opened(send_ids: list[int]) -> set[int]:
    """Return which of these sends a person has opened already (one query per batch)."""
    return set(db.session.scalars(
        select(SendEngagement.send_id).where(SendEngagement.send_id.in_(send_ids),
                                             SendEngagement.first_open_at.is_not(None))))


def apply_hits(hits: list[Hit]) -> int:
    """Record hits as events and move engagement rows and rollups; the caller commits.

    Returns how many events were newly inserted (already-recorded keys are skipped).
    """
    if not hits:
        return 0
    send_ids = sorted({h.send_id for h in hits})
    sends = {
        row.id: row
        for row in db.session.execute(
            select(Send.id, Send.campaign_id, Send.journey_id, Send.partner_id, Send.step_index,
                   Send.sent_at, Send.template_version_id).where(Send.id.in_(send_ids))
        ).all()
    }
    hits = sorted((h for h in hits if h.send_id in sends), key=lambda h: h.occurred_at)
    if not hits:
        return 0
    link_counts = _link_counts({sends[h.send_id].template_version_id for h in hits})
    click_sends = sorted({h.send_id for h in hits if h.kind == "click"})
    recent = (
        _recent_clicks(click_sends, hits[0].occurred_at - bots.ALL_LINKS_WINDOW)
        if click_sends else {}
    )
    opened = _opened(click_sends) if click_sends else set()
    # A scanner follows every link of a message within a second or two: each click of such a
    # burst is a machine's, the first ones too, so a click sees the batch's later clicks.
    batch_clicks: dict[int, list[tuple[datetime, int]]] = defaultdict(list)
    for h in hits:
        if h.kind == "click" and h.link_index is not None:
            batch_clicks[h.send_id].append((h.occurred_at, h.link_index))

    rows: list[dict] = []
    by_key: dict[str, tuple[Hit, bots.Verdict]] = {}
    for h in hits:
        s = sends[h.send_id]
        burst = None
        if h.kind == "click":
            burst = dict(recent.get(h.send_id, {}))
            for at, link in batch_clicks.get(h.send_id, ()):
                if abs(at - h.occurred_at) <= bots.ALL_LINKS_WINDOW:
                    burst[link] = max(at, burst.get(link, at))
        verdict = bots.classify(
            h.kind, h.user_agent, h.ip, occurred_at=h.occurred_at, sent_at=s.sent_at,
            link_index=h.link_index, link_count=link_counts[s.template_version_id],
            recent_click_links=burst, how=h.how, opened_before=h.send_id in opened,
        )
        if h.kind == "open" and not verdict.machine:
            opened.add(h.send_id)
        by_key[h.key] = (h, verdict)
        if h.kind in COUNTER_ONLY_KINDS:
            continue
        rows.append({
            "send_id": h.send_id, "kind": h.kind, "link_index": h.link_index,
            "occurred_at": h.occurred_at, "user_agent": h.user_agent[:1000], "ip": h.ip[:64],
            "machine": verdict.machine, "machine_reason": verdict.reason,
            "proxied": verdict.proxied, "campaign_id": s.campaign_id,
            "journey_id": s.journey_id, "partner_id": s.partner_id, "step_index": s.step_index,
            "event_key": h.key,
        })
    inserted_keys: set[str] = set()
    if rows:
        # One cached statement run with many parameter sets (SQLAlchemy batches them into
        # multi-row INSERTs); compiling a fresh 1000-row VALUES statement costs far more.
        events = Event.__table__
        stmt = _insert(events).on_conflict_do_nothing(index_elements=["event_key"])
        result = db.session.execute(stmt.returning(events.c.event_key), rows)
        inserted_keys = {k for (k,) in result.all()}
    accepted = [by_key[k] for k in by_key
                if k in inserted_keys or by_key[k][0].kind in COUNTER_ONLY_KINDS]
    if not accepted:
        return 0
    _move_counters(accepted, sends)
    return len(inserted_keys)


_ENGAGEMENT_STAMP = {"unsubscribe": "unsubscribed_at", "bounce": "bounced_at",
                     "complaint": "complained_at"}
_EVENT_COUNTER = {"unsubscribe": "unsubscribes", "bounce": "bounces",
                  "complaint": "complaints", "delivery": "deliveries",
                  "soft_bounce": "soft_bounces"}


def _move_counters(accepted: list[tuple[Hit, bots.Verdict]], sends: dict) -> None:
    """Update per-send engagement rows (under row locks) and upsert rollup deltas."""
    send_ids = sorted({h.send_id for h, _ in accepted})
    seed = [{"send_id": sid, "campaign_id": sends[sid].campaign_id, "opens": 0, "clicks": 0,
             "machine_opens": 0, "machine_clicks": 0} for sid in send_ids]
    table = SendEngagement.__table__
    db.session.execute(_insert(table).on_conflict_do_nothing(index_elements=["send_id"]), seed)
    locked = db.session.execute(
        select(SendEngagement.__table__).where(SendEngagement.send_id.in_(send_ids))
        .order_by(SendEngagement.send_id).with_for_update()
    ).mappings().all()
    state = {row["send_id"]: dict(row) for row in locked}
    deltas: dict[tuple, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for h, verdict in accepted:
        machine = verdict.machine
        s = sends[h.send_id]
        eng = state[h.send_id]
        link = h.link_index if h.kind == "click" and h.link_index is not None else NO_LINK
        d = deltas[(h.occurred_at.date(), s.campaign_id, s.step_index, link, s.journey_id,
                    s.partner_id)]
        if h.kind in ("open", "click"):
            plural = h.kind + "s"
            first = "first_open_at" if h.kind == "open" else "first_click_at"
            if machine:
                eng["machine_" + plural] += 1
                d["machine_" + plural] += 1
            else:
                eng[plural] += 1
                d[plural] += 1
                if verdict.proxied:
                    d["proxied_opens"] += 1
                if eng[first] is None:
                    eng[first] = h.occurred_at
                    d["unique_" + plural] += 1
                eng["last_activity_at"] = max(eng["last_activity_at"] or h.occurred_at,
                                              h.occurred_at)
        else:
            d[_EVENT_COUNTER[h.kind]] += 1
            stamp = _ENGAGEMENT_STAMP.get(h.kind)
            if stamp and eng[stamp] is None:
                eng[stamp] = h.occurred_at
    columns = [c.name for c in table.c if c.name != "send_id"]
    db.session.execute(
        update(table).where(table.c.send_id == bindparam("_send_id"))
        .values({c: bindparam(c) for c in columns}),
        [{"_send_id": row["send_id"], **{c: row[c] for c in columns}}
         for row in state.values()],
    )
    _upsert_rollups(deltas)


def _upsert_rollups(deltas: dict[tuple, dict[str, int]]) -> None:

    values = []
    for key in sorted(deltas):  # one lock order for every drainer: no deadlocks
        day, campaign_id, step_index, link, journey_id, partner_id = key
        row = {"day": day, "campaign_id": campaign_id, "step_index": step_index,
               "link_index": link, "journey_id": journey_id, "partner_id": partner_id}
        row.update({c: deltas[key].get(c, 0) for c in ROLLUP_COUNTERS})
        values.append(row)
    table = EngagementRollup.__table__
    stmt = _insert(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=["day", "campaign_id", "step_index", "link_index"],
        set_={c: table.c[c] + stmt.excluded[c] for c in ROLLUP_COUNTERS},
    )
    db.session.execute(stmt, values)


# --- Redis stream: request-side append and the drainer ------------------------------------

def ensure_group(r: redis.Redis) -> None:
    """Create the drainer consumer group (reading from the stream's start) if missing."""
    try:
        r.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def _ack(r: redis.Redis, ids: list) -> None:
    """Acknowledge and delete drained entries (called only after the DB commit)."""
    pipe = r.pipeline(transaction=False)
    pipe.xack(STREAM, GROUP, *ids)
    pipe.xdel(STREAM, *ids)
    pipe.execute()


def drain_once(r: redis.Redis, consumer: str, *, count: int = 1000, block_ms: int | None = None,
               min_idle_ms: int = 30_000) -> int:
    """Move one batch of stream entries into the database; return how many entries it took.

    Order: this consumer's own un-acknowledged entries first (it crashed before XACK last
    time), then entries another consumer left pending for `min_idle_ms`, then new ones.
    """
    ensure_group(r)
    entries = _entries(r.xreadgroup(GROUP, consumer, {STREAM: "0"}, count=count))
    if not entries:
        claimed = r.xautoclaim(STREAM, GROUP, consumer, min_idle_time=min_idle_ms,
                               start_id="0-0", count=count)
        entries = [(eid, f or {}) for eid, f in claimed[1]]
    if not entries:
        entries = _entries(r.xreadgroup(GROUP, consumer, {STREAM: ">"}, count=count,
                                        block=block_ms))
    if not entries:
        return 0
    hits = []
    for entry_id, fields in entries:
        # An entry deleted while pending comes back without fields: nothing to record.
        hit = hit_from_entry(_s(entry_id), fields) if fields else None
        if hit is not None:
            hits.append(hit)
        elif fields:
            log.warning("dropping malformed tracking entry %s", _s(entry_id))
    try:
        apply_hits(hits)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    _ack(r, [eid for eid, _ in entries])
    return len(entries)


def _entries(response: list | None) -> list[tuple]:
    # Entries deleted while pending come back with no fields: kept, so they get acknowledged.
    if not response:
        return []
    out = []
    for _stream, items in response:
        out.extend((eid, f or {}) for eid, f in items)
    return out


def drain_all(r: redis.Redis, consumer: str = "drain-1", *, min_idle_ms: int = 30_000) -> int:
    """Drain until the stream has nothing left for this consumer; return entries moved."""
    total = 0
    while True:
        moved = drain_once(r, consumer, min_idle_ms=min_idle_ms)
        if not moved:
            return total
        total += moved
