"""A partner looks after a client's record in a real browser: edit, consent, engagement, delete."""

from __future__ import annotations

import re

import pytest
import redis
from playwright.sync_api import expect

from core.tokens import make_token
from tests.browser.conftest import DESKTOP_UA, snap, user_with_password
from tests.builders import make_contact, make_partner, make_sent_message, make_tracked_campaign

pytestmark = pytest.mark.browser

SCANNER_UA = "Mozilla/5.0 (compatible; Barracuda Sentinel)"


def test_partner_edits_a_contact_records_consent_and_reads_its_timeline(app, people, live):
    from core.db import db
    from tracking import ingest

    partner = make_partner(tier="gold", name="North Advisors")
    advisor = user_with_password("partner_user", partner)
    advisor.name = "Ann Advisor"
    db.session.commit()
    campaign = make_tracked_campaign(partner=partner, steps=2)
    send = make_sent_message(campaign, email="bo.ray@example.com", first_name="Bo")
    contact_id = send.contact_id
    make_contact(partner, email="cy@example.com", first_name="Cy", last_name="Oh",
                 consent=False, attributes={"city": "Bergen"})

    # The reader opens the mail and clicks its first link; a mail scanner clicks another.
    secret = app.config["SECRET_KEY"]
    p = people(advisor.email)
    page = p.page
    opened = page.request.get(f"{live}/t/o/{make_token(secret, 'open', send.id)}",
                              headers={"User-Agent": DESKTOP_UA})
    assert opened.status == 200
    clicked = page.request.get(f"{live}/t/c/{make_token(secret, 'click', send.id, 0)}",
                               headers={"User-Agent": DESKTOP_UA}, max_redirects=0)
    assert clicked.status == 302
    scanned = page.request.get(f"{live}/t/c/{make_token(secret, 'click', send.id, 1)}",
                               headers={"User-Agent": SCANNER_UA}, max_redirects=0)
    assert scanned.status == 302
    assert ingest.drain_all(redis.Redis.from_url(app.config["REDIS_URL"])) == 3

    # The list: status in words, only mailable contacts get a Quick send.
    p.go("/partner/contacts")
    bo_row = page.locator("tr", has_text="bo.ray@example.com")
    cy_row = page.locator("tr", has_text="cy@example.com")
    expect(bo_row.locator(".badge")).to_have_text("Can be emailed")
    expect(cy_row.locator(".badge")).to_have_text("No consent to email")
    expect(cy_row.locator("text=Quick send")).to_have_count(0)
    snap(page, "contacts-list")

    # Open Bo's record and edit it: name, tags, an attribute.
    bo_row.locator("a.contact-link").click()
    expect(page).to_have_url(re.compile(rf"/partner/contacts/{contact_id}$"))
    page.fill("input[name=last_name]", "Ray")
    page.fill("input[name=tags]", "VIP, Spring event")
    page.fill("input[name=attr-0-key]", "city")
    page.fill("input[name=attr-0-value]", "Oslo")
    page.click("button:text('Add another attribute')")
    page.fill("input[name=attr-1-key]", "segment")
    page.fill("input[name=attr-1-value]", "retail")
    page.click("button:text('Save details')")
    expect(page.locator(".flash.ok")).to_contain_text("Contact saved")
    expect(page.locator("h1")).to_have_text("Bo Ray")
    expect(page.locator("input[name=tags]")).to_have_value("spring event, vip")
    expect(page.locator("input[name=attr-0-value]")).to_have_value("Oslo")
    expect(page.locator("input[name=attr-1-key]")).to_have_value("segment")

    # Bo asked by phone to stop: withdraw consent, with where it came from.
    page.check("input[name=consent][value=no]")
    page.fill("input[name=consent_note]", "Asked by phone to stop")
    page.click("button:text('Record consent change')")
    expect(page.locator(".flash.ok")).to_contain_text("Consent withdrawn")
    line = page.locator(".consent-line").first
    expect(line).to_contain_text(re.compile(
        r"Consent withdrawn by Ann Advisor on \d{1,2} \w{3} \d{4} via the contact form"))
    expect(line).to_contain_text("Asked by phone to stop")
    expect(page.locator(".contact-status .badge")).to_have_text("No consent to email")
    expect(page.locator("a.button", has_text="Quick send")).to_have_count(0)

    # The timeline: the message, step numbered from 1, human and machine engagement apart.
    row = page.locator(f'tr[data-message="{send.id}"]')
    expect(row).to_contain_text(campaign.name)
    expect(row).to_contain_text("step 1")
    expect(row.locator(".message-status")).to_contain_text("Sent")
    expect(row.locator(".opens")).to_contain_text("1 by people")
    expect(row.locator(".clicks")).to_contain_text("1 by people")
    expect(row.locator(".clicks")).to_contain_text("1 by machines")
    snap(page, "contact-page")
    p.go("/partner/contacts")
    expect(page.locator("tr", has_text="bo.ray@example.com").locator(".tag")).to_have_count(2)
    snap(page, "contacts-list-tagged")
    p.go(f"/partner/contacts/{contact_id}")

    # Delete asks first and says what goes; keeping it changes nothing.
    page.click("text=Delete…")
    expect(page.locator("h1")).to_contain_text("Delete Bo Ray?")
    expect(page.locator(".delete-confirm")).to_contain_text("1 message already sent")
    snap(page, "contact-delete-confirm")
    page.click("text=Keep this contact")
    expect(page).to_have_url(re.compile(rf"/partner/contacts/{contact_id}$"))
    page.click("text=Delete…")
    page.click("button:text('Delete for good')")
    expect(page.locator(".flash.ok")).to_contain_text("bo.ray@example.com was deleted")
    expect(page.locator("table.contacts")).not_to_contain_text("bo.ray@example.com")
    assert p.go(f"/partner/contacts/{contact_id}").status == 404
