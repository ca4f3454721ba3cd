"""The brand in a real browser: edits its tiers, publishes to a tier with a partner count,
opens a new journey version and moves partners' campaigns onto it."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import snap, user_with_password
from tests.builders import make_campaign, make_contact, make_partner, make_template, make_user

pytestmark = pytest.mark.browser


def test_brand_edits_tiers_publishes_to_a_tier_and_moves_campaigns_to_a_new_version(
        app, people):
    from campaigns.models import Campaign
    from core.db import db
    from journeys import services as journeys

    admin = user_with_password("brand_admin")
    gold = make_partner(name="Harbor Advisors", tier="gold", region="west")
    partner_user, _ = make_user("partner_admin", gold)
    template = make_template(name="Spring letter")
    step = [{"template_id": template.template_id, "delay_hours": 0, "when": "always"}]
    to_gold = journeys.create_journey(name="Spring offer", tiers=["gold"], steps=step)
    b = people(admin.email)
    page = b.page

    # The lists: add a tier nobody is in yet.
    page.click("nav >> text=Tiers and regions")
    expect(page.locator("#list-tier")).to_contain_text("gold")
    expect(page.locator("#list-tier")).to_contain_text("1 partner")
    page.fill("#h-tier ~ form input[name=name]", "Platinum")
    page.click("button:text('Add tier')")
    expect(page.locator(".flash.ok")).to_contain_text("“Platinum” added")
    expect(page.locator("#list-tier")).to_contain_text("Platinum")
    snap(page, "brand-tiers-and-regions")

    # A journey to Platinum reaches nobody: publishing asks first.
    page.click("nav >> text=Journeys")
    page.click("text=New journey")
    page.fill("input[name=name]", "Platinum welcome")
    page.check("input[name=tiers][value=Platinum]")
    page.select_option("select[name=step-0-template_id]", str(template.template_id))
    page.click("button:text('Save draft')")
    expect(page.locator("#reach")).to_contain_text("reaches 0 partners")
    page.click(".bar button:text('Publish')")
    expect(page.locator("#confirm-none")).to_contain_text(
        "No partner is in Platinum/every region yet: publish anyway?")
    snap(page, "brand-publish-to-nobody")
    page.click("button:text('Publish anyway')")
    expect(page.locator("h1 .badge")).to_have_text("published")

    # The gold journey reaches Harbor Advisors.
    page.goto(page.url.rsplit("/brand/", 1)[0] + f"/brand/journeys/{to_gold.id}")
    expect(page.locator("#reach")).to_contain_text("reaches 1 partner")
    page.click(".bar button:text('Publish')")
    expect(page.locator(".flash.ok")).to_contain_text("1 partner now sees it")

    # Harbor has a draft on it; the brand opens version 2 and moves it.
    db.session.expire_all()  # the server published it
    draft = make_campaign(gold, partner_user, journeys.get_journey(to_gold.id),
                          [make_contact(gold)], slot_values={"0": {"headline": "Spring!"}})
    page.click("button:text('New version')")
    expect(page.locator(".flash.ok")).to_contain_text("Version 2 opened as a draft")
    expect(page).to_have_url(re.compile(r"/brand/journeys/\d+$"))
    page.click("a:text('Publish…')")
    section = page.locator("#publish-version")
    expect(section).to_contain_text("not yet started on the earlier version: 1")
    snap(page, "brand-publish-new-version")
    section.locator("button:text('Publish version 2')").click()
    expect(page.locator(".flash.ok").last).to_contain_text("Campaigns moved to version 2: 1")
    expect(page.locator("h1 .badge")).to_have_text("published")
    snap(page, "brand-version-published")

    db.session.expire_all()
    moved = db.session.get(Campaign, draft.id)
    assert moved.journey_id != to_gold.id and moved.slot_values["0"]["headline"] == "Spring!"
    assert journeys.get_journey(to_gold.id).status == "archived"


def test_brand_adds_a_compliance_rule(app, people):
    from campaigns import compliance

    admin = user_with_password("brand_admin")
    page = people(admin.email).page
    page.click("nav >> text=Compliance")
    page.select_option("select[name=kind]", "regex")
    page.fill("input[name=pattern]", r"\b\d{8,12}\b")
    page.fill("input[name=message]", "Never write an account number.")
    page.click("button:text('Add rule')")
    expect(page.locator(".flash.ok")).to_contain_text("Rule added")
    expect(page.locator("#rules")).to_contain_text("Never write an account number.")
    snap(page, "brand-compliance-rules")
    assert [r.kind for r in compliance.list_rules()] == ["regex"]
