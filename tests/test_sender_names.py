"""A sender's display name cannot pass for an address (issue 15, item 7).

Mail shows "NAME via Brand <news@brand>": a NAME of "Security Team <security@bank.example>"
reads as that bank's address. Every place a sender name is set refuses @, < and > (in any
width): a campaign's sender (API, personalization page, quick send's default), the profile's
advisor and business names it defaults to, and the partner account name behind them.
"""

from __future__ import annotations

import re
from html import escape

import pytest

from accounts.models import Partner
from campaigns.models import Campaign
from core.db import db
from core.validate import sender_name_problem
from tests.builders import listed, make_contact, make_journey, make_partner, make_user

PASSWORD = "correct horse battery"
MESSAGE = "must be a name, not an email address: it may not contain @, < or >"
SPOOFS = [
    "Security Team <security@bank.example>",
    "security@bank.example",
    "Bank <noreply>",
    "Security Team \uff1csecurity\uff20bank.example\uff1e",  # fullwidth < @ >
    "Bank \ufe6b support",  # small commercial at
    "Bank \u2039support\u203a",  # single angle quotation marks
]


@pytest.mark.parametrize("name", SPOOFS)
def test_address_like_names_are_refused(name):
    assert sender_name_problem(name) == MESSAGE


@pytest.mark.parametrize("name", ["Jane Doe, CFP", "O'Brien & Sons", "Zoë (North) Ltd.",
                                  "Smith - Wealth Partners"])
def test_ordinary_names_pass(name):
    assert sender_name_problem(name) is None


def test_campaign_sender_name_is_refused_on_create_and_edit(app, make_api):
    partner = make_partner()
    _, token = make_user("partner_admin", partner)
    api = make_api(token)
    journey = make_journey()
    for name in SPOOFS[:2]:
        response = api.post("/api/campaigns", json={
            "journey_id": journey.id, "name": "Spring", "slot_values": {},
            "sender": {"name": name, "reply_to": "pat@partner.example"}})
        assert response.status_code == 422
        assert response.json["error"]["fields"] == {"sender.name": MESSAGE}
    assert db.session.query(Campaign).count() == 0

    created = api.post("/api/campaigns", json={
        "journey_id": journey.id, "name": "Spring", "slot_values": {},
        "sender": {"name": "Pat Partner", "reply_to": "pat@partner.example"}})
    assert created.status_code == 201
    response = api.patch(f"/api/campaigns/{created.json['id']}", json={
        "sender": {"name": SPOOFS[0], "reply_to": "pat@partner.example"}})
    assert response.status_code == 422
    assert response.json["error"]["fields"] == {"sender.name": MESSAGE}
    db.session.expire_all()
    assert db.session.get(Campaign, created.json["id"]).sender_name == "Pat Partner"


@pytest.mark.parametrize("field", ["advisor_name", "display_name"])
def test_profile_names_a_campaign_is_sent_in_are_refused(app, make_api, field):
    partner = make_partner(name="Northside")
    _, token = make_user("partner_admin", partner)
    api = make_api(token)
    response = api.put(f"/api/partners/{partner.id}/profile", json={field: SPOOFS[0]})
    assert response.status_code == 422
    assert response.json["error"]["fields"] == {field: MESSAGE}
    db.session.expire_all()
    assert getattr(db.session.get(Partner, partner.id), field) is None
    # The job title is not a sender name: an @ there is fine.
    assert api.put(f"/api/partners/{partner.id}/profile",
                   json={"title": "Advisor @ Northside"}).status_code == 200


def test_partner_account_name_is_refused(app, make_api):
    listed(["gold"], ["north"])
    _, token = make_user("brand_admin")
    api = make_api(token)
    response = api.post("/api/partners", json={"name": SPOOFS[0], "tier": "gold",
                                               "region": "north"})
    assert response.status_code == 422
    assert response.json["error"]["fields"] == {"name": MESSAGE}
    created = api.post("/api/partners", json={"name": "North Co", "tier": "gold",
                                              "region": "north"})
    response = api.patch(f"/api/partners/{created.json['id']}", json={"name": SPOOFS[1]})
    assert response.status_code == 422
    assert api.get(f"/api/partners/{created.json['id']}").json["name"] == "North Co"


def test_quick_send_refuses_a_stored_address_like_default_sender(app, make_api):
    # A profile saved before this rule: quick send (which takes the profile's name) refuses.
    partner = make_partner()
    partner.advisor_name = SPOOFS[0]
    db.session.commit()
    _, token = make_user("partner_admin", partner)
    contact = make_contact(partner)
    journey = make_journey(quick_send=True)
    response = make_api(token).post("/api/quick-sends", json={
        "journey_id": journey.id, "contact_ids": [contact.id], "slot_values": {}})
    assert response.status_code == 422
    assert response.json["error"]["fields"] == {"sender.name": MESSAGE}


def _login(client, email: str) -> str:
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": token})
    return token


def test_personalization_page_shows_the_sender_name_problem_inline(app, client):
    partner = make_partner(tier="gold")
    user, _ = make_user("partner_user", partner, password=PASSWORD)
    journey = make_journey(steps=1)
    _login(client, user.email)
    page = client.get(f"/partner/journeys/{journey.id}").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = client.post(f"/partner/journeys/{journey.id}", data={
        "csrf_token": token, "name": "Mine", "sender_name": SPOOFS[0],
        "sender_reply_to": "pat@partner.example"})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert f"<p class=\"field-error\" role=\"alert\">{escape(MESSAGE)}</p>" in html
    assert db.session.query(Campaign).count() == 0


def test_profile_page_shows_the_problem_inline(app, client):
    partner = make_partner(tier="gold")
    user, _ = make_user("partner_admin", partner, password=PASSWORD)
    _login(client, user.email)
    page = client.get("/partner/profile").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = client.post("/partner/profile", data={"csrf_token": token,
                                                      "advisor_name": SPOOFS[0]})
    assert response.status_code == 422
    assert "must be a name, not an email address" in response.get_data(as_text=True)
