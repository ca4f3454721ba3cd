"""Engagement in the browser: the brand's dashboard with conversions, the partner's campaign
report with machine reasons in words and the contact timeline with a conversion, at 1280 and
390 px (screenshots in test-artifacts/, axe-checked)."""

from __future__ import annotations

from datetime import timedelta

from playwright.sync_api import expect

from core import clock
from core.db import db
from core.tokens import HONEYPOT_LINK
from tests.browser.conftest import snap, user_with_password
from tests.builders import make_partner, make_sent_message, make_tracked_campaign, make_user
from tracking import conversions, ingest

PHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
         "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1")


def test_dashboards_and_timeline_show_conversions_and_reasons_in_words(app, people):
    now = clock.now()
    partner = make_partner(name="Harbor Advisors")
    campaign = make_tracked_campaign(partner=partner, steps=2)
    send = make_sent_message(campaign, sent_at=now - timedelta(minutes=5),
                             email="zoe@example.com", first_name="Zoe")
    skipped = make_sent_message(campaign, step_index=1, status="skipped", email=send.email)
    skipped.status_reason = "condition:clicked"
    db.session.commit()
    ingest.apply_hits([
        ingest.Hit("open", send.id, now - timedelta(minutes=4, seconds=56), None, PHONE,
                   "172.58.1.2"),
        ingest.Hit("click", send.id, now - timedelta(minutes=4, seconds=52), 0, PHONE,
                   "172.58.1.2"),
        ingest.Hit("open", send.id, now - timedelta(minutes=4), None, "Mozilla/5.0",
                   "17.58.3.4"),
        ingest.Hit("click", send.id, now - timedelta(minutes=3), HONEYPOT_LINK, PHONE,
                   "34.80.1.1"),
    ])
    db.session.commit()
    admin, _ = make_user("brand_admin")
    key_row, _key = conversions.create_integration_key(admin, "Booking site")
    with app.test_request_context():
        conversions.record_conversion(key_row, {
            "click_id": conversions.click_id(app.config["SECRET_KEY"], send.id, 0),
            "name": "appointment_booked", "value": 129.9, "external_id": "crm-1"})

    marketer = people(user_with_password("brand_marketer").email)
    marketer.go(f"/brand/analytics/journeys/{campaign.journey_id}")
    page = marketer.page
    expect(page.locator('[data-metric="conversions"] b')).to_have_text("1")
    expect(page.locator('[data-metric="conversion_value"] b')).to_have_text("$129.90")
    expect(page.locator('[data-metric="skipped"] b')).to_have_text("1")
    expect(page.locator("figcaption").first).to_have_text(
        "Funnel per step (number of messages and people)")
    snap(page, "engagement-brand-dashboard")

    owner = people(user_with_password("partner_user", partner).email)
    owner.go(f"/partner/campaigns/{campaign.id}/report")
    page = owner.page
    expect(page.locator("table.events")).to_contain_text(
        "not counted: a hidden link only machines follow")
    expect(page.locator('[data-metric="unique_clicks"] b')).to_have_text("1")
    snap(page, "engagement-partner-report")

    owner.go(f"/partner/contacts/{send.contact_id}")
    expect(page.locator(f'tr[data-message="{send.id}"] .conversion')).to_contain_text(
        "Led to: appointment booked ($129.90) on ")
    snap(page, "engagement-contact-timeline")
