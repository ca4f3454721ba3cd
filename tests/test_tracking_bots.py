"""Machine engagement classification: proxies, scanners, timing, every-link and honeypot."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from core.tokens import HONEYPOT_LINK
from tracking.bots import classify

SENT = datetime(2030, 1, 1, 12)
LATER = SENT + timedelta(hours=2)
CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36"


@pytest.mark.parametrize(("kind", "ua", "ip", "reason"), [
    ("open", "Mozilla/5.0 (via ggpht.com GoogleImageProxy)", "66.249.1.1", "google_image_proxy"),
    ("open", "Mozilla/5.0", "17.58.1.2", "apple_mail_privacy"),
    ("open", CHROME, "17.58.1.2", "apple_mail_privacy"),
    ("open", "YahooMailProxy; https://help.yahoo.com", "1.2.3.4", "yahoo_mail_proxy"),
    ("click", "python-requests/2.32", "1.2.3.4", "scanner_user_agent"),
    ("click", "Mozilla/5.0 (compatible; Barracuda Sentinel)", "1.2.3.4", "scanner_user_agent"),
    ("click", "", "1.2.3.4", "scanner_user_agent"),
])
def test_proxies_and_scanners_are_machine(kind, ua, ip, reason):
    assert classify(kind, ua, ip, occurred_at=LATER, sent_at=SENT, link_index=0,
                    link_count=3) == (True, reason)


def test_a_person_in_a_browser_is_human():
    assert classify("open", CHROME, "203.0.113.5", occurred_at=LATER, sent_at=SENT) == (False, "")
    assert classify("click", CHROME, "203.0.113.5", occurred_at=LATER, sent_at=SENT,
                    link_index=1, link_count=3, recent_click_links={}) == (False, "")


def test_click_seconds_after_delivery_is_a_scanner():
    machine, reason = classify("click", CHROME, "203.0.113.5",
                               occurred_at=SENT + timedelta(seconds=3), sent_at=SENT,
                               link_index=0, link_count=3)
    assert (machine, reason) == (True, "click_too_soon_after_delivery")
    assert not classify("click", CHROME, "203.0.113.5", occurred_at=SENT + timedelta(seconds=30),
                        sent_at=SENT, link_index=0, link_count=3)[0]


def test_clicking_every_link_within_seconds_is_a_scanner():
    recent = {0: LATER - timedelta(seconds=2), 1: LATER - timedelta(seconds=1)}
    assert classify("click", CHROME, "203.0.113.5", occurred_at=LATER, sent_at=SENT,
                    link_index=2, link_count=3, recent_click_links=recent) == (
        True, "clicked_every_link")
    slow = {0: LATER - timedelta(minutes=3), 1: LATER - timedelta(minutes=1)}
    assert not classify("click", CHROME, "203.0.113.5", occurred_at=LATER, sent_at=SENT,
                        link_index=2, link_count=3, recent_click_links=slow)[0]


def test_honeypot_link_and_non_engagement_kinds():
    assert classify("click", CHROME, "203.0.113.5", occurred_at=LATER, sent_at=SENT,
                    link_index=HONEYPOT_LINK, link_count=3) == (True, "honeypot_link")
    assert classify("unsubscribe", "python-requests/2", "1.1.1.1", occurred_at=LATER,
                    sent_at=SENT) == (False, "")
