"""Campaigns through HTTP (API: Campaigns, Quick send, Messages): slots, members, approvals."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from campaigns import members, suppression
from campaigns.ledger import start_scheduled_campaigns
from campaigns.models import Campaign, Send
from campaigns.sending import compose_message
from campaigns.states import ACTIONS, apply
from core.db import db
from core.errors import StateError
from core.tokens import read_token
from tests.builders import (
    make_campaign,
    make_contact,
    make_journey,
    make_partner,
    make_template,
    make_user,
)

SENDER = {"name": "Pat Partner", "reply_to": "pat@partner.example"}


@pytest.fixture
def world(app, make_api):
    """Two partners (gold/west and silver/east) with one partner user each, and a brand admin."""
    a = make_partner(tier="gold", region="west")
    b = make_partner(tier="silver", region="east")
    user_a, token_a = make_user("partner_admin", a)
    _, token_b = make_user("partner_user", b)
    _, brand_token = make_user("brand_admin")
    return {"a": a, "b": b, "user_a": user_a, "api_a": make_api(token_a),
            "api_b": make_api(token_b), "brand": make_api(brand_token)}


def body(journey, **changes) -> dict:
    data = {"journey_id": journey.id, "name": "Spring", "slot_values": {}, "sender": SENDER}
    data.update(changes)
    return data


def test_create_with_flat_and_per_step_values(world):
    journey = make_journey(steps=2)
    api = world["api_a"]
    flat = api.post("/api/campaigns", json=body(journey, slot_values={"headline": "Hi there"}))
    assert flat.status_code == 201, flat.json
    assert flat.json["status"] == "draft"
    values = flat.json["slot_values"]
    assert values["0"]["headline"] == values["1"]["headline"] == "Hi there"
    assert values["0"]["cta_url"] == "https://brand.example/book"  # default filled
    per_step = api.post("/api/campaigns", json=body(journey, slot_values={
        "1": {"body": "<p>Step two <script>x()</script><b>bold</b></p>"}}))
    assert per_step.status_code == 201, per_step.json
    assert per_step.json["slot_values"]["0"]["headline"] == "Hello from us"
    assert per_step.json["slot_values"]["1"]["body"] == "<p>Step two <b>bold</b></p>"


def test_every_failing_slot_is_listed(world):
    journey = make_journey(steps=2)
    response = world["api_a"].post("/api/campaigns", json=body(journey, slot_values={
        "0": {"headline": "x" * 81, "cta_url": "https://evil.example/"},
        "1": {"headline": "<mj-section>injected</mj-section>", "nope": "x"},
        "7": {"headline": "no such step"},
    }))
    assert response.status_code == 422
    fields = response.json["error"]["fields"]
    assert set(fields) == {"steps.0.headline", "steps.0.cta_url", "steps.1.headline",
                           "steps.1.nope", "slot_values.7"}
    assert "80" in fields["steps.0.headline"]
    assert db.session.scalar(select(Campaign.id)) is None


@pytest.mark.parametrize("extra", [{"mjml": "<mjml/>"}, {"html": "<p>x</p>"},
                                   {"subject": "Free money"}, {"template_id": 1}])
def test_template_content_is_refused(world, extra):
    journey = make_journey()
    response = world["api_a"].post("/api/campaigns", json=body(journey, **extra))
    assert response.status_code == 422
    assert response.json["error"]["code"] == "locked_content"
    assert set(response.json["error"]["fields"]) == set(extra)


def test_sender_header_injection_and_bad_reply_to(world):
    journey = make_journey()
    response = world["api_a"].post("/api/campaigns", json=body(
        journey, sender={"name": "x\r\nBcc: a@b.example", "reply_to": "nobody"}))
    assert response.status_code == 422
    assert set(response.json["error"]["fields"]) == {"sender.name", "sender.reply_to"}


def test_journey_outside_catalog_or_unpublished_is_404(world):
    api = world["api_a"]
    silver_only = make_journey(tiers=["silver"])
    assert api.post("/api/campaigns", json=body(silver_only)).status_code == 404
    assert world["api_b"].post("/api/campaigns", json=body(silver_only)).status_code == 201
    from journeys import services as journeys

    template = make_template()
    draft = journeys.create_journey(name="Draft", steps=[{"template_id": template.template_id,
                                                          "delay_hours": 0}])
    assert api.post("/api/campaigns", json=body(draft)).status_code == 404
    assert world["brand"].post("/api/campaigns", json=body(silver_only)).status_code == 403


def test_members_report_each_exclusion(world):
    a, b = world["a"], world["b"]
    journey = make_journey()
    ok = make_contact(a, email="ok@example.com")
    unsub = make_contact(a, email="Unsub@Example.com")
    bounced = make_contact(a, email="bounced@example.com")
    complained = make_contact(a, email="complained@example.com")
    no_consent = make_contact(a, email="quiet@example.com", consent=False)
    foreign = make_contact(b, email="foreign@example.com")
    assert suppression.suppress_email("UNSUB@example.com", "unsubscribed") is True
    assert suppression.suppress_email("unsub@example.com", "unsubscribed") is False
    suppression.suppress_email("bounced@example.com", "bounced", "550 no such user")
    suppression.suppress_email("complained@example.com", "complained")
    campaign = make_campaign(a, world["user_a"], journey)
    ids = [ok.id, unsub.id, bounced.id, complained.id, no_consent.id, foreign.id, 999999, ok.id]
    response = world["api_a"].post(f"/api/campaigns/{campaign.id}/members",
                                   json={"contact_ids": ids})
    assert response.status_code == 200, response.json
    assert response.json["added"] == 1
    assert {(e["contact_id"], e["reason"]) for e in response.json["excluded"]} == {
        (unsub.id, "unsubscribed"), (bounced.id, "bounced"), (complained.id, "complained"),
        (no_consent.id, "no_consent"), (foreign.id, "not_found"), (999999, "not_found"),
        (ok.id, "duplicate")}
    assert suppression.exclusion_reason(unsub) == "unsubscribed"
    assert suppression.exclusion_reason(no_consent) == "no_consent"
    assert suppression.exclusion_reason(ok) is None
    # The other partner cannot touch this campaign at all.
    assert world["api_b"].post(f"/api/campaigns/{campaign.id}/members",
                               json={"contact_ids": [foreign.id]}).status_code == 404
    assert world["api_b"].get(f"/api/campaigns/{campaign.id}").status_code == 404


def test_invalid_overrides_add_nobody(world):
    a = world["a"]
    journey = make_journey()
    contact = make_contact(a)
    campaign = make_campaign(a, world["user_a"], journey)
    response = world["api_a"].post(f"/api/campaigns/{campaign.id}/members", json={
        "contact_ids": [contact.id],
        "overrides": {str(contact.id): {"headline": "y" * 100, "cta_url": "javascript:x"}}})
    assert response.status_code == 422
    assert set(response.json["error"]["fields"]) == {
        f"overrides.{contact.id}.steps.0.headline", f"overrides.{contact.id}.steps.0.cta_url"}
    assert members.member_count(campaign.id) == 0


def test_preview_is_exactly_what_the_worker_sends(world, app):
    a = world["a"]
    journey = make_journey()
    contact = make_contact(a, first_name="Ada")
    campaign = make_campaign(a, world["user_a"], journey,
                             slot_values={"headline": "Q&A: 5 < 6"})
    world["api_a"].post(f"/api/campaigns/{campaign.id}/members", json={
        "contact_ids": [contact.id],
        "overrides": {str(contact.id): {"body": "<p>Just for Ada</p>"}}})
    preview = world["api_a"].get(f"/api/campaigns/{campaign.id}/preview?contact_id={contact.id}")
    assert preview.status_code == 200, preview.json
    assert preview.json["locked_regions_intact"] is True
    assert preview.json["subject"] == "Q&A: 5 < 6, Ada"
    html = preview.json["html"]
    assert "Q&amp;A: 5 &lt; 6" in html and "<p>Just for Ada</p>" in html
    assert 'href="https://brand.example/book"' in html
    # The worker's call with a send id gives the same message, links signed for that send.
    sent = compose_message(campaign, 0, contact, a, send_id=42, config=app.config)
    assert sent.subject == preview.json["subject"]
    assert "https://brand.example/book" not in sent.html
    assert "http://lastmile.test/t/c/" in sent.html and "/t/o/" in sent.html
    token = sent.unsubscribe_url.rsplit("/", 1)[1]
    assert read_token(app.config["SECRET_KEY"], "unsubscribe", token) == (42, None)
    # The brand may preview with the sample contact, never as a recipient; a foreign contact
    # or the other partner may not preview at all.
    assert world["brand"].get(f"/api/campaigns/{campaign.id}/preview").status_code == 200
    as_recipient = f"/api/campaigns/{campaign.id}/preview?contact_id={contact.id}"
    assert world["brand"].get(as_recipient).status_code == 404
    foreign = make_contact(world["b"])
    assert world["api_a"].get(
        f"/api/campaigns/{campaign.id}/preview?contact_id={foreign.id}").status_code == 404
    assert world["api_b"].get(f"/api/campaigns/{campaign.id}/preview").status_code == 404


def test_launch_schedules_sends_and_counts_them(world):
    a = world["a"]
    journey = make_journey(steps=2)
    api = world["api_a"]
    empty = make_campaign(a, world["user_a"], journey)
    assert api.post(f"/api/campaigns/{empty.id}/launch").status_code == 409
    contacts = [make_contact(a) for _ in range(3)]
    campaign = make_campaign(a, world["user_a"], journey, contacts)
    launched = api.post(f"/api/campaigns/{campaign.id}/launch")
    assert launched.status_code == 202, launched.json
    assert launched.json["status"] == "scheduled"
    # The launch answers at once; the scheduler's next tick queues the first step.
    detail = api.get(f"/api/campaigns/{campaign.id}").json
    assert detail["status"] == "scheduled" and detail["messages"]["total"] == 0
    assert start_scheduled_campaigns() == 1 and start_scheduled_campaigns() == 0
    detail = api.get(f"/api/campaigns/{campaign.id}").json
    assert detail["status"] == "running" and detail["members"] == 3
    assert detail["messages"]["queued"] == 3 and detail["messages"]["sent"] == 0
    assert api.post(f"/api/campaigns/{campaign.id}/launch").status_code == 409
    assert api.post(f"/api/campaigns/{campaign.id}/members",
                    json={"contact_ids": [contacts[0].id]}).status_code == 409


def test_approval_flow(world):
    a = world["a"]
    journey = make_journey(requires_approval=True)
    api, brand = world["api_a"], world["brand"]
    contacts = [make_contact(a), make_contact(a)]
    campaign = make_campaign(a, world["user_a"], journey, contacts,
                             slot_values={"headline": "Custom headline"})
    empty = api.post(f"/api/campaigns/{campaign.id}/members", json={"contact_ids": []})
    assert empty.status_code == 422
    assert api.post(f"/api/campaigns/{campaign.id}/launch").json["status"] == "pending_approval"
    assert db.session.scalar(select(Send.id)) is None  # nothing queued before approval
    queue = brand.get("/api/campaigns?status=pending_approval").json
    assert [c["id"] for c in queue["items"]] == [campaign.id]
    changes = brand.get(f"/api/campaigns/{campaign.id}/changes").json
    assert changes["steps"] == [{"step": 0, "template": changes["steps"][0]["template"],
                                 "slots": {"headline": {"label": "Headline",
                                                        "default": "Hello from us",
                                                        "value": "Custom headline"}}}]
    assert changes["overrides"] == {"members": 0, "slots": {}}
    assert api.post(f"/api/campaigns/{campaign.id}/approve").status_code == 403
    assert brand.post(f"/api/campaigns/{campaign.id}/reject", json={}).status_code == 422
    rejected = brand.post(f"/api/campaigns/{campaign.id}/reject",
                          json={"reason": "Headline is off-brand"})
    assert rejected.json["status"] == "rejected"
    seen = api.get(f"/api/campaigns/{campaign.id}").json
    assert (seen["status"], seen["status_reason"]) == ("rejected", "Headline is off-brand")
    edited = api.patch(f"/api/campaigns/{campaign.id}", json={"slot_values": {}})
    assert edited.json["status"] == "draft"
    assert api.post(f"/api/campaigns/{campaign.id}/launch").json["status"] == "pending_approval"
    assert brand.get(f"/api/campaigns/{campaign.id}/changes").json["steps"] == []
    approved = brand.post(f"/api/campaigns/{campaign.id}/approve")
    assert approved.status_code == 200
    assert approved.json["status"] == "scheduled"
    start_scheduled_campaigns()
    assert api.get(f"/api/campaigns/{campaign.id}").json["messages"]["queued"] == 2
    assert brand.post(f"/api/campaigns/{campaign.id}/approve").status_code == 409


def test_pause_resume_cancel(world):
    a = world["a"]
    journey = make_journey()
    campaign = make_campaign(a, world["user_a"], journey, [make_contact(a), make_contact(a)])
    api = world["api_a"]
    assert api.post(f"/api/campaigns/{campaign.id}/pause").status_code == 409  # draft
    api.post(f"/api/campaigns/{campaign.id}/launch")
    assert api.post(f"/api/campaigns/{campaign.id}/pause").status_code == 409  # not started
    start_scheduled_campaigns()
    assert api.post(f"/api/campaigns/{campaign.id}/pause").json["status"] == "paused"
    assert api.post(f"/api/campaigns/{campaign.id}/resume").json["status"] == "running"
    assert world["api_b"].post(f"/api/campaigns/{campaign.id}/cancel").status_code == 404
    cancelled = api.post(f"/api/campaigns/{campaign.id}/cancel").json
    assert cancelled["status"] == "cancelled"
    assert cancelled["messages"]["cancelled"] == 2 and cancelled["messages"]["queued"] == 0
    resumed = api.post(f"/api/campaigns/{campaign.id}/resume")
    assert resumed.status_code == 409
    # Deleting a contact with messages erases the person; the campaign's counts stay.
    member = campaign.members[0].contact_id
    assert api.delete(f"/api/contacts/{member}").status_code == 204
    after = api.get(f"/api/campaigns/{campaign.id}").json
    assert after["messages"]["cancelled"] == 2 and after["members"] == 1


def test_state_table_refuses_disallowed_actions(world):
    campaign = make_campaign(world["a"], world["user_a"], make_journey())
    for action in ("start", "approve", "reject", "resume", "complete", "edit", "pause"):
        with pytest.raises(StateError, match=f"Cannot {action} a draft campaign"):
            apply(campaign, action)
    assert campaign.status == "draft"
    apply(campaign, "cancel", "gone")
    assert apply(campaign, "cancel").status == "cancelled"  # cancelling twice changes nothing
    assert campaign.status_reason == "gone"
    for action in ACTIONS:
        if action != "cancel":
            with pytest.raises(StateError):
                apply(campaign, action)


def test_partner_lists_own_campaigns_brand_lists_all(world):
    make_campaign(world["a"], world["user_a"], make_journey())
    user_b = make_user("partner_admin", world["b"])[0]
    make_campaign(world["b"], user_b, make_journey())
    assert world["api_a"].get("/api/campaigns").json["total"] == 1
    assert world["brand"].get("/api/campaigns").json["total"] == 2
    assert world["brand"].get("/api/campaigns?status=bogus").status_code == 422


def test_quick_send(world):
    a = world["a"]
    api = world["api_a"]
    plain = make_journey()
    ok, quiet = make_contact(a), make_contact(a, consent=False)
    refused = api.post("/api/quick-sends", json={
        "journey_id": plain.id, "contact_ids": [ok.id], "slot_values": {}, "sender": SENDER})
    assert refused.status_code == 422
    assert refused.json["error"]["code"] == "quick_send_not_allowed"
    quick = make_journey(steps=2, quick_send=True)
    nobody = api.post("/api/quick-sends", json={
        "journey_id": quick.id, "contact_ids": [quiet.id], "slot_values": {}, "sender": SENDER})
    assert nobody.status_code == 422
    assert db.session.scalar(select(Campaign.id)) is None
    sent = api.post("/api/quick-sends", json={
        "journey_id": quick.id, "contact_ids": [ok.id, quiet.id],
        "slot_values": {"headline": "Quick hello"}, "sender": SENDER})
    assert sent.status_code == 202, sent.json
    assert sent.json["excluded"] == [{"contact_id": quiet.id, "reason": "no_consent",
                                      "label": "No consent to email"}]
    campaign = db.session.get(Campaign, sent.json["campaign_id"])
    assert (campaign.kind, list(campaign.slot_values)) == ("quick_send", ["0"])
    start_scheduled_campaigns()
    sends = db.session.scalars(select(Send).where(Send.campaign_id == campaign.id)).all()
    assert [(s.step_index, s.contact_id) for s in sends] == [(0, ok.id)]
    bad_slot = api.post("/api/quick-sends", json={
        "journey_id": quick.id, "contact_ids": [ok.id], "slot_values": {"headline": "z" * 90},
        "sender": {"name": "a\nb"}})
    assert bad_slot.status_code == 422


def test_quick_send_with_approval_waits(world):
    a = world["a"]
    journey = make_journey(quick_send=True, requires_approval=True)
    sent = world["api_a"].post("/api/quick-sends", json={
        "journey_id": journey.id, "contact_ids": [make_contact(a).id], "slot_values": {},
        "sender": SENDER})
    assert sent.status_code == 202
    assert sent.json["status"] == "pending_approval"
    assert db.session.scalar(select(Send.id)) is None


def test_message_status_is_partner_scoped(world):
    a = world["a"]
    contact = make_contact(a)
    campaign = make_campaign(a, world["user_a"], make_journey(), [contact])
    world["api_a"].post(f"/api/campaigns/{campaign.id}/launch")
    start_scheduled_campaigns()
    send = db.session.scalar(select(Send))
    send.status = "claimed"
    db.session.commit()
    message = world["api_a"].get(f"/api/messages/{send.id}")
    assert message.status_code == 200
    assert message.json["status"] == "sending"
    assert (message.json["campaign_id"], message.json["step"], message.json["contact_id"],
            message.json["email"], message.json["attempts"]) == (
        campaign.id, 0, contact.id, contact.email, 0)
    assert world["api_b"].get(f"/api/messages/{send.id}").status_code == 404
    assert world["api_a"].get("/api/messages/999999").status_code == 404
    assert world["brand"].get(f"/api/messages/{send.id}").status_code == 403  # per-recipient
    # A row waiting for a retry is still queued in the API's terms, with the error and time.
    send.status, send.attempts, send.last_error = "retry", 1, "451 try later"
    db.session.commit()
    retrying = world["api_a"].get(f"/api/messages/{send.id}").json
    assert (retrying["status"], retrying["attempts"], retrying["last_error"]) == (
        "queued", 1, "451 try later")
    assert retrying["next_attempt_at"] == send.due_at.isoformat()
