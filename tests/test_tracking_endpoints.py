"""Public tracking endpoints: the pixel, click redirects, tamper and open-redirect attempts."""

from __future__ import annotations

import base64
import struct
from datetime import datetime

import pytest
import redis
from sqlalchemy import func, select
from werkzeug.test import Client

from campaigns import sending
from campaigns.models import Send
from core import clock
from core.db import db
from core.tokens import HONEYPOT_LINK, make_token
from tests.builders import TRACKED_LINKS, make_sent_message, make_tracked_campaign
from tests.conftest import REDIS_URL, SECRET
from tracking import conversions, ingest, services
from tracking.models import EngagementRollup, Event, SendEngagement
from tracking.wsgi import PIXEL, TrackingFastPath

BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36"
EVIL = ["//evil.com", "/\\evil.com", "https:evil.com", "?url=https://evil.com",
        "?next=//evil.com", "/../../evil.com", "%2F%2Fevil.com"]


@pytest.fixture(autouse=True)
def _fresh_caches():
    services._LOCAL.clear()
    ingest._LINK_COUNTS.clear()


@pytest.fixture
def fast(app):
    """A client for the WSGI fast path mounted in front of the Flask app."""
    return Client(TrackingFastPath(app, app.wsgi_app))


@pytest.fixture
def any_client(app):
    """The app as a server runs it: create_app mounts the fast path in front of Flask."""
    assert isinstance(app.wsgi_app, TrackingFastPath)
    return app.test_client()


def r() -> redis.Redis:
    return redis.Redis.from_url(REDIS_URL)


def drain() -> int:
    return ingest.drain_all(r())


def events(kind: str | None = None) -> list[Event]:
    stmt = select(Event).order_by(Event.id)
    if kind:
        stmt = stmt.where(Event.kind == kind)
    return list(db.session.scalars(stmt))


def rollup_total(column: str) -> int:
    return db.session.scalar(select(func.coalesce(func.sum(getattr(EngagementRollup, column)), 0)))


def tok(purpose: str, send_id: int, link: int | None = None) -> str:
    return make_token(SECRET, purpose, send_id, link)


def tracked(url: str, send_id: int, link: int) -> str:
    """Where a click on `url` lands: the URL with the click's id for conversions appended."""
    return conversions.with_click_id(url, "lm_click",
                                     conversions.click_id(SECRET, send_id, link))


def nothing_recorded() -> bool:
    return r().xlen(ingest.STREAM) == 0 and drain() == 0 and not events()


def test_open_returns_pixel_and_records_once_per_send_uniquely(any_client):
    send = make_sent_message()
    for _ in range(2):
        resp = any_client.get(f"/t/o/{tok('open', send.id)}", headers={"User-Agent": BROWSER})
        assert resp.status_code == 200
        assert resp.headers["Content-Type"] == "image/gif"
        assert resp.get_data() == PIXEL
        assert "no-store" in resp.headers["Cache-Control"]
        assert resp.headers["Pragma"] == "no-cache"
    assert drain() == 2
    opens = events("open")
    assert [(e.send_id, e.machine, e.campaign_id) for e in opens] == [
        (send.id, False, send.campaign_id)] * 2
    assert rollup_total("opens") == 2
    assert rollup_total("unique_opens") == 1
    engagement = db.session.get(SendEngagement, send.id)
    assert engagement.opens == 2 and engagement.first_open_at is not None


@pytest.mark.parametrize("token", [
    "garbage", "", "A" * 200, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
])
def test_invalid_open_token_still_gets_pixel_and_records_nothing(any_client, token):
    make_sent_message()
    resp = any_client.get(f"/t/o/{token}", headers={"User-Agent": BROWSER})
    if token == "":  # /t/o/ with no token: Flask has no such route, the fast path answers
        assert resp.status_code in (200, 404)
    else:
        assert resp.status_code == 200 and resp.get_data() == PIXEL
    assert nothing_recorded()


def test_tampered_open_tokens_record_nothing(any_client):
    send = make_sent_message()
    other_purpose = [tok("click", send.id, 0), tok("unsubscribe", send.id)]
    good = tok("open", send.id)
    flipped = good[:-2] + ("A" if good[-2] != "A" else "B") + good[-1]
    raw = base64.urlsafe_b64decode(good + "=" * (-len(good) % 4))
    forged = base64.urlsafe_b64encode(struct.pack(">Q", send.id + 1) + raw[8:]).rstrip(b"=")
    for bad in [*other_purpose, flipped, forged.decode()]:
        resp = any_client.get(f"/t/o/{bad}", headers={"User-Agent": BROWSER})
        assert resp.status_code == 200
    assert nothing_recorded()


def test_click_redirects_to_the_link_rendered_for_that_send(any_client):
    clock.freeze(datetime(2030, 1, 1, 12))
    campaign = make_tracked_campaign(slot_values={"0": {"cta_url": "https://brand.example/a"}})
    send = make_sent_message(campaign, first_name="Zoë & Co")
    other = make_sent_message(campaign, overrides={"0": {"cta_url": "https://brand.example/b"}})
    expected = {
        (send.id, 0): "https://brand.example/offer",
        (send.id, 1): "https://brand.example/a",
        (send.id, 2): "https://brand.example/p?who=Zo%C3%AB%20%26%20Co",
        (other.id, 1): "https://brand.example/b",
    }
    for (send_id, link), url in expected.items():
        resp = any_client.get(f"/t/c/{tok('click', send_id, link)}",
                              headers={"User-Agent": BROWSER})
        assert resp.status_code == 302
        assert resp.headers["Location"] == tracked(url, send_id, link)
        clock.advance(minutes=1)  # a person reads between clicks; a scanner does not
    assert drain() == 4
    clicks = events("click")
    assert [(e.send_id, e.link_index, e.machine) for e in clicks] == [
        (send.id, 0, False), (send.id, 1, False), (send.id, 2, False), (other.id, 1, False)]
    assert rollup_total("clicks") == 4 and rollup_total("unique_clicks") == 2


def test_click_uses_published_link_targets_without_touching_the_database(fast):
    send = make_sent_message()
    services.publish_link_targets(send.id, ["https://brand.example/offer", "",
                                            "https://brand.example/x"], r())
    resp = fast.get(f"/t/c/{tok('click', send.id, 2)}", headers={"User-Agent": BROWSER})
    assert resp.headers["Location"] == tracked("https://brand.example/x", send.id, 2)
    # A link the published list marks as not redirectable answers 404 from the cache alone.
    assert fast.get(f"/t/c/{tok('click', send.id, 1)}").status_code == 404
    assert drain() == 1


def refuse_rendering(monkeypatch) -> None:
    """Make any rendering of a message fail loudly (a click must not need one)."""

    def refuse(*_args, **_kwargs):
        raise AssertionError("a click rendered the message")

    monkeypatch.setattr(sending, "render_message", refuse)
    monkeypatch.setattr(sending, "compose_message", refuse)
    monkeypatch.setattr(services, "compose_message", refuse)


def test_worker_stores_link_targets_and_an_uncached_click_reads_them_without_rendering(
        any_client, monkeypatch):
    clock.freeze(datetime(2030, 1, 1, 12))
    campaign = make_tracked_campaign(links=[*TRACKED_LINKS, "javascript:alert(1)"],
                                     slot_values={"0": {"cta_url": "https://brand.example/a"}})
    send = make_sent_message(campaign, first_name="Zoë & Co", status="queued",
                             overrides={"0": {"cta_url": "https://brand.example/b"}})
    assert sending.deliver_due(send_ids=[send.id]) == {"sent": 1}
    db.session.expire_all()
    stored = db.session.get(Send, send.id)
    assert stored.status == "sent"
    assert stored.link_targets == [
        "https://brand.example/offer", "https://brand.example/b",
        "https://brand.example/p?who=Zo%C3%AB%20%26%20Co", "",
    ]
    r().flushdb()  # nothing cached: the click must find the targets on the send row
    refuse_rendering(monkeypatch)
    for link, url in enumerate(stored.link_targets):
        resp = any_client.get(f"/t/c/{tok('click', send.id, link)}",
                              headers={"User-Agent": BROWSER})
        if url:
            assert (resp.status_code, resp.headers["Location"]) == (
                302, tracked(url, send.id, link))
        else:
            assert resp.status_code == 404 and "Location" not in resp.headers
        clock.advance(minutes=1)
    # The first click cached them in Redis, as before.
    assert r().hget(services.link_key(send.id), "1") == b"https://brand.example/b"
    assert drain() == 3
    assert [e.link_index for e in events("click")] == [0, 1, 2]


def test_click_redirects_only_to_http_targets_stored_on_the_send_row(any_client, monkeypatch):
    send = make_sent_message()
    # Not what rendering would give: proof that the stored list, not a render, decides.
    send.link_targets = ["https://brand.example/stored", "javascript:alert(1)", "//evil.com"]
    db.session.commit()
    refuse_rendering(monkeypatch)
    resp = any_client.get(f"/t/c/{tok('click', send.id, 0)}", headers={"User-Agent": BROWSER})
    assert (resp.status_code, resp.headers["Location"]) == (
        302, tracked("https://brand.example/stored", send.id, 0))
    for link in (1, 2, 3, 7):
        resp = any_client.get(f"/t/c/{tok('click', send.id, link)}")
        assert resp.status_code == 404 and "Location" not in resp.headers
    r().delete(services.link_key(send.id))
    good = tok("click", send.id, 0)
    for bad in (make_token("another-secret", "click", send.id, 0), good[:-1] + (
            "A" if good[-1] != "A" else "B"), tok("open", send.id)):
        assert any_client.get(f"/t/c/{bad}").status_code == 404
    assert drain() == 1


def test_click_on_mail_sent_before_targets_were_stored_renders_it_as_a_fallback(
        any_client, monkeypatch):
    campaign = make_tracked_campaign(slot_values={"0": {"cta_url": "https://brand.example/a"}})
    send = make_sent_message(campaign)  # link_targets NULL, as on mail sent before 0006
    assert send.link_targets is None
    renders = []
    real_compose = services.compose_message

    def counting_compose(*args, **kwargs):
        renders.append(args[0].id)
        return real_compose(*args, **kwargs)

    monkeypatch.setattr(services, "compose_message", counting_compose)
    for link, url in [(1, "https://brand.example/a"), (0, "https://brand.example/offer")]:
        resp = any_client.get(f"/t/c/{tok('click', send.id, link)}",
                              headers={"User-Agent": BROWSER})
        assert (resp.status_code, resp.headers["Location"]) == (
            302, tracked(url, send.id, link))
    assert renders == [campaign.id]  # rendered once, then served from the Redis cache
    assert any_client.get(f"/t/c/{tok('click', send.id, 5)}").status_code == 404
    assert drain() == 2


def test_click_for_a_link_the_message_did_not_contain_is_404_and_records_nothing(any_client):
    send = make_sent_message(links=["https://brand.example/only"])
    for link in (1, 7, 65534):
        resp = any_client.get(f"/t/c/{tok('click', send.id, link)}")
        assert resp.status_code == 404
        assert "Location" not in resp.headers
    # The same again once the send's targets are cached.
    assert any_client.get(f"/t/c/{tok('click', send.id, 0)}").status_code == 302
    drain()
    for link in (1, 7):
        assert any_client.get(f"/t/c/{tok('click', send.id, link)}").status_code == 404
    assert drain() == 0
    assert len(events("click")) == 1


def test_click_target_that_is_not_http_is_never_redirected_to(any_client):
    campaign = make_tracked_campaign(links=["{{ contact.first_name }}", "javascript:alert(1)"],
                                     slots=[])
    send = make_sent_message(campaign, first_name="//evil.com")
    for link in (0, 1):
        assert any_client.get(f"/t/c/{tok('click', send.id, link)}").status_code == 404
    assert nothing_recorded()


def test_tampered_click_tokens_are_404_and_record_nothing(any_client):
    send = make_sent_message()
    victim = make_sent_message()
    good = tok("click", send.id, 0)
    raw = base64.urlsafe_b64decode(good + "=" * (-len(good) % 4))
    other_send = raw[:0] + struct.pack(">Q", victim.id) + raw[8:]
    other_link = raw[:8] + struct.pack(">H", 1) + raw[10:]
    candidates = [
        base64.urlsafe_b64encode(other_send).rstrip(b"=").decode(),
        base64.urlsafe_b64encode(other_link).rstrip(b"=").decode(),
        good[:-1] + ("A" if good[-1] != "A" else "B"),
        tok("open", send.id), tok("unsubscribe", send.id),
        make_token("another-secret", "click", send.id, 0),
        good + "A", good[:-1],
    ]
    for bad in candidates:
        resp = any_client.get(f"/t/c/{bad}", headers={"User-Agent": BROWSER})
        assert resp.status_code == 404, bad
        assert "Location" not in resp.headers
    assert nothing_recorded()


def test_open_redirect_corpus_never_leaves_the_message_links(any_client):
    send = make_sent_message()
    own = {tracked("https://brand.example/offer", send.id, 0)}
    bases = [f"/t/c/{tok('click', send.id, 0)}", f"/t/o/{tok('open', send.id)}",
             f"/u/{tok('unsubscribe', send.id)}", "/t/c", "/t/c/", "/t/o/", "/u/"]
    for base in bases:
        for suffix in EVIL:
            resp = any_client.get(base + suffix, headers={"User-Agent": BROWSER})
            location = resp.headers.get("Location")
            assert location is None or location in own, (base + suffix, location)
            assert resp.status_code in (200, 302, 404), (base + suffix, resp.status_code)
            assert "evil.com" not in (location or "")
    for suffix in EVIL:
        for path in ("/t/c/" + suffix.lstrip("/"), "/t/c/" + suffix, "/u/" + suffix):
            resp = any_client.get(path)
            assert resp.headers.get("Location") is None, path
    drain()
    # Only the valid click and open tokens with a query string appended counted as hits.
    recorded = {(e.kind, e.link_index) for e in events()}
    assert recorded <= {("click", 0), ("open", None)}
    assert db.session.scalar(select(func.count()).select_from(Event).where(
        Event.kind == "unsubscribe")) == 0


def test_post_and_other_methods_on_tracking_urls_record_nothing(any_client):
    send = make_sent_message()
    for method in ("post", "put", "delete"):
        resp = getattr(any_client, method)(f"/t/c/{tok('click', send.id, 0)}")
        assert resp.status_code == 405
        resp = getattr(any_client, method)(f"/t/o/{tok('open', send.id)}")
        assert resp.status_code == 405
    assert nothing_recorded()


def test_honeypot_link_is_recorded_as_machine_click_and_redirects_nowhere(fast):
    send = make_sent_message()
    resp = fast.get(f"/t/c/{tok('click', send.id, HONEYPOT_LINK)}",
                    headers={"User-Agent": BROWSER})
    assert resp.status_code == 200 and "Location" not in resp.headers
    drain()
    (event,) = events("click")
    assert event.machine and event.machine_reason == "honeypot_link"
    assert rollup_total("machine_clicks") == 1 and rollup_total("clicks") == 0


def test_embedded_mode_writes_hits_straight_to_the_database(app):
    from app import create_app
    from tests.conftest import DATABASE_URL

    embedded = create_app({"TESTING": True, "DATABASE_URL": DATABASE_URL, "REDIS_URL": "",
                           "SECRET_KEY": SECRET, "PUBLIC_BASE_URL": "http://lastmile.test"})
    send = make_sent_message()
    client = Client(TrackingFastPath(embedded, embedded.wsgi_app))
    try:
        _embedded_hits(client, send)
    finally:
        with embedded.app_context():
            db.session.remove()
            db.engine.dispose()


def _embedded_hits(client: Client, send) -> None:
    assert client.get(f"/t/o/{tok('open', send.id)}",
                      headers={"User-Agent": BROWSER}).status_code == 200
    resp = client.get(f"/t/c/{tok('click', send.id, 1)}", headers={"User-Agent": BROWSER})
    assert resp.headers["Location"] == tracked("https://brand.example/book", send.id, 1)
    assert r().xlen(ingest.STREAM) == 0
    db.session.expire_all()
    assert [(e.kind, e.link_index) for e in events()] == [("open", None), ("click", 1)]
    assert rollup_total("unique_opens") == 1 and rollup_total("unique_clicks") == 1
