"""The brand's compliance rules: phrases, regular expressions and image domains, checked at
save, at approval and at send; a pathological pattern cannot hang a worker."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from campaigns import compliance, lifecycle, members, sending
from campaigns.ledger import start_scheduled_campaigns
from campaigns.models import Campaign, CampaignMember, Send
from core.db import db
from core.errors import SlotError, StateError
from tests.builders import (
    make_campaign,
    make_contact,
    make_journey,
    make_partner,
    make_template,
    make_user,
)

IMAGE_SLOTS = [{"name": "photo", "type": "image", "label": "Photo",
                "default": "https://img.brand.example/a.png"}]


@pytest.fixture
def brand(app, make_api):
    _, token = make_user("brand_admin")
    return make_api(token)


@pytest.fixture
def partner_api(app, make_api):
    partner = make_partner()
    user, token = make_user("partner_admin", partner)
    return partner, user, make_api(token)


def rule(brand, kind, pattern, message="Not allowed by the brand.", **extra):
    created = brand.post("/api/compliance-rules", json={"kind": kind, "pattern": pattern,
                                                        "message": message, **extra})
    assert created.status_code == 201, created.json
    return created.json


def new_campaign(api, journey, headline):
    return api.post("/api/campaigns", json={"journey_id": journey.id,
                                            "slot_values": {"0": {"headline": headline}}})


def test_rules_are_listed_validated_and_deleted_by_brand_roles_only(brand, partner_api):
    _partner, _user, api = partner_api
    journey = make_journey()
    made = rule(brand, "phrase", "guaranteed returns", "Do not promise returns.",
                journey_id=journey.id)
    assert made["journey_id"] == journey.id and made["kind"] == "phrase"
    bad = brand.post("/api/compliance-rules", json={
        "kind": "regex", "pattern": "(unclosed", "message": "", "journey_id": 999999})
    assert bad.status_code == 422
    assert set(bad.json["error"]["fields"]) == {"pattern", "message", "journey_id"}
    for body in ({"kind": "words", "pattern": "x", "message": "m"},
                 {"kind": "image_domain", "pattern": "not a domain", "message": "m"},
                 {"kind": "phrase", "pattern": "x" * 501, "message": "m"},
                 {"kind": "phrase", "pattern": "a\x00b", "message": "m"}):
        assert brand.post("/api/compliance-rules", json=body).status_code == 422
    assert [r["id"] for r in brand.get("/api/compliance-rules").json["items"]] == [made["id"]]
    assert api.get("/api/compliance-rules").status_code == 403
    assert api.post("/api/compliance-rules", json={"kind": "phrase", "pattern": "x",
                                                   "message": "m"}).status_code == 403
    assert api.delete(f"/api/compliance-rules/{made['id']}").status_code == 403
    assert brand.delete(f"/api/compliance-rules/{made['id']}").status_code == 204
    assert brand.delete(f"/api/compliance-rules/{made['id']}").status_code == 404
    assert brand.get("/api/compliance-rules").json["items"] == []


def test_a_restricted_phrase_is_refused_at_save_with_the_brands_message(brand, partner_api):
    _partner, _user, api = partner_api
    journey = make_journey()
    rule(brand, "phrase", "Guaranteed  returns", "Do not promise returns.")
    refused = new_campaign(api, journey, "GUARANTEED returns for you")
    assert refused.status_code == 422
    assert refused.json["error"]["fields"] == {"steps.0.headline": "Do not promise returns."}
    # Markup does not hide it: the words a reader sees are checked.
    body = api.post("/api/campaigns", json={"journey_id": journey.id, "slot_values": {
        "0": {"body": "<p>guaranteed <b>returns</b></p>"}}})
    assert body.status_code == 422 and "steps.0.body" in body.json["error"]["fields"]
    assert api.get("/api/campaigns").json["total"] == 0
    assert new_campaign(api, journey, "Plan your returns").status_code == 201


def test_a_regex_rule_is_refused_at_save_and_a_journey_rule_only_on_its_journey(
        brand, partner_api):
    _partner, _user, api = partner_api
    governed, other = make_journey(), make_journey()
    rule(brand, "regex", r"\b\d{8,12}\b", "Never write an account number.",
         journey_id=governed.id)
    refused = new_campaign(api, governed, "Account 12345678 is ready")
    assert refused.status_code == 422
    assert refused.json["error"]["fields"]["steps.0.headline"] == (
        "Never write an account number.")
    assert new_campaign(api, other, "Account 12345678 is ready").status_code == 201
    assert new_campaign(api, governed, "Call 555-0100").status_code == 201


def test_image_domain_rules_allow_only_the_brands_image_hosts(brand, partner_api):
    _partner, _user, api = partner_api
    journey = make_journey(templates=[make_template(slots=IMAGE_SLOTS)])
    rule(brand, "image_domain", "brand.example", "Use images from the brand library.")

    def with_photo(url):
        return api.post("/api/campaigns", json={"journey_id": journey.id,
                                                "slot_values": {"0": {"photo": url}}})

    assert with_photo("https://img.brand.example/b.png").status_code == 201
    refused = with_photo("https://tracker.example/pixel.png")
    assert refused.status_code == 422
    assert refused.json["error"]["fields"]["steps.0.photo"] == (
        "Use images from the brand library.")
    assert compliance.value_problem('<p><img src="https://evil.example/x.png"></p>', "richtext",
                                    compliance.rules_for(None))


def test_a_member_override_is_checked_at_save(brand, partner_api):
    partner, user, api = partner_api
    journey = make_journey()
    rule(brand, "phrase", "risk-free", "Nothing is risk-free.")
    campaign = make_campaign(partner, user, journey)
    contact = make_contact(partner)
    added = api.post(f"/api/campaigns/{campaign.id}/members", json={
        "contact_ids": [contact.id],
        "overrides": {str(contact.id): {"0": {"headline": "A risk-free plan"}}}})
    assert added.status_code == 422
    assert added.json["error"]["fields"] == {
        f"overrides.{contact.id}.steps.0.headline": "Nothing is risk-free."}
    assert members.member_count(campaign.id) == 0


def test_a_pathological_pattern_does_not_hang_and_holds_the_value_back(brand, partner_api):
    _partner, _user, api = partner_api
    journey = make_journey()
    made = rule(brand, "regex", "(a+)+$", "No runs of a.")
    value = "a" * 5000 + "!"
    # Catastrophic backtracking on a backtracking engine; here the match has a time limit
    # and a value that could not be checked is not let through.
    problem = compliance.value_problem(value, "text", compliance.rules_for(None))
    assert problem.startswith("No runs of a.") and "could not be checked in time" in problem
    refused = api.post("/api/campaigns", json={"journey_id": journey.id, "slot_values": {
        "0": {"body": value}}})
    assert refused.status_code == 422 and "steps.0.body" in refused.json["error"]["fields"]
    assert compliance.value_problem("a" * 10, "text", compliance.rules_for(None)) == (
        "No runs of a.")
    brand.delete(f"/api/compliance-rules/{made['id']}")
    assert new_campaign(api, journey, "aaaa!").status_code == 201


def test_approval_is_refused_when_a_rule_added_meanwhile_matches(brand, partner_api):
    partner, user, _api = partner_api
    journey = make_journey(requires_approval=True)
    campaign = make_campaign(partner, user, journey, [make_contact(partner)],
                             slot_values={"0": {"headline": "Guaranteed returns"}})
    lifecycle.launch_campaign(campaign)
    rule(brand, "phrase", "guaranteed", "Do not promise returns.")
    refused = brand.post(f"/api/campaigns/{campaign.id}/approve")
    assert refused.status_code == 409
    assert "step 1, Headline: Do not promise returns." in refused.json["error"]["message"]
    db.session.expire_all()
    assert db.session.get(Campaign, campaign.id).status == "pending_approval"


def _running(partner, user, journey, contacts, headline):
    campaign = make_campaign(partner, user, journey, contacts,
                             slot_values={"0": {"headline": headline}})
    lifecycle.launch_campaign(campaign)
    assert start_scheduled_campaigns() >= 1
    return campaign


def test_a_rule_added_after_approval_holds_back_the_sends_it_matches(app, brand, partner_api):
    partner, user, _api = partner_api
    journey = make_journey()
    contacts = [make_contact(partner) for _ in range(3)]
    matching = _running(partner, user, journey, contacts[:2], "Guaranteed returns")
    clean = _running(partner, user, journey, contacts[2:], "Plan with us")
    # One member of the clean campaign had an override saved before the rule existed.
    override_contact = make_contact(partner)
    db.session.add(CampaignMember(campaign_id=clean.id, contact_id=override_contact.id,
                                  overrides={"0": {"headline": "Guaranteed income"}}))
    db.session.add(Send(campaign_id=clean.id, step_index=0, contact_id=override_contact.id,
                        partner_id=partner.id, journey_id=journey.id,
                        template_version_id=journey.steps[0].template_version_id,
                        email=override_contact.email, status="queued",
                        due_at=contacts[0].created_at))
    db.session.commit()
    rule(brand, "phrase", "guaranteed", "Do not promise returns.")

    counts = sending.deliver_due(limit=50)
    assert counts["held_back"] == 3
    db.session.expire_all()
    held = db.session.get(Campaign, matching.id)
    assert held.status == "paused"
    assert "step 1, Headline: Do not promise returns." in held.status_reason
    by_status = {}
    for send in db.session.scalars(select(Send).order_by(Send.id)):
        by_status.setdefault((send.campaign_id, send.status), []).append(send)
    assert len(by_status[(matching.id, "queued")]) == 2  # waiting, not sent
    assert len(by_status[(clean.id, "sent")]) == 1
    [refused] = by_status[(clean.id, "failed")]
    assert refused.contact_id == override_contact.id
    assert "Do not promise returns." in refused.last_error
    # The partner cannot resume before correcting the values.
    with pytest.raises(StateError):
        lifecycle.resume_campaign(held)
    with pytest.raises(SlotError):
        lifecycle.update_campaign(held, user, {"slot_values": {"0": {"headline": "Guaranteed"}}})
    lifecycle.update_campaign(held, user, {"slot_values": {"0": {"headline": "Plan ahead"}}})
    assert lifecycle.resume_campaign(held).status == "running"


def test_the_compliance_page_adds_lists_and_deletes_rules(client):
    from tests.test_web_pages import login, page_token

    user, _ = make_user("brand_marketer", password="correct horse battery")
    journey = make_journey(name="Spring offer")
    login(client, user.email)
    token = page_token(client, "/brand/compliance")
    bad = client.post("/brand/compliance", data={"csrf_token": token, "kind": "regex",
                                                 "pattern": "(", "message": ""})
    page = bad.get_data(as_text=True)
    assert bad.status_code == 422 and "is not a valid regular expression" in page
    added = client.post("/brand/compliance", data={
        "csrf_token": token, "kind": "phrase", "pattern": "guaranteed returns",
        "message": "Do not promise returns.", "journey_id": str(journey.id)})
    assert added.status_code == 302
    page = client.get("/brand/compliance").get_data(as_text=True)
    assert "guaranteed returns" in page and "Spring offer" in page
    [made] = compliance.list_rules()
    assert made.journey_id == journey.id
    client.post(f"/brand/compliance/{made.id}/delete", data={"csrf_token": token})
    assert compliance.list_rules() == []
