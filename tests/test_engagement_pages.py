"""Engagement pages read in words: conversions on dashboards and the contact timeline, machine
reasons explained (no codes where a partner reads), chart titles, CSV steps from 1."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta

import pytest

from core import clock
from core.db import db
from core.tokens import HONEYPOT_LINK, make_token
from tests.builders import make_partner, make_sent_message, make_tracked_campaign, make_user
from tests.conftest import SECRET
from tests.test_web_pages import PASSWORD, login
from tracking import conversions, ingest, services

T0 = datetime(2030, 4, 1, 9)
PHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
         "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1")
RAW_CODES = ("honeypot_link", "apple_mail_privacy", "click_too_soon_after_delivery",
             "condition:", "machine:", "unique opens")


@pytest.fixture(autouse=True)
def _fresh_caches():
    services._LOCAL.clear()
    ingest._LINK_COUNTS.clear()


def text(response) -> str:
    return re.sub(r"\s+", " ", response.get_data(as_text=True))


@pytest.fixture
def story(app):
    """A two-step campaign: a person opens and clicks at once, a machine too, one conversion,
    and a second step skipped because its condition was not met."""
    clock.freeze(T0)
    partner = make_partner(name="North")
    campaign = make_tracked_campaign(partner=partner, steps=2)
    send = make_sent_message(campaign, sent_at=T0 - timedelta(minutes=1), first_name="Zoe")
    skipped = make_sent_message(campaign, step_index=1, status="skipped",
                                email=send.email)
    skipped.status_reason = "condition:opened"
    db.session.commit()
    ingest.apply_hits([
        ingest.Hit("open", send.id, T0 - timedelta(seconds=56), None, PHONE, "172.58.1.2"),
        ingest.Hit("click", send.id, T0 - timedelta(seconds=52), 0, PHONE, "172.58.1.2"),
        ingest.Hit("open", send.id, T0 - timedelta(seconds=50), None, "Mozilla/5.0",
                   "17.58.3.4"),
        ingest.Hit("click", send.id, T0, HONEYPOT_LINK, PHONE, "34.80.1.1"),
    ])
    db.session.commit()
    _, admin = make_user("brand_admin")
    with app.test_client() as c:
        key = c.post("/api/integration-keys", json={"name": "site"},
                     headers={"Authorization": f"Bearer {admin}"}).json["key"]
        c.post("/api/conversions", headers={"Authorization": f"Bearer {key}"}, json={
            "click_id": conversions.click_id(SECRET, send.id, 0), "name": "appointment_booked",
            "value": 129.9, "external_id": "crm-1"})
    return {"partner": partner, "campaign": campaign, "send": send}


def sign_in(client, role: str, partner=None):
    user, _ = make_user(role, partner, password=PASSWORD)
    login(client, user.email)


def test_partner_campaign_report_says_why_machines_are_not_counted(client, story):
    sign_in(client, "partner_user", story["partner"])
    page = text(client.get(f"/partner/campaigns/{story['campaign'].id}/report"))
    assert "not counted: a hidden link only machines follow" in page
    assert "not counted: Apple Mail privacy protection loaded the images" in page
    assert "Clicked a link" in page and "Opened" in page
    assert re.search(r'data-metric="conversions"><b>1</b>', page)
    assert "$129.90" in page
    assert "Funnel per step (number of messages and people)" in page
    for code in RAW_CODES:
        assert code not in page, code
    assert "Step 1" in page and "Step 0" not in page


def test_brand_dashboard_shows_conversions_titles_and_units(client, story):
    sign_in(client, "brand_marketer")
    page = text(client.get(f"/brand/analytics/journeys/{story['campaign'].journey_id}"))
    assert re.search(r'data-metric="conversions"><b>1</b>', page)
    assert "$129.90" in page and "People and machines (number of opens and clicks)" in page
    assert "&#34;text&#34;: &#34;messages / people&#34;" in page or "messages / people" in page
    csv_text = client.get(
        f"/brand/analytics/journeys/{story['campaign'].journey_id}.csv").get_data(as_text=True)
    steps = [r for r in csv.DictReader(io.StringIO(csv_text)) if r["section"] == "step"]
    assert [(r["key"], r["label"]) for r in steps] == [("1", "Step 1"), ("2", "Step 2")]
    assert steps[0]["conversions"] == "1" and steps[0]["conversion_value"] == "129.9"
    assert (steps[1]["sent"], steps[1]["skipped"]) == ("0", "1")  # the funnel shows skips


def test_contact_timeline_shows_the_conversion(client, story):
    sign_in(client, "partner_user", story["partner"])
    page = text(client.get(f"/partner/contacts/{story['send'].contact_id}"))
    row = re.search(rf'<tr data-message="{story["send"].id}">(.*?)</tr>', page).group(1)
    assert "Led to: appointment booked ($129.90)" in row
    assert "1 by people" in row


def test_recipients_csv_gives_reasons_in_words(client, story):
    sign_in(client, "partner_user", story["partner"])
    body = client.get(f"/partner/campaigns/{story['campaign'].id}/recipients.csv")
    rows = list(csv.DictReader(io.StringIO(body.get_data(as_text=True))))
    assert "status_reason" not in rows[0] and "condition:" not in body.get_data(as_text=True)
    assert rows[0]["status_in_words"].startswith("Skipped")
    assert "the step's condition was not met" in rows[0]["status_in_words"]


def test_a_partner_opening_and_clicking_their_own_test_at_once_sees_a_click(client, app):
    partner = make_partner()
    campaign = make_tracked_campaign(partner=partner)
    send = make_sent_message(campaign, sent_at=clock.now())
    fast = app.test_client()
    fast.get(f"/t/o/{make_token(SECRET, 'open', send.id)}", headers={"User-Agent": PHONE})
    fast.get(f"/t/c/{make_token(SECRET, 'click', send.id, 0)}", headers={"User-Agent": PHONE})
    ingest.drain_all(services.get_recorder(app).redis)
    sign_in(client, "partner_user", partner)
    page = text(client.get(f"/partner/campaigns/{campaign.id}/report"))
    assert re.search(r'data-metric="unique_clicks"><b>1</b>', page)
