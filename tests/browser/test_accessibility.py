"""Every main page passes axe-core's WCAG 2.1 A/AA rules at 1280 and 390 px, and the phone
menu works from the keyboard (WCAG 2.1.1)."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.browser.conftest import ARTIFACTS, accessibility_violations, snap, user_with_password
from tests.builders import (
    make_campaign,
    make_contact,
    make_journey,
    make_partner,
    make_sent_message,
)


def _partner_world():
    """A partner with a user, contacts, a quick-send journey, a draft and a sending campaign."""
    partner = make_partner(tier="gold")
    user = user_with_password("partner_admin", partner)
    journey = make_journey(steps=2, quick_send=True, name="Spring series")
    contacts = [make_contact(partner, email=f"client{i}@example.com") for i in range(3)]
    draft = make_campaign(partner, user, journey, contacts=contacts, name="Spring at Harbor")
    sent = make_sent_message(partner=partner)
    return partner, user, journey, contacts, draft, sent


def test_every_main_page_passes_axe_at_both_widths(app, people):
    partner, user, journey, contacts, draft, sent = _partner_world()
    marketer = user_with_password("brand_marketer")

    visitor = people()
    visitor.go("/login")
    snap(visitor.page, "a11y-login")

    p = people(user.email)
    pages = {
        "showroom": "/partner",
        "personalize": f"/partner/journeys/{journey.id}",
        "contacts": "/partner/contacts",
        "quick-send": f"/partner/contacts/{contacts[0].id}/quick-send",
        "campaigns": "/partner/campaigns",
        "campaign": f"/partner/campaigns/{draft.id}",
        "campaign-edit": f"/partner/campaigns/{draft.id}/edit",
        "campaign-report": f"/partner/campaigns/{sent.campaign_id}/report",
    }
    for name, path in pages.items():
        response = p.go(path)
        assert response.ok, f"{path}: {response.status}"
        snap(p.page, f"a11y-partner-{name}")

    # The API reference is one very long page: axe checks it whole at both widths, while the
    # screenshot is of the first screen only (a full-page capture of it takes most of a minute).
    p.go("/api-docs")
    for width in (1280, 390):
        p.page.set_viewport_size({"width": width, "height": 900})
        assert accessibility_violations(p.page) == [], f"/api-docs at {width}px"
        p.page.screenshot(path=str(ARTIFACTS / f"a11y-partner-api-reference-{width}.png"))
    p.page.set_viewport_size({"width": 1280, "height": 900})

    m = people(marketer.email)
    template_id = journey.steps[0].template_id
    pages = {
        "templates": "/brand",
        "template-new": "/brand/templates/new",
        "template-edit": f"/brand/templates/{template_id}",
        "journeys": "/brand/journeys",
        "journey-new": "/brand/journeys/new",
        "journey-edit": f"/brand/journeys/{journey.id}",
        "approvals": "/brand/approvals",
        "analytics": "/brand/analytics",
        "journey-dashboard": f"/brand/analytics/journeys/{sent.journey_id}",
    }
    for name, path in pages.items():
        response = m.go(path)
        assert response.ok, f"{path}: {response.status}"
        snap(m.page, f"a11y-brand-{name}")


def test_phone_menu_opens_and_signs_out_from_the_keyboard(app, people):
    partner = make_partner(tier="gold")
    user = user_with_password("partner_user", partner)
    p = people(user.email)
    page = p.page
    page.set_viewport_size({"width": 390, "height": 800})
    p.go("/partner")
    menu = page.locator("#nav-toggle")
    nav = page.locator("#site-nav")
    expect(menu).to_be_visible()
    expect(nav).to_be_hidden()
    # Reach the menu button with Tab, as a keyboard user would, and open it with Enter.
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.id") == "nav-toggle":
            break
    assert page.evaluate("() => document.activeElement.id") == "nav-toggle"
    page.keyboard.press("Enter")
    expect(nav).to_be_visible()
    expect(menu).to_have_attribute("aria-expanded", "true")
    # Escape closes it and gives the focus back to the button; Space opens it again.
    page.keyboard.press("Tab")
    page.keyboard.press("Escape")
    expect(nav).to_be_hidden()
    assert page.evaluate("() => document.activeElement.id") == "nav-toggle"
    page.keyboard.press(" ")
    expect(nav).to_be_visible()
    # Tab through the menu to "Sign out" and press Enter: the session ends.
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.textContent.trim()") == "Sign out":
            break
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/login"))
