"""The partner profile through HTTP: tenancy, validation, brand approval, and what emails show."""

from __future__ import annotations

import io

import pytest

from accounts.models import Partner, ProfileChange
from core.db import db
from tests.builders import make_campaign, make_journey, make_partner, make_user
from tests.profile_helpers import image_bytes, publish_starter

FULL = {
    "display_name": "Northside Advisors",
    "advisor_name": "Ann Northcott",
    "title": "Senior Financial Advisor",
    "signature": "Warm regards,\nAnn",
    "phone": "+1 555 0100",
    "address": "1 North Street, Springfield",
    "website": "https://northside.example",
    "disclosures": "Securities offered through Example Securities, member FINRA/SIPC.",
}


@pytest.fixture
def media_dir(app, tmp_path, monkeypatch):
    folder = tmp_path / "media"
    monkeypatch.setitem(app.config, "MEDIA_DIR", str(folder))
    monkeypatch.setitem(app.config, "BRAND_IMAGE_DOMAINS", "cdn.brand.example")
    return folder


@pytest.fixture
def people(make_api):
    """A partner with an admin and a user, another partner's admin, and both brand roles."""
    partner, other = make_partner(name="Northside"), make_partner(name="Harbor")
    tokens = {
        "admin": make_user("partner_admin", partner)[1],
        "user": make_user("partner_user", partner)[1],
        "other": make_user("partner_admin", other)[1],
        "brand": make_user("brand_admin")[1],
        "marketer": make_user("brand_marketer")[1],
    }
    apis = {k: make_api(t) for k, t in tokens.items()}
    apis["partner"] = partner
    apis["other_partner"] = other
    return apis


def _url(partner, tail: str = "") -> str:
    return f"/api/partners{'' if partner is None else '/' + str(partner.id)}/profile{tail}"


def _stored(partner_id: int) -> dict:
    db.session.expire_all()
    partner = db.session.get(Partner, partner_id)
    return {k: getattr(partner, k) for k in FULL} | {"photo_url": partner.photo_url,
                                                     "logo_url": partner.logo_url}


# ------------------------------------------------------------------------------ tenancy


def test_each_role_reaches_only_the_profiles_it_may(app, people, media_dir):
    partner, other = people["partner"], people["other_partner"]
    saved = people["admin"].put(_url(partner), json={"advisor_name": "Ann"})
    assert saved.status_code == 200, saved.get_json()
    assert saved.get_json()["fields"]["advisor_name"] == "Ann"
    assert saved.get_json()["update"] == {"applied": ["advisor_name"], "pending": []}
    # A partner user reads its own profile but cannot change it.
    assert people["user"].get(_url(partner)).get_json()["fields"]["advisor_name"] == "Ann"
    assert people["user"].put(_url(partner), json={"advisor_name": "Ned"}).status_code == 403
    photo = {"file": (io.BytesIO(image_bytes()), "me.png")}
    assert people["user"].post(_url(partner, "/photo"), data=photo,
                               content_type="multipart/form-data").status_code == 403
    # Another partner's admin: 404 exactly like a partner that does not exist.
    for response in (people["other"].get(_url(partner)),
                     people["other"].put(_url(partner), json={"advisor_name": "Eve"}),
                     people["other"].post(_url(partner, "/photo"),
                                          data={"file": (io.BytesIO(image_bytes()), "x.png")},
                                          content_type="multipart/form-data"),
                     people["admin"].get("/api/partners/999999/profile")):
        assert response.status_code == 404
        assert response.get_json()["error"]["code"] == "not_found"
    assert not any(media_dir.glob("*")) if media_dir.exists() else True
    # The brand: an admin edits any partner; a marketer reads but does not edit.
    assert people["brand"].put(_url(other), json={"title": "Owner"}).status_code == 200
    assert people["marketer"].get(_url(other)).get_json()["fields"]["title"] == "Owner"
    assert people["marketer"].put(_url(other), json={"title": "X"}).status_code == 403
    assert _stored(partner.id)["advisor_name"] == "Ann"
    assert _stored(other.id)["title"] == "Owner"
    # Only the brand decides on changes and rules.
    for role in ("admin", "user", "other"):
        assert people[role].post(_url(partner, "/approve")).status_code == 403
        assert people[role].post(_url(partner, "/reject"), json={"reason": "x"}).status_code \
            == 403
        assert people[role].get("/api/profile-changes").status_code == 403
        assert people[role].put("/api/brand/profile-rules",
                                json={"approval_required": []}).status_code == 403
    assert people["marketer"].put("/api/brand/profile-rules",
                                  json={"approval_required": []}).status_code == 403


# ------------------------------------------------------------------------------ validation


@pytest.mark.parametrize(("body", "field", "words"), [
    ({"photo_url": "https://evil.example/me.png"}, "photo_url", "cdn.brand.example"),
    ({"logo_url": "https://cdn.brand.example.evil.example/l.png"}, "logo_url",
     "cdn.brand.example"),
    ({"photo_url": "http://cdn.brand.example/me.png"}, "photo_url", "https://"),
    ({"photo_url": "javascript:alert(1)"}, "photo_url", "https://"),
    ({"logo_url": "https://user:pw@cdn.brand.example/l.png"}, "logo_url", "password"),
    ({"website": "ftp://northside.example"}, "website", "http"),
    ({"website": "https://north side.example"}, "website", "spaces"),
    ({"advisor_name": "Ann\r\nBcc: victim@example.com"}, "advisor_name", "single line"),
    ({"title": "Advisor\nof the year"}, "title", "single line"),
    ({"phone": "555\x000100"}, "phone", "NUL characters"),
    ({"display_name": "North\u202eside"}, "display_name", "control"),
    ({"signature": "<b>Ann</b>"}, "signature", "plain text"),
    ({"disclosures": "{{ brand.name }}"}, "disclosures", "plain text"),
    ({"signature": "\n".join(["line"] * 7)}, "signature", "6 lines"),
    ({"signature": "Warm regards " * 10}, "signature", "100 characters on a line"),
    ({"address": "x" * 501}, "address", "500 characters"),
    ({"advisor_name": 42}, "advisor_name", "text"),
    ({"favourite_colour": "blue"}, "favourite_colour", "not a profile field"),
])
def test_bad_values_answer_422_naming_the_field_and_change_nothing(app, people, media_dir,
                                                                   body, field, words):
    partner = people["partner"]
    assert people["admin"].put(_url(partner), json=FULL).status_code == 200
    before = _stored(partner.id)
    # A valid change in the same request is not saved either: all or nothing.
    extra = "title" if "title" not in body else "phone"
    response = people["admin"].put(_url(partner), json={**body, extra: "Changed"})
    assert response.status_code == 422, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "invalid" and words in error["fields"][field]
    assert _stored(partner.id) == before
    assert db.session.query(ProfileChange).count() == 0


def test_broken_json_and_broken_unicode_are_refused(app, people):
    partner = people["partner"]
    api = people["admin"]
    assert api.put(_url(partner), data="{nope", content_type="application/json").status_code \
        == 400
    assert api.put(_url(partner), json=["advisor_name"]).status_code == 400
    lone_surrogate = '{"advisor_name": "Ann \\ud800"}'
    response = api.put(_url(partner), data=lone_surrogate, content_type="application/json")
    assert response.status_code == 422
    assert "invalid Unicode" in response.get_json()["error"]["fields"]["advisor_name"]
    assert _stored(partner.id)["advisor_name"] is None


def test_allowed_links_and_clearing_fields(app, people, media_dir):
    partner = people["partner"]
    ok = people["admin"].put(_url(partner), json={
        "photo_url": "https://img.cdn.brand.example/ann.jpg",
        "website": "http://northside.example/about", "signature": "Warm regards,\r\n\tAnn  "})
    assert ok.status_code == 200, ok.get_json()
    fields = ok.get_json()["fields"]
    assert fields["photo_url"] == "https://img.cdn.brand.example/ann.jpg"
    assert fields["signature"] == "Warm regards,\n Ann"
    cleared = people["admin"].put(_url(partner), json={"photo_url": None, "website": "  "})
    assert cleared.get_json()["fields"]["photo_url"] is None
    assert cleared.get_json()["fields"]["website"] is None


# ------------------------------------------------------------------------------ emails show it


def _preview(api, campaign) -> str:
    response = api.get(f"/api/campaigns/{campaign.id}/preview")
    assert response.status_code == 200, response.get_json()
    return response.get_json()["html"]


def test_a_profile_change_appears_in_the_next_campaign_preview(app, people, media_dir):
    partner = people["partner"]
    user, _ = make_user("partner_user", partner)
    journey = make_journey(templates=[publish_starter("welcome")])
    campaign = make_campaign(partner, user, journey, sender={"name": "Northside",
                                                             "reply_to": "n@northside.example"})
    before = _preview(people["admin"], campaign)
    assert "Ann Northcott" not in before
    assert people["admin"].put(_url(partner), json=FULL).status_code == 200
    after = _preview(people["admin"], campaign)
    for value in ("Ann Northcott", "Senior Financial Advisor", "+1 555 0100",
                  "Securities offered through Example Securities"):
        assert value in after
    response = people["admin"].get(f"/api/campaigns/{campaign.id}/preview")
    assert response.get_json()["locked_regions_intact"] is True
    # The showroom thumbnail (the partner's own branding) shows it too.
    from tests.test_web_pages import login

    client = app.test_client()
    admin, _ = make_user("partner_admin", partner, password="correct horse battery")
    login(client, admin.email)
    thumb = client.get(f"/partner/journeys/{journey.id}/thumbnail").get_data(as_text=True)
    assert "Ann Northcott" in thumb


def test_an_approval_gated_field_is_not_used_until_the_brand_approves(app, people, media_dir):
    partner = people["partner"]
    brand, admin = people["brand"], people["admin"]
    user, _ = make_user("partner_user", partner)
    campaign = make_campaign(partner, user, make_journey(templates=[publish_starter("welcome")]))
    assert admin.put(_url(partner), json={"disclosures": "Old approved text."}).status_code == 200

    rules = brand.put("/api/brand/profile-rules",
                      json={"approval_required": ["disclosures", "photo_url"]})
    assert rules.status_code == 200
    assert rules.get_json() == {"approval_required": ["photo_url", "disclosures"]}
    assert people["marketer"].get("/api/brand/profile-rules").get_json() == rules.get_json()

    sent = admin.put(_url(partner), json={"disclosures": "New text, not yet approved.",
                                          "title": "Partner"})
    assert sent.status_code == 200
    body = sent.get_json()
    assert body["update"] == {"applied": ["title"], "pending": ["disclosures"]}
    assert body["fields"]["disclosures"] == "Old approved text."
    change = body["changes"]["disclosures"]
    assert change["status"] == "pending" and change["value"] == "New text, not yet approved."
    assert change["current_value"] == "Old approved text."
    html = _preview(admin, campaign)
    assert "Old approved text." in html and "not yet approved" not in html
    assert "Partner" in html  # the ungated field applied at once

    # Sending it again keeps one pending change; the brand's queue lists it.
    admin.put(_url(partner), json={"disclosures": "New text, not yet approved."})
    queue = brand.get("/api/profile-changes").get_json()
    assert queue["total"] == 1 and queue["items"][0]["partner_name"] == "Northside"
    assert queue["items"][0]["field"] == "disclosures"

    refused = brand.post(_url(partner, "/reject"), json={"fields": ["disclosures"]})
    assert refused.status_code == 422 and "reason" in refused.get_json()["error"]["fields"]
    rejected = brand.post(_url(partner, "/reject"),
                          json={"fields": ["disclosures"], "reason": "Name the broker-dealer."})
    assert rejected.status_code == 200
    change = rejected.get_json()["changes"]["disclosures"]
    assert change["status"] == "rejected" and change["reason"] == "Name the broker-dealer."
    assert "not yet approved" not in _preview(admin, campaign)
    assert brand.post(_url(partner, "/approve")).status_code == 409  # nothing pending

    admin.put(_url(partner), json={"disclosures": "Fixed text via Example Securities."})
    approved = brand.post(_url(partner, "/approve"), json={"fields": ["disclosures"]})
    assert approved.status_code == 200, approved.get_json()
    assert approved.get_json()["fields"]["disclosures"] == "Fixed text via Example Securities."
    assert "disclosures" not in approved.get_json()["changes"]
    assert "Fixed text via Example Securities." in _preview(admin, campaign)
    assert brand.get("/api/profile-changes").get_json()["total"] == 0


def test_sending_the_approved_value_again_withdraws_a_pending_change(app, people):
    partner, brand, admin = people["partner"], people["brand"], people["admin"]
    admin.put(_url(partner), json={"title": "Advisor"})
    brand.put("/api/brand/profile-rules", json={"approval_required": ["title"]})
    assert admin.put(_url(partner), json={"title": "Chief"}).get_json()["update"]["pending"] \
        == ["title"]
    back = admin.put(_url(partner), json={"title": "Advisor"}).get_json()
    assert back["changes"] == {} and back["fields"]["title"] == "Advisor"
    # The brand's own edit of a gated field applies at once.
    assert brand.put(_url(partner), json={"title": "Principal"}).get_json()["fields"]["title"] \
        == "Principal"
    assert brand.post(_url(partner, "/approve"), json={"fields": ["title"]}).status_code == 409


def test_profile_rules_are_checked(app, people):
    brand = people["brand"]
    for body in ({"approval_required": "disclosures"}, {"approval_required": ["nope"]},
                 {"approval_required": [1]}, {}):
        response = brand.put("/api/brand/profile-rules", json=body)
        assert response.status_code == 422
        assert "approval_required" in response.get_json()["error"]["fields"]
    assert brand.get("/api/brand/profile-rules").get_json() == {"approval_required": []}


def test_a_new_campaign_is_sent_in_the_advisors_name(app, people):
    partner = people["partner"]
    people["admin"].put(_url(partner), json={"advisor_name": "Ann Northcott"})
    journey = make_journey()
    created = people["user"].post("/api/campaigns", json={"journey_id": journey.id})
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["sender"]["name"] == "Ann Northcott"


# ------------------------------------------------------------------------------ the contract


def test_profile_responses_match_the_document(app, client, people, media_dir):
    from tests.profile_helpers import multipart
    from tests.test_openapi import conforms

    spec = client.get("/api/openapi.json").get_json()
    partner = people["partner"]
    brand, admin = people["brand"], people["admin"]
    path = "/api/partners/{partner_id}/profile"
    conforms(spec, path, "get", admin.get(_url(partner)))
    conforms(spec, path, "get", people["other"].get(_url(partner)))  # 404
    conforms(spec, path, "get", make_api_none(client).get(_url(partner)))  # 401
    conforms(spec, path, "put", admin.put(_url(partner), json=FULL))
    conforms(spec, path, "put", admin.put(_url(partner), json={"title": "a\nb"}))  # 422
    conforms(spec, path, "put", admin.put(_url(partner), data="{",
                                          content_type="application/json"))
    conforms(spec, path, "put", people["user"].put(_url(partner), json={}))  # 403
    conforms(spec, "/api/brand/profile-rules", "put",
             brand.put("/api/brand/profile-rules", json={"approval_required": ["title"]}))
    conforms(spec, "/api/brand/profile-rules", "get", brand.get("/api/brand/profile-rules"))
    conforms(spec, "/api/brand/profile-rules", "get", admin.get("/api/brand/profile-rules"))
    body, kind = multipart(image_bytes(), "me.png", "image/png")
    uploaded = admin.post(_url(partner, "/photo"), data=body, content_type=kind)
    conforms(spec, path + "/photo", "post", uploaded)
    body, kind = multipart(b"text", "me.png", "image/png")
    conforms(spec, path + "/logo", "post", admin.post(_url(partner, "/logo"), data=body,
                                                      content_type=kind))  # 422
    body, kind = multipart(b"x" * (5 * 1024 * 1024 + 1), "big.png", "image/png")
    conforms(spec, path + "/logo", "post", admin.post(_url(partner, "/logo"), data=body,
                                                      content_type=kind))  # 413
    admin.put(_url(partner), json={"title": "Chief"})
    pending = admin.get(_url(partner))
    conforms(spec, path, "get", pending)
    assert pending.get_json()["changes"]["title"]["status"] == "pending"
    conforms(spec, "/api/profile-changes", "get", brand.get("/api/profile-changes"))
    conforms(spec, path + "/reject", "post", brand.post(_url(partner, "/reject"), json={}))
    conforms(spec, path + "/approve", "post",
             brand.post(_url(partner, "/approve"), json={"fields": ["title"]}))
    conforms(spec, path + "/approve", "post", brand.post(_url(partner, "/approve")))  # 409
    conforms(spec, path + "/reject", "post",
             brand.post(_url(partner, "/reject"), json={"reason": "No."}))  # 409
    name = uploaded.get_json()["image_url"].rsplit("/", 1)[1]
    with client.get(f"/media/{name}") as image:
        conforms(spec, "/media/{name}", "get", image)


def make_api_none(client):
    from tests.conftest import Api

    return Api(client, None)


def test_a_profile_sent_back_unchanged_never_fails_on_an_older_value(app, people, media_dir):
    partner = people["partner"]
    # The brand linked a logo from a host that is not (or no longer) an image domain.
    assert people["brand"].patch(f"/api/partners/{partner.id}",
                                 json={"logo_url": "https://old-cdn.example/logo.png"}
                                 ).status_code == 200
    fields = people["admin"].get(_url(partner)).get_json()["fields"]
    sent_back = people["admin"].put(_url(partner), json={**fields, "title": "Advisor"})
    assert sent_back.status_code == 200, sent_back.get_json()
    assert sent_back.get_json()["fields"]["logo_url"] == "https://old-cdn.example/logo.png"
    changed = people["admin"].put(_url(partner), json={"logo_url": "https://old-cdn.example/x.png"})
    assert changed.status_code == 422
