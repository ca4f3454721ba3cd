"""A partner goes from the showroom to a scheduled send in the launcher, in a real browser.

The app runs in-process (tests/browser/conftest.py): the test moves the server's clock
(core.clock) and runs the scheduler and workers itself, before and after the send time, and
waits on what the server answers, never on time. Every step is screenshotted at 1280 and
390 px and checked by axe-core (snap()).
"""

from __future__ import annotations

from datetime import datetime

import pytest
from playwright.sync_api import expect

from campaigns import contacts as contacts_service
from core import clock
from tests.browser.conftest import scripts_ready, snap, user_with_password
from tests.builders import make_contact, make_journey, make_partner
from tests.test_pipeline_support import configured, drain

pytestmark = pytest.mark.browser

# Monday 6 May 2030, 14:00 UTC: 09:00 in Chicago (daylight time, UTC-5).
T0 = datetime(2030, 5, 6, 14, 0, 0)


class Clicks:
    """Count what the partner does: each click, choice or field filled is one."""

    def __init__(self, page) -> None:
        self.page, self.count = page, 0

    def click(self, target) -> None:
        self.count += 1
        (self.page.locator(target) if isinstance(target, str) else target).click()

    def fill(self, selector: str, value: str) -> None:
        self.count += 1
        self.page.fill(selector, value)

    def select(self, selector: str, value: str) -> None:
        self.count += 1
        self.page.select_option(selector, value)


def _people(partner):
    vips = [make_contact(partner, email=f"vip{n}@example.com", first_name=f"Vip{n}")
            for n in range(30)]
    for contact in vips:
        contacts_service.update_contact(contact, tags=["vip"])
    unnamed = make_contact(partner, email="noname@example.com", first_name="")
    contacts_service.update_contact(unnamed, tags=["vip"])
    refused = make_contact(partner, email="noconsent@example.com", consent=False)
    contacts_service.update_contact(refused, tags=["vip"])
    others = [make_contact(partner, email=f"other{n}@example.com") for n in range(3)]
    return vips + [unnamed], others


def preview_shows(page, text: str, frame: str = "iframe.preview") -> None:
    expect(page.frame_locator(frame).locator("body")).to_contain_text(text, timeout=60_000)


def test_showroom_to_a_scheduled_send_to_a_filtered_audience(app, people, tmp_path):
    clock.freeze(T0)
    partner = make_partner(name="Harbor Advisors", tier="gold")
    user = user_with_password("partner_user", partner)
    make_journey(name="Spring check-in")
    chosen, others = _people(partner)
    with configured(app, OUTBOX_DIR=str(tmp_path / "outbox")):
        p = people(user.email)
        page = p.page
        p.context.new_cdp_session(page).send("Emulation.setTimezoneOverride",
                                             {"timezoneId": "America/Chicago"})
        p.go("/partner")
        clicks = Clicks(page)
        card = page.locator(".journey-card", has_text="Spring check-in")
        clicks.click(card.locator("button:text('Use this journey')"))

        # 1. Campaign: a sensible name and the sender from the profile, already filled in.
        expect(page.locator('.launch-steps li[aria-current="step"]')).to_contain_text("Campaign")
        expect(page.locator("input[name=name]")).to_have_value("Spring check-in, 6 May 2030")
        expect(page.locator("input[name=sender_name]")).to_have_value("Harbor Advisors")
        snap(page, "launcher-1-campaign")
        clicks.click("button:text('Next: Audience')")

        # 2. Audience: filter by tag, select all matching, see who is left out and why.
        expect(page.locator('.launch-steps li[aria-current="step"]')).to_contain_text("Audience")
        expect(page.locator(".match-count")).to_have_text("35 contacts match.")
        expect(page.locator(".launch-steps li.done a")).to_have_count(1)  # Campaign, linkable
        clicks.select("select[name=tag]", "vip")  # applies at once
        expect(page.locator(".match-count")).to_have_text("32 contacts match.")
        expect(page.locator(".pager")).to_contain_text("Page 1 of 2")
        clicks.click("button.select-all")
        expect(page.locator(".flash.ok")).to_have_text(
            "Added 31 clients. Left out 1: no consent to email (1).")
        expect(page.locator("#chosen-count")).to_have_text("31 clients chosen so far.")
        expect(page.locator(".left-out")).to_contain_text("noconsent@example.com")
        expect(page.locator(".left-out")).to_contain_text("No consent to email")
        snap(page, "launcher-2-audience")
        clicks.click("button:text('Next: Personalize')")

        # 3. Personalize: as-you-type errors in words, the rich-text editor, live preview.
        expect(page.locator('.launch-steps li[aria-current="step"]')).to_contain_text(
            "Personalize")
        headline = page.locator("input[name=v-0-headline]")
        scripts_ready(page)
        with page.expect_response(lambda r: r.url.endswith("/validate") and r.ok,
                                  timeout=60_000):
            headline.fill("x" * 81)
        expect(page.locator('.field-error[data-for="steps.0.headline"]')).to_have_text(
            "Headline: must be at most 80 characters")
        with page.expect_response(lambda r: r.url.endswith("/launch/preview") and r.ok,
                                  timeout=60_000):
            headline.fill("Your spring review")
        expect(page.locator('.field-error[data-for="steps.0.headline"]')).to_be_hidden()
        editor = page.locator(".rt-editor .ql-editor")
        expect(editor).to_contain_text("We are here.")
        expect(page.locator("textarea[name=v-0-body]")).to_be_hidden()  # the editor took over
        editor.click()
        page.keyboard.press("End")
        page.keyboard.press("Enter")
        page.locator(".rt-toolbar .ql-bold").click()
        with page.expect_response(lambda r: r.url.endswith("/launch/preview") and r.ok,
                                  timeout=60_000):
            page.keyboard.type("Book a call")
        assert "<strong>Book a call</strong>" in page.locator(
            "textarea[name=v-0-body]").input_value()
        preview_shows(page, "Book a call")
        snap(page, "launcher-3-personalize")
        clicks.click("button:text('Next: Preview & Send')")

        # 4. Preview & Send: each recipient's message, flags in words, test, schedule.
        expect(page.locator('.launch-steps li[aria-current="step"]')).to_contain_text(
            "Preview & Send")
        expect(page.locator(".flags")).to_contain_text(
            "1 recipient has no first name: they will see “Dear ,”.")
        expect(page.locator("#lock-status")).to_contain_text("Brand lock: intact.")
        preview_shows(page, "Dear Vip0")
        page.fill("input[name=q]", "Vip7")
        page.click("button:text('Find')")
        page.locator(".recipient-picker a", has_text="Vip7").click()
        preview_shows(page, "Dear Vip7")
        page.click("#test-send button:text('Send me a test')")
        expect(page.locator(".flash.ok")).to_contain_text(f"Test sent to {user.email}")
        preview_shows(page, "Dear Vip0")
        snap(page, "launcher-4-preview-send")
        clicks.fill("#send input[name=date]", "2030-05-06")
        clicks.fill("#send input[name=time]", "09:01")
        expect(page.locator("#send select[name=timezone]")).to_have_value("America/Chicago")
        clicks.click("#send button[value=later]")
        expect(page.locator(".confirm-question")).to_have_text(
            "Send to 31 clients at Mon 6 May, 9:01 America/Chicago?")
        expect(page.locator(".recipient-picker")).to_have_count(0)  # just the question now
        snap(page, "launcher-5-confirm")
        clicks.click("button:text('Yes, schedule it')")
        expect(page.locator("#schedule-status")).to_contain_text(
            "Scheduled: goes to 31 clients at Mon 6 May, 9:01 America/Chicago.")
        print(f"\nclicks from the showroom to a scheduled send: {clicks.count}")
        assert clicks.count <= 12
        snap(page, "launcher-6-scheduled")

        # Nothing leaves before the time, however often the scheduler runs.
        drain(app)
        clock.advance(seconds=59)
        drain(app)
        page.reload()
        expect(page.locator('[data-count="sent"] b')).to_have_text("0")
        p.go("/outbox")
        expect(page.locator("table.outbox")).not_to_contain_text("vip0@example.com")
        # At the time, it goes to the filtered audience only (and the test was only to me).
        clock.advance(seconds=1)
        drain(app)
        p.go("/outbox")
        outbox = page.locator("table.outbox")
        for contact in chosen[:3]:
            expect(outbox).to_contain_text(contact.email)
        expect(outbox).to_contain_text(user.email)
        for contact in others:
            expect(outbox).not_to_contain_text(contact.email)
        expect(outbox).not_to_contain_text("noconsent@example.com")


def test_leaving_at_personalize_and_coming_back_keeps_what_was_entered(app, people):
    clock.freeze(T0)
    partner = make_partner(name="Harbor Advisors", tier="gold")
    user = user_with_password("partner_user", partner)
    make_journey(name="Autumn letter")
    for n in range(3):
        make_contact(partner, email=f"client{n}@example.com")
    p = people(user.email)
    page = p.page
    p.go("/partner")
    page.locator(".journey-card", has_text="Autumn letter").locator("button").click()
    page.fill("input[name=name]", "Autumn for my clients")
    page.click("button:text('Next: Audience')")
    page.locator("input[name=contact_ids]").nth(1).check()
    page.click("button:text('Next: Personalize')")
    expect(page.locator('.launch-steps li[aria-current="step"]')).to_contain_text("Personalize")
    scripts_ready(page)
    with page.expect_response(lambda r: r.url.endswith("/launch/preview") and r.ok,
                              timeout=60_000):
        page.fill("input[name=v-0-headline]", "Autumn news")
    page.click("button:text('Back')")  # Back keeps what was typed
    expect(page.locator('.launch-steps li[aria-current="step"]')).to_contain_text("Audience")
    expect(page.locator("#chosen-count")).to_have_text("1 client chosen so far.")

    # Away, then back through the campaigns list: the draft opens at its next unfinished step.
    p.go("/partner/campaigns")
    page.locator("tr", has_text="Autumn for my clients").locator("a.continue").click()
    expect(page.locator('.launch-steps li[aria-current="step"]')).to_contain_text(
        "Personalize")
    expect(page.locator("input[name=v-0-headline]")).to_have_value("Autumn news")
    expect(page.locator(".step-of")).to_contain_text("1 client chosen")
    page.locator(".launch-steps a", has_text="Campaign").click()
    expect(page.locator("input[name=name]")).to_have_value("Autumn for my clients")
    snap(page, "launcher-resumed")
