"""Send me a test (POST /api/campaigns/{id}/test-send): to me only, as sent, never counted.

Delivery goes through the configured backend: the outbox, the SMTP catcher `make run`
starts, or a recording SMTP server that shows the envelope's recipients.
"""

from __future__ import annotations

from email import message_from_bytes, policy

import pytest
from sqlalchemy import func, select

from campaigns import members, testsend
from campaigns.models import Send, TestSend
from core import clock
from core.db import db
from delivery.catcher import start_catcher
from delivery.outbox import id_of_test_send, list_outbox, read_outbox
from journeys.models import Journey
from tests.builders import (
    make_campaign,
    make_contact,
    make_journey,
    make_partner,
    make_sent_message,
    make_user,
)
from tests.test_pipeline_support import T0, configured, free_port, smtp_server
from tests.test_web_pages import PASSWORD, login, page_token
from tracking import analytics


@pytest.fixture(autouse=True)
def _own_outbox(app, tmp_path):
    """A fresh outbox per test: ids restart with every test's database, files would not."""
    with configured(app, OUTBOX_DIR=str(tmp_path / "outbox")):
        yield


@pytest.fixture
def world(app, make_api):
    partner = make_partner(tier="gold")
    user, token = make_user("partner_user", partner, email="pat@advisor.example",
                            password=PASSWORD)
    _, other_token = make_user("partner_user", make_partner(tier="gold"))
    brand_user, brand_token = make_user("brand_marketer", email="mo@brand.example")
    contact = make_contact(partner, email="client@home.example", first_name="Clara")
    journey = make_journey(steps=2)
    campaign = make_campaign(partner, user, journey, [contact],
                             slot_values={"headline": "Spring plans"})
    return {"partner": partner, "user": user, "api": make_api(token),
            "other": make_api(other_token), "brand": make_api(brand_token),
            "brand_user": brand_user, "contact": contact, "campaign": campaign}


def outbox_messages_of(app, test_id: int) -> list:
    """The stored messages of one test send, parsed, oldest first."""
    directory = app.config["OUTBOX_DIR"]
    ids = [m["id"] for m in list_outbox(directory, 1, 10_000)
           if id_of_test_send(m["id"]) == test_id]
    return [message_from_bytes(read_outbox(directory, i), policy=policy.default)
            for i in reversed(ids)]


def html_of(message) -> str:
    return message.get_body(preferencelist=("html",)).get_content()


def test_a_test_send_lands_in_the_outbox_marked_and_uncounted(world, app):
    campaign = world["campaign"]
    sent = make_sent_message(campaign, email="earlier@home.example")  # real traffic before
    report_before = analytics.campaign_report(campaign)
    journey = db.session.get(Journey, campaign.journey_id)
    journey_before = analytics.journey_report(journey)
    scorecard_before = analytics.partner_scorecard()
    sends_before = db.session.scalar(select(func.count()).select_from(Send))

    response = world["api"].post(f"/api/campaigns/{campaign.id}/test-send")
    assert response.status_code == 202, response.json
    body = response.json
    assert (body["to"], body["steps"], body["status"]) == ("pat@advisor.example", [0, 1], "sent")

    messages = outbox_messages_of(app, body["id"])
    assert [m["Subject"] for m in messages] == ["[TEST] Spring plans, Alex",
                                                "[TEST] Spring plans, Alex"]
    for message in messages:
        assert message["To"] == "pat@advisor.example"
        assert message["List-Unsubscribe"] is None
        html = html_of(message)
        assert "/t/o/" not in html and "/t/c/" not in html and "/u/" not in html
        assert 'href="https://brand.example/book"' in html  # straight to the target
        assert "Dear Alex" in html  # the sample contact
    # Nothing for analytics: no send row, no event, the same numbers.
    assert db.session.scalar(select(func.count()).select_from(Send)) == sends_before
    assert analytics.campaign_report(campaign) == report_before
    assert analytics.partner_scorecard() == scorecard_before
    assert analytics.journey_report(journey) == journey_before
    assert sent.status == "sent"


def test_it_is_the_message_as_sent_for_a_chosen_contact_but_mailed_only_to_me(world, app):
    campaign = world["campaign"]
    contact = world["contact"]
    members.add_members(campaign, [contact.id], {str(contact.id): {"headline": "Just for you"}})
    with smtp_server() as (recorder, port), configured(
            app, DELIVERY_BACKEND="smtp", SMTP_HOST="127.0.0.1", SMTP_PORT=str(port)):
        response = world["api"].post(f"/api/campaigns/{campaign.id}/test-send",
                                     json={"step": 1, "contact_id": contact.id})
        assert response.status_code == 202, response.json
        assert response.json["steps"] == [1]
        assert recorder.count() == 1
        with recorder.lock:
            envelope_data = recorder.messages[0]
    message = message_from_bytes(envelope_data, policy=policy.default)
    assert message["To"] == "pat@advisor.example"
    assert message["Subject"] == "[TEST] Just for you, Clara"  # the member's override
    assert "client@home.example" not in envelope_data.decode("utf-8", "replace")
    assert message["X-Lastmile-Test-Send"] == str(response.json["id"])


def test_the_envelope_names_only_the_signed_in_user(world, app):
    campaign = world["campaign"]

    class Envelopes:
        def __init__(self):
            self.rcpts: list[list[str]] = []

        async def handle_DATA(self, server, session, envelope):  # noqa: ANN001
            self.rcpts.append(list(envelope.rcpt_tos))
            return "250 OK"

    from aiosmtpd.controller import Controller

    handler, port = Envelopes(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with configured(app, DELIVERY_BACKEND="smtp", SMTP_HOST="127.0.0.1",
                        SMTP_PORT=str(port)):
            response = world["api"].post(f"/api/campaigns/{campaign.id}/test-send",
                                         json={"contact_id": world["contact"].id})
    finally:
        controller.stop()
    assert response.status_code == 202
    assert handler.rcpts == [["pat@advisor.example"], ["pat@advisor.example"]]


def test_a_test_send_reaches_the_smtp_catcher(world, app, tmp_path):
    campaign = world["campaign"]
    port = free_port()
    catcher = start_catcher("127.0.0.1", port, tmp_path / "caught")
    try:
        with configured(app, DELIVERY_BACKEND="smtp", SMTP_HOST="127.0.0.1",
                        SMTP_PORT=str(port), OUTBOX_DIR=str(tmp_path / "caught")):
            response = world["api"].post(f"/api/campaigns/{campaign.id}/test-send",
                                         json={"step": 0})
            assert response.status_code == 202
            caught = list_outbox(tmp_path / "caught")
    finally:
        catcher.stop()
    assert [(m["to"], m["subject"]) for m in caught] == [
        ("pat@advisor.example", "[TEST] Spring plans, Alex")]
    assert id_of_test_send(caught[0]["id"]) == response.json["id"]


def test_my_tests_show_in_my_outbox_page_and_nobody_elses(world, app, client):
    campaign = world["campaign"]
    test_id = world["api"].post(f"/api/campaigns/{campaign.id}/test-send",
                                json={"step": 0}).json["id"]
    stored = [m["id"] for m in list_outbox(app.config["OUTBOX_DIR"], 1, 10_000)
              if id_of_test_send(m["id"]) == test_id]
    assert len(stored) == 1
    login(client, world["user"].email)
    assert "[TEST] Spring plans" in client.get("/outbox").get_data(as_text=True)
    assert client.get(f"/outbox/{stored[0]}").status_code == 200
    client.post("/logout", data={"csrf_token": page_token(client, "/partner")})
    stranger, _ = make_user("partner_user", make_partner(tier="gold"), password=PASSWORD)
    login(client, stranger.email)
    assert "[TEST] Spring plans" not in client.get("/outbox").get_data(as_text=True)
    assert client.get(f"/outbox/{stored[0]}").status_code == 404
    assert client.get(f"/outbox/{stored[0]}/html").status_code == 404


def test_eleventh_test_in_an_hour_is_429(world):
    clock.freeze(T0)
    campaign, api = world["campaign"], world["api"]
    for _ in range(testsend.LIMIT_PER_HOUR):
        assert api.post(f"/api/campaigns/{campaign.id}/test-send",
                        json={"step": 0}).status_code == 202
    clock.advance(minutes=20)
    refused = api.post(f"/api/campaigns/{campaign.id}/test-send", json={"step": 0})
    assert refused.status_code == 429
    assert refused.json["error"]["code"] == "rate_limited"
    assert "Try again in 40 minutes" in refused.json["error"]["message"]
    assert db.session.scalar(select(func.count()).select_from(TestSend)) == 10  # not counted
    # Another campaign has its own allowance; an hour after the first tests, this one too.
    other = make_campaign(world["partner"], world["user"], make_journey(), [world["contact"]])
    assert api.post(f"/api/campaigns/{other.id}/test-send").status_code == 202
    clock.advance(minutes=40, seconds=1)
    assert api.post(f"/api/campaigns/{campaign.id}/test-send",
                    json={"step": 0}).status_code == 202


def test_smtp_down_answers_502_at_once_and_counts_the_try(world, app):
    campaign = world["campaign"]
    with configured(app, DELIVERY_BACKEND="smtp", SMTP_HOST="127.0.0.1",
                    SMTP_PORT=str(free_port())):  # nobody listens
        response = world["api"].post(f"/api/campaigns/{campaign.id}/test-send")
    assert response.status_code == 502
    assert response.json["error"]["code"] == "delivery_failed"
    assert "nothing reached you" in response.json["error"]["message"]
    record = db.session.scalar(select(TestSend))
    assert (record.status, record.steps) == ("failed", [0, 1])
    assert "connect to 127.0.0.1" in record.error


def test_a_stalled_mail_server_is_given_up_on(world, app, monkeypatch):
    monkeypatch.setattr(testsend, "TIMEOUT_SECONDS", 0.5)
    with smtp_server(delay=5) as (_recorder, port), configured(
            app, DELIVERY_BACKEND="smtp", SMTP_HOST="127.0.0.1", SMTP_PORT=str(port)):
        response = world["api"].post(f"/api/campaigns/{world['campaign'].id}/test-send")
    assert response.status_code == 502
    assert "timed out" in response.json["error"]["message"]


@pytest.mark.parametrize(("body", "status", "field"), [
    ({"step": 2}, 422, "step"),
    ({"step": -1}, 422, "step"),
    ({"step": "0"}, 422, "step"),
    ({"step": True}, 422, "step"),
    ({"step": 10**30}, 422, "step"),
    ({"contact_id": "1"}, 422, "contact_id"),
    ({"contact_id": 10**30}, 422, "contact_id"),
    ({"to": "someone@else.example"}, 422, "to"),
    ({"contact_id": 987654}, 404, None),
])
def test_bad_requests_send_nothing(world, app, body, status, field):
    response = world["api"].post(f"/api/campaigns/{world['campaign'].id}/test-send", json=body)
    assert response.status_code == status, response.json
    if field:
        assert field in response.json["error"]["fields"]
    assert db.session.scalar(select(func.count()).select_from(TestSend)) == 0


def test_tenancy_and_roles(world, app):
    campaign = world["campaign"]
    foreign = make_contact(make_partner(tier="gold"))
    api = world["api"]
    assert api.post(f"/api/campaigns/{campaign.id}/test-send",
                    json={"contact_id": foreign.id}).status_code == 404
    assert world["other"].post(f"/api/campaigns/{campaign.id}/test-send").status_code == 404
    # A brand reviewer may test with the sample contact, to their own address, never as a
    # recipient.
    brand = world["brand"]
    assert brand.post(f"/api/campaigns/{campaign.id}/test-send",
                      json={"contact_id": world["contact"].id}).status_code == 404
    mine = brand.post(f"/api/campaigns/{campaign.id}/test-send", json={"step": 0})
    assert mine.status_code == 202 and mine.json["to"] == "mo@brand.example"
    assert api.post("/api/campaigns/999999/test-send").status_code == 404
    bad_json = api.post(f"/api/campaigns/{campaign.id}/test-send", data="{",
                        headers={"Content-Type": "application/json"})
    assert bad_json.status_code == 400


def test_a_quick_send_has_one_step_to_test(world, app):
    journey = make_journey(steps=2, quick_send=True)
    quick = world["api"].post("/api/quick-sends", json={
        "journey_id": journey.id, "contact_ids": [world["contact"].id],
        "sender": {"name": "Pat", "reply_to": "pat@advisor.example"}}).json
    response = world["api"].post(f"/api/campaigns/{quick['campaign_id']}/test-send")
    assert response.status_code == 202 and response.json["steps"] == [0]
    assert world["api"].post(f"/api/campaigns/{quick['campaign_id']}/test-send",
                             json={"step": 1}).status_code == 422
