"""Scheduling a campaign (send_at / timezone): nothing leaves before its time, whatever runs.

The clock is moved (core.clock) and the real scheduler, RQ workers, the embedded worker and
`flask` subprocesses (a restart) run before and after the send time against a recording SMTP
server; the ledger and the server's log say what left and when.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from campaigns import ledger
from campaigns.models import Campaign, Send
from campaigns.states import ACTIONS
from campaigns.worker import run_embedded
from core import clock
from core.db import db
from delivery import backends
from tests.builders import make_campaign, make_contact, make_journey, make_partner, make_user
from tests.test_openapi import conforms
from tests.test_pipeline_support import (
    configured,
    drain,
    free_port,
    run_flask,
    smtp_server,
    statuses,
    subprocess_env,
)

# 2030-03-04 09:00 UTC is 03:00 in Chicago (CST, UTC-6; daylight time starts 10 March).
T0 = datetime(2030, 3, 4, 9, 0, 0)
SENDER = {"name": "Pat Partner", "reply_to": "pat@partner.example"}


def iso(naive_utc: datetime, offset_hours: int = -6) -> str:
    """ISO 8601 of a naive-UTC instant written with the given UTC offset."""
    local = naive_utc + timedelta(hours=offset_hours)
    sign = "-" if offset_hours < 0 else "+"
    return local.isoformat() + f"{sign}{abs(offset_hours):02d}:00"


@pytest.fixture
def world(app, make_api):
    partner = make_partner(tier="gold", region="west")
    other = make_partner(tier="gold", region="west")
    user, token = make_user("partner_admin", partner)
    _, other_token = make_user("partner_user", other)
    _, brand_token = make_user("brand_admin")
    return {"partner": partner, "user": user, "api": make_api(token),
            "other": make_api(other_token), "brand": make_api(brand_token)}


@pytest.fixture
def smtp(app):
    with smtp_server() as (recorder, port), configured(
        app, DELIVERY_BACKEND="smtp", SMTP_HOST="127.0.0.1", SMTP_PORT=str(port),
    ):
        recorder.port = port
        yield recorder
    backends.drop_backend()


def campaign_with(world, n: int = 3, **journey_kw) -> Campaign:
    journey = make_journey(**journey_kw)
    contacts = [make_contact(world["partner"]) for _ in range(n)]
    return make_campaign(world["partner"], world["user"], journey, contacts)


def fresh(campaign_id: int) -> Campaign:
    db.session.expire_all()
    return db.session.get(Campaign, campaign_id)


def send_rows(campaign_id: int) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(Send)
                             .where(Send.campaign_id == campaign_id))


# ----------------------------------------------------------------------- nothing leaves early


def test_message_leaves_only_after_send_at(world, smtp, app):
    clock.freeze(T0)
    campaign = campaign_with(world, 3)
    api = world["api"]
    send_at = T0 + timedelta(hours=1)
    launched = api.post(f"/api/campaigns/{campaign.id}/launch",
                        json={"send_at": iso(send_at), "timezone": "America/Chicago"})
    assert launched.status_code == 202, launched.json
    assert launched.json == {"id": campaign.id, "status": "scheduled",
                             "send_at": "2030-03-04T04:00:00-06:00"}
    assert fresh(campaign.id).send_at == send_at  # stored as UTC

    drain(app)  # scheduler ticks and RQ workers: not yet
    clock.advance(minutes=59, seconds=59)
    drain(app)
    assert smtp.count() == 0 and send_rows(campaign.id) == 0
    assert fresh(campaign.id).status == "scheduled"

    clock.advance(seconds=1)  # send_at
    drain(app)
    assert smtp.count() == 3
    assert statuses(campaign.id) == {"sent": 3}
    assert set(smtp.send_ids().values()) == {1}


def test_a_restart_before_send_at_changes_nothing(world, smtp, app):
    """New scheduler and worker processes (RQ and embedded) read the time from the database."""
    clock.freeze(T0)
    campaign = campaign_with(world, 2)
    send_at = T0 + timedelta(hours=2)
    assert world["api"].post(f"/api/campaigns/{campaign.id}/launch", json={
        "send_at": iso(send_at, 0)}).status_code == 202

    early = subprocess_env(app, smtp.port, T0 + timedelta(hours=1, minutes=59))
    run_flask(["scheduler", "--once"], early)
    run_flask(["worker", "--burst"], early)
    run_flask(["worker", "--burst"], {**early, "REDIS_URL": ""})  # embedded: no Redis
    assert smtp.count() == 0 and send_rows(campaign.id) == 0
    assert fresh(campaign.id).status == "scheduled"

    due = subprocess_env(app, smtp.port, send_at)
    run_flask(["worker", "--burst"], {**due, "REDIS_URL": ""})
    assert smtp.count() == 2
    assert statuses(campaign.id) == {"sent": 2}
    run_flask(["scheduler", "--once"], due)  # and again: nothing twice
    run_flask(["worker", "--burst"], due)
    assert smtp.count() == 2 and set(smtp.send_ids().values()) == {1}


def test_embedded_worker_waits_for_send_at(world, smtp, app):
    clock.freeze(T0)
    campaign = campaign_with(world, 2)
    world["api"].post(f"/api/campaigns/{campaign.id}/launch",
                      json={"send_at": iso(T0 + timedelta(minutes=30))})
    with configured(app, REDIS_URL=""):
        assert run_embedded(app, burst=True, interval=0.01, batch_size=10) == {}
        clock.advance(minutes=30)
        assert run_embedded(app, burst=True, interval=0.01, batch_size=10).get("sent") == 2
    assert smtp.count() == 2


def test_campaigns_waiting_for_later_do_not_hold_up_due_ones(world):
    clock.freeze(T0)
    api = world["api"]
    later = [campaign_with(world, 1) for _ in range(6)]
    for campaign in later:
        api.post(f"/api/campaigns/{campaign.id}/launch",
                 json={"send_at": iso(T0 + timedelta(days=1))})
    now = campaign_with(world, 1)
    api.post(f"/api/campaigns/{now.id}/launch")
    assert ledger.start_scheduled_campaigns(limit=5) == 1
    assert fresh(now.id).status == "running"
    assert {fresh(c.id).status for c in later} == {"scheduled"}


# ----------------------------------------------------------------- reschedule, cancel, edit


def test_reschedule_before_start_moves_the_send(world, smtp, app):
    clock.freeze(T0)
    campaign = campaign_with(world, 2)
    api = world["api"]
    api.post(f"/api/campaigns/{campaign.id}/launch",
             json={"send_at": iso(T0 + timedelta(hours=1)), "timezone": "America/Chicago"})
    moved = api.patch(f"/api/campaigns/{campaign.id}",
                      json={"send_at": iso(T0 + timedelta(hours=3))})
    assert moved.status_code == 200, moved.json
    assert (moved.json["status"], moved.json["send_at"]) == ("scheduled",
                                                             "2030-03-04T06:00:00-06:00")
    # The zone alone changes how the time is shown, not when it is.
    shown = api.patch(f"/api/campaigns/{campaign.id}", json={"timezone": "Europe/Oslo"})
    assert shown.json["send_at"] == "2030-03-04T13:00:00+01:00"
    assert shown.json["timezone"] == "Europe/Oslo"

    clock.advance(hours=1)  # the old time
    drain(app)
    assert smtp.count() == 0 and fresh(campaign.id).status == "scheduled"
    clock.advance(hours=2)  # the new one
    drain(app)
    assert smtp.count() == 2
    started = api.patch(f"/api/campaigns/{campaign.id}",
                        json={"send_at": iso(T0 + timedelta(days=1))})
    assert started.status_code == 409  # it has started: too late to move it


def test_clearing_send_at_sends_at_once(world):
    clock.freeze(T0)
    campaign = campaign_with(world, 1)
    api = world["api"]
    api.post(f"/api/campaigns/{campaign.id}/launch",
             json={"send_at": iso(T0 + timedelta(days=2))})
    assert ledger.start_scheduled_campaigns() == 0
    cleared = api.patch(f"/api/campaigns/{campaign.id}", json={"send_at": None})
    assert cleared.json["send_at"] is None and cleared.json["status"] == "scheduled"
    assert ledger.start_scheduled_campaigns() == 1


def test_cancel_before_start_sends_nothing(world, smtp, app):
    clock.freeze(T0)
    campaign = campaign_with(world, 2)
    api = world["api"]
    api.post(f"/api/campaigns/{campaign.id}/launch",
             json={"send_at": iso(T0 + timedelta(hours=1))})
    cancelled = api.post(f"/api/campaigns/{campaign.id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json["status"] == "cancelled"
    clock.advance(hours=2)
    drain(app)
    assert smtp.count() == 0 and send_rows(campaign.id) == 0
    assert api.patch(f"/api/campaigns/{campaign.id}",
                     json={"send_at": iso(T0 + timedelta(hours=5))}).status_code == 409


def test_content_is_locked_once_scheduled_and_unschedule_returns_to_draft(world):
    clock.freeze(T0)
    campaign = campaign_with(world, 2)
    api = world["api"]
    api.post(f"/api/campaigns/{campaign.id}/launch",
             json={"send_at": iso(T0 + timedelta(hours=4))})
    locked = api.patch(f"/api/campaigns/{campaign.id}",
                       json={"slot_values": {"headline": "New words"}})
    assert locked.status_code == 409
    assert "back to draft" in locked.json["error"]["message"]
    both = api.patch(f"/api/campaigns/{campaign.id}", json={
        "slot_values": {"headline": "New words"}, "send_at": iso(T0 + timedelta(hours=6))})
    assert both.status_code == 409
    assert fresh(campaign.id).send_at == T0 + timedelta(hours=4)  # nothing changed

    assert world["other"].post(f"/api/campaigns/{campaign.id}/unschedule").status_code == 404
    back = api.post(f"/api/campaigns/{campaign.id}/unschedule")
    assert back.status_code == 200, back.json
    assert back.json["status"] == "draft" and back.json["launched_at"] is None
    assert back.json["send_at"] == "2030-03-04T13:00:00+00:00"  # it keeps its time (in UTC)
    assert api.patch(f"/api/campaigns/{campaign.id}",
                     json={"slot_values": {"headline": "New words"}}).status_code == 200
    assert api.post(f"/api/campaigns/{campaign.id}/launch").json["status"] == "scheduled"
    assert api.post(f"/api/campaigns/{campaign.id}/unschedule").status_code == 200
    assert api.post(f"/api/campaigns/{campaign.id}/unschedule").status_code == 409  # draft
    # Not started: it can go back; started: it cannot.
    api.post(f"/api/campaigns/{campaign.id}/launch", json={"send_at": None})
    ledger.start_scheduled_campaigns()
    assert api.post(f"/api/campaigns/{campaign.id}/unschedule").status_code == 409


def test_the_action_table_expresses_scheduling():
    assert ACTIONS["reschedule"] == {"draft": "draft", "rejected": "rejected",
                                     "pending_approval": "pending_approval",
                                     "scheduled": "scheduled"}
    assert ACTIONS["unschedule"] == {"scheduled": "draft", "pending_approval": "draft"}
    assert "running" not in ACTIONS["reschedule"]


# ------------------------------------------------------------------------- refused input


BAD_SEND_AT = [
    ("2030-03-04T12:00:00", "no UTC offset"),  # naive
    (iso(T0 - timedelta(minutes=1)), "in the past"),
    (iso(T0), "in the past"),
    ("9999-12-31T23:00:00-06:00", "out of range"),
    ("9999-06-01T09:00:00+00:00", "more than a year"),
    (10**30, "UTC offset"),
    (1893456000, "UTC offset"),
    (True, "UTC offset"),
    (["2030-03-05T09:00:00Z"], "UTC offset"),
    ("2030-03-05T09:00:00Z\x00", "NUL characters"),
    ("next tuesday", "UTC offset"),
    ("2030-02-30T09:00:00Z", "UTC offset"),
    ("2030-03-05T09:00:00+25:00", "UTC offset"),
    ("2" * 5000, "UTC offset"),
]


@pytest.mark.parametrize(("value", "says"), BAD_SEND_AT)
def test_bad_send_at_is_422_and_changes_nothing(world, value, says):
    clock.freeze(T0)
    api = world["api"]
    campaign = campaign_with(world, 1)
    good = iso(T0 + timedelta(days=1))
    api.patch(f"/api/campaigns/{campaign.id}", json={"send_at": good,
                                                     "timezone": "America/Chicago"})
    before = db.session.scalar(select(func.count()).select_from(Campaign))

    created = api.post("/api/campaigns", json={"journey_id": campaign.journey_id,
                                               "sender": SENDER, "send_at": value})
    assert created.status_code == 422, created.json
    assert created.json["error"]["code"] == "invalid"
    assert says in created.json["error"]["fields"]["send_at"]
    patched = api.patch(f"/api/campaigns/{campaign.id}", json={"send_at": value,
                                                               "name": "Renamed"})
    assert patched.status_code == 422
    launched = api.post(f"/api/campaigns/{campaign.id}/launch", json={"send_at": value})
    assert launched.status_code == 422
    assert db.session.scalar(select(func.count()).select_from(Campaign)) == before
    stored = api.get(f"/api/campaigns/{campaign.id}").json
    assert (stored["status"], stored["send_at"], stored["name"]) == (
        "draft", "2030-03-05T03:00:00-06:00", campaign.name)


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "america/chicago", "../../etc/passwd",
                                  "/etc/localtime", "Europe/Oslo\x00", "", 7, None, "Z" * 500])
def test_unknown_time_zone_is_422(world, zone):
    clock.freeze(T0)
    api = world["api"]
    campaign = campaign_with(world, 1)
    response = api.patch(f"/api/campaigns/{campaign.id}", json={
        "send_at": iso(T0 + timedelta(days=1)), "timezone": zone})
    if zone is None:  # null clears the zone: the time is shown in UTC
        assert response.status_code == 200 and response.json["timezone"] == "UTC"
        return
    assert response.status_code == 422, response.json
    # A NUL is refused at the door for every field alike; anything else names IANA zones.
    expected = "NUL characters" if "\x00" in str(zone) else "IANA"
    assert expected in response.json["error"]["fields"]["timezone"]
    assert fresh(campaign.id).send_at is None  # neither field was applied


def test_every_schedule_problem_is_listed_at_once(world):
    clock.freeze(T0)
    response = world["api"].post("/api/campaigns", json={
        "journey_id": make_journey().id, "sender": SENDER, "send_at": "2030-03-05T09:00",
        "timezone": "Nowhere/City", "recipient_timezone": "yes"})
    assert response.status_code == 422
    assert set(response.json["error"]["fields"]) == {"send_at", "timezone",
                                                     "recipient_timezone"}


def test_launching_after_the_chosen_time_passed_is_refused(world):
    clock.freeze(T0)
    campaign = campaign_with(world, 1)
    api = world["api"]
    api.patch(f"/api/campaigns/{campaign.id}", json={"send_at": iso(T0 + timedelta(hours=1))})
    clock.advance(hours=2)
    refused = api.post(f"/api/campaigns/{campaign.id}/launch")
    assert refused.status_code == 422
    assert "past" in refused.json["error"]["fields"]["send_at"]
    assert fresh(campaign.id).status == "draft"
    unknown = api.post(f"/api/campaigns/{campaign.id}/launch", json={"slot_values": {}})
    assert unknown.status_code == 422 and fresh(campaign.id).status == "draft"


# ----------------------------------------------------------------------- approval + send_at


def test_approved_before_send_at_waits_for_it(world, smtp, app):
    clock.freeze(T0)
    campaign = campaign_with(world, 2, requires_approval=True)
    api, brand = world["api"], world["brand"]
    launched = api.post(f"/api/campaigns/{campaign.id}/launch", json={
        "send_at": iso(T0 + timedelta(hours=5)), "timezone": "America/Chicago"})
    assert launched.json["status"] == "pending_approval"
    assert launched.json["send_at"] == "2030-03-04T08:00:00-06:00"
    # While it waits for approval the partner may still move the time (not the content).
    moved = api.patch(f"/api/campaigns/{campaign.id}",
                      json={"send_at": iso(T0 + timedelta(hours=6))})
    assert moved.status_code == 200 and moved.json["status"] == "pending_approval"
    clock.advance(hours=1)
    approved = brand.post(f"/api/campaigns/{campaign.id}/approve")
    assert approved.json["status"] == "scheduled"
    drain(app)
    assert smtp.count() == 0 and send_rows(campaign.id) == 0
    clock.advance(hours=5)
    drain(app)
    assert smtp.count() == 2


def test_approval_after_send_at_passed_starts_at_once(world, smtp, app):
    clock.freeze(T0)
    campaign = campaign_with(world, 2, requires_approval=True)
    world["api"].post(f"/api/campaigns/{campaign.id}/launch",
                      json={"send_at": iso(T0 + timedelta(hours=1))})
    clock.advance(hours=3)
    drain(app)
    assert smtp.count() == 0  # not approved yet
    assert world["brand"].post(f"/api/campaigns/{campaign.id}/approve").status_code == 200
    drain(app)
    assert smtp.count() == 2


def test_a_rescheduled_approved_campaign_keeps_its_approval_but_new_content_needs_another(world):
    clock.freeze(T0)
    campaign = campaign_with(world, 1, requires_approval=True)
    api, brand = world["api"], world["brand"]
    api.post(f"/api/campaigns/{campaign.id}/launch",
             json={"send_at": iso(T0 + timedelta(hours=5))})
    brand.post(f"/api/campaigns/{campaign.id}/approve")
    assert api.patch(f"/api/campaigns/{campaign.id}", json={
        "send_at": iso(T0 + timedelta(hours=8))}).json["status"] == "scheduled"
    assert api.post(f"/api/campaigns/{campaign.id}/unschedule").json["approved_by"] is None
    assert api.post(f"/api/campaigns/{campaign.id}/launch").json["status"] == "pending_approval"


# ---------------------------------------------------------------------------- quick send


def test_quick_send_with_send_at(world, smtp, app):
    clock.freeze(T0)
    journey = make_journey(quick_send=True)
    contact = make_contact(world["partner"])
    body = {"journey_id": journey.id, "contact_ids": [contact.id], "sender": SENDER,
            "send_at": iso(T0 + timedelta(minutes=45)), "timezone": "America/Chicago"}
    past = world["api"].post("/api/quick-sends", json={**body, "send_at": iso(T0)})
    assert past.status_code == 422
    assert db.session.scalar(select(func.count()).select_from(Campaign)) == 0
    sent = world["api"].post("/api/quick-sends", json=body)
    assert sent.status_code == 202, sent.json
    assert sent.json["status"] == "scheduled"
    assert sent.json["send_at"] == "2030-03-04T03:45:00-06:00"
    drain(app)
    assert smtp.count() == 0
    clock.advance(minutes=45)
    drain(app)
    assert smtp.count() == 1 and statuses(sent.json["campaign_id"]) == {"sent": 1}


# ----------------------------------------------------------------- in each recipient's zone


def test_each_recipient_gets_it_at_their_local_time(world, smtp, app):
    clock.freeze(T0)
    partner = world["partner"]
    oslo = make_contact(partner, attributes={"timezone": "Europe/Oslo"})
    la = make_contact(partner, attributes={"timezone": "America/Los_Angeles"})
    nowhere = make_contact(partner, attributes={"timezone": "Atlantis/Capital"})
    plain = make_contact(partner)
    campaign = make_campaign(partner, world["user"], make_journey(), [oslo, la, nowhere, plain])
    # 09:00 on 5 March, wherever each recipient is; Chicago for those without a zone.
    chicago_nine = datetime(2030, 3, 5, 15, 0)
    launched = world["api"].post(f"/api/campaigns/{campaign.id}/launch", json={
        "send_at": "2030-03-05T09:00:00-06:00", "timezone": "America/Chicago",
        "recipient_timezone": True})
    assert launched.status_code == 202, launched.json
    assert fresh(campaign.id).starts_at == datetime(2030, 3, 4, 19, 0)  # 09:00 at UTC+14

    clock.freeze(datetime(2030, 3, 4, 19, 0))
    drain(app)
    assert fresh(campaign.id).status == "running" and smtp.count() == 0
    db.session.expire_all()
    due = {s.contact_id: s.due_at for s in db.session.scalars(
        select(Send).where(Send.campaign_id == campaign.id))}
    assert due == {oslo.id: datetime(2030, 3, 5, 8, 0), la.id: datetime(2030, 3, 5, 17, 0),
                   nowhere.id: chicago_nine, plain.id: chicago_nine}
    for at, total in ((datetime(2030, 3, 5, 8, 0), 1), (chicago_nine, 3),
                      (datetime(2030, 3, 5, 16, 59), 3), (datetime(2030, 3, 5, 17, 0), 4)):
        clock.freeze(at)
        drain(app)
        assert smtp.count() == total, at


# ------------------------------------------------------------------------ the API document


@pytest.fixture
def spec(client) -> dict:
    return client.get("/api/openapi.json").get_json()


def test_schedule_and_test_send_responses_match_the_document(world, spec, app, tmp_path):
    from campaigns import testsend

    clock.freeze(T0)
    api, brand = world["api"], world["brand"]
    campaign = campaign_with(world, 1)
    path = "/api/campaigns/{campaign_id}"
    created = api.post("/api/campaigns", json={
        "journey_id": campaign.journey_id, "sender": SENDER,
        "send_at": iso(T0 + timedelta(days=1)), "timezone": "America/Chicago"})
    conforms(spec, "/api/campaigns", "post", created)
    conforms(spec, "/api/campaigns", "post", api.post("/api/campaigns", json={
        "journey_id": campaign.journey_id, "send_at": "2030-03-05T09:00"}))  # 422
    conforms(spec, path, "patch", api.patch(f"/api/campaigns/{campaign.id}", json={
        "send_at": iso(T0 + timedelta(hours=2)), "timezone": "America/Chicago"}))
    conforms(spec, path, "patch", api.patch(f"/api/campaigns/{campaign.id}",
                                            json={"timezone": "Mars/Base"}))  # 422
    conforms(spec, path, "get", api.get(f"/api/campaigns/{campaign.id}"))
    launch = path + "/launch"
    conforms(spec, launch, "post", api.post(f"/api/campaigns/{campaign.id}/launch",
                                            json={"send_at": iso(T0)}))  # 422
    conforms(spec, launch, "post", api.post(f"/api/campaigns/{campaign.id}/launch", data="{",
                                            headers={"Content-Type": "application/json"}))
    launched = api.post(f"/api/campaigns/{campaign.id}/launch")
    assert launched.status_code == 202
    conforms(spec, launch, "post", launched)
    conforms(spec, path, "patch", api.patch(f"/api/campaigns/{campaign.id}",
                                            json={"name": "x"}))  # 409
    unschedule = path + "/unschedule"
    conforms(spec, unschedule, "post", brand.post(f"/api/campaigns/{campaign.id}/unschedule"))
    conforms(spec, unschedule, "post", api.post(f"/api/campaigns/{campaign.id}/unschedule"))
    conforms(spec, unschedule, "post", api.post(f"/api/campaigns/{campaign.id}/unschedule"))

    test = path + "/test-send"
    with configured(app, OUTBOX_DIR=str(tmp_path)):
        sent = api.post(f"/api/campaigns/{campaign.id}/test-send")
        assert sent.status_code == 202
        conforms(spec, test, "post", sent)
        conforms(spec, test, "post", brand.post(f"/api/campaigns/{campaign.id}/test-send",
                                                json={"step": 0}))
        conforms(spec, test, "post", api.post(f"/api/campaigns/{campaign.id}/test-send",
                                              json={"step": 9}))  # 422
        conforms(spec, test, "post", world["other"].post(
            f"/api/campaigns/{campaign.id}/test-send"))  # 404
        conforms(spec, test, "post", api.post(f"/api/campaigns/{campaign.id}/test-send",
                                              data="[", content_type="application/json"))
        with configured(app, DELIVERY_BACKEND="smtp", SMTP_HOST="127.0.0.1",
                        SMTP_PORT=str(free_port())):
            failed = api.post(f"/api/campaigns/{campaign.id}/test-send")
        assert failed.status_code == 502
        conforms(spec, test, "post", failed)
        for _ in range(testsend.LIMIT_PER_HOUR):
            api.post(f"/api/campaigns/{campaign.id}/test-send", json={"step": 0})
        limited = api.post(f"/api/campaigns/{campaign.id}/test-send")
        assert limited.status_code == 429
        conforms(spec, test, "post", limited)

    journey = make_journey(quick_send=True)
    quick = api.post("/api/quick-sends", json={
        "journey_id": journey.id, "contact_ids": [make_contact(world["partner"]).id],
        "send_at": iso(T0 + timedelta(hours=1)), "timezone": "Europe/Oslo"})
    assert quick.status_code == 202, quick.json
    assert quick.json["send_at"] == "2030-03-04T11:00:00+01:00"
    conforms(spec, "/api/quick-sends", "post", quick)
