"""Audiences through HTTP: filters (each operator), segments, members by segment or filter,
exclusions with their reasons, tenancy."""

from __future__ import annotations

import json

import pytest

from campaigns import suppression
from core.db import db
from tests.builders import make_campaign, make_contact, make_journey, make_partner, make_user

SENDER = {"name": "Pat Partner", "reply_to": "pat@partner.example"}


@pytest.fixture
def world(app, make_api):
    """Partner A with six varied contacts, partner B with one; a user each."""
    a, b = make_partner(), make_partner()
    user_a, token_a = make_user("partner_admin", a)
    user_b, token_b = make_user("partner_user", b)
    people = {
        "ann": make_contact(a, "ann@example.com", first_name="Ann", tags=["vip"],
                            attributes={"city": "Boston", "age": "41",
                                        "renewal": "2026-11-30"}),
        "bob": make_contact(a, "bob@example.com", first_name="Bob", tags=["vip", "golf"],
                            attributes={"city": "boston", "age": "39.5",
                                        "renewal": "2027-03-01T10:00:00"}),
        "cat": make_contact(a, "cat@example.com", first_name="Cat",
                            attributes={"city": "New Bostonia", "age": "n/a",
                                        "renewal": "soon"}),
        "dan": make_contact(a, "dan@example.com", first_name="Dan", consent=False,
                            attributes={"city": "Lyon", "age": "100"}),
        "eve": make_contact(a, "eve@example.com", first_name="Eve", tags=["vip"],
                            attributes={"age": "7"}),
        "fay": make_contact(a, "fay@example.com", first_name="Fay", tags=["vip"],
                            attributes={"city": "Boston", "age": "52"}),
    }
    suppression.add_suppressions(["fay@example.com"], "unsubscribed", "test")
    db.session.commit()
    other = make_contact(b, "ann@example.com", first_name="Other", tags=["vip"],
                         attributes={"city": "Boston"})
    return {"a": a, "b": b, "user_a": user_a, "user_b": user_b, "api_a": make_api(token_a),
            "api_b": make_api(token_b), "people": people, "other": other}


def names(response) -> list[str]:
    assert response.status_code == 200, response.json
    return sorted(c["first_name"] for c in response.json["items"])


def filtered(api, audience: dict, **args):
    return api.get("/api/contacts", query_string={"filter": json.dumps(audience), **args})


FILTER_CASES = [
    ({"tags": ["vip"]}, ["Ann", "Bob", "Eve", "Fay"]),
    ({"tags": ["vip", "golf"]}, ["Bob"]),
    ({"status": "mailable"}, ["Ann", "Bob", "Cat", "Eve"]),
    ({"status": ["no_consent", "unsubscribed"]}, ["Dan", "Fay"]),
    ({"q": "bo"}, ["Bob"]),
    ({"attributes": {"city": "BOSTON"}}, ["Ann", "Bob", "Fay"]),
    ({"attributes": {"city": {"eq": "boston"}}}, ["Ann", "Bob", "Fay"]),
    ({"attributes": {"city": {"neq": "boston"}}}, ["Cat", "Dan", "Eve"]),
    ({"attributes": {"city": {"contains": "bos"}}}, ["Ann", "Bob", "Cat", "Fay"]),
    ({"attributes": {"city": {"contains": "%"}}}, []),
    # Numbers compare as numbers ("100" > "52" although "100" < "52" as text).
    ({"attributes": {"age": {"gt": 40}}}, ["Ann", "Dan", "Fay"]),
    ({"attributes": {"age": {"gte": 41, "lt": 100}}}, ["Ann", "Fay"]),
    ({"attributes": {"age": {"lte": 39.5}}}, ["Bob", "Eve"]),
    ({"attributes": {"age": 100}}, ["Dan"]),
    ({"attributes": {"age": {"neq": 100}}}, ["Ann", "Bob", "Cat", "Eve", "Fay"]),
    ({"attributes": {"renewal": {"before": "2027-01-01"}}}, ["Ann"]),
    ({"attributes": {"renewal": {"after": "2026-12-31"}}}, ["Bob"]),
    ({"attributes": {"city": {"exists": False}}}, ["Eve"]),
    ({"attributes": {"renewal": {"exists": True}}, "tags": ["vip"], "status": "mailable"},
     ["Ann", "Bob"]),
    ({}, ["Ann", "Bob", "Cat", "Dan", "Eve", "Fay"]),
    # Several comparisons on one attribute, and text that is not a number or a date.
    ({"attributes": {"age": {"neq": 41, "gt": 7}}}, ["Bob", "Dan", "Fay"]),
    ({"attributes": {"age": {"neq": 41, "lte": 41}}}, ["Bob", "Eve"]),
    ({"attributes": {"renewal": {"after": "2026-01-01", "before": "2027-12-31"}}},
     ["Ann", "Bob"]),
    ({"attributes": {"renewal": {"before": "9999-12-31"}}}, ["Ann", "Bob"]),
]


@pytest.mark.parametrize(("audience", "expected"), FILTER_CASES)
def test_each_filter_operator(world, audience, expected):
    response = filtered(world["api_a"], audience)
    assert names(response) == expected
    assert response.json["total"] == len(expected)


def test_filter_combines_with_the_list_arguments_and_pages(world):
    api = world["api_a"]
    response = filtered(api, {"tags": ["vip"]}, status="mailable", per_page=2)
    assert response.json["total"] == 3 and len(response.json["items"]) == 2
    assert names(filtered(api, {"tags": ["vip"]}, q="eve")) == ["Eve"]


def test_every_page_carries_the_total(world):
    """A full page, the last (partial) page, a page past the end: the same total."""
    api = world["api_a"]
    seen = []
    for page, size in ((1, 2), (2, 2), (3, 2), (4, 2), (1, 6), (2, 6)):
        response = filtered(api, {}, page=page, per_page=size)
        assert response.status_code == 200, response.json
        assert response.json["total"] == 6, (page, size)
        if size == 2:
            seen += [c["first_name"] for c in response.json["items"]]
    assert seen == ["Ann", "Bob", "Cat", "Dan", "Eve", "Fay"]
    empty = filtered(api, {"q": "nobody-has-this"}, page=2)
    assert (empty.json["items"], empty.json["total"]) == ([], 0)


def test_the_status_filter_agrees_with_each_contacts_status(world):
    """Every status, alone and in pairs, keeps exactly the contacts shown with it."""
    people = world["people"]
    suppression.add_suppressions(["bob@example.com"], "bounced", "test")
    suppression.add_suppressions(["cat@example.com"], "complained", "test")
    suppression.add_suppressions(["eve@example.com"], "manual", "test")
    db.session.commit()
    api = world["api_a"]
    shown = {c["first_name"]: c["status"] for c in filtered(api, {}).json["items"]}
    assert shown == {"Ann": "mailable", "Bob": "bounced", "Cat": "complained",
                     "Dan": "no_consent", "Eve": "suppressed", "Fay": "unsubscribed"}
    assert len(people) == len(shown)
    statuses = sorted(set(shown.values()))
    for status in statuses:
        assert names(filtered(api, {"status": status})) == sorted(
            name for name, s in shown.items() if s == status), status
    for i, first in enumerate(statuses):
        for second in statuses[i + 1:]:
            assert names(filtered(api, {"status": [first, second]})) == sorted(
                name for name, s in shown.items() if s in (first, second))


@pytest.mark.parametrize(("audience", "field"), [
    ({"colour": "red"}, "filter.colour"),
    ({"attributes": {"age": {"between": [1, 2]}}}, "filter.attributes.age.between"),
    ({"attributes": {"age": {"gt": "forty"}}}, "filter.attributes.age.gt"),
    ({"attributes": {"age": {"gt": 10**16}}}, "filter.attributes.age.gt"),
    ({"attributes": {"age": {"gt": 1e300}}}, "filter.attributes.age.gt"),
    ({"attributes": {"age": {"gt": True}}}, "filter.attributes.age.gt"),
    ({"attributes": {"renewal": {"before": "2027-02-30"}}}, "filter.attributes.renewal.before"),
    ({"attributes": {"renewal": {"after": "next week"}}}, "filter.attributes.renewal.after"),
    ({"attributes": {"city": {"exists": "yes"}}}, "filter.attributes.city.exists"),
    ({"attributes": {"city": {"contains": ""}}}, "filter.attributes.city.contains"),
    ({"attributes": {"city": {}}}, "filter.attributes.city"),
    ({"attributes": {"city": ["a"]}}, "filter.attributes.city.eq"),
    ({"attributes": {"bad key": "x"}}, "filter.attributes.bad key"),
    ({"attributes": {"city": "x" * 1001}}, "filter.attributes.city.eq"),
    ({"attributes": ["city"]}, "filter.attributes"),
    ({"status": "happy"}, "filter.status"),
    ({"tags": "vip"}, "filter.tags"),
    ({"tags": ["a,b"]}, "filter.tags.0"),
    ({"q": 5}, "filter.q"),
])
def test_bad_filters_are_422_naming_the_field(world, audience, field):
    response = filtered(world["api_a"], audience)
    assert response.status_code == 422, response.json
    assert field in response.json["error"]["fields"]
    segment = world["api_a"].post("/api/segments", json={"name": "Bad", "filter": audience})
    assert segment.status_code == 422 and field in segment.json["error"]["fields"]
    assert world["api_a"].get("/api/segments").json["total"] == 0


def test_nul_huge_and_broken_filter_text(world):
    api = world["api_a"]
    nul = api.post("/api/segments", json={"name": "N", "filter": {"q": "a\x00b"}})
    assert nul.status_code == 422 and "filter.q" in nul.json["error"]["fields"]
    broken = api.get("/api/contacts", query_string={"filter": '{"q": "\\ud800"}'})
    assert broken.status_code == 422
    assert api.get("/api/contacts", query_string={"filter": "{not json"}).status_code == 400
    huge = api.get("/api/contacts", query_string={
        "filter": '{"attributes": {"age": {"gt": 1' + "0" * 400 + "}}}"})
    assert huge.status_code == 422
    assert "filter.attributes.age.gt" in huge.json["error"]["fields"]
    assert api.get("/api/contacts", query_string={"filter": "[]"}).status_code == 422


def test_segment_crud_with_counts(world):
    api = world["api_a"]
    created = api.post("/api/segments", json={
        "name": "  Boston   VIPs ", "filter": {"tags": ["VIP"],
                                              "attributes": {"city": "Boston"}}})
    assert created.status_code == 201, created.json
    segment = created.json
    assert segment["name"] == "Boston VIPs" and segment["count"] == 3
    assert segment["filter"] == {"tags": ["vip"], "attributes": {"city": {"eq": "Boston"}}}
    assert created.headers["Location"] == f"/api/segments/{segment['id']}"
    again = api.post("/api/segments", json={"name": "boston vips", "filter": {}})
    assert again.status_code == 409 and again.json["error"]["fields"] == {
        "name": "already exists"}
    assert api.post("/api/segments", json={"name": "", "filter": {}}).status_code == 422
    assert api.post("/api/segments", json={"name": "x", "filter": {}, "id": 3}
                    ).status_code == 422
    listed = api.get("/api/segments").json
    assert listed["total"] == 1 and listed["items"][0]["name"] == "Boston VIPs"
    changed = api.patch(f"/api/segments/{segment['id']}", json={
        "filter": {"tags": ["vip"], "status": "mailable"}})
    assert changed.status_code == 200 and changed.json["count"] == 3
    assert changed.json["name"] == "Boston VIPs"
    assert api.get(f"/api/segments/{segment['id']}").json["count"] == 3
    by_segment = api.get("/api/contacts", query_string={"segment_id": segment["id"]})
    assert names(by_segment) == ["Ann", "Bob", "Eve"]
    both = api.get("/api/contacts", query_string={"segment_id": segment["id"],
                                                  "filter": "{}"})
    assert both.status_code == 422
    assert api.delete(f"/api/segments/{segment['id']}").status_code == 204
    assert api.get(f"/api/segments/{segment['id']}").status_code == 404


def test_segments_are_partner_owned(world):
    api_a, api_b = world["api_a"], world["api_b"]
    segment = api_a.post("/api/segments", json={"name": "Mine", "filter": {}}).json
    path = f"/api/segments/{segment['id']}"
    assert api_b.get(path).status_code == 404
    assert api_b.patch(path, json={"name": "Stolen"}).status_code == 404
    assert api_b.delete(path).status_code == 404
    assert api_b.get("/api/contacts", query_string={"segment_id": segment["id"]}
                     ).status_code == 404
    assert api_b.get("/api/segments").json["total"] == 0
    # The same name is free for another partner.
    assert api_b.post("/api/segments", json={"name": "Mine", "filter": {}}).status_code == 201
    assert api_a.get(path).json["count"] == 6


def test_an_unknown_segment_id_is_a_documented_404(world, client):
    # Found by tests/test_api_fuzz.py: the 404 was described in the text, not in the responses.
    from tests.test_openapi import conforms

    response = world["api_a"].get("/api/contacts", query_string={"segment_id": 512})
    assert (response.status_code, response.json["error"]["code"]) == (404, "not_found")
    conforms(client.get("/api/openapi.json").get_json(), "/api/contacts", "get", response)


def test_members_by_filter_report_exclusions_by_reason(world):
    api = world["api_a"]
    journey = make_journey()
    campaign = make_campaign(world["a"], world["user_a"], journey,
                             [world["people"]["ann"]])
    path = f"/api/campaigns/{campaign.id}/members"
    result = api.post(path, json={"filter": {"tags": ["vip"]}})
    assert result.status_code == 200, result.json
    data = result.json
    assert data["added"] == 2 and data["matched"] == 4 and data["members"] == 3
    reasons = {e["reason"]: (e["count"], e["label"]) for e in data["exclusions"]}
    assert reasons == {"duplicate": (1, "Already in this campaign"),
                       "unsubscribed": (1, "Unsubscribed")}
    assert {(e["contact_id"], e["reason"]) for e in data["excluded"]} == {
        (world["people"]["ann"].id, "duplicate"), (world["people"]["fay"].id, "unsubscribed")}
    shown = api.get(f"/api/campaigns/{campaign.id}").json
    assert shown["members"] == 3
    no_consent = api.post(path, json={"filter": {"attributes": {"city": "Lyon"}}}).json
    assert no_consent["added"] == 0
    assert no_consent["exclusions"] == [{"reason": "no_consent",
                                         "label": "No consent to email", "count": 1}]


def test_members_by_segment_and_tenancy(world, make_api):
    api_a, api_b = world["api_a"], world["api_b"]
    journey = make_journey()
    campaign = make_campaign(world["a"], world["user_a"], journey)
    segment = api_a.post("/api/segments", json={
        "name": "Boston", "filter": {"attributes": {"city": {"contains": "boston"}}}}).json
    added = api_a.post(f"/api/campaigns/{campaign.id}/members",
                       json={"segment_id": segment["id"]})
    assert added.status_code == 200 and added.json["added"] == 3  # Fay is unsubscribed
    # A foreign segment, a foreign campaign: 404 like a missing one.
    theirs = api_b.post("/api/segments", json={"name": "Theirs", "filter": {}}).json
    assert api_a.post(f"/api/campaigns/{campaign.id}/members",
                      json={"segment_id": theirs["id"]}).status_code == 404
    assert api_a.post(f"/api/campaigns/{campaign.id}/members",
                      json={"segment_id": 999999}).status_code == 404
    assert api_b.post(f"/api/campaigns/{campaign.id}/members",
                      json={"filter": {}}).status_code == 404
    assert api_b.post(f"/api/campaigns/{campaign.id}/members",
                      json={"segment_id": theirs["id"]}).status_code == 404
    # A filter never reaches another partner's contacts.
    other_campaign = make_campaign(world["b"], world["user_b"], journey)
    got = api_b.post(f"/api/campaigns/{other_campaign.id}/members", json={"filter": {}}).json
    assert got["added"] == 1 and got["members"] == 1


@pytest.mark.parametrize(("body", "field"), [
    ({"segment_id": 1, "filter": {}}, "contact_ids"),
    ({}, "contact_ids"),
    ({"filter": {}, "overrides": {}}, "overrides"),
    ({"segment_id": "1"}, "segment_id"),
    ({"filter": {"nope": 1}}, "filter.nope"),
    ({"everyone": True}, "everyone"),
])
def test_members_body_is_checked(world, body, field):
    campaign = make_campaign(world["a"], world["user_a"], make_journey())
    response = world["api_a"].post(f"/api/campaigns/{campaign.id}/members", json=body)
    assert response.status_code == 422, response.json
    assert field in response.json["error"]["fields"]
    assert world["api_a"].get(f"/api/campaigns/{campaign.id}").json["members"] == 0


def test_membership_is_frozen_at_launch(world):
    api = world["api_a"]
    campaign = make_campaign(world["a"], world["user_a"], make_journey(),
                             [world["people"]["ann"]])
    assert api.post(f"/api/campaigns/{campaign.id}/launch").status_code == 202
    late = api.post(f"/api/campaigns/{campaign.id}/members", json={"filter": {}})
    assert late.status_code == 409
    segment = api.post("/api/segments", json={"name": "All", "filter": {}}).json
    assert api.post(f"/api/campaigns/{campaign.id}/members",
                    json={"segment_id": segment["id"]}).status_code == 409
    assert api.get(f"/api/campaigns/{campaign.id}").json["members"] == 1


def test_every_filter_on_sqlite(tmp_path):
    """`make run` uses SQLite: each filter case above gives the same contacts there."""
    from sqlalchemy import func, select

    from app import create_app
    from campaigns import audiences
    from campaigns.models import Contact
    from core import migrate

    url = f"sqlite:///{tmp_path / 'lastmile.db'}"
    sqlite_app = create_app({"DATABASE_URL": url, "REDIS_URL": "", "SECRET_KEY": "sqlite",
                             "TESTING": True})
    with sqlite_app.app_context():
        migrate.upgrade(url)
        a, b = make_partner(), make_partner()
        for email, first, consent, tags, attributes in [
                ("ann@example.com", "Ann", True, ["vip"],
                 {"city": "Boston", "age": "41", "renewal": "2026-11-30"}),
                ("bob@example.com", "Bob", True, ["vip", "golf"],
                 {"city": "boston", "age": "39.5", "renewal": "2027-03-01T10:00:00"}),
                ("cat@example.com", "Cat", True, [],
                 {"city": "New Bostonia", "age": "n/a", "renewal": "soon"}),
                ("dan@example.com", "Dan", False, [], {"city": "Lyon", "age": "100"}),
                ("eve@example.com", "Eve", True, ["vip"], {"age": "7"}),
                ("fay@example.com", "Fay", True, ["vip"], {"city": "Boston", "age": "52"})]:
            make_contact(a, email, first_name=first, consent=consent, tags=tags,
                         attributes=attributes)
        suppression.add_suppressions(["fay@example.com"], "unsubscribed", "test")
        make_contact(b, "ann@example.com", first_name="Other", tags=["vip"],
                     attributes={"city": "Boston"})
        db.session.commit()
        assert db.session.scalar(select(func.count()).select_from(Contact)) == 7
        for audience, expected in FILTER_CASES:
            cleaned = audiences.clean_filter(audience)
            rows, total = audiences.find_contacts(a.id, [cleaned])
            assert sorted(c.first_name for c, _status in rows) == expected, audience
            assert total == len(expected) == audiences.count_audience(a.id, [cleaned])
        rows, total = audiences.find_contacts(a.id, [{}], page=2, per_page=4)
        assert ([c.first_name for c, _status in rows], total) == (["Eve", "Fay"], 6)
        db.session.remove()
        db.engine.dispose()
