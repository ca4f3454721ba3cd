"""Any input a client can send is a clear 4xx that changes nothing: never a 500.

Ids past what the database holds, huge numbers in queries and bodies, NUL characters, lone
surrogates and JSON nested 50,000 deep, on the API, the web pages and the SNS webhook.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from campaigns.models import Campaign, Contact
from core.db import db
from tests.builders import make_campaign, make_contact, make_journey, make_partner, make_user
from tests.test_web_pages import PASSWORD, login, page_token

HUGE = 2**31
DEEP = "[" * 50_000 + "]" * 50_000


@pytest.fixture
def world(app, make_api):
    partner = make_partner(tier="gold")
    user, token = make_user("partner_admin", partner)
    _, brand_token = make_user("brand_admin")
    journey = make_journey(steps=1, quick_send=True)
    contact = make_contact(partner)
    campaign = make_campaign(partner, user, journey, contacts=[contact])
    return {"api": make_api(token), "brand": make_api(brand_token), "journey": journey,
            "campaign": campaign, "contact": contact, "partner": partner}


def _count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def assert_error(response, status: int) -> None:
    assert response.status_code == status, (response.status_code, response.get_data(True)[:300])
    body = response.get_json()
    assert set(body["error"]) == {"code", "message", "fields"} and body["error"]["message"]


@pytest.mark.parametrize("path", [
    f"/api/campaigns/{HUGE}", f"/api/contacts/{HUGE}", f"/api/journeys/{HUGE}",
    f"/api/templates/{HUGE}", f"/api/messages/{HUGE}", f"/api/partners/{HUGE}",
    f"/api/catalog/{HUGE}", f"/api/imports/{HUGE}", f"/api/campaigns/{10**30}/preview",
    f"/api/analytics/journeys/{HUGE}",
])
def test_ids_past_the_database_are_not_found(world, path):
    api = world["brand"] if "partners" in path or "journeys" in path or "templates" in path \
        else world["api"]
    assert_error(api.get(path), 404)


def test_web_pages_with_huge_ids_or_numbers_answer_4xx(world, client):
    user, _ = make_user("partner_user", world["partner"], password=PASSWORD)
    assert login(client, user.email).status_code == 302
    assert client.get(f"/partner/campaigns/{HUGE}").status_code == 404
    assert client.get(f"/partner/contacts/{10**25}/quick-send").status_code == 404
    assert client.get("/partner/contacts?page=9223372036854775807").status_code == 200  # clamped
    campaign = world["campaign"].id
    assert client.get(f"/partner/campaigns/{campaign}/preview?step={10**20}").status_code == 400
    assert client.get("/partner/contacts?q=%00").status_code == 422


@pytest.mark.parametrize("query", ["page=-5", "per_page=99999999999999999999"])
def test_out_of_range_page_sizes_are_clamped(world, query):
    response = world["api"].get(f"/api/contacts?{query}")
    assert response.status_code == 200
    assert response.get_json()["page"] >= 1


def test_a_page_past_any_list_is_400(world):
    assert_error(world["api"].get("/api/contacts?page=9223372036854775807"), 400)


@pytest.mark.parametrize("query", [f"step={10**20}", f"contact_id={10**20}", "step=-1",
                                   "step=x"])
def test_huge_numbers_in_queries_are_400(world, query):
    response = world["api"].get(f"/api/campaigns/{world['campaign'].id}/preview?{query}")
    assert_error(response, 400)


def test_huge_version_query_is_400(world):
    template_id = world["journey"].steps[0].template_id
    assert_error(world["brand"].get(f"/api/templates/{template_id}?version={10**20}"), 400)


@pytest.mark.parametrize("body", [
    {"journey_id": 10**30}, {"journey_id": -1}, {"journey_id": 2**31},
])
def test_huge_ids_in_bodies_are_422_and_change_nothing(world, body):
    before = _count(Campaign)
    assert_error(world["api"].post("/api/campaigns", json=body), 422)
    assert _count(Campaign) == before


def test_huge_member_ids_are_422(world):
    response = world["api"].post(f"/api/campaigns/{world['campaign'].id}/members",
                                 json={"contact_ids": [10**30]})
    assert_error(response, 422)
    response = world["api"].post(f"/api/campaigns/{world['campaign'].id}/members",
                                 json={"contact_ids": [world["contact"].id],
                                       "overrides": {str(10**30): {"headline": "x"}}})
    assert_error(response, 422)


@pytest.mark.parametrize("name", ["Ann\x00", "\ud800", "ok\udfff"])
def test_nul_and_lone_surrogates_in_json_are_422_naming_the_field(world, name):
    before = _count(Contact)
    raw = json.dumps({"email": "new@example.com", "first_name": name, "consent": True})
    response = world["api"].post("/api/contacts", data=raw,
                                 headers={"Content-Type": "application/json"})
    assert_error(response, 422)
    assert "NUL" in response.get_json()["error"]["fields"]["first_name"]
    assert _count(Contact) == before


def test_lone_surrogate_in_a_quick_send_slot_value_is_refused(world):
    raw = json.dumps({"journey_id": world["journey"].id, "contact_ids": [world["contact"].id],
                      "slot_values": {"headline": "\ud800"}})
    before = _count(Campaign)
    response = world["api"].post("/api/quick-sends", data=raw,
                                 headers={"Content-Type": "application/json"})
    assert_error(response, 422)
    assert "slot_values.headline" in response.get_json()["error"]["fields"]
    assert _count(Campaign) == before


@pytest.mark.parametrize("path", ["/api/contacts?q=%00", "/api/contacts?q=a%00b"])
def test_nul_in_a_query_is_422_naming_the_argument(world, path):
    response = world["api"].get(path)
    assert_error(response, 422)
    assert "NUL" in response.get_json()["error"]["fields"]["q"]


@pytest.mark.parametrize("path,name", [("/api/partners?q=a%00b", "q"),
                                       ("/api/partners?region=%00", "region"),
                                       ("/api/journeys?status=%00", "status")])
def test_nul_in_a_list_filter_is_a_documented_422(world, client, path, name):
    # Found by tests/test_api_fuzz.py: these lists answered 422 without documenting it.
    from tests.test_openapi import conforms

    response = world["brand"].get(path)
    assert_error(response, 422)
    assert name in response.get_json()["error"]["fields"]
    conforms(client.get("/api/openapi.json").get_json(), path.split("?")[0], "get", response)


def test_nul_in_the_path_is_400(world):
    assert_error(world["api"].get("/api/contacts/%00"), 400)


@pytest.mark.parametrize("path,method", [
    ("/api/contacts", "post"), ("/api/campaigns", "post"), ("/api/quick-sends", "post"),
    ("/api/journeys", "post"), ("/api/templates", "post"),
])
def test_json_nested_50000_deep_is_400(world, path, method):
    api = world["brand"] if path in ("/api/journeys", "/api/templates") else world["api"]
    response = getattr(api, method)(path, data=DEEP,
                                    headers={"Content-Type": "application/json"})
    assert_error(response, 400)


def test_ses_webhook_refuses_deep_json(client):
    response = client.post("/webhooks/ses", data=DEEP,
                           headers={"Content-Type": "text/plain; charset=UTF-8"})
    assert_error(response, 400)


@pytest.mark.parametrize("target", ["/partner\r\nSet-Cookie: x=1", "/partner\nX: y",
                                    "/\x7fpartner"])
def test_cr_lf_in_the_login_next_is_ignored(app, client, target):
    partner = make_partner()
    user, _ = make_user("partner_user", partner, password=PASSWORD)
    token = page_token(client, "/login")
    response = client.post("/login", query_string={"next": target},
                           data={"email": user.email, "password": PASSWORD,
                                 "csrf_token": token})
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/partner")
    assert "x=1" not in response.headers.get("Set-Cookie", "")
