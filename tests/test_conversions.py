"""Conversions: integration keys, the click id on redirects, recording (API and pixel),
idempotency, attribution, 401/404 with nothing recorded, tenancy in reports, the document."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from sqlalchemy import func, select

from accounts.models import Partner
from campaigns.models import Campaign
from core import clock
from core.db import db
from core.tokens import make_token
from tests.builders import make_partner, make_sent_message, make_tracked_campaign, make_user
from tests.conftest import SECRET
from tests.test_openapi import conforms
from tracking import conversions, ingest, services
from tracking.models import Conversion, EngagementRollup, IntegrationKey

BROWSER = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
           "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1")


@pytest.fixture(autouse=True)
def _fresh_caches():
    services._LOCAL.clear()
    ingest._LINK_COUNTS.clear()


@pytest.fixture
def spec(client) -> dict:
    return client.get("/api/openapi.json").get_json()


@pytest.fixture
def brand(make_api):
    _, token = make_user("brand_admin")
    return make_api(token)


@pytest.fixture
def key(brand) -> str:
    return brand.post("/api/integration-keys", json={"name": "Booking site"}).json["key"]


def recorded() -> int:
    return db.session.scalar(select(func.count()).select_from(Conversion))


def rollup(column: str) -> int:
    return db.session.scalar(select(func.coalesce(func.sum(getattr(EngagementRollup, column)),
                                                  0)))


def land(client, send, link: int = 0) -> str:
    """Click a tracked link as a person would; return the click id the landing URL carries."""
    resp = client.get(f"/t/c/{make_token(SECRET, 'click', send.id, link)}",
                      headers={"User-Agent": BROWSER})
    assert resp.status_code == 302
    return parse_qs(urlsplit(resp.headers["Location"]).query)["lm_click"][0]


def test_integration_keys_are_shown_once_stored_hashed_listed_and_revocable(
        brand, make_api, spec, key):
    created = brand.post("/api/integration-keys", json={"name": "CRM"})
    assert created.status_code == 201
    conforms(spec, "/api/integration-keys", "post", created)
    body = created.json
    assert body["key"].startswith("lmk_") and body["hint"] == body["key"][-4:]
    stored = db.session.get(IntegrationKey, body["id"])
    assert body["key"] not in (stored.key_hash, stored.salt, stored.hint) and stored.key_hash
    listed = brand.get("/api/integration-keys")
    conforms(spec, "/api/integration-keys", "get", listed)
    assert [k["name"] for k in listed.json["items"]] == ["CRM", "Booking site"]
    assert "key" not in listed.text.replace('"hint"', "") and body["key"] not in listed.text
    _, marketer = make_user("brand_marketer")
    _, partner = make_user("partner_admin", make_partner())
    for token in (marketer, partner):
        refused = make_api(token).post("/api/integration-keys", json={})
        conforms(spec, "/api/integration-keys", "post", refused)
        assert refused.status_code == 403
    revoked = brand.delete(f"/api/integration-keys/{body['id']}")
    conforms(spec, "/api/integration-keys/{key_id}", "delete", revoked)
    assert revoked.status_code == 204
    conforms(spec, "/api/integration-keys/{key_id}", "delete",
             brand.delete("/api/integration-keys/99999"))
    send = make_sent_message()
    answer = make_api(body["key"]).post("/api/conversions", json={
        "click_id": conversions.click_id(SECRET, send.id, 0), "name": "booked",
        "external_id": "after-revoke"})
    assert answer.status_code == 401 and recorded() == 0
    assert make_api(key).post("/api/conversions", json={
        "click_id": conversions.click_id(SECRET, send.id, 0), "name": "booked",
        "external_id": "live-key"}).status_code == 201


def test_click_id_lands_on_the_site_and_a_conversion_is_attributed_and_counted_once(
        client, make_api, spec, key):
    clock.freeze(datetime(2030, 1, 2, 12))
    send = make_sent_message()
    click_id = land(client, send, link=2)
    api = make_api(key)
    body = {"click_id": click_id, "name": "appointment_booked", "value": 129.9,
            "currency": "usd", "occurred_at": "2030-01-01T10:00:00+01:00",
            "external_id": "crm-4711"}
    first = api.post("/api/conversions", json=body)
    conforms(spec, "/api/conversions", "post", first)
    assert first.status_code == 201, first.json
    got = first.json
    campaign = db.session.get(Campaign, send.campaign_id)
    assert got["attributed_to"] == {
        "message_id": send.id, "contact_id": send.contact_id, "partner_id": send.partner_id,
        "campaign_id": send.campaign_id, "journey_id": send.journey_id, "step_index": 0,
        "link_index": 2}
    assert (got["value"], got["currency"], got["duplicate"]) == (129.9, "USD", False)
    assert got["occurred_at"] == "2030-01-01T09:00:00"
    replay = api.post("/api/conversions", json={**body, "value": 5})
    conforms(spec, "/api/conversions", "post", replay)
    assert replay.status_code == 200 and replay.json["duplicate"] and replay.json["id"] == got["id"]
    assert recorded() == 1 and rollup("conversions") == 1
    assert rollup("conversion_value_cents") == 12990

    _, brand_token = make_user("brand_marketer")
    journey = make_api(brand_token).get(f"/api/analytics/journeys/{send.journey_id}").json
    assert (journey["conversions"], journey["conversion_value"]) == (1, 129.9)
    assert journey["by_step"][0]["conversions"] == 1
    _, own = make_user("partner_user", db.session.get(Partner, campaign.partner_id))
    report = make_api(own).get(f"/api/analytics/campaigns/{campaign.id}").json
    assert (report["conversions"], report["conversion_value"]) == (1, 129.9)
    timeline = make_api(own).get(f"/api/contacts/{send.contact_id}/timeline")
    conforms(spec, "/api/contacts/{contact_id}/timeline", "get", timeline)
    assert timeline.json["items"][0]["conversions"] == [{
        "name": "appointment_booked", "value": 129.9, "currency": "USD",
        "occurred_at": "2030-01-01T09:00:00"}]
    scorecard = make_api(brand_token).get("/api/analytics/partners")
    conforms(spec, "/api/analytics/partners", "get", scorecard)
    row = next(r for r in scorecard.json["items"] if r["partner_id"] == campaign.partner_id)
    assert (row["conversions"], row["conversion_value"]) == (1, 129.9)


@pytest.mark.parametrize("header", [None, "Bearer nope", "Bearer lmk_forged", "Basic abc"])
def test_a_bad_key_is_401_and_records_nothing(client, spec, key, header):
    send = make_sent_message()
    headers = {"Authorization": header} if header else {}
    resp = client.post("/api/conversions", headers=headers, json={
        "click_id": conversions.click_id(SECRET, send.id, 0), "name": "x", "external_id": "e"})
    conforms(spec, "/api/conversions", "post", resp)
    assert resp.status_code == 401 and recorded() == 0


def test_a_user_api_token_is_not_an_integration_key(make_api):
    _, token = make_user("brand_admin")
    send = make_sent_message()
    assert make_api(token).post("/api/conversions", json={
        "click_id": conversions.click_id(SECRET, send.id, 0), "name": "x",
        "external_id": "e"}).status_code == 401


def test_unknown_or_forged_click_ids_are_404_and_record_nothing(make_api, spec, key):
    send = make_sent_message()
    good = conversions.click_id(SECRET, send.id, 0)
    api = make_api(key)
    for bad in (good[:-1] + ("A" if good[-1] != "A" else "B"),
                make_token("another-secret", "clickid", send.id, 0),
                make_token(SECRET, "click", send.id, 0),          # a tracking token
                conversions.click_id(SECRET, 987654, 0),          # no such message
                "", "x" * 300):
        resp = api.post("/api/conversions", json={"click_id": bad, "name": "booked",
                                                  "external_id": f"e-{len(bad)}-{bad[:4]}"})
        conforms(spec, "/api/conversions", "post", resp)
        assert resp.status_code == 404, (bad, resp.json)
    unsent = make_sent_message(status="queued")
    assert api.post("/api/conversions", json={
        "send_token": make_token(SECRET, "send", unsent.id), "name": "booked",
        "external_id": "unsent"}).status_code == 404
    assert recorded() == 0 and rollup("conversions") == 0
    by_send = api.post("/api/conversions", json={
        "send_token": make_token(SECRET, "send", send.id), "name": "booked",
        "external_id": "by-send"})
    assert by_send.status_code == 201 and by_send.json["attributed_to"]["link_index"] is None


@pytest.mark.parametrize(("change", "field"), [
    ({"value": -1}, "value"), ({"value": "1e400"}, "value"), ({"value": True}, "value"),
    ({"currency": "EUR"}, "currency"), ({"occurred_at": "2030-01-01T10:00:00"}, "occurred_at"),
    ({"occurred_at": "2999-01-01T00:00:00Z"}, "occurred_at"), ({"name": ""}, "name"),
    ({"name": "a\x00b"}, "name"), ({"external_id": None}, "external_id"),
    ({"click_id": None}, "click_id"),
])
def test_invalid_fields_are_422_naming_them_and_record_nothing(make_api, spec, key, change,
                                                                 field):
    send = make_sent_message()
    body = {"click_id": conversions.click_id(SECRET, send.id, 0), "name": "booked",
            "external_id": "e-1", **change}
    body = {k: v for k, v in body.items() if v is not None}
    resp = make_api(key).post("/api/conversions", json=body)
    if resp.status_code == 400:  # NUL characters are refused before the view
        assert field == "name"
    else:
        conforms(spec, "/api/conversions", "post", resp)
        assert resp.status_code == 422 and field in resp.json["error"]["fields"], resp.json
    assert recorded() == 0


def test_reports_keep_each_partner_to_its_own_conversions(make_api, client, key):
    north, south = make_partner(name="North"), make_partner(name="South")
    campaign = make_tracked_campaign(partner=north)
    from journeys.models import Journey

    theirs = make_tracked_campaign(partner=south,
                                   journey=db.session.get(Journey, campaign.journey_id))
    mine_send = make_sent_message(campaign)
    their_send = make_sent_message(theirs)
    api = make_api(key)
    for n, send in enumerate((mine_send, their_send, their_send)):
        assert api.post("/api/conversions", json={
            "click_id": land(client, send), "name": "booked", "value": 10 * (n + 1),
            "external_id": f"t-{n}"}).status_code == 201
    _, north_token = make_user("partner_admin", north)
    _, south_token = make_user("partner_user", south)
    north_api, south_api = make_api(north_token), make_api(south_token)
    assert north_api.get(f"/api/analytics/campaigns/{campaign.id}").json["conversions"] == 1
    assert south_api.get(f"/api/analytics/campaigns/{theirs.id}").json[
        "conversion_value"] == 50.0
    assert south_api.get(f"/api/analytics/campaigns/{campaign.id}").status_code == 404
    assert south_api.get(f"/api/contacts/{mine_send.contact_id}/timeline").status_code == 404
    _, brand_token = make_user("brand_marketer")
    journey = make_api(brand_token).get(f"/api/analytics/journeys/{campaign.journey_id}").json
    by_partner = {p["partner_name"]: (p["conversions"], p["conversion_value"])
                  for p in journey["by_partner"]}
    assert by_partner == {"North": (1, 10.0), "South": (2, 50.0)}
    assert (journey["conversions"], journey["conversion_value"]) == (3, 60.0)


def test_the_signed_pixel_records_once_and_refuses_bad_signatures(brand, client, spec):
    created = brand.post("/api/integration-keys", json={"name": "Static site"}).json
    send = make_sent_message()
    params = {"key_id": str(created["id"]), "click_id": land(client, send), "name": "signup",
              "value": "25.50", "external_id": "px-1"}
    signed = {**params, "sig": conversions.pixel_signature(created["key"], params)}
    ok = client.get("/c.gif?" + urlencode(signed))
    assert (ok.status_code, ok.mimetype) == (200, "image/gif")
    conforms(spec, "/c.gif", "get", ok)
    assert client.get("/c.gif?" + urlencode(signed)).status_code == 200  # replay: once
    assert recorded() == 1 and rollup("conversion_value_cents") == 2550
    tampered = {**signed, "value": "2550.00"}
    for bad in (tampered, {**signed, "sig": "0" * 64}, params, {**signed, "key_id": "999"}):
        resp = client.get("/c.gif?" + urlencode({**bad, "external_id": "px-2"}))
        assert resp.status_code == 401, bad
    forged = {**params, "click_id": "AAAA", "external_id": "px-3"}
    forged["sig"] = conversions.pixel_signature(created["key"], forged)
    assert client.get("/c.gif?" + urlencode(forged)).status_code == 404
    assert recorded() == 1


def test_pixel_refusals_answer_in_the_documented_json_error_shape(brand, client, spec):
    # Found by tests/test_api_fuzz.py: a refused pixel answered an HTML page, documented as JSON.
    created = brand.post("/api/integration-keys", json={"name": "Static site"}).json
    unsigned = {"key_id": str(created["id"]), "sig": "", "name": "", "external_id": ""}
    for params in (unsigned, {**unsigned, "key_id": "999", "sig": "0" * 64}):
        resp = client.get("/c.gif?" + urlencode(params))
        assert (resp.status_code, resp.mimetype) == (401, "application/json"), params
        assert resp.json["error"]["code"] == "unauthorized"
        conforms(spec, "/c.gif", "get", resp)
    assert recorded() == 0


def test_click_id_parameter_placement_and_clean_urls(app, client, monkeypatch):
    add = conversions.with_click_id
    assert add("https://b.example/p", "lm_click", "T") == "https://b.example/p?lm_click=T"
    assert add("https://b.example/p?a=1#top", "lm_click", "T") == (
        "https://b.example/p?a=1&lm_click=T#top")
    assert add("https://b.example/p?lm_click=off&a=1#x", "lm_click", "T") == (
        "https://b.example/p?a=1#x")
    assert add("https://b.example/p?lm_click=off", "lm_click", "T") == "https://b.example/p"
    assert add("https://b.example/p", "off", "T") == "https://b.example/p"
    # A link the brand marked clean lands clean; the brand can switch it off everywhere.
    campaign = make_tracked_campaign(links=["https://brand.example/rates?lm_click=off",
                                            "https://brand.example/book"])
    send = make_sent_message(campaign)
    resp = client.get(f"/t/c/{make_token(SECRET, 'click', send.id, 0)}")
    assert resp.headers["Location"] == "https://brand.example/rates"
    monkeypatch.setattr(services.get_recorder(app), "click_param", "")
    resp = client.get(f"/t/c/{make_token(SECRET, 'click', send.id, 1)}")
    assert resp.headers["Location"] == "https://brand.example/book"
