"""The three kinds of user in a real browser: author, personalize and send, approve, observe."""

from __future__ import annotations

import re
from datetime import datetime

import pytest
import redis
from playwright.sync_api import expect

from core import clock
from tests.browser.conftest import snap, user_with_password
from tests.builders import (
    make_campaign,
    make_contact,
    make_journey,
    make_partner,
    run_import_jobs,
)

pytestmark = pytest.mark.browser

T0 = datetime(2030, 5, 6, 9, 0, 0)
BAD_MJML = """<mjml>
  <mj-body>
    <mj-section>
      <mj-column>
        <mj-text>{{ slots.headline }}</mj-text>
        <mj-bogus>{{ slots.body }}</mj-bogus>
      </mj-column>
    </mj-section>
  </mj-body>
</mjml>"""
GOOD_MJML = BAD_MJML.replace("mj-bogus", "mj-text") .replace(
    "</mj-column>", '<mj-button href="https://brand.example/offer">See the offer</mj-button>\n'
    "      </mj-column>", 1)


def test_marketer_authors_template_and_journey(app, people):
    from journeys import services as journeys

    marketer = user_with_password("brand_marketer")
    make_partner(name="Harbor Advisors", tier="gold")  # lists the tier "gold"
    m = people(marketer.email)
    page = m.page
    expect(page).to_have_url(re.compile(r"/brand$"))

    page.click("text=New template")
    page.fill("input[name=name]", "Spring welcome")
    page.fill("input[name=subject]", "Hello {{ contact.first_name }}")
    # The starter form has two slots (headline, body); the live preview renders them.
    expect(page.locator(".slot-row")).to_have_count(2)
    expect(page.frame_locator("iframe[name=preview]").locator("body")).to_contain_text(
        "Hello from us")
    page.fill("textarea[name=mjml]", BAD_MJML)
    page.click("button:text('Save draft')")
    error = page.locator(".line-error")
    expect(error).to_contain_text("Line 6")
    expect(error).to_contain_text("mj-bogus")
    expect(page.locator(".code-excerpt li.bad")).to_contain_text("<mj-bogus>")

    page.fill("textarea[name=mjml]", GOOD_MJML)
    page.click("button:text('Save draft')")
    expect(page.locator(".flash.ok")).to_contain_text("Draft version 1 saved")
    page.click("button:text('Publish latest draft')")
    expect(page.locator(".flash.ok")).to_contain_text("Version 1 published")
    template_id = int(re.search(r"/brand/templates/(\d+)", page.url).group(1))
    assert journeys.published_version(template_id).links

    page.click("nav >> text=Journeys")
    page.click("text=New journey")
    page.fill("input[name=name]", "Spring series")
    page.fill("input[name=category]", "Seasonal")
    page.fill("textarea[name=description]", "Two mails for the spring offer.")
    page.check("input[name=tiers][value=gold]")
    page.check("input[name=requires_approval]")
    page.select_option("select[name=step-0-template_id]", str(template_id))
    page.click("button:text('Add step')")
    page.select_option("select[name=step-1-template_id]", str(template_id))
    page.fill("input[name=step-1-delay_hours]", "48")
    page.select_option("select[name=step-1-when]", "not_opened")
    page.click("button:text('Save draft')")
    expect(page.locator(".flash.ok")).to_contain_text("Journey saved")
    expect(page.locator("#reach")).to_contain_text("reaches 1 partner")
    page.click("button:text('Publish')")
    expect(page.locator("h1 .badge")).to_have_text("published")
    expect(page.locator(".flash.ok")).to_contain_text("1 partner now sees it")

    journey = journeys.list_journeys("published")[0][0]
    assert journey.audience_tiers == ["gold"] and journey.requires_approval
    assert [(s.delay_hours, s.condition) for s in journey.steps] == [(0, "always"),
                                                                    (48, "not_opened")]
    snap(page, "marketer-journey")


def test_partner_sends_marketer_approves_and_sees_engagement(app, people, tmp_path):
    from tests.test_pipeline_support import drain
    from tracking import ingest

    clock.freeze(T0)
    journey = make_journey(steps=2, requires_approval=True, tiers=["gold"],
                           name="Gold spring series")
    gold = make_partner(name="Harbor Advisors", tier="gold")
    silver = make_partner(name="Silver Shop", tier="silver")
    partner_user = user_with_password("partner_user", gold)
    silver_user = user_with_password("partner_user", silver)
    marketer = user_with_password("brand_marketer")

    # A partner of another tier never sees the journey.
    s = people(silver_user.email)
    expect(s.page.locator("main")).not_to_contain_text("Gold spring series")
    assert s.go(f"/partner/journeys/{journey.id}").status == 404

    p = people(partner_user.email)
    page = p.page
    card = page.locator(".journey-card", has_text="Gold spring series")
    expect(card).to_contain_text("2 steps")
    expect(card.frame_locator("iframe").locator("body")).to_contain_text("Hello from us")
    snap(page, "partner-showroom")
    # The card starts the launcher (tests/browser/test_launcher_flow.py); this flow keeps the
    # one-page personalization form, still served at the journey's address.
    expect(card.locator("button")).to_have_text("Use this journey")
    p.go(f"/partner/journeys/{journey.id}")

    headline = page.locator("input[name=v-0-headline]")
    expect(headline).to_have_value("Hello from us")
    # Wait for the server's answer to the as-you-type check, not for a time: on a loaded
    # machine the check (and the live preview beside it) can take longer than any timeout.
    with page.expect_response(lambda r: r.url.endswith("/validate") and r.ok,
                              timeout=60_000):
        headline.fill("x" * 81)
    expect(page.locator('.field-error[data-for="steps.0.headline"]')).to_have_text(
        "must be at most 80 characters")
    expect(page.locator('.counter[data-for="v-0-headline"]')).to_have_text("81 / 80")
    with page.expect_response(lambda r: r.url.endswith("/validate") and r.ok,
                              timeout=60_000), \
            page.expect_response(lambda r: r.url.endswith("/preview") and r.ok,
                                 timeout=60_000):
        headline.fill("Spring savings for you")
    expect(page.locator('.field-error[data-for="steps.0.headline"]')).to_be_hidden()
    expect(page.frame_locator("iframe[name=preview]").locator("body")).to_contain_text(
        "Spring savings for you")
    snap(page, "partner-personalize")
    page.fill("input[name=name]", "Spring at Harbor")
    page.click("button:text('Save campaign')")
    expect(page.locator(".flash.ok")).to_contain_text("Campaign saved")
    campaign_url = page.url

    # Import contacts through the wizard (tests/browser/test_import_wizard.py covers it).
    csv = tmp_path / "contacts.csv"
    csv.write_text("email,first_name,last_name,consent\nann@example.com,Ann,Lee,yes\n"
                   "bob@example.com,Bob,Ray,no\nnot-an-email,Cy,Oh,yes\n")
    p.go("/partner/contacts")
    page.set_input_files("input[name=file]", str(csv))
    page.click("button:text('Import')")
    page.click("button:text('Check the file')")  # the consent column is used
    run_import_jobs(app)  # the worker's part; the page polls until the check is done
    page.click("button:text('Import now')")
    run_import_jobs(app)
    report = page.locator(".import-report")
    expect(report.locator(".created")).to_have_text("2", timeout=20_000)
    expect(page.locator(".rejected-table tbody")).to_contain_text("invalid email")
    snap(page, "partner-import")

    page.goto(campaign_url)
    page.click("button:text('Add all')")
    expect(page.locator(".add-result")).to_contain_text("1 contact added")
    expect(page.locator("table.exclusions")).to_contain_text("bob@example.com")
    expect(page.locator("table.exclusions")).to_contain_text("No consent to email")
    page.click("#send button[value=now]")  # "Submit for approval", then the page asks
    page.click("button:text('Yes, submit for approval')")
    expect(page.locator("#campaign-status")).to_have_text("Waiting for brand approval")

    # The marketer sees only what changed, and approves.
    m = people(marketer.email)
    m.go("/brand/approvals")
    approval = m.page.locator(".approval", has_text="Spring at Harbor")
    expect(approval.locator("ins").first).to_have_text("Spring savings for you")
    expect(approval.locator("del").first).to_have_text("Hello from us")
    expect(approval.locator("dt")).to_have_count(1)
    snap(m.page, "marketer-approvals")
    approval.locator("button:text('Approve')").click()
    expect(m.page.locator(".flash.ok")).to_contain_text("approved")

    # The pipeline runs in-process and puts the mail in the outbox.
    drain(app)
    p.go("/outbox")
    row = page.locator("table.outbox tr", has_text="ann@example.com")
    expect(row).to_contain_text("Spring savings for you")
    row.locator("a").click()
    message = page.frame_locator("iframe.preview")
    expect(message.locator("body")).to_contain_text("Spring savings for you")
    snap(page, "outbox-message")
    href = message.locator("a[href*='/t/c/']").first.get_attribute("href")
    assert href.startswith(p.base + "/t/c/")

    # A reader clicks an hour later (not a scanner); the redirect lands on the brand's site.
    clock.advance(hours=1)
    landed: list[str] = []

    def follow_to_brand_site(route) -> None:
        # The tracked request really reaches the server (with the browser's headers); the
        # brand's site it redirects to is outside this sandbox, so it is stood in for here.
        response = route.fetch(max_redirects=0)
        assert response.status == 302
        landed.append(response.headers["location"])
        route.fulfill(body="<h1>Brand site</h1>", content_type="text/html")

    page.route("**/t/c/**", follow_to_brand_site)
    page.goto(href)
    expect(page.locator("h1")).to_have_text("Brand site")
    assert landed and landed[0].startswith("https://brand.example/")
    ingest.drain_all(redis.Redis.from_url(app.config["REDIS_URL"]))

    m.go(f"/brand/analytics/journeys/{journey.id}")
    expect(m.page.locator('[data-metric="sent"] b')).to_have_text("1")
    expect(m.page.locator('[data-metric="unique_opens"] b')).to_have_text("1")
    expect(m.page.locator('[data-metric="unique_clicks"] b')).to_have_text("1")
    expect(m.page.locator("table.leaderboard")).to_contain_text("Harbor Advisors")
    expect(m.page.locator("table.links tbody tr")).to_have_count(1)
    assert m.page.evaluate("document.querySelectorAll('canvas').length") == 3
    assert m.page.evaluate("!!window.Chart")
    snap(m.page, "marketer-dashboard")

    page.goto(campaign_url)
    recipient = page.locator("table.recipients tr", has_text="ann@example.com")
    expect(recipient.locator(".opens")).to_have_text("1")
    expect(recipient.locator(".clicks")).to_have_text("1")
    snap(page, "partner-campaign")


def test_hostile_text_stays_text_and_forms_need_their_token(app, people):
    from tracking import ingest, services

    journey = make_journey(steps=1, quick_send=True, name="Quick hello")
    owner = make_partner(tier="gold")
    owner_user = user_with_password("partner_user", owner)
    contact = make_contact(owner, email="mallory@example.com",
                           first_name="<script>alert('name')</script>")
    campaign = make_campaign(owner, owner_user, journey, contacts=[contact])
    from tests.builders import make_sent_message

    send = make_sent_message(campaign, email="mallory@example.com")
    from core.tokens import make_token

    token = make_token(app.config["SECRET_KEY"], "open", send.id)
    services.get_recorder(app).open(token, "<script>alert('ua')</script>", "192.0.2.1")
    ingest.drain_all(redis.Redis.from_url(app.config["REDIS_URL"]))

    p = people(owner_user.email)
    page = p.page
    p.go("/partner/contacts")
    expect(page.locator("table.contacts")).to_contain_text("<script>alert('name')</script>")
    p.go(f"/partner/campaigns/{campaign.id}/report")
    expect(page.locator("td.ua").first).to_have_text("<script>alert('ua')</script>")
    p.go(f"/partner/campaigns/{campaign.id}")
    expect(page.locator("table.recipients")).to_contain_text("<script>alert('name')</script>")

    # A slot value with markup is refused, and shown back as text.
    p.go(f"/partner/journeys/{journey.id}")
    page.fill("input[name=v-0-headline]", "<script>alert('slot')</script>")
    page.click("button:text('Save campaign')")
    expect(page.locator('.field-error[data-for="steps.0.headline"]')).not_to_be_empty()
    expect(page.locator("input[name=v-0-headline]")).to_have_value(
        "<script>alert('slot')</script>")

    # Quick send from a contact's row: choose, preview, confirm; the name stays text.
    p.go("/partner/contacts")
    page.locator("tr", has_text="mallory@example.com").locator("text=Quick send").click()
    page.click("button:text('Choose “Quick hello”')")
    page.click("button:text('Next: preview')")
    page.click("button:text('Yes, send now')")
    expect(page.locator(".flash.ok")).to_contain_text("<script>alert('name')</script>")

    # A form posted without its CSRF token is refused.
    p.go("/partner/contacts")
    page.evaluate("document.querySelectorAll('input[name=csrf_token]')"
                  ".forEach(function (i) { i.remove(); })")
    page.fill("input[name=email]", "eve@example.com")
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.click("button:text('Add contact')")
    assert posted.value.status == 400
    from campaigns.contacts import list_contacts

    assert list_contacts(owner.id, "eve")[1] == 0

    # Another partner's campaign answers 404, like a missing one.
    other = user_with_password("partner_admin", make_partner(tier="gold"))
    intruder = people(other.email)
    assert intruder.go(f"/partner/campaigns/{campaign.id}").status == 404
    assert intruder.go(f"/partner/campaigns/{campaign.id + 999}").status == 404
    snap(page, "partner-contacts")
