"""Ingest durability and exactness: drainer crashes, a Redis crash, concurrent real traffic."""

from __future__ import annotations

import http.client
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select
from werkzeug.test import Client

from core.db import db
from core.tokens import make_token
from tests.builders import make_sent_message, make_tracked_campaign
from tests.conftest import DATABASE_URL, REDIS_URL, ROOT, SECRET
from tracking import analytics, ingest, services
from tracking.models import EngagementRollup, Event, SendEngagement
from tracking.wsgi import TrackingFastPath

BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 Version/17.4 Safari"


@pytest.fixture(autouse=True)
def _fresh_caches():
    services._LOCAL.clear()
    ingest._LINK_COUNTS.clear()


def count(kind: str | None = None) -> int:
    stmt = select(func.count()).select_from(Event)
    if kind:
        stmt = stmt.where(Event.kind == kind)
    return db.session.scalar(stmt)


def rollup(column: str) -> int:
    return db.session.scalar(select(func.coalesce(func.sum(getattr(EngagementRollup, column)), 0)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


def test_drainer_killed_after_commit_before_ack_redelivers_without_double_counting(
        app, monkeypatch):
    send = make_sent_message()
    fast = Client(TrackingFastPath(app, app.wsgi_app))
    for _ in range(5):
        fast.get(f"/t/o/{make_token(SECRET, 'open', send.id)}", headers={"User-Agent": BROWSER})
    r = redis.Redis.from_url(REDIS_URL)

    def crash(*_args):
        raise SystemExit("killed between commit and XACK")

    monkeypatch.setattr(ingest, "_ack", crash)
    with pytest.raises(SystemExit):
        ingest.drain_once(r, "drainer-a")
    assert count("open") == 5  # committed...
    assert r.xpending(ingest.STREAM, ingest.GROUP)["pending"] == 5  # ...but not acknowledged
    monkeypatch.undo()
    # The same drainer restarted reads its own pending entries first.
    assert ingest.drain_all(r, "drainer-a") == 5
    assert count("open") == 5 and rollup("opens") == 5 and rollup("unique_opens") == 1
    assert r.xpending(ingest.STREAM, ingest.GROUP)["pending"] == 0
    assert r.xlen(ingest.STREAM) == 0


def test_another_drainer_takes_over_entries_a_dead_one_left_pending(app):
    send = make_sent_message()
    fast = Client(TrackingFastPath(app, app.wsgi_app))
    for _ in range(3):
        fast.get(f"/t/o/{make_token(SECRET, 'open', send.id)}", headers={"User-Agent": BROWSER})
    r = redis.Redis.from_url(REDIS_URL)
    ingest.ensure_group(r)
    # drainer-a reads and dies before committing anything.
    r.xreadgroup(ingest.GROUP, "drainer-a", {ingest.STREAM: ">"}, count=10)
    assert ingest.drain_all(r, "drainer-b", min_idle_ms=0) == 3
    assert count("open") == 3 and rollup("opens") == 3


def test_an_entry_deleted_while_pending_is_acknowledged_and_the_rest_recorded(app):
    send = make_sent_message()
    fast = Client(TrackingFastPath(app, app.wsgi_app))
    for _ in range(3):
        fast.get(f"/t/o/{make_token(SECRET, 'open', send.id)}", headers={"User-Agent": BROWSER})
    r = redis.Redis.from_url(REDIS_URL)
    ingest.ensure_group(r)
    # drainer-a reads three entries and dies; one of them is deleted from the stream meanwhile
    # (XDEL, or trimming), so re-reading the pending list returns it without fields.
    read = r.xreadgroup(ingest.GROUP, "drainer-a", {ingest.STREAM: ">"}, count=10)
    first_id = read[0][1][0][0]
    r.xdel(ingest.STREAM, first_id)
    assert ingest.drain_all(r, "drainer-a") == 3
    assert count("open") == 2
    assert r.xpending(ingest.STREAM, ingest.GROUP)["pending"] == 0


def _redis_server(port: int, directory: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind",
         "127.0.0.1", "--dir", str(directory), "--appendonly", "yes", "--appendfsync",
         "always", "--save", ""],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return proc


@pytest.mark.slow
def test_redis_killed_and_restarted_keeps_every_acknowledged_hit(app, tmp_path):
    from app import create_app

    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    server = _redis_server(port, tmp_path)
    other = create_app({"TESTING": True, "DATABASE_URL": DATABASE_URL, "REDIS_URL": url,
                        "SECRET_KEY": SECRET, "PUBLIC_BASE_URL": "http://lastmile.test"})
    try:
        send = make_sent_message()
        fast = Client(TrackingFastPath(other, other.wsgi_app))
        answered = 0
        for i in range(40):
            path = (f"/t/o/{make_token(SECRET, 'open', send.id)}" if i % 2 else
                    f"/t/c/{make_token(SECRET, 'click', send.id, 0)}")
            resp = fast.get(path, headers={"User-Agent": BROWSER})
            answered += resp.status_code in (200, 302)
        server.send_signal(signal.SIGKILL)
        server.wait()
        server = _redis_server(port, tmp_path)
        moved = ingest.drain_all(redis.Redis.from_url(url))
        assert answered == 40 and moved == 40
        assert count() == 40 and rollup("opens") + rollup("clicks") + rollup(
            "machine_clicks") == 40
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait()
        with other.app_context():
            db.session.remove()
            db.engine.dispose()


def _hammer(args: tuple[int, list[str], str]) -> tuple[int, int]:
    port, paths, ua = args
    ok = bad = 0
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for path in paths:
        conn.request("GET", path, headers={"User-Agent": ua})
        resp = conn.getresponse()
        resp.read()
        if resp.status in (200, 302):
            ok += 1
        else:
            bad += 1
    conn.close()
    return ok, bad


@pytest.mark.slow
def test_concurrent_hits_under_gunicorn_give_exact_events_and_rollups(app, tmp_path):
    campaign = make_tracked_campaign()
    sends = [make_sent_message(campaign) for _ in range(20)]
    port = free_port()
    env = {**os.environ, "DATABASE_URL": DATABASE_URL, "REDIS_URL": REDIS_URL,
           "SECRET_KEY": SECRET, "PUBLIC_BASE_URL": "http://lastmile.test",
           "LASTMILE_INSTANCE": str(tmp_path), "LOG_LEVEL": "WARNING"}
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}",
         "app:create_server_app()"], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        jobs = []
        for w in range(6):
            paths = []
            for i, send in enumerate(sends):
                paths.append(f"/t/o/{make_token(SECRET, 'open', send.id)}")
                if (i + w) % 2 == 0:
                    paths.append(f"/t/c/{make_token(SECRET, 'click', send.id, (i + w) % 3)}")
            paths = paths * 5
            ua = BROWSER if w < 5 else "Mozilla/5.0"  # Apple MPP: machine
            jobs.append((port, paths, ua))
        with multiprocessing.get_context("spawn").Pool(6) as pool:
            results = pool.map(_hammer, jobs)
    finally:
        server.terminate()
        server.wait(timeout=30)
    answered = sum(ok for ok, _ in results)
    assert sum(bad for _, bad in results) == 0
    expected = sum(len(paths) for _, paths, _ in jobs)
    assert answered == expected
    # Two drainers in parallel, as separate processes, through the CLI.
    drainers = [subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "app", "tracking-drain", "--once",
         "--batch", "50", "--consumer", f"d{i}"], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for i in range(2)]
    for d in drainers:
        assert d.wait(timeout=120) == 0, d.stderr.read()
        d.stderr.close()
    assert count() == expected
    human_opens = 5 * 20 * 5
    assert rollup("opens") == human_opens and rollup("machine_opens") == 20 * 5
    assert rollup("opens") + rollup("machine_opens") == count("open")
    assert rollup("clicks") + rollup("machine_clicks") == count("click")
    assert rollup("unique_opens") == 20
    per_send = db.session.execute(select(func.sum(SendEngagement.opens),
                                         func.sum(SendEngagement.machine_opens))).one()
    assert tuple(per_send) == (human_opens, 100)
    # Dashboards equal a recount from raw events.
    report = analytics.campaign_report(campaign)
    raw = analytics.recount_from_events(campaign_id=campaign.id)
    for key in ("opens", "unique_opens", "clicks", "unique_clicks", "machine_opens",
                "machine_clicks"):
        assert report[key] == raw[key], key
    assert report["sent"] == 20
