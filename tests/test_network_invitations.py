"""Invitations: who may invite whom, the emailed MJML message, and links that are signed,
single-use and expire (expired, reused and tampered tokens are refused)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from accounts.models import Invitation, User
from core import clock
from core.db import db
from tests.builders import make_partner, make_user
from tests.network_helpers import html_of, link_in, mails_to, token_of

PASSWORD = "correct horse battery"


@pytest.fixture
def brand_admin(app, make_api):
    user, token = make_user("brand_admin")
    return make_api(token)


def test_brand_admin_invites_a_partner_admin_who_accepts(app, brand_admin, make_api, mailbox):
    partner = make_partner("Northwind Advisors")
    response = brand_admin.post("/api/invitations", json={
        "email": "Ann@Northwind.example", "role": "partner_admin", "partner_id": partner.id})
    assert response.status_code == 201, response.json
    assert response.json["status"] == "pending"
    assert response.json["email"] == "ann@northwind.example"

    [mail] = mails_to(mailbox, "ann@northwind.example")
    assert "invited" in str(mail["Subject"]).lower()
    assert "Northwind Advisors" in html_of(mail)
    assert "<table" in html_of(mail)  # compiled from MJML
    assert link_in(mail).startswith("http://lastmile.test/join/")

    accepted = make_api(None).post("/api/invitations/accept", json={
        "token": token_of(mail), "name": "Ann Lee", "password": PASSWORD})
    assert accepted.status_code == 201, accepted.json
    user = db.session.get(User, accepted.json["id"])
    assert (user.email, user.name, user.role, user.partner_id) == (
        "ann@northwind.example", "Ann Lee", "partner_admin", partner.id)
    listed = brand_admin.get("/api/invitations").json["items"]
    assert [i["status"] for i in listed] == ["accepted"]


def test_a_used_link_is_refused(app, brand_admin, make_api, mailbox):
    brand_admin.post("/api/invitations", json={"email": "bo@brand.example",
                                               "role": "brand_marketer"})
    token = token_of(mails_to(mailbox, "bo@brand.example")[0])
    anon = make_api(None)
    assert anon.post("/api/invitations/accept", json={
        "token": token, "name": "Bo", "password": PASSWORD}).status_code == 201
    again = anon.post("/api/invitations/accept", json={
        "token": token, "name": "Eve", "password": PASSWORD})
    assert again.status_code == 410
    assert again.json["error"]["code"] == "link_used"
    assert db.session.query(User).filter_by(email="bo@brand.example").one().name == "Bo"


def test_an_expired_link_is_refused_and_resend_gives_a_new_one(app, brand_admin, make_api,
                                                               mailbox):
    created = brand_admin.post("/api/invitations", json={"email": "cy@brand.example",
                                                         "role": "brand_marketer"}).json
    old = token_of(mails_to(mailbox, "cy@brand.example")[0])
    clock.freeze(clock.now() + timedelta(days=7, minutes=1))
    anon = make_api(None)
    expired = anon.post("/api/invitations/accept", json={
        "token": old, "name": "Cy", "password": PASSWORD})
    assert expired.status_code == 410 and expired.json["error"]["code"] == "link_expired"
    assert brand_admin.get("/api/invitations").json["items"][0]["status"] == "expired"

    resent = brand_admin.post(f"/api/invitations/{created['id']}/resend")
    assert resent.status_code == 200 and resent.json["status"] == "pending"
    new = token_of(mails_to(mailbox, "cy@brand.example")[1])
    assert new != old
    replaced = anon.post("/api/invitations/accept", json={
        "token": old, "name": "Cy", "password": PASSWORD})
    assert replaced.status_code == 410
    assert anon.post("/api/invitations/accept", json={
        "token": new, "name": "Cy", "password": PASSWORD}).status_code == 201


@pytest.mark.parametrize("tamper", [
    lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),
    lambda t: "x" + t,
    lambda t: "",
    lambda t: "a" * 5000,
    lambda t: None,
    lambda t: 12,
])
def test_a_tampered_link_is_refused(app, brand_admin, make_api, mailbox, tamper):
    brand_admin.post("/api/invitations", json={"email": "di@brand.example",
                                               "role": "brand_marketer"})
    token = token_of(mails_to(mailbox, "di@brand.example")[0])
    refused = make_api(None).post("/api/invitations/accept", json={
        "token": tamper(token), "name": "Di", "password": PASSWORD})
    assert refused.status_code == 410
    assert refused.json["error"]["code"] == "link_invalid"
    assert db.session.query(User).filter_by(email="di@brand.example").first() is None


def test_a_revoked_invitation_cannot_be_accepted(app, brand_admin, make_api, mailbox):
    created = brand_admin.post("/api/invitations", json={"email": "ed@brand.example",
                                                         "role": "brand_admin"}).json
    token = token_of(mails_to(mailbox, "ed@brand.example")[0])
    revoked = brand_admin.delete(f"/api/invitations/{created['id']}")
    assert revoked.status_code == 200 and revoked.json["status"] == "revoked"
    refused = make_api(None).post("/api/invitations/accept", json={
        "token": token, "name": "Ed", "password": PASSWORD})
    assert refused.status_code == 410 and refused.json["error"]["code"] == "link_revoked"


def test_accepting_checks_name_and_password(app, brand_admin, make_api, mailbox):
    brand_admin.post("/api/invitations", json={"email": "fi@brand.example",
                                               "role": "brand_marketer"})
    token = token_of(mails_to(mailbox, "fi@brand.example")[0])
    anon = make_api(None)
    for body, field in (({"name": "Fi", "password": "short"}, "password"),
                        ({"name": "Fi", "password": "password123"}, "password"),
                        ({"name": " ", "password": PASSWORD}, "name")):
        refused = anon.post("/api/invitations/accept", json=dict(body, token=token))
        assert refused.status_code == 422 and field in refused.json["error"]["fields"]
    assert anon.post("/api/invitations/accept", json={
        "token": token, "name": "Fi", "password": PASSWORD}).status_code == 201


def test_partner_admin_invites_its_own_users_only(app, make_api, mailbox):
    mine, other = make_partner(), make_partner()
    _admin, token = make_user("partner_admin", mine)
    api = make_api(token)
    ok = api.post("/api/invitations", json={"email": "gu@mine.example", "role": "partner_user"})
    assert ok.status_code == 201 and ok.json["partner_id"] == mine.id
    foreign = api.post("/api/invitations", json={
        "email": "ha@other.example", "role": "partner_user", "partner_id": other.id})
    assert foreign.status_code == 404
    brand = api.post("/api/invitations", json={"email": "io@x.example", "role": "brand_admin"})
    assert brand.status_code == 403
    assert not mails_to(mailbox, "ha@other.example") and not mails_to(mailbox, "io@x.example")
    assert db.session.query(Invitation).count() == 1
    # Invitations of another partner are invisible: 404 to revoke or resend.
    _b, brand_token = make_user("brand_admin")
    theirs = make_api(brand_token).post("/api/invitations", json={
        "email": "ju@other.example", "role": "partner_user", "partner_id": other.id}).json
    assert api.delete(f"/api/invitations/{theirs['id']}").status_code == 404
    assert api.post(f"/api/invitations/{theirs['id']}/resend").status_code == 404
    assert [i["email"] for i in api.get("/api/invitations").json["items"]] == [
        "gu@mine.example"]


def test_marketers_and_partner_users_cannot_invite(app, make_api, mailbox):
    partner = make_partner()
    for role, where in (("brand_marketer", None), ("partner_user", partner)):
        _u, token = make_user(role, where)
        assert make_api(token).post("/api/invitations", json={
            "email": "x@y.example", "role": "partner_user",
            "partner_id": partner.id}).status_code == 403


def test_invitation_input_is_checked(app, brand_admin, mailbox):
    partner = make_partner()
    make_user("partner_user", partner, email="taken@example.com")
    cases = [({"email": "no-at", "role": "brand_admin"}, 422),
             ({"email": "a@b.example", "role": "king"}, 422),
             ({"email": "a@b.example", "role": "partner_user"}, 422),
             ({"email": "a@b.example", "role": "brand_admin", "partner_id": partner.id}, 422),
             ({"email": "a@b.example", "role": "partner_user", "partner_id": 999999}, 404),
             ({"email": "a@b.example", "role": "partner_user", "partner_id": 10**30}, 422),
             ({"email": "taken@example.com", "role": "brand_admin"}, 409)]
    for body, status in cases:
        response = brand_admin.post("/api/invitations", json=body)
        assert response.status_code == status, (body, response.json)
    assert brand_admin.post("/api/invitations", json={
        "email": "twice@example.com", "role": "brand_admin"}).status_code == 201
    assert brand_admin.post("/api/invitations", json={
        "email": "twice@example.com", "role": "brand_admin"}).status_code == 409


def test_network_responses_match_the_document(app, client, make_api, mailbox):
    from tests.test_openapi import conforms

    spec = client.get("/api/openapi.json").json
    partner = make_partner()
    _b, token = make_user("brand_admin")
    api = make_api(token)
    created = api.post("/api/invitations", json={"email": "doc@example.com",
                                                 "role": "partner_user",
                                                 "partner_id": partner.id})
    conforms(spec, "/api/invitations", "post", created)
    conforms(spec, "/api/invitations", "get", api.get("/api/invitations"))
    invitation = created.json["id"]
    conforms(spec, "/api/invitations/{invitation_id}/resend", "post",
             api.post(f"/api/invitations/{invitation}/resend"))
    token_value = token_of(mails_to(mailbox, "doc@example.com")[-1])
    anon = make_api(None)
    conforms(spec, "/api/invitations/accept", "post", anon.post(
        "/api/invitations/accept",
        json={"token": token_value, "name": "Doc", "password": PASSWORD}))
    conforms(spec, "/api/invitations/accept", "post", anon.post(
        "/api/invitations/accept",
        json={"token": token_value, "name": "Doc", "password": PASSWORD}))
    conforms(spec, "/api/invitations/{invitation_id}", "delete",
             api.delete(f"/api/invitations/{invitation}"))
    conforms(spec, "/api/password-reset", "post",
             anon.post("/api/password-reset", json={"email": "doc@example.com"}))
    conforms(spec, "/api/password-reset/complete", "post", anon.post(
        "/api/password-reset/complete", json={"token": "nope", "password": PASSWORD}))
    user = db.session.query(User).filter_by(email="doc@example.com").one()
    conforms(spec, "/api/users/{user_id}", "patch",
             api.patch(f"/api/users/{user.id}", json={"role": "partner_admin"}))
    conforms(spec, "/api/partners/{partner_id}/deactivate", "post",
             api.post(f"/api/partners/{partner.id}/deactivate"))
    conforms(spec, "/api/partners/{partner_id}/reactivate", "post",
             api.post(f"/api/partners/{partner.id}/reactivate"))
    conforms(spec, "/api/partners", "get", api.get("/api/partners?state=active&q=a"))
