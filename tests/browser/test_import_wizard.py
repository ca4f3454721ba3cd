"""The contact import wizard in a real browser: upload → columns → check → import → report.

Every step is captured at 1280 and 390 px (test-artifacts/import-*.png).
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import snap, user_with_password
from tests.builders import make_contact, make_partner, run_import_jobs

pytestmark = pytest.mark.browser

# A European spreadsheet's export: semicolons, Windows-1252, no consent column, a repeated
# address, an address that is not one, a column nobody needs.
EXPORT = ("E-Mail;Vorname;Nachname;Stadt;Notizen\r\n"
          "maria@example.com;Maria;Dup;Lima;called in May\r\n"
          "zoe@example.com;Zoë;Ærø-Straße;Köln;\r\n"
          "ann@example.com;Ann;Lee;Oslo;VIP\r\n"
          "maria@example.com;Mary;Other;;\r\n"
          "not-an-address;Cy;Oh;Rome;\r\n")


def test_partner_imports_a_file_step_by_step(app, people, tmp_path):
    from sqlalchemy import select

    from campaigns.models import Contact
    from core.db import db

    partner = make_partner(name="Harbor Advisors")
    user = user_with_password("partner_user", partner)
    maria = make_contact(partner, email="maria@example.com", first_name="Maria",
                         last_name="Garcia", consent=False, attributes={"city": "Lima"})
    path = tmp_path / "kunden.csv"
    path.write_bytes(EXPORT.encode("cp1252"))
    person = people(user.email)
    page = person.page

    # 1. Upload.
    person.go("/partner/contacts/import")
    expect(page.locator("h1")).to_have_text("Import contacts from a file")
    expect(page.locator(".steps .current")).to_contain_text("Upload the file")
    snap(page, "import-1-upload")
    page.set_input_files("input[name=file]", str(path))
    page.click("button:text('Upload and continue')")

    # 2. Match the columns: detection said in words, a preview, a proposal per column.
    expect(page.locator("h1")).to_contain_text("Match the columns of “kunden.csv”")
    expect(page.locator(".detected")).to_contain_text("Windows-1252")
    expect(page.locator(".detected")).to_contain_text("semicolon")
    expect(page.locator("table.sheet")).to_contain_text("Zoë")
    expect(page.locator("select[name=target-0]")).to_have_value("email")
    expect(page.locator("select[name=target-1]")).to_have_value("attribute")
    expect(page.locator("#attr-1")).to_be_visible()  # the extra field's name box
    page.select_option("select[name=target-1]", "first_name")
    expect(page.locator("#attr-1")).to_be_hidden()
    page.select_option("select[name=target-2]", "last_name")
    page.fill("input[name=attr-3]", "city")
    page.select_option("select[name=target-4]", "ignore")
    snap(page, "import-2-columns")
    # Attesting consent without saying where it comes from is refused, inline.
    page.check("input[name=consent_mode][value=attested]")
    page.click("button:text('Check the file')")
    expect(page.locator(".consent-choice .field-error")).to_contain_text(
        "Say where the consent comes from")
    expect(page.locator("select[name=target-1]")).to_have_value("first_name")  # kept
    snap(page, "import-2-columns-error")
    page.fill("input[name=consent_source]", "signed paper form at the branch, 2026")
    page.click("button:text('Check the file')")

    # 3. The check: progress, then what would happen; nothing is written yet.
    expect(page.locator("h1")).to_contain_text("Checking “kunden.csv”")
    snap(page, "import-3-checking")
    run_import_jobs(app)  # the worker's part; the page polls until the check is done
    expect(page.locator("h1")).to_contain_text("nothing imported yet", timeout=20_000)
    summary = page.locator(".summary li")
    expect(summary.first).to_contain_text("Consent attested by you")
    expect(page.locator(".import-report .created")).to_have_text("2")
    expect(page.locator(".import-report .updated")).to_have_text("1")
    expect(page.locator(".changes-table")).to_contain_text("Garcia")
    expect(page.locator(".changes-table")).to_contain_text("Dup")
    expect(page.locator(".duplicates-table")).to_contain_text("row 2 has the same address")
    expect(page.locator(".rejected-table")).to_contain_text("invalid email")
    db.session.expire_all()
    assert db.session.get(Contact, maria.id).last_name == "Garcia"
    snap(page, "import-3-report")

    # 4. Import: progress, then the report of what was done.
    page.click("button:text('Import now')")
    expect(page.locator("h1")).to_contain_text("Importing “kunden.csv”")
    snap(page, "import-4-importing")
    run_import_jobs(app)
    expect(page.locator("h1")).to_have_text("Imported “kunden.csv”", timeout=20_000)
    expect(page.locator(".import-report .created")).to_have_text("2")
    snap(page, "import-4-report")
    db.session.expire_all()
    rows = {c.email: c for c in db.session.scalars(
        select(Contact).where(Contact.partner_id == partner.id))}
    assert (rows["maria@example.com"].last_name, rows["maria@example.com"].consent) == (
        "Dup", True)
    assert rows["zoe@example.com"].first_name == "Zoë"
    assert rows["zoe@example.com"].attributes == {"city": "Köln"}
    assert rows["ann@example.com"].consent_source.startswith("signed paper form")
    page.click("text=See your contacts")
    expect(page).to_have_url(re.compile(r"/partner/contacts$"))


def test_a_file_without_consent_says_so_first(app, people, tmp_path):
    partner = make_partner()
    user = user_with_password("partner_user", partner)
    path = tmp_path / "list.csv"
    path.write_text("email,first_name\nann@example.com,Ann\nbob@example.com,Bob\n")
    person = people(user.email)
    page = person.page
    person.go("/partner/contacts/import")
    page.set_input_files("input[name=file]", str(path))
    page.click("button:text('Upload and continue')")
    page.check("input[name=consent_mode][value=none]")
    page.click("button:text('Check the file')")
    run_import_jobs(app)
    first = page.locator(".summary li").first
    expect(first).to_contain_text("No consent column and no attestation", timeout=20_000)
    expect(first).to_have_class(re.compile("warn"))
    expect(page.locator(".confirm-import")).to_contain_text(
        "The new contacts will have no consent to email.")
    snap(page, "import-3-report-no-consent")
