"""A partner filters contacts by tag, status and an attribute, saves a segment and adds it to a
campaign; a brand admin sets the sharing rules (real browser, 1280 and 390 px)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import snap, user_with_password
from tests.builders import make_campaign, make_contact, make_journey, make_partner

pytestmark = pytest.mark.browser


def test_partner_filters_contacts_and_saves_a_segment(app, people, live):
    partner = make_partner(name="North Advisors")
    advisor = user_with_password("partner_user", partner)
    make_contact(partner, "ann@example.com", first_name="Ann", last_name="Lee",
                 tags=["vip"], attributes={"city": "Boston", "age": "41"})
    make_contact(partner, "bob@example.com", first_name="Bob", last_name="Ray",
                 tags=["vip"], attributes={"city": "Boston", "age": "38"})
    make_contact(partner, "cy@example.com", first_name="Cy", last_name="Oh",
                 tags=["vip"], consent=False, attributes={"city": "Boston", "age": "70"})
    make_contact(partner, "di@example.com", first_name="Di", last_name="Fox",
                 attributes={"city": "Lyon", "age": "52"})
    campaign = make_campaign(partner, advisor, make_journey(), name="Spring check-in")

    p = people(advisor.email)
    page = p.page
    p.go("/partner/contacts")
    expect(page.locator("#segments .empty")).to_be_visible()
    page.select_option("select[name=tag]", "vip")
    page.select_option("select[name=status]", "mailable")
    page.fill("input[name=attr]", "age")
    page.select_option("select[name=op]", "more_than")
    page.fill("input[name=value]", "40")
    page.click("#contact-filter button[type=submit]")
    expect(page.locator("tr[data-contact]")).to_have_count(1)
    expect(page.locator("tr[data-contact]")).to_contain_text("ann@example.com")
    expect(page.locator("h1 small")).to_have_text("(1)")
    snap(page, "contacts-filtered")

    # A bad condition is said in words, next to the form, and the list stays usable.
    page.fill("input[name=value]", "forty")
    page.click("#contact-filter button[type=submit]")
    expect(page.locator(".field-error")).to_contain_text("must be a number")
    page.fill("input[name=attr]", "city")
    page.select_option("select[name=op]", "is")
    page.fill("input[name=value]", "boston")
    page.select_option("select[name=status]", "")
    page.click("#contact-filter button[type=submit]")
    expect(page.locator("tr[data-contact]")).to_have_count(3)

    page.fill("#save-segment input[name=name]", "Boston VIPs")
    page.click("#save-segment button[type=submit]")
    expect(page.locator(".flash.ok")).to_contain_text("Boston VIPs")
    expect(page).to_have_url(re.compile(r"segment=\d+"))
    expect(page.locator(".segment-on")).to_contain_text("Boston VIPs")
    expect(page.locator("tr[data-contact]")).to_have_count(3)
    expect(page.locator("#segments li")).to_have_count(1)
    snap(page, "contacts-segment-saved")

    # The segment goes into a campaign in one step; who cannot be emailed is said in words.
    p.go(f"/partner/campaigns/{campaign.id}")
    page.select_option("select[name=segment_id]", label="Boston VIPs")
    page.click("#add-segment button[type=submit]")
    expect(page.locator(".added-report")).to_contain_text("2 contacts added")
    expect(page.locator(".added-report")).to_contain_text("No consent to email")
    snap(page, "campaign-segment-added")


def test_brand_admin_sets_the_sharing_rules(app, people, live):
    admin = user_with_password("brand_admin")
    p = people(admin.email)
    page = p.page
    p.go("/brand")
    page.click("nav >> text=Sharing")
    expect(page).to_have_url(re.compile(r"/brand/sharing$"))
    page.check("input[name=cap_on]")
    page.fill("input[name=max_sends]", "2")
    page.fill("input[name=days]", "7")
    page.check("input[name=same_on]")
    page.fill("input[name=same_journey_days]", "14")
    page.click("form.sharing-rules button[type=submit]")
    expect(page.locator(".flash.ok")).to_be_visible()
    expect(page.locator("input[name=max_sends]")).to_have_value("2")
    snap(page, "brand-sharing-rules")
    page.fill("input[name=max_sends]", "0")
    page.click("form.sharing-rules button[type=submit]")
    expect(page.locator(".field-error")).to_contain_text("1 to 100")
    p.go("/brand/analytics")
    expect(page.locator(".sharing-stats")).to_contain_text("shared by two partners or more")
