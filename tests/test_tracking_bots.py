"""Machine engagement from evidence: MPP, proxies (human, proxied), scanners, previews,
HEAD/prefetch, every-link bursts, unread non-browser clicks, honeypot; and the quick-send
story (open at +4 s, click at +8 s from a phone) counted as a person."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select
from werkzeug.test import Client

from core import clock
from core.db import db
from core.tokens import HONEYPOT_LINK, make_token
from journeys.models import Journey
from tests.builders import make_sent_message
from tests.conftest import SECRET
from tracking import analytics, ingest, services
from tracking.bots import HOW_HEAD, HOW_PREFETCH, Verdict, classify
from tracking.models import EngagementRollup, Event, SendEngagement
from tracking.wsgi import TrackingFastPath

SENT = datetime(2030, 1, 1, 12)
LATER = SENT + timedelta(hours=2)
CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/124.0.0.0 Safari/537.36")
MOBILE_SAFARI = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
                 "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1")
GMAIL_PROXY = ("Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 "
               "(via ggpht.com GoogleImageProxy)")
OLD_IE = "Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 6.1; Trident/7.0)"
HOME = "203.0.113.5"


def verdict(kind, ua, ip=HOME, at=LATER, **kw):
    kw.setdefault("link_index", 0 if kind == "click" else None)
    kw.setdefault("link_count", 3)
    return classify(kind, ua, ip, occurred_at=at, sent_at=SENT, **kw)


@pytest.mark.parametrize("ua", [
    GMAIL_PROXY,
    "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html",
    "Outlook-iOS-Android/1.0",
])
def test_gmail_yahoo_and_microsoft_proxy_opens_are_human_and_flagged_proxied(ua):
    assert verdict("open", ua, "66.249.84.1", at=SENT + timedelta(seconds=5)) == Verdict(
        False, "", True)


@pytest.mark.parametrize(("ua", "ip", "at"), [
    ("Mozilla/5.0", "17.58.101.12", SENT + timedelta(seconds=20)),   # all three signals
    ("Mozilla/5.0", "198.51.100.7", LATER),                          # bare agent alone
    (MOBILE_SAFARI, "17.58.101.12", SENT + timedelta(minutes=3)),    # Apple net, at delivery
    ("", "2620:149:a44:1100::5", LATER),                             # Apple net, no agent
])
def test_apple_mail_privacy_prefetch_is_machine(ua, ip, at):
    assert verdict("open", ua, ip, at=at) == Verdict(True, "apple_mail_privacy")


def test_a_browser_on_apple_network_hours_later_is_a_person():
    assert verdict("open", MOBILE_SAFARI, "17.58.101.12", at=LATER) == Verdict(False)


@pytest.mark.parametrize(("ip", "reason"), [
    ("40.107.22.61", "microsoft_safe_links"),
    ("52.100.7.9", "microsoft_safe_links"),
    ("205.139.110.24", "mimecast"),
    ("148.163.150.3", "proofpoint"),
    ("209.222.82.10", "barracuda"),
])
def test_scanner_networks_are_machine_even_with_a_browser_agent(ip, reason):
    assert verdict("click", CHROME, ip, at=SENT + timedelta(hours=1)) == Verdict(True, reason)


@pytest.mark.parametrize(("ua", "reason"), [
    ("python-requests/2.32", "scanner_user_agent"),
    ("Mozilla/5.0 (compatible; Barracuda Sentinel)", "scanner_user_agent"),
    ("Microsoft Office Existence Discovery", "scanner_user_agent"),
    ("", "scanner_user_agent"),
    ("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", "link_preview"),
    ("facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
     "link_preview"),
    ("Mozilla/5.0 (Windows NT 6.1; WOW64) SkypeUriPreview Preview/0.5", "link_preview"),
])
def test_scanner_and_previewer_agents_are_machine(ua, reason):
    assert verdict("click", ua) == Verdict(True, reason)


def test_head_and_prefetch_requests_are_machine():
    assert verdict("click", CHROME, how=HOW_HEAD) == Verdict(True, "head_request")
    assert verdict("click", CHROME, how=HOW_PREFETCH) == Verdict(True, "prefetch_request")


def test_a_person_in_a_browser_is_human_however_soon():
    for seconds in (1, 3, 8, 30):
        at = SENT + timedelta(seconds=seconds)
        assert verdict("click", MOBILE_SAFARI, at=at, opened_before=False,
                       recent_click_links={}) == Verdict(False)
        assert verdict("open", CHROME, at=at) == Verdict(False)


def test_an_unread_click_from_a_non_browser_before_reading_is_machine():
    soon = SENT + timedelta(seconds=20)
    assert verdict("click", OLD_IE, at=soon, opened_before=False) == Verdict(
        True, "unread_click_not_a_browser")
    # Any one of the three missing is not evidence enough.
    assert not verdict("click", OLD_IE, at=soon, opened_before=True).machine
    assert not verdict("click", OLD_IE, at=LATER, opened_before=False).machine
    assert not verdict("click", CHROME, at=soon, opened_before=False).machine


def test_clicking_every_link_within_seconds_is_a_scanner():
    recent = {0: LATER - timedelta(seconds=2), 1: LATER - timedelta(seconds=1)}
    assert verdict("click", CHROME, link_index=2, recent_click_links=recent) == Verdict(
        True, "clicked_every_link")
    slow = {0: LATER - timedelta(minutes=3), 1: LATER - timedelta(minutes=1)}
    assert not verdict("click", CHROME, link_index=2, recent_click_links=slow).machine


def test_honeypot_link_and_non_engagement_kinds():
    assert verdict("click", CHROME, link_index=HONEYPOT_LINK) == Verdict(True, "honeypot_link")
    assert classify("unsubscribe", "python-requests/2", "1.1.1.1", occurred_at=LATER,
                    sent_at=SENT) == Verdict(False)


# --- through the real ingest path ------------------------------------------------------------

@pytest.fixture(autouse=True)
def _fresh_caches():
    services._LOCAL.clear()
    ingest._LINK_COUNTS.clear()


def _rollup(column: str) -> int:
    return db.session.scalar(select(func.coalesce(func.sum(getattr(EngagementRollup, column)),
                                                  0)))


def test_quick_send_story_open_at_4s_click_at_8s_from_mobile_safari_counts_a_person(app):
    send = make_sent_message(sent_at=SENT)
    ingest.apply_hits([
        ingest.Hit("open", send.id, SENT + timedelta(seconds=4), None, MOBILE_SAFARI,
                   "198.51.100.20"),
        ingest.Hit("click", send.id, SENT + timedelta(seconds=8), 0, MOBILE_SAFARI,
                   "198.51.100.20"),
    ])
    db.session.commit()
    assert [(e.kind, e.machine, e.machine_reason) for e in
            db.session.scalars(select(Event).order_by(Event.occurred_at))] == [
        ("open", False, ""), ("click", False, "")]
    assert (_rollup("clicks"), _rollup("unique_clicks"), _rollup("machine_clicks")) == (1, 1, 0)
    report = analytics.journey_report(db.session.get(Journey, send.journey_id))
    assert report["unique_clicks"] == 1 and report["click_rate"] == 1.0


def test_gmail_proxy_opens_count_as_human_opens_and_proxied(app):
    send = make_sent_message(sent_at=SENT)
    ingest.apply_hits([ingest.Hit("open", send.id, SENT + timedelta(minutes=5), None,
                                  GMAIL_PROXY, "66.249.84.1")])
    db.session.commit()
    event = db.session.scalars(select(Event)).one()
    assert (event.machine, event.proxied) == (False, True)
    assert (_rollup("opens"), _rollup("unique_opens"), _rollup("proxied_opens"),
            _rollup("machine_opens")) == (1, 1, 1, 0)
    assert db.session.get(SendEngagement, send.id).first_open_at is not None
    report = analytics.journey_report(db.session.get(Journey, send.journey_id))
    assert (report["unique_opens"], report["proxied_opens"], report["raw_opens"]) == (1, 1, 1)


def test_an_open_in_the_same_batch_counts_before_an_old_browser_click(app):
    send = make_sent_message(sent_at=SENT)
    ingest.apply_hits([
        ingest.Hit("click", send.id, SENT + timedelta(seconds=15), 1, OLD_IE, HOME),
    ])
    other = make_sent_message(sent_at=SENT)
    ingest.apply_hits([
        ingest.Hit("open", other.id, SENT + timedelta(seconds=10), None, OLD_IE, HOME),
        ingest.Hit("click", other.id, SENT + timedelta(seconds=15), 1, OLD_IE, HOME),
    ])
    db.session.commit()
    clicks = {e.send_id: (e.machine, e.machine_reason) for e in db.session.scalars(
        select(Event).where(Event.kind == "click"))}
    assert clicks == {send.id: (True, "unread_click_not_a_browser"), other.id: (False, "")}


def test_head_request_on_a_click_redirects_and_records_a_machine_click(app):
    clock.freeze(SENT + timedelta(hours=1))
    send = make_sent_message(sent_at=SENT)
    fast = Client(TrackingFastPath(app, app.wsgi_app))
    resp = fast.head(f"/t/c/{make_token(SECRET, 'click', send.id, 0)}",
                     headers={"User-Agent": CHROME})
    assert resp.status_code == 302
    resp = fast.get(f"/t/c/{make_token(SECRET, 'click', send.id, 1)}",
                    headers={"User-Agent": CHROME, "Sec-Purpose": "prefetch;prerender"})
    assert resp.status_code == 302
    ingest.drain_all(services.get_recorder(app).redis)
    reasons = sorted(e.machine_reason for e in db.session.scalars(select(Event)) if e.machine)
    assert reasons == ["head_request", "prefetch_request"]
    assert _rollup("clicks") == 0 and _rollup("machine_clicks") == 2
