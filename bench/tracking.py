"""Tracking benchmark: hit throughput under gunicorn vs a bare WSGI callable, and analytics
reads at 10 million events vs the same answer from raw events.

Run: `python bench/tracking.py` (or `make bench`). Settings (environment):
  BENCH_DATABASE_URL  default postgresql+psycopg://postgres@127.0.0.1:5432/bench_tracking
  BENCH_REDIS_URL     default redis://127.0.0.1:6379/14 (flushed)
  BENCH_SECONDS       load duration per target (default 20)
  BENCH_CONNECTIONS   concurrent keep-alive connections (default 32)
  BENCH_EVENTS        events generated for the analytics read (default 10000000)
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DB_URL = os.environ.get("BENCH_DATABASE_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/bench_tracking")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
SECONDS = float(os.environ.get("BENCH_SECONDS", "20"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
EVENTS = int(os.environ.get("BENCH_EVENTS", "10000000"))
WORKER_CLASS = os.environ.get("BENCH_WORKER_CLASS", "sync")
SLICES = 4
SECRET = "bench-secret"
BARE_STREAM = "bench:bare"
UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36"


# --- the baseline: a bare WSGI callable doing the same token check and the same one write ----

_bare_redis = None


def bare_app(environ: dict, start_response) -> list[bytes]:  # noqa: ANN001
    """Verify the token and XADD one entry; no framework, no cache lookup."""
    global _bare_redis
    import redis

    from core.tokens import read_token
    from tracking.ingest import hit_fields
    from tracking.wsgi import PIXEL, PIXEL_HEADERS

    if _bare_redis is None:
        _bare_redis = redis.Redis.from_url(REDIS_URL)
    path = environ.get("PATH_INFO", "")
    purpose = "open" if path.startswith("/t/o/") else "click"
    parsed = read_token(SECRET, purpose, path[5:])
    if parsed is None:
        start_response("404 Not Found", [("Content-Length", "0")])
        return [b""]
    from datetime import UTC, datetime

    _bare_redis.xadd(BARE_STREAM, hit_fields(purpose, parsed[0], parsed[1],
                                              environ.get("HTTP_USER_AGENT", ""),
                                              environ.get("REMOTE_ADDR", ""),
                                              datetime.now(UTC).replace(tzinfo=None)))
    if purpose == "open":
        start_response("200 OK", PIXEL_HEADERS)
        return [PIXEL]
    start_response("302 Found", [("Location", "https://brand.example/offer"),
                                 ("Content-Length", "0")])
    return [b""]


# --- load generator: asyncio, raw sockets, keep-alive ------------------------------------------

async def _conn_loop(port: int, paths: list[bytes], stop: float, lat: list[float],
                     codes: dict[int, int], offset: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = offset
    try:
        while time.perf_counter() < stop:
            req = paths[i % len(paths)]
            i += 1
            t0 = time.perf_counter()
            writer.write(req)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            lat.append(time.perf_counter() - t0)
            codes[status] = codes.get(status, 0) + 1
            if b"connection: close" in head.lower():
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
    finally:
        writer.close()


def _load(args: tuple[int, list[str], float, int]) -> tuple[list[float], dict[int, int]]:
    port, paths, seconds, conns = args
    reqs = [f"GET {p} HTTP/1.1\r\nHost: bench\r\nUser-Agent: {UA}\r\n\r\n".encode()
            for p in paths]
    lat: list[float] = []
    codes: dict[int, int] = {}

    async def main() -> None:
        stop = time.perf_counter() + seconds
        await asyncio.gather(*[_conn_loop(port, reqs, stop, lat, codes, k * 7)
                               for k in range(conns)])

    asyncio.run(main())
    return lat, codes


def run_load(port: int, paths: list[str], seconds: float) -> dict:
    """Drive `port` from a second process for `seconds`; return latencies and status counts."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        lat, codes = pool.apply(_load, ((port, paths, seconds, CONNECTIONS),))
    return {"lat": lat, "codes": codes}


def _merge(into: dict, res: dict) -> None:
    into.setdefault("lat", []).extend(res["lat"])
    codes = into.setdefault("codes", {})
    for code, n in res["codes"].items():
        codes[code] = codes.get(code, 0) + n
    into["5xx"] = sum(n for c, n in codes.items() if c >= 500)
    into["ok"] = sum(n for c, n in codes.items() if c in (200, 302))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gunicorn(target: str, env: dict) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", "2", "-k", WORKER_CLASS, "--threads", "4",
         "--keep-alive", "30", "-b", f"127.0.0.1:{port}", target],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{target} did not start")


# --- setup ------------------------------------------------------------------------------------

def ensure_database() -> None:
    import psycopg

    name = DB_URL.rsplit("/", 1)[1]
    admin = DB_URL.rsplit("/", 1)[0].replace("postgresql+psycopg", "postgresql") + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def make_app():  # noqa: ANN201
    from sqlalchemy import create_engine, text

    from app import create_app
    from core import migrate

    engine = create_engine(DB_URL)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    app = create_app({"DATABASE_URL": DB_URL, "REDIS_URL": REDIS_URL, "SECRET_KEY": SECRET,
                      "PUBLIC_BASE_URL": "http://bench"})
    with app.app_context():
        migrate.upgrade(DB_URL)
    return app


def hit_throughput(app) -> None:  # noqa: ANN001
    import redis

    from core.db import db
    from core.tokens import make_token
    from tests.builders import make_sent_message, make_tracked_campaign
    from tracking import ingest

    r = redis.Redis.from_url(REDIS_URL)
    r.flushdb()
    with app.app_context():
        campaign = make_tracked_campaign()
        sends = [make_sent_message(campaign) for _ in range(50)]
        paths = []
        for s in sends:
            paths.append(f"/t/o/{make_token(SECRET, 'open', s.id)}")
            paths.append(f"/t/c/{make_token(SECRET, 'click', s.id, 0)}")
        db.session.remove()
    env = {**os.environ, "DATABASE_URL": DB_URL, "REDIS_URL": REDIS_URL, "SECRET_KEY": SECRET,
           "PUBLIC_BASE_URL": "http://bench", "LOG_LEVEL": "WARNING",
           "LASTMILE_INSTANCE": tempfile.mkdtemp(prefix="lastmile-bench-"),
           "PYTHONPATH": str(ROOT)}
    servers = {name: gunicorn(target, env) for name, target in
               (("lastmile", "app:create_server_app()"),
                ("bare wsgi", "bench.tracking:bare_app"))}
    results: dict[str, dict] = {}
    try:
        for _name, (_proc, port) in servers.items():
            # Warm the workers and the per-send link caches, as a running service would be.
            _load((port, paths, 1.0, 4))
        with app.app_context():
            ingest.drain_all(r, "bench")
            db.session.execute(db.text("TRUNCATE events, send_engagements, engagement_rollups"))
            db.session.commit()
        r.delete(BARE_STREAM)
        # Alternate short slices so background load on the machine hits both targets alike.
        for _ in range(SLICES):
            for name, (_proc, port) in servers.items():
                res = run_load(port, paths, SECONDS / SLICES)
                _merge(results.setdefault(name, {}), res)
    finally:
        for proc, _port in servers.values():
            proc.terminate()
            proc.wait(timeout=30)
    for res in results.values():
        res["lat"].sort()
        lat = res["lat"]
        res["rps"] = len(lat) / SECONDS
        res["p99_ms"] = lat[int(len(lat) * 0.99) - 1] * 1000 if lat else 0.0
        res["p50_ms"] = statistics.median(lat) * 1000 if lat else 0.0
    with app.app_context():
        t0 = time.perf_counter()
        drained = ingest.drain_all(r, "bench")
        drain_s = time.perf_counter() - t0
        persisted = db.session.scalar(db.text("SELECT count(*) FROM events"))
        db.session.remove()
    lm, bare = results["lastmile"], results["bare wsgi"]
    print(f"== tracking hits: /t/o + /t/c, gunicorn 2 {WORKER_CLASS} workers, loopback, "
          f"{CONNECTIONS} connections, {SECONDS:.0f} s each (interleaved) ==")
    for name, res in results.items():
        print(f"{name:>10}: {res['rps']:8.0f} req/s   p50 {res['p50_ms']:6.2f} ms   "
              f"p99 {res['p99_ms']:6.2f} ms   5xx {res['5xx']}   statuses {res['codes']}")
    print(f"     ratio: lastmile / bare = {lm['rps'] / bare['rps']:.2f} (target >= 0.70)")
    print(f"   persisted: {persisted} events for {lm['ok']} accepted responses "
          f"({'EXACT' if persisted == lm['ok'] else 'MISMATCH'}); drained {drained} entries "
          f"in {drain_s:.1f} s ({drained / max(drain_s, 1e-9):.0f}/s)")


# --- analytics at scale -------------------------------------------------------------------------

SEED_SQL = """
INSERT INTO partners (name, tier, region, created_at)
  SELECT 'Partner ' || g, 'gold', 'west', now() - interval '90 days' FROM generate_series(1, 20) g;
INSERT INTO users (email, name, role, created_at)
  VALUES ('bench@x.test', 'b', 'brand_admin', now());
INSERT INTO templates (name, created_at) VALUES ('bench', now());
INSERT INTO template_versions (template_id, version, status, name, subject, preheader, mjml, slots,
    compiled_html, compiled_text, links, created_at)
  VALUES (1, 1, 'published', 'bench', 's', '', '<mjml/>', '[]', '<p/>', '',
          '["https://brand.example/a", "https://brand.example/b", "https://brand.example/c"]',
          now());
INSERT INTO journeys (name, description, category, audience_tiers, audience_regions,
    requires_approval, quick_send, status, created_at)
  SELECT 'Journey ' || g, '', '', '[]', '[]', false, false, 'published', now()
  FROM generate_series(1, 200) g;
INSERT INTO journey_steps (journey_id, position, template_id, template_version_id, delay_hours,
    condition)
  SELECT g, 0, 1, 1, 0, 'always' FROM generate_series(1, 200) g;
INSERT INTO campaigns (partner_id, journey_id, created_by, name, kind, status, slot_values,
    sender_name, sender_reply_to, status_reason, recipient_timezone, launch_steps_done,
    launched_at, created_at, updated_at)
  SELECT ((g - 1) % 20) + 1, g, 1, 'Campaign ' || g, 'journey', 'running', '{}', 'S', 's@x.test',
         '', false, 4, now() - interval '40 days', now(), now()
  FROM generate_series(1, 200) g;
INSERT INTO contacts (partner_id, email, first_name, last_name, attributes, consent,
    consent_source, created_at, updated_at)
  SELECT ((g % 200) % 20) + 1, 'c' || g || '@x.test', '', '', '{}', true, 'bench', now(), now()
  FROM generate_series(1, :sends) g;
INSERT INTO sends (campaign_id, step_index, contact_id, partner_id, journey_id,
    template_version_id, email, status, due_at, attempts, last_error, status_reason, sent_at,
    created_at, updated_at)
  SELECT (g % 200) + 1, 0, g, ((g % 200) % 20) + 1, (g % 200) + 1, 1, 'c' || g || '@x.test',
         CASE WHEN g % 50 = 0 THEN 'failed' ELSE 'sent' END, now(), 1, '', '',
         now() - interval '31 days', now(), now()
  FROM generate_series(1, :sends) g;
"""

EVENTS_SQL = """
INSERT INTO events (send_id, kind, link_index, occurred_at, user_agent, ip, machine,
    machine_reason, campaign_id, journey_id, partner_id, step_index)
  SELECT s, CASE WHEN g % 3 = 0 THEN 'click' ELSE 'open' END,
         CASE WHEN g % 3 = 0 THEN (g / 3) % 3 END,
         now() - ((g % 30) || ' days')::interval - ((g % 1440) || ' minutes')::interval,
         'Mozilla/5.0', '203.0.113.1', (g / 7) % 10 = 0,
         CASE WHEN (g / 7) % 10 = 0 THEN 'bench' ELSE '' END,
         (s % 200) + 1, (s % 200) + 1, ((s % 200) % 20) + 1, 0
  FROM (SELECT g, (g % :sends) + 1 AS s FROM generate_series(1, :events * 50 / 49 + 50) g) x
  WHERE s % 50 <> 0;  -- failed sends (every 50th) get no events; 50/49 keeps the total >= :events
"""

ROLLUP_SQL = """
INSERT INTO engagement_rollups (day, campaign_id, step_index, link_index, journey_id, partner_id,
    opens, unique_opens, clicks, unique_clicks, machine_opens, machine_clicks, unsubscribes,
    bounces, soft_bounces, complaints, deliveries)
  SELECT occurred_at::date, campaign_id, step_index,
         CASE WHEN kind = 'click' THEN link_index ELSE -1 END, journey_id, partner_id,
         count(*) FILTER (WHERE kind = 'open' AND NOT machine), 0,
         count(*) FILTER (WHERE kind = 'click' AND NOT machine), 0,
         count(*) FILTER (WHERE kind = 'open' AND machine),
         count(*) FILTER (WHERE kind = 'click' AND machine), 0, 0, 0, 0, 0
  FROM events GROUP BY 1, 2, 3, 4, 5, 6;
INSERT INTO engagement_rollups AS r (day, campaign_id, step_index, link_index, journey_id,
    partner_id, opens, unique_opens, clicks, unique_clicks, machine_opens, machine_clicks,
    unsubscribes, bounces, soft_bounces, complaints, deliveries)
  SELECT day, campaign_id, step_index, link, journey_id, partner_id, 0,
         count(*) FILTER (WHERE kind = 'open'), 0, count(*) FILTER (WHERE kind = 'click'),
         0, 0, 0, 0, 0, 0, 0
  FROM (SELECT DISTINCT ON (send_id, kind) send_id, kind, occurred_at::date AS day,
               campaign_id, step_index, CASE WHEN kind = 'click' THEN link_index ELSE -1 END
               AS link, journey_id, partner_id
        FROM events WHERE NOT machine AND kind IN ('open', 'click')
        ORDER BY send_id, kind, occurred_at) f
  GROUP BY day, campaign_id, step_index, link, journey_id, partner_id
  ON CONFLICT (day, campaign_id, step_index, link_index) DO UPDATE
    SET unique_opens = r.unique_opens + excluded.unique_opens,
        unique_clicks = r.unique_clicks + excluded.unique_clicks;
"""

EVENT_INDEXES = ("ix_events_campaign_id", "ix_events_journey_id", "ix_events_send_kind")


def analytics_at_scale(app) -> None:  # noqa: ANN001
    from sqlalchemy import text

    from core.db import db
    from journeys.models import Journey
    from tracking import analytics

    sends = max(EVENTS // 20, 1000)
    with app.app_context():
        t0 = time.perf_counter()
        db.session.execute(text("TRUNCATE partners, users, templates, template_versions, "
                                "journeys, journey_steps, campaigns, contacts, sends, events, "
                                "send_engagements, engagement_rollups RESTART IDENTITY CASCADE"))
        for stmt in SEED_SQL.replace(":sends", str(sends)).split(";\n"):
            if stmt.strip():
                db.session.execute(text(stmt))
        for name in EVENT_INDEXES:
            db.session.execute(text(f"DROP INDEX IF EXISTS {name}"))
        db.session.execute(text("ALTER TABLE events DROP CONSTRAINT IF EXISTS "
                                "fk_events_send_id_sends"))
        db.session.commit()
        db.session.execute(text(EVENTS_SQL.replace(":sends", str(sends))
                                .replace(":events", str(EVENTS))))
        db.session.commit()
        db.session.execute(text("CREATE INDEX ix_events_campaign_id ON events (campaign_id)"))
        db.session.execute(text("CREATE INDEX ix_events_journey_id ON events (journey_id)"))
        db.session.execute(text("CREATE INDEX ix_events_send_kind ON events (send_id, kind)"))
        db.session.execute(text("ALTER TABLE events ADD CONSTRAINT fk_events_send_id_sends "
                                "FOREIGN KEY (send_id) REFERENCES sends (id) ON DELETE CASCADE "
                                "NOT VALID"))
        for stmt in ROLLUP_SQL.split(";\n"):
            if stmt.strip():
                db.session.execute(text(stmt))
        db.session.commit()
        db.session.execute(text("ANALYZE"))
        db.session.commit()
        total = db.session.scalar(text("SELECT count(*) FROM events"))
        rollups = db.session.scalar(text("SELECT count(*) FROM engagement_rollups"))
        setup_s = time.perf_counter() - t0
        journey = db.session.get(Journey, 7)

        def timed(fn, runs: int = 7) -> tuple[float, object]:  # noqa: ANN001
            out = None
            samples = []
            for _ in range(runs):
                db.session.expire_all()
                t = time.perf_counter()
                out = fn()
                samples.append(time.perf_counter() - t)
            return statistics.median(samples) * 1000, out

        api_ms, report = timed(lambda: analytics.journey_report(journey))
        raw_ms, raw = timed(lambda: analytics.recount_from_events(journey_id=journey.id), 3)
        keys = ("opens", "unique_opens", "clicks", "unique_clicks", "machine_opens",
                "machine_clicks")
        same = all(report[k] == raw[k] for k in keys)
        print(f"== journey analytics with {total:,} events stored ({sends:,} sends, "
              f"{rollups:,} rollup rows; setup {setup_s:.0f} s) ==")
        print(f"  from rollups (the API): {api_ms:7.1f} ms   (target < 50 ms)")
        print(f"  from raw events:        {raw_ms:7.1f} ms   ratio {raw_ms / api_ms:.0f}x")
        print(f"  answers equal: {same}  " + ", ".join(f"{k}={report[k]}" for k in keys))
        db.session.remove()


def main() -> None:
    """Run both benchmarks and print their figures."""
    ensure_database()
    app = make_app()
    hit_throughput(app)
    analytics_at_scale(app)
    with app.app_context():
        from core.db import db

        db.engine.dispose()


if __name__ == "__main__":
    main()
