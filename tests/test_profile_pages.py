"""The profile page a partner fills in, its live preview, and the brand's profile approvals."""

from __future__ import annotations

import io

import pytest

from accounts.models import Partner
from core.db import db
from tests.builders import make_journey, make_partner, make_user
from tests.profile_helpers import image_bytes, publish_starter
from tests.test_web_pages import PASSWORD, login, page_token


@pytest.fixture
def setup(app, tmp_path, monkeypatch):
    monkeypatch.setitem(app.config, "MEDIA_DIR", str(tmp_path / "media"))
    partner = make_partner(name="Northside Advisors", tier="gold")
    admin, _ = make_user("partner_admin", partner, password=PASSWORD)
    user, _ = make_user("partner_user", partner, password=PASSWORD)
    brand, _ = make_user("brand_admin", password=PASSWORD)
    return {"partner": partner, "admin": admin, "user": user, "brand": brand,
            "media": tmp_path / "media"}


def _client(app, user):
    client = app.test_client()
    login(client, user.email)
    return client


def _form(token: str, **fields) -> dict:
    base = {"csrf_token": token, "advisor_name": "", "title": "", "display_name": "",
            "phone": "", "website": "", "address": "", "signature": "", "disclosures": ""}
    return {**base, **fields}


def _partner(partner_id: int) -> Partner:
    db.session.expire_all()
    return db.session.get(Partner, partner_id)


def test_the_admin_fills_in_the_profile_with_a_photo(app, setup):
    client = _client(app, setup["admin"])
    showroom = client.get("/partner").get_data(as_text=True)
    assert "Your emails are signed “Northside Advisors”" in showroom
    assert "Add your name and photo" in showroom and 'href="/partner/profile"' in showroom
    page = client.get("/partner/profile").get_data(as_text=True)
    for words in ("Your profile", "Your name", "Your photo", "Disclosures", "Save profile",
                  'enctype="multipart/form-data"', "No photo yet"):
        assert words in page
    token = page_token(client, "/partner/profile")
    # The form's text fields and the photo go up together.
    data = {**_form(token, advisor_name="Ann Northcott", title="Advisor",
                    signature="Warm regards,\r\nAnn"),
            "photo": (io.BytesIO(image_bytes("PNG", (900, 700))), "me.png", "image/png")}
    response = client.post("/partner/profile", data=data, content_type="multipart/form-data")
    assert response.status_code == 302
    partner = _partner(setup["partner"].id)
    assert partner.advisor_name == "Ann Northcott" and partner.signature == "Warm regards,\nAnn"
    assert partner.photo_url.startswith("http://lastmile.test/media/")
    assert len(list(setup["media"].glob("*.jpg"))) == 1
    shown = client.get("/partner/profile").get_data(as_text=True)
    assert "Profile saved" in shown and partner.photo_url in shown
    assert "Remove my photo" in shown
    assert "Add your name and photo" not in client.get("/partner").get_data(as_text=True)


def test_a_bad_value_keeps_what_was_typed_and_saves_nothing(app, setup):
    client = _client(app, setup["admin"])
    token = page_token(client, "/partner/profile")
    data = {**_form(token, advisor_name="Ann Northcott", signature="<b>Ann</b>"),
            "photo": (io.BytesIO(b"just text, not a picture"), "me.png", "image/png")}
    response = client.post("/partner/profile", data=data, content_type="multipart/form-data")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "Nothing was saved" in html and "HTML and template tags are not allowed" in html
    assert "not a PNG, JPEG, WebP or GIF image" in html and "Choose the file again" in html
    assert 'value="Ann Northcott"' in html  # what the partner typed is still there
    assert _partner(setup["partner"].id).advisor_name is None
    assert not setup["media"].exists() or not any(setup["media"].iterdir())
    # As you type: the same rules, as JSON for the form.
    token = page_token(client, "/partner/profile")
    checked = client.post("/partner/profile/validate",
                          data={"csrf_token": token, "website": "northside.example"}).get_json()
    assert checked["ok"] is False and "https://" in checked["fields"]["website"]


def test_a_partner_user_reads_but_cannot_save(app, setup):
    client = _client(app, setup["user"])
    html = client.get("/partner/profile").get_data(as_text=True)
    assert "Only your account" in html and "administrator can change" in html
    assert "Save profile" not in html
    token = page_token(client, "/partner/profile")
    response = client.post("/partner/profile", data=_form(token, advisor_name="Ned"))
    assert response.status_code == 403
    assert _partner(setup["partner"].id).advisor_name is None


def test_the_live_preview_shows_unsaved_values_in_a_showroom_journey(app, setup):
    make_journey(templates=[publish_starter("thank_you")], name="Client appreciation")
    client = _client(app, setup["admin"])
    token = page_token(client, "/partner/profile")
    preview = client.post("/partner/profile/preview", data=_form(
        token, advisor_name="Ann Northcott", disclosures="Member FINRA/SIPC."))
    assert preview.status_code == 200
    assert "default-src 'none'" in preview.headers["Content-Security-Policy"]
    html = preview.get_data(as_text=True)
    assert "Ann Northcott" in html and "Member FINRA/SIPC." in html
    assert _partner(setup["partner"].id).advisor_name is None  # a preview saves nothing
    bad = client.post("/partner/profile/preview", data=_form(token, title="a\nb"))
    assert "Fix these fields" in bad.get_data(as_text=True)
    assert "Your job title" in bad.get_data(as_text=True)
    # With nothing in the showroom the welcome starter shows the signature.
    other = make_partner(name="Harbor", tier="silver")
    lonely, _ = make_user("partner_admin", other, password=PASSWORD)
    client2 = _client(app, lonely)
    assert "Harbor" in client2.get("/partner/profile/preview").get_data(as_text=True)


def test_a_gated_change_waits_in_the_brand_approvals_and_is_approved_there(app, setup):
    brand = _client(app, setup["brand"])
    token = page_token(brand, "/brand/approvals")
    saved = brand.post("/brand/profile-rules", data={"csrf_token": token,
                                                     "rule_disclosures": "on"})
    assert saved.status_code == 302

    admin = _client(app, setup["admin"])
    token = page_token(admin, "/partner/profile")
    admin.post("/partner/profile", data=_form(token, disclosures="New small print."))
    page = admin.get("/partner/profile").get_data(as_text=True)
    assert "Waiting for brand approval" in page and "leave it out until then" in page
    assert "New small print." in page  # the form shows the value waiting for approval
    assert _partner(setup["partner"].id).disclosures is None
    # Saving the form again (another field) keeps the pending change.
    token = page_token(admin, "/partner/profile")
    admin.post("/partner/profile", data=_form(token, disclosures="New small print.",
                                              title="Advisor"))
    assert "Waiting for brand approval" in admin.get("/partner/profile").get_data(as_text=True)

    approvals = brand.get("/brand/approvals").get_data(as_text=True)
    assert "Partner profile changes" in approvals and "New small print." in approvals
    assert "Northside Advisors · Disclosures" in approvals
    token = page_token(brand, "/brand/approvals")
    refused = brand.post(f"/brand/profile-changes/{setup['partner'].id}/disclosures/reject",
                         data={"csrf_token": token, "reason": ""})
    assert refused.status_code == 302
    assert "reason" in brand.get("/brand/approvals").get_data(as_text=True).lower()
    done = brand.post(f"/brand/profile-changes/{setup['partner'].id}/disclosures/approve",
                      data={"csrf_token": token})
    assert done.status_code == 302
    assert _partner(setup["partner"].id).disclosures == "New small print."
    assert "No profile change is waiting" in brand.get("/brand/approvals").get_data(as_text=True)


def test_a_rejection_reason_reaches_the_partner(app, setup):
    brand = _client(app, setup["brand"])
    token = page_token(brand, "/brand/approvals")
    brand.post("/brand/profile-rules", data={"csrf_token": token, "rule_title": "on"})
    admin = _client(app, setup["admin"])
    admin.post("/partner/profile", data=_form(page_token(admin, "/partner/profile"),
                                              title="Best advisor in town"))
    brand.post(f"/brand/profile-changes/{setup['partner'].id}/title/reject",
               data={"csrf_token": token, "reason": "Titles must be job titles."})
    page = admin.get("/partner/profile").get_data(as_text=True)
    assert "The brand did not approve your change" in page
    assert "Titles must be job titles." in page
