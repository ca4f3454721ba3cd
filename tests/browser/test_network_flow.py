"""The partner network in a browser: a brand admin imports partners from CSV, an invited
admin joins from the emailed link and invites a colleague, who resets a forgotten password
by email; the brand admin disables the colleague and their open session ends."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import snap, user_with_password
from tests.builders import listed
from tests.network_helpers import link_in, mails_to

pytestmark = pytest.mark.browser

CSV = ("partner name,tier,region,admin email\n"
       "Harbor Wealth,gold,west,ann@harbor.example\n"
       "Summit Advisors,silver,east,bo@summit.example\n"
       "Delta Plans,gold,south,cy@delta.example\n")
ANN_PASSWORD = "harbor lights at dawn"
DEE_PASSWORD = "first password of dee"
DEE_NEW = "second password of dee"


def _only_mail(mailbox, address: str, count: int = 1):
    found = mails_to(mailbox, address)
    assert len(found) == count, [m["Subject"] for m in found]
    return found[-1]


def test_brand_imports_partners_who_join_invite_reset_and_get_disabled(app, people, mailbox,
                                                                       tmp_path):
    listed(["gold", "silver"], ["west", "east", "south"])  # the brand's tiers and regions
    boss = user_with_password("brand_admin")
    b = people(boss.email)
    page = b.page
    page.click("nav >> text=Partners")
    expect(page.locator("h1")).to_contain_text("Partners")
    snap(page, "network-partners-empty")
    page.click("text=Import from a CSV file")
    csv_path = tmp_path / "partners.csv"
    csv_path.write_text(CSV)
    page.set_input_files("input[name=file]", str(csv_path))
    page.click("button:has-text('Check the file')")
    expect(page.locator(".import-check")).to_contain_text("3 partners will be created")
    snap(page, "network-import-dry-run")
    page.click("button:has-text('Import 3 partners')")
    expect(page.locator(".flash.ok")).to_contain_text("3 partners imported")
    expect(page.locator("table.partners")).to_contain_text("Harbor Wealth")
    snap(page, "network-partners-imported")

    # The invitation reached the catcher; its link sets a password and signs in.
    invitation = _only_mail(mailbox, "ann@harbor.example")
    assert "Harbor Wealth" in invitation.get_body(preferencelist=("plain",)).get_content()
    ann = people()
    ann.page.goto(link_in(invitation))
    expect(ann.page.locator("h1")).to_contain_text("Welcome")
    snap(ann.page, "network-join")
    ann.page.fill("input[name=name]", "Ann Harbor")
    ann.page.fill("input[name=password]", ANN_PASSWORD)
    ann.page.click("button:has-text('Join and sign in')")
    expect(ann.page.locator("nav")).to_contain_text("People")

    # A used link is refused with a page that says so.
    again = people()
    again.page.goto(link_in(invitation))
    expect(again.page.locator(".link-refused")).to_contain_text("already used")
    snap(again.page, "network-link-used")

    # The partner admin invites a colleague, who joins.
    ann.page.click("nav >> text=People")
    ann.page.fill("#invite input[name=email]", "dee@harbor.example")
    ann.page.select_option("#invite select[name=role]", "partner_user")
    ann.page.click("button:has-text('Send the invitation')")
    expect(ann.page.locator(".flash.ok")).to_contain_text("dee@harbor.example")
    expect(ann.page.locator("table.invitations")).to_contain_text("Waiting")
    snap(ann.page, "network-people-invited")
    dee = people()
    dee.page.goto(link_in(_only_mail(mailbox, "dee@harbor.example")))
    dee.page.fill("input[name=name]", "Dee Harbor")
    dee.page.fill("input[name=password]", DEE_PASSWORD)
    dee.page.click("button:has-text('Join and sign in')")
    expect(dee.page.locator("nav")).to_contain_text("Campaigns")

    # Dee forgets the password: the login page's link, an email, a new password.
    forgetful = people()
    forgetful.go("/login")
    forgetful.page.click("text=Forgot your password?")
    forgetful.page.fill("input[name=email]", "dee@harbor.example")
    forgetful.page.click("button:has-text('Email me a link')")
    expect(forgetful.page.locator(".flash.ok")).to_contain_text("If an account uses this")
    snap(forgetful.page, "network-forgot-sent")
    reset = _only_mail(mailbox, "dee@harbor.example", count=2)
    forgetful.page.goto(link_in(reset))
    expect(forgetful.page.locator("h1")).to_contain_text("Choose a new password")
    forgetful.page.fill("input[name=password]", "password123")
    forgetful.page.click("button:has-text('Save and sign in')")
    expect(forgetful.page.locator(".field-error")).to_contain_text("most common")
    snap(forgetful.page, "network-reset-weak")
    forgetful.page.fill("input[name=password]", DEE_NEW)
    forgetful.page.click("button:has-text('Save and sign in')")
    expect(forgetful.page.locator("nav")).to_contain_text("Campaigns")
    # The reset ended Dee's other session; Dee signs in again with the new password.
    dee.page.reload()
    expect(dee.page).to_have_url(re.compile(r"/login"))
    dee.login("dee@harbor.example", DEE_NEW)
    expect(dee.page.locator("nav")).to_contain_text("Campaigns")

    # The brand admin disables Dee (behind a confirmation); Dee's open session ends.
    page.click("table.partners >> text=Harbor Wealth")
    expect(page.locator("h1")).to_contain_text("Harbor Wealth")
    snap(page, "network-partner-detail")
    page.click("text=People and invitations")
    row = page.locator("tr.user-row[data-email='dee@harbor.example']")
    row.locator("summary:has-text('Disable')").click()
    snap(page, "network-disable-confirm")
    row.locator("button:has-text('Yes, disable')").click()
    expect(page.locator(".flash.ok")).to_contain_text("disabled")
    expect(page.locator("tr.user-row[data-email='dee@harbor.example']")).to_contain_text(
        "Disabled")
    snap(page, "network-user-disabled")
    dee.page.reload()
    expect(dee.page).to_have_url(re.compile(r"/login"))
    dee.page.fill("input[name=email]", "dee@harbor.example")
    dee.page.fill("input[name=password]", DEE_NEW)
    dee.page.click("button[type=submit]")
    expect(dee.page.locator(".error")).to_contain_text("disabled")
