"""Test harness: real PostgreSQL and Redis, each test starting clean.

TEST_DATABASE_URL / TEST_REDIS_URL pick the database (defaults: 127.0.0.1:5432/test and
127.0.0.1:6379/1). If either cannot be reached the whole run stops with a clear message:
the suite never skips silently.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DATABASE_URL = os.environ.get(
    "TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/1")
SECRET = "test-secret-key-not-for-production"


def _reset_schema(url: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def app(tmp_path_factory):
    """One app for the session, on a freshly migrated PostgreSQL schema."""
    try:
        _reset_schema(DATABASE_URL)
    except Exception as exc:  # noqa: BLE001
        pytest.exit(f"PostgreSQL is not reachable at {DATABASE_URL}: {exc}", returncode=3)
    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except Exception as exc:  # noqa: BLE001
        pytest.exit(f"Redis is not reachable at {REDIS_URL}: {exc}", returncode=3)

    os.environ["LASTMILE_INSTANCE"] = str(tmp_path_factory.mktemp("instance"))
    from app import create_app
    from core import migrate

    flask_app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": DATABASE_URL,
            "REDIS_URL": REDIS_URL,
            "SECRET_KEY": SECRET,
            "DELIVERY_BACKEND": "outbox",
            "PUBLIC_BASE_URL": "http://lastmile.test",
            "OUTBOX_DIR": str(tmp_path_factory.mktemp("outbox")),
        }
    )
    with flask_app.app_context():
        migrate.upgrade(DATABASE_URL)
    yield flask_app
    with flask_app.app_context():
        from core.db import db

        db.session.remove()
        db.engine.dispose()


@pytest.fixture(autouse=True)
def _clean(request):
    """Truncate every table and flush the test Redis db before each test that uses the app."""
    from core import clock

    clock.freeze(None)
    if "app" not in request.fixturenames:
        yield
        return
    flask_app = request.getfixturevalue("app")
    from core.db import db

    with flask_app.app_context():
        tables = ", ".join(t.name for t in db.metadata.sorted_tables)
        db.session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        db.session.commit()
        redis.Redis.from_url(REDIS_URL).flushdb()
        yield
        db.session.remove()
    clock.freeze(None)


@pytest.fixture
def client(app):
    return app.test_client()


class Api:
    """A test client bound to one bearer token: `api.get('/api/me').json`."""

    def __init__(self, client, token: str | None):
        self.client = client
        self.token = token

    def _headers(self, extra=None):
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        headers.update(extra or {})
        return headers

    def get(self, path, **kw):
        return self.client.get(path, headers=self._headers(kw.pop("headers", None)), **kw)

    def post(self, path, json=None, **kw):
        return self.client.post(
            path, json=json, headers=self._headers(kw.pop("headers", None)), **kw
        )

    def put(self, path, json=None, **kw):
        return self.client.put(
            path, json=json, headers=self._headers(kw.pop("headers", None)), **kw
        )

    def patch(self, path, json=None, **kw):
        return self.client.patch(
            path, json=json, headers=self._headers(kw.pop("headers", None)), **kw
        )

    def delete(self, path, **kw):
        return self.client.delete(path, headers=self._headers(kw.pop("headers", None)), **kw)


@pytest.fixture
def make_api(client):
    """Return a factory: make_api(token) -> Api."""
    return lambda token: Api(client, token)


@pytest.fixture
def mailbox(app, tmp_path):
    """A fresh outbox for this test (tests/network_helpers.py reads it); yields its folder."""
    folder = tmp_path / "outbox"
    saved = {k: app.config.get(k) for k in ("OUTBOX_DIR", "DELIVERY_BACKEND")}
    app.config.update(OUTBOX_DIR=str(folder), DELIVERY_BACKEND="outbox")
    try:
        yield folder
    finally:
        app.config.update(saved)
