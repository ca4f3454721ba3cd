"""A partner schedules a campaign a minute ahead and sends themselves a test, in a real browser.

The app runs in-process (tests/browser/conftest.py), so the test moves the server's clock
(core.clock) and runs the scheduler and workers itself, before and after the send time.
"""

from __future__ import annotations

import re
from datetime import datetime

import pytest
from playwright.sync_api import expect

from core import clock
from tests.browser.conftest import snap, user_with_password
from tests.builders import make_campaign, make_contact, make_journey, make_partner
from tests.test_pipeline_support import configured, drain

pytestmark = pytest.mark.browser

# Monday 6 May 2030, 14:00 UTC: 09:00 in Chicago (daylight time, UTC-5).
T0 = datetime(2030, 5, 6, 14, 0, 0)


def preview_shown(page, text: str = "Your spring review") -> None:
    """Wait until the page's message preview has rendered (so screenshots show it)."""
    expect(page.frame_locator("iframe.preview").locator("body")).to_contain_text(text)


def test_partner_schedules_a_minute_ahead_and_sends_a_test(app, people, tmp_path):
    clock.freeze(T0)
    partner = make_partner(name="Harbor Advisors", tier="gold")
    user = user_with_password("partner_user", partner)
    clients = [make_contact(partner, email=f"client{n}@example.com", first_name=f"Client{n}")
               for n in range(3)]
    campaign = make_campaign(partner, user, make_journey(steps=2, name="Spring check-in"),
                             clients, slot_values={"headline": "Your spring review"},
                             name="Spring check-in")
    with configured(app, OUTBOX_DIR=str(tmp_path / "outbox")):
        p = people(user.email)
        page = p.page
        # The browser is in Chicago: the zone select starts there.
        p.context.new_cdp_session(page).send("Emulation.setTimezoneOverride",
                                             {"timezoneId": "America/Chicago"})
        p.go(f"/partner/campaigns/{campaign.id}")
        send = page.locator("#send")
        expect(send.locator("select[name=timezone]")).to_have_value("America/Chicago")
        expect(send.locator("button[value=now]")).to_have_text("Send now")
        expect(send).to_contain_text("3 clients will get it.")
        preview_shown(page)
        snap(page, "schedule-campaign-draft")

        # "Send me a test": only to me, marked [TEST], and in my outbox.
        page.locator("#test-send button:text('Send me a test')").click()
        expect(page.locator(".flash.ok")).to_contain_text(f"Test sent to {user.email}")
        expect(page.locator(".last-test")).to_contain_text("sent")
        p.go("/outbox")
        rows = page.locator("table.outbox tbody tr")
        expect(rows).to_have_count(2)  # one per step
        expect(rows.first).to_contain_text("[TEST] Your spring review, Alex")
        expect(rows.first).to_contain_text(user.email)
        expect(page.locator("table.outbox")).not_to_contain_text("client0@example.com")
        rows.first.locator("a").click()
        message = page.frame_locator("iframe.preview")
        expect(message.locator("body")).to_contain_text("Your spring review")
        assert message.locator("a[href*='/t/c/']").count() == 0  # untracked
        snap(page, "schedule-test-in-outbox")

        # Schedule it a minute ahead, in Chicago time; the page asks first, naming the count.
        p.go(f"/partner/campaigns/{campaign.id}")
        send.locator("input[name=date]").fill("2030-05-06")
        send.locator("input[name=time]").fill("09:01")
        send.locator("button[value=later]").click()
        question = page.locator(".confirm-question")
        expect(question).to_have_text("Send to 3 clients at Mon 6 May, 9:01 America/Chicago?")
        preview_shown(page)
        snap(page, "schedule-confirm")
        page.click("button:text('Yes, schedule it')")
        status = page.locator("#schedule-status")
        expect(status).to_contain_text(
            "Scheduled: goes to 3 clients at Mon 6 May, 9:01 America/Chicago.")
        expect(page.locator("#campaign-status")).to_have_text(
            "Scheduled for Mon 6 May, 9:01 America/Chicago")
        preview_shown(page)
        snap(page, "schedule-scheduled")

        # Scheduler and workers run before the time: nothing leaves.
        drain(app)
        clock.advance(seconds=59)
        drain(app)
        page.reload()
        expect(page.locator("#campaign-status")).to_have_text(
            "Scheduled for Mon 6 May, 9:01 America/Chicago")
        expect(page.locator('[data-count="sent"] b')).to_have_text("0")
        p.go("/outbox")
        expect(page.locator("table.outbox")).not_to_contain_text("client0@example.com")

        # At the time: it goes.
        clock.advance(seconds=1)
        drain(app)
        p.go(f"/partner/campaigns/{campaign.id}")
        expect(page.locator('[data-count="sent"] b')).to_have_text("3")
        expect(page.locator("#campaign-status")).to_have_text("Sending")
        p.go("/outbox")
        for n in range(3):
            expect(page.locator("table.outbox")).to_contain_text(f"client{n}@example.com")
        snap(page, "schedule-sent-outbox")


def test_under_approval_the_page_says_what_happens_next(app, people):
    clock.freeze(T0)
    partner = make_partner(name="Harbor Advisors", tier="gold")
    user = user_with_password("partner_user", partner)
    campaign = make_campaign(partner, user, make_journey(requires_approval=True),
                             [make_contact(partner)], name="Needs approval")
    p = people(user.email)
    page = p.page
    p.go(f"/partner/campaigns/{campaign.id}")
    expect(page.locator(".bar a.button")).to_have_text("Submit for approval")
    send = page.locator("#send")
    send.locator("input[name=date]").fill("2030-05-07")
    send.locator("input[name=time]").fill("08:30")
    send.locator("select[name=timezone]").select_option("Europe/Oslo")
    send.locator("button[value=later]").click()
    expect(page.locator(".confirm-question")).to_have_text("Submit for approval?")
    expect(page.locator("#send")).to_contain_text(
        "Once the brand approves it, it goes to 1 client at Tue 7 May, 8:30 Europe/Oslo")
    page.click("button:text('Yes, submit for approval')")
    expect(page.locator("#campaign-status")).to_have_text("Waiting for brand approval")
    expect(page.locator("#schedule-status")).to_contain_text(
        re.compile(r"Once approved, it goes out at Tue 7 May, 8:30 Europe/Oslo"))
    preview_shown(page, "Hello from us")
    snap(page, "schedule-pending-approval")
