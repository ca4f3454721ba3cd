"""The tracking drainer rides out outages: a flushed Redis and a database that drops its
connection (and refuses new ones for a while). Real `flask tracking-drain` processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
import redis
from sqlalchemy import create_engine, func, make_url, select, text
from werkzeug.test import Client

from core.db import db
from core.tokens import make_token
from tests.builders import make_sent_message
from tests.conftest import DATABASE_URL, REDIS_URL, ROOT, SECRET
from tracking import ingest, services
from tracking.models import Event
from tracking.wsgi import TrackingFastPath

BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 Version/17.4 Safari"
APP_NAME = "lastmile-test-drainer"


@pytest.fixture(autouse=True)
def _fresh_caches():
    services._LOCAL.clear()
    ingest._LINK_COUNTS.clear()


def wait_for(what: str, check: Callable[[], bool], proc: subprocess.Popen,
             timeout: float = 60) -> None:
    """Wait until `check()` holds (polling the state it reads); fail if the process died."""
    deadline = time.monotonic() + timeout
    while not check():
        assert proc.poll() is None, f"the drainer died (exit {proc.returncode})"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def events() -> int:
    db.session.rollback()  # a fresh snapshot
    return db.session.scalar(select(func.count()).select_from(Event))


def start_drainer(tmp_path) -> subprocess.Popen:
    """Start `flask tracking-drain`, its output going to tmp_path/drainer.log."""
    env = {**os.environ, "DATABASE_URL": DATABASE_URL, "REDIS_URL": REDIS_URL,
           "SECRET_KEY": SECRET, "LASTMILE_INSTANCE": str(tmp_path), "LOG_LEVEL": "WARNING",
           "PGAPPNAME": APP_NAME}  # libpq names the drainer's connections for the kill below
    with (tmp_path / "drainer.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "app", "tracking-drain", "--consumer",
             "d1"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def logged(tmp_path) -> str:
    return (tmp_path / "drainer.log").read_text(errors="replace")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture
def opens(app):
    """Return a function recording n opens of one sent message through the fast path."""
    send = make_sent_message()
    db.session.commit()
    fast = Client(TrackingFastPath(app, app.wsgi_app))
    token = make_token(SECRET, "open", send.id)

    def hit(n: int) -> None:
        for _ in range(n):
            assert fast.get(f"/t/o/{token}", headers={"User-Agent": BROWSER}).status_code == 200

    return hit


def test_drainer_survives_a_redis_flush_and_keeps_persisting_hits(app, opens, tmp_path):
    drainer = start_drainer(tmp_path)
    try:
        opens(5)
        wait_for("the first hits", lambda: events() == 5, drainer)
        # The drainer is blocked reading the stream: FLUSHDB deletes the key under it.
        redis.Redis.from_url(REDIS_URL).flushdb()
        opens(7)
        wait_for("the hits after the flush", lambda: events() == 12, drainer)
        assert drainer.poll() is None
    finally:
        stop(drainer)
    assert "Redis failed" in logged(tmp_path)  # it said what happened


def test_drainer_survives_its_database_connection_being_killed(app, opens, tmp_path):
    drainer = start_drainer(tmp_path)
    database = make_url(DATABASE_URL).database
    # From the maintenance database: a database cannot refuse connections to itself.
    engine = create_engine(make_url(DATABASE_URL).set(database="postgres"),
                           isolation_level="AUTOCOMMIT")
    admin = engine.connect()
    try:
        opens(5)
        wait_for("the first hits", lambda: events() == 5, drainer)
        # An outage: the drainer's connection is killed and new ones are refused for a while.
        admin.execute(text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false'))
        killed = admin.execute(text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = :name AND datname = :db"),
            {"name": APP_NAME, "db": database}).scalar()
        assert killed >= 1
        opens(7)  # accepted into Redis meanwhile
        wait_for("the drainer to meet the outage",
                 lambda: "database failed" in logged(tmp_path), drainer)
        admin.execute(text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true'))
        wait_for("the hits after the outage", lambda: events() == 12, drainer)
        assert drainer.poll() is None
    finally:
        admin.execute(text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true'))
        admin.close()
        engine.dispose()
        stop(drainer)
