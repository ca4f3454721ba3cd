"""A partner fills in the profile (with a photo) and finds it in the next campaign preview;
the brand approves a gated change from its approvals page."""

from __future__ import annotations

import re

import pytest
from PIL import Image, ImageDraw
from playwright.sync_api import expect

from accounts import profile as profiles
from tests.browser.conftest import ARTIFACTS, WIDTHS, scripts_ready, snap, user_with_password
from tests.builders import make_campaign, make_journey, make_partner
from tests.profile_helpers import publish_starter

pytestmark = pytest.mark.browser


def _portrait(path) -> str:
    """A 1200×1600 'photo' (an illustration, not a person) as a phone would save it."""
    img = Image.new("RGB", (1200, 1600), (226, 232, 240))
    draw = ImageDraw.Draw(img)
    draw.ellipse((420, 330, 780, 730), fill=(200, 150, 120))
    draw.ellipse((250, 800, 950, 1700), fill=(40, 70, 120))
    img.save(path, "JPEG", quality=90)
    return str(path)


def shoot_preview(page, selector: str, name: str) -> None:
    """Save the email preview itself, scrolled into view, at each width (a full-page shot
    does not paint an iframe below the fold)."""
    ARTIFACTS.mkdir(exist_ok=True)
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        frame = page.locator(selector)
        frame.scroll_into_view_if_needed()
        expect(page.frame_locator(selector).locator("body")).to_contain_text("Ann Northcott")
        frame.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"))
    page.set_viewport_size({"width": 1280, "height": 900})


@pytest.fixture
def media(app, tmp_path, monkeypatch):
    monkeypatch.setitem(app.config, "MEDIA_DIR", str(tmp_path / "media"))
    return tmp_path


def test_partner_fills_in_the_profile_and_sees_it_in_the_next_campaign_preview(app, people,
                                                                               media):
    partner = make_partner(name="Northside Advisors", tier="gold")
    admin = user_with_password("partner_admin", partner)
    journey = make_journey(templates=[publish_starter("welcome")], name="Welcome series")
    campaign = make_campaign(partner, admin, journey, name="Spring welcome")

    p = people(admin.email)
    page = p.page
    page.click("nav >> text=Profile")
    expect(page.locator("h1")).to_have_text("Your profile")
    expect(page.locator(".image-box.photo")).to_contain_text("No photo yet")
    snap(page, "profile-empty")
    scripts_ready(page)

    with page.expect_response(lambda r: r.url.endswith("/partner/profile/preview") and r.ok,
                              timeout=60_000):
        page.fill("input[name=advisor_name]", "Ann Northcott")
    page.fill("input[name=title]", "Senior Financial Advisor")
    page.fill("input[name=phone]", "+1 555 0100")
    page.fill("textarea[name=signature]", "Warm regards,\nAnn")
    page.fill("textarea[name=disclosures]",
              "Securities offered through Example Securities LLC, member FINRA/SIPC.")
    page.set_input_files("input[name=photo]", _portrait(media / "ann.jpg"))
    expect(page.locator("#photo-img")).to_be_visible()  # the chosen picture, before saving
    expect(page.locator(".image-box.photo .image-empty")).to_be_hidden()
    # The live preview shows the unsaved values in the partner's own journey.
    frame = page.frame_locator("iframe[name=preview]")
    expect(frame.locator("body")).to_contain_text("Ann Northcott", timeout=60_000)
    expect(frame.locator("body")).to_contain_text("Example Securities LLC", timeout=60_000)
    snap(page, "profile-filled")
    shoot_preview(page, "iframe[name=preview]", "profile-live-preview")

    page.click("button:text('Save profile')")
    expect(page.locator(".flash.ok")).to_contain_text("Profile saved")
    expect(page.locator("#photo-img")).to_have_attribute(
        "src", re.compile(r"/media/[0-9a-f]{40}\.jpg$"))
    expect(page.locator("input[name=advisor_name]")).to_have_value("Ann Northcott")
    snap(page, "profile-saved")

    # The next campaign preview is signed by the advisor, with the uploaded photo loaded.
    p.go(f"/partner/campaigns/{campaign.id}")
    preview = page.frame_locator("iframe[name=campaign-preview]")
    expect(preview.locator("body")).to_contain_text("Ann Northcott")
    expect(preview.locator("body")).to_contain_text("Senior Financial Advisor")
    photo = preview.locator("img[src*='/media/']").first
    expect(photo).to_be_visible()
    assert photo.evaluate("img => img.complete && img.naturalWidth") == 400
    snap(page, "profile-campaign-preview")
    shoot_preview(page, "iframe[name=campaign-preview]", "profile-campaign-email")


def test_the_brand_approves_a_gated_profile_change(app, people, media):
    partner = make_partner(name="Harbor Financial", tier="silver")
    admin = user_with_password("partner_admin", partner)
    marketer = user_with_password("brand_marketer")
    brand_admin = user_with_password("brand_admin")
    profiles.set_approval_fields(["disclosures"], brand_admin)

    p = people(admin.email)
    page = p.page
    p.go("/partner/profile")
    expect(page.locator(".field-status.gated")).to_contain_text("The brand approves changes")
    page.fill("textarea[name=disclosures]", "Harbor Financial is a member of Example Network.")
    page.click("button:text('Save profile')")
    expect(page.locator(".flash.ok")).to_contain_text("Waiting for brand approval: Disclosures")
    status = page.locator(".field-status.pending")
    expect(status).to_contain_text("Waiting for brand approval.")
    expect(status).to_contain_text("leave it out until then")
    snap(page, "profile-pending")

    m = people(marketer.email)
    m.go("/brand/approvals")
    change = m.page.locator(".approval", has_text="Harbor Financial · Disclosures")
    expect(change.locator("ins")).to_have_text(
        "Harbor Financial is a member of Example Network.")
    rule = m.page.locator("input[name=rule_disclosures]")
    expect(rule).to_be_checked()
    expect(rule).to_be_disabled()  # only a brand admin changes the rules
    snap(m.page, "brand-profile-approvals")
    change.locator("button:text('Approve')").click()
    expect(m.page.locator(".flash.ok")).to_contain_text("approved")
    expect(m.page.locator("main")).to_contain_text("No profile change is waiting")

    p.go("/partner/profile")
    expect(page.locator(".field-status.pending")).to_have_count(0)
    expect(page.locator("textarea[name=disclosures]")).to_have_value(
        "Harbor Financial is a member of Example Network.")
