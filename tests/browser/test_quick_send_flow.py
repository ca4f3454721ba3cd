"""A partner on the phone with clients quick-sends one email in a real browser."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import snap, user_with_password
from tests.builders import make_contact, make_journey, make_partner

pytestmark = pytest.mark.browser


def test_quick_send_choose_personalize_preview_confirm(app, people):
    from campaigns.models import Campaign
    from core.db import db

    partner = make_partner(tier="gold", name="North Advisors")
    advisor = user_with_password("partner_user", partner)
    maria = make_contact(partner, email="maria@home.example", first_name="Maria",
                         last_name="Garcia")
    make_contact(partner, email="joe@home.example", first_name="Joe", last_name="Bloggs")
    make_contact(partner, email="quinn@home.example", first_name="Quinn", last_name="Quiet",
                 consent=False)
    make_journey(steps=1, quick_send=True, name="Client appreciation")
    make_journey(steps=1, quick_send=True, requires_approval=True, name="Market update")

    p = people(advisor.email)
    page = p.page
    p.go("/partner/contacts")
    quinn = page.locator("tr", has_text="quinn@home.example")
    expect(quinn.locator("input[type=checkbox]")).to_be_disabled()
    expect(quinn.locator(".badge")).to_have_text("No consent to email")
    expect(quinn.locator("text=Quick send")).to_have_count(0)
    button = page.locator("button[data-count-label]")
    expect(button).to_be_disabled()
    page.locator("tr", has_text="maria@home.example").locator("input[type=checkbox]").check()
    page.locator("tr", has_text="joe@home.example").locator("input[type=checkbox]").check()
    expect(button).to_have_text("Quick send to 2 selected")
    snap(page, "quick-send-select")
    button.click()

    # 1. Choose the email: cards with a thumbnail.
    expect(page.locator(".quick-journeys .card")).to_have_count(2)
    expect(page.locator(".quick-who")).to_contain_text("Maria Garcia")
    snap(page, "quick-send-choose")
    page.click("button:text('Choose “Client appreciation”')")

    # 2. Personalize: a too-long headline is explained as you type, in words.
    headline = page.locator("input[name=v-0-headline]")
    headline.fill("x" * 81)
    error = page.locator('.field-error[data-for="steps.0.headline"]')
    expect(error).to_contain_text("80")
    expect(headline).to_have_attribute("aria-invalid", "true")
    expect(page.locator('.counter[data-for="v-0-headline"]')).to_have_text("81 / 80")
    page.click("button:text('Next: preview')")
    expect(page.locator(".quick-personalize .error")).to_contain_text("Step 1 · Headline:")
    snap(page, "quick-send-personalize-error")
    page.locator("input[name=v-0-headline]").fill("Thank you for ten years")
    page.click("button:text('Next: preview')")

    # 3. Preview as each recipient, then confirm.
    frame = page.frame_locator("iframe[name=qs-preview]")
    expect(frame.locator("body")).to_contain_text("Thank you for ten years")
    expect(frame.locator("body")).to_contain_text("Dear Maria")
    page.click("a:text('As Joe Bloggs')")
    expect(frame.locator("body")).to_contain_text("Dear Joe")
    expect(page.locator(".confirm-question")).to_have_text(
        "Send “Client appreciation” to 2 clients now?")
    snap(page, "quick-send-confirm")
    page.click("button:text('Yes, send now')")
    expect(page.locator(".flash.ok")).to_contain_text("is on its way to 2 clients")
    expect(page.locator("#campaign-status")).to_have_text(re.compile("Starting|Sending"))
    snap(page, "quick-send-sent")

    # An approval journey from the contact page: submit, and the page says what happens next.
    p.go(f"/partner/contacts/{maria.id}")
    page.click("a.button:text('Quick send')")
    page.click("button:text('Choose “Market update”')")
    page.click("button:text('Next: preview')")
    expect(page.locator(".confirm-question")).to_have_text(
        "Submit “Market update” to Maria Garcia for brand approval?")
    page.click("button:text('Submit for brand approval')")
    expect(page.locator(".flash.ok")).to_contain_text("Once the brand approves it")
    expect(page.locator("#campaign-status")).to_have_text("Waiting for brand approval")
    snap(page, "quick-send-approval")
    db.session.expire_all()
    assert sorted(c.status for c in db.session.query(Campaign)) in (
        ["pending_approval", "scheduled"], ["pending_approval", "running"])
