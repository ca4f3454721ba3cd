"""Contacts through HTTP (API: Contacts): validation, normalization, search, tenancy."""

from __future__ import annotations

import pytest

from tests.builders import make_contact, make_partner, make_user


@pytest.fixture
def two_partners(app, make_api):
    a, b = make_partner(), make_partner()
    _, token_a = make_user("partner_admin", a)
    _, token_b = make_user("partner_user", b)
    return a, make_api(token_a), b, make_api(token_b)


def test_create_normalizes_email_and_refuses_duplicates(two_partners):
    _a, api, _b, other = two_partners
    created = api.post("/api/contacts", json={
        "email": "  Ann.Lee@EXAMPLE.com ", "first_name": "Ann", "last_name": "Lee",
        "attributes": {"city": "Lyon"}, "consent": True})
    assert created.status_code == 201, created.json
    assert created.json["email"] == "ann.lee@example.com"
    assert created.json["attributes"] == {"city": "Lyon"}
    again = api.post("/api/contacts", json={"email": "ANN.LEE@example.com", "consent": False})
    assert again.status_code == 409
    assert again.json["error"]["fields"] == {"email": "already exists"}
    # Another partner may hold the same address: contacts are per partner.
    assert other.post("/api/contacts", json={"email": "ann.lee@example.com",
                                             "consent": True}).status_code == 201


def test_create_reports_every_invalid_field(two_partners):
    _a, api, _b, _other = two_partners
    bad = api.post("/api/contacts", json={
        "email": "not-an-address", "first_name": 3, "attributes": {"age": 41, "bad key": "x"},
        "consent": "yes", "html": "<b>"})
    assert bad.status_code == 422
    fields = bad.json["error"]["fields"]
    assert set(fields) == {"email", "first_name", "attributes.age", "attributes.bad key",
                           "consent", "html"}
    assert api.get("/api/contacts").json["total"] == 0


def test_search_paginates_own_contacts_only(two_partners):
    a, api, b, _other = two_partners
    for i in range(5):
        make_contact(a, email=f"smith{i}@example.com", last_name="Smith")
    make_contact(a, email="jones@example.com", first_name="Zed", last_name="Jones")
    make_contact(b, email="smith.other@example.com", last_name="Smith")
    page = api.get("/api/contacts?q=smith&page=2&per_page=2").json
    assert (page["total"], page["page"], page["per_page"]) == (5, 2, 2)
    assert [c["email"] for c in page["items"]] == ["smith2@example.com", "smith3@example.com"]
    assert [c["email"] for c in api.get("/api/contacts?q=ZED").json["items"]] == [
        "jones@example.com"]
    # A LIKE wildcard in q is matched literally.
    assert api.get("/api/contacts?q=%25").json["total"] == 0


def test_get_patch_delete_and_foreign_ids_answer_404(two_partners):
    a, api, b, other = two_partners
    mine = make_contact(a, email="mine@example.com")
    theirs = make_contact(b, email="theirs@example.com")
    assert api.get(f"/api/contacts/{mine.id}").json["email"] == "mine@example.com"
    patched = api.patch(f"/api/contacts/{mine.id}", json={"first_name": "Mia",
                                                           "consent": False})
    assert (patched.json["first_name"], patched.json["consent"]) == ("Mia", False)
    for call in (api.get(f"/api/contacts/{theirs.id}"),
                 api.patch(f"/api/contacts/{theirs.id}", json={"first_name": "X"}),
                 api.delete(f"/api/contacts/{theirs.id}"),
                 api.get("/api/contacts/999999")):
        assert call.status_code == 404
    assert other.get(f"/api/contacts/{theirs.id}").json["first_name"] != "X"
    make_contact(a, email="taken@example.com")
    clash = api.patch(f"/api/contacts/{mine.id}", json={"email": "TAKEN@example.com"})
    assert clash.status_code == 409
    assert api.delete(f"/api/contacts/{mine.id}").status_code == 204
    assert api.get(f"/api/contacts/{mine.id}").status_code == 404


def test_brand_roles_cannot_use_contact_routes(two_partners, make_api):
    a, _api, _b, _other = two_partners
    contact = make_contact(a)
    _, token = make_user("brand_admin")
    brand = make_api(token)
    assert brand.get("/api/contacts").status_code == 403
    assert brand.get(f"/api/contacts/{contact.id}").status_code == 403
    assert brand.post("/api/contacts", json={"email": "a@example.com",
                                             "consent": True}).status_code == 403
    assert make_api(None).get("/api/contacts").status_code == 401
