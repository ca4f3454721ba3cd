"""Shared contacts across partners: the brand's frequency cap and same-journey window, at the
audience step and at the claim (with two real concurrent workers), and brand analytics."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from accounts.models import Partner
from campaigns import ledger, sharing
from campaigns.models import Contact, Send
from core import clock
from core.db import db
from journeys.models import JourneyStep
from tests.builders import (
    make_campaign,
    make_contact,
    make_journey,
    make_partner,
    make_tracked_campaign,
    make_user,
)

CAP_2_IN_7 = {"frequency_cap": {"max_sends": 2, "days": 7}, "same_journey_days": None}


@pytest.fixture
def world(app, make_api):
    a = make_partner(name="Alpha Dealers")
    b = make_partner(name="Beta Motors")
    user_a, token_a = make_user("partner_admin", a)
    user_b, token_b = make_user("partner_admin", b)
    _, admin = make_user("brand_admin")
    _, marketer = make_user("brand_marketer")
    return {"a": a, "b": b, "user_a": user_a, "user_b": user_b,
            "api_a": make_api(token_a), "api_b": make_api(token_b),
            "admin": make_api(admin), "marketer": make_api(marketer)}


def set_rules(world, rules: dict) -> None:
    response = world["admin"].put("/api/brand/sharing-rules", json=rules)
    assert response.status_code == 200, response.json


def contact_of(partner, email: str) -> Contact:
    found = db.session.scalar(select(Contact).where(Contact.partner_id == partner.id,
                                                    Contact.email == email))
    return found or make_contact(partner, email)


def add_send(campaign, email: str, *, status: str = "sent", days_ago: float = 1,
             step_index: int = 0) -> Send:
    """Insert one send of `campaign` to `email` (its partner's contact), sent or queued."""
    contact = contact_of(db.session.get(Partner, campaign.partner_id), email)
    step = db.session.scalar(select(JourneyStep).where(
        JourneyStep.journey_id == campaign.journey_id, JourneyStep.position == step_index))
    when = clock.now() - timedelta(days=days_ago)
    send = Send(campaign_id=campaign.id, step_index=step_index, contact_id=contact.id,
                partner_id=campaign.partner_id, journey_id=campaign.journey_id,
                template_version_id=step.template_version_id, email=email, status=status,
                due_at=when, sent_at=when if status == "sent" else None,
                attempts=1 if status == "sent" else 0)
    db.session.add(send)
    db.session.commit()
    return send


# ----------------------------------------------------------------------------- the rules


def test_rules_api_validates_and_only_brand_admins_change_them(world):
    admin = world["admin"]
    assert admin.get("/api/brand/sharing-rules").json == {
        "frequency_cap": None, "same_journey_days": None, "updated_at": None}
    for body, field in [
        ({"frequency_cap": {"max_sends": 0, "days": 7}}, "frequency_cap.max_sends"),
        ({"frequency_cap": {"max_sends": 2, "days": 10**20}}, "frequency_cap.days"),
        ({"frequency_cap": {"max_sends": True, "days": 7}}, "frequency_cap.max_sends"),
        ({"frequency_cap": {"max_sends": 2, "days": 7, "per": "x"}}, "frequency_cap.per"),
        ({"frequency_cap": 2}, "frequency_cap"),
        ({"same_journey_days": -1}, "same_journey_days"),
        ({"same_journey_days": "14"}, "same_journey_days"),
        ({"partners": []}, "partners"),
    ]:
        response = admin.put("/api/brand/sharing-rules", json=body)
        assert response.status_code == 422, body
        assert field in response.json["error"]["fields"]
    assert world["marketer"].put("/api/brand/sharing-rules", json=CAP_2_IN_7).status_code == 403
    assert world["api_a"].put("/api/brand/sharing-rules", json=CAP_2_IN_7).status_code == 403
    assert world["api_a"].get("/api/brand/sharing-rules").status_code == 403
    set_rules(world, {"frequency_cap": {"max_sends": 2, "days": 7}, "same_journey_days": 14})
    shown = world["marketer"].get("/api/brand/sharing-rules").json
    assert shown["frequency_cap"] == {"max_sends": 2, "days": 7}
    assert shown["same_journey_days"] == 14 and shown["updated_at"]


# ----------------------------------------------------------------------- the audience step


def test_audience_step_leaves_out_an_address_at_the_cap(world):
    set_rules(world, CAP_2_IN_7)
    first, second = make_tracked_campaign(world["b"]), make_tracked_campaign(world["b"])
    for theirs, days_ago in ((first, 1), (second, 3)):
        add_send(theirs, "shared@example.com", days_ago=days_ago)
    add_send(first, "once@example.com")
    add_send(first, "old@example.com", days_ago=9)
    add_send(second, "old@example.com", days_ago=8)
    shared = make_contact(world["a"], "shared@example.com")
    once = make_contact(world["a"], "once@example.com")
    make_contact(world["a"], "old@example.com")
    campaign = make_campaign(world["a"], world["user_a"], make_journey())
    path = f"/api/campaigns/{campaign.id}/members"
    by_ids = world["api_a"].post(path, json={"contact_ids": [shared.id, once.id]}).json
    assert by_ids["added"] == 1
    assert by_ids["excluded"] == [{"contact_id": shared.id, "reason": "frequency_cap",
                                   "label": str(sharing.REASON_LABELS["frequency_cap"])}]
    by_filter = world["api_a"].post(path, json={"filter": {}}).json
    assert by_filter["added"] == 1  # old@: its two mails are older than 7 days
    assert {e["reason"]: e["count"] for e in by_filter["exclusions"]} == {
        "frequency_cap": 1, "duplicate": 1}
    # Nothing tells partner A who mailed the person.
    assert "Beta" not in str(by_ids) + str(by_filter)
    assert str(world["b"].id) not in {str(e.get("partner_id")) for e in by_filter["excluded"]}


def test_audience_step_same_journey_by_another_partner(world):
    set_rules(world, {"frequency_cap": None, "same_journey_days": 14})
    journey = make_journey()
    theirs = make_campaign(world["b"], world["user_b"], journey)
    theirs.status = "running"
    db.session.commit()
    add_send(theirs, "client@example.com", days_ago=3)
    add_send(theirs, "former@example.com", days_ago=20)
    client = make_contact(world["a"], "client@example.com")
    former = make_contact(world["a"], "former@example.com")
    same = make_campaign(world["a"], world["user_a"], journey)
    result = world["api_a"].post(f"/api/campaigns/{same.id}/members",
                                 json={"contact_ids": [client.id, former.id]}).json
    assert result["added"] == 1
    assert result["excluded"][0]["reason"] == "recently_sent_by_another_partner"
    # Another journey to the same person is not this rule's business.
    other = make_campaign(world["a"], world["user_a"], make_journey())
    assert world["api_a"].post(f"/api/campaigns/{other.id}/members",
                               json={"contact_ids": [client.id]}).json["added"] == 1
    # The partner that sent it may go on (its own journey is not "another partner's").
    mine = make_campaign(world["b"], world["user_b"], journey)
    b_client = contact_of(world["b"], "client@example.com")
    assert world["api_b"].post(f"/api/campaigns/{mine.id}/members",
                               json={"contact_ids": [b_client.id]}).json["added"] == 1


# ------------------------------------------------------------------------------ the claim


def test_claim_holds_back_past_the_cap_and_says_why(world):
    ours = make_tracked_campaign(world["a"])
    add_send(make_tracked_campaign(world["b"]), "x@example.com", days_ago=2)
    add_send(make_tracked_campaign(world["b"]), "x@example.com", days_ago=1)
    queued = add_send(ours, "x@example.com", status="queued", days_ago=0)
    fine = add_send(ours, "y@example.com", status="queued", days_ago=0)
    set_rules(world, CAP_2_IN_7)
    claimed = ledger.claim_batch(10)
    assert [c.id for c in claimed] == [fine.id]
    db.session.expire_all()
    held = db.session.get(Send, queued.id)
    assert (held.status, held.status_reason) == ("suppressed", "frequency_cap")
    message = world["api_a"].get(f"/api/messages/{queued.id}").json
    assert message["status"] == "suppressed"
    assert "Beta" not in str(message)
    stats = world["marketer"].get("/api/analytics/sharing").json
    assert stats["held_back"] == 1
    assert stats["held_back_by_reason"] == {"frequency_cap": 1,
                                            "recently_sent_by_another_partner": 0}
    assert stats["shared_addresses"] == 1  # x@ is a contact of both partners
    assert world["api_a"].get("/api/analytics/sharing").status_code == 403


def test_claim_holds_back_the_same_journey_started_by_a_second_partner(world):
    journey_campaign = make_tracked_campaign(world["b"], steps=2)
    ours = make_tracked_campaign(world["a"])
    ours.journey_id = journey_campaign.journey_id
    db.session.commit()
    add_send(journey_campaign, "z@example.com", days_ago=1)
    second_step = add_send(journey_campaign, "z@example.com", status="queued", days_ago=0,
                           step_index=1)
    ours_first = add_send(ours, "z@example.com", status="queued", days_ago=0)
    set_rules(world, {"frequency_cap": None, "same_journey_days": 7})
    claimed = {c.id for c in ledger.claim_batch(10)}
    # The journey partner B started goes on; partner A does not start it again.
    assert second_step.id in claimed and ours_first.id not in claimed
    db.session.expire_all()
    assert db.session.get(Send, ours_first.id).status_reason == \
        "recently_sent_by_another_partner"


def test_no_rules_change_nothing(world):
    ours = make_tracked_campaign(world["a"])
    for days_ago in (1, 2, 3):
        add_send(make_tracked_campaign(world["a"]), "busy@example.com", days_ago=days_ago)
    queued = add_send(ours, "busy@example.com", status="queued", days_ago=0)
    assert [c.id for c in ledger.claim_batch(10)] == [queued.id]


# ---------------------------------------------------------------- concurrency (real workers)


def _worker(app, send_ids: list[int], start: threading.Barrier, out: dict, key: str) -> None:
    with app.app_context():
        try:
            start.wait()
            out[key] = [c.id for c in ledger.claim_batch(len(send_ids), send_ids=send_ids)]
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            out[key] = exc
        finally:
            db.session.remove()


def test_two_concurrent_workers_of_two_partners_never_pass_the_cap(world, app):
    """Each address got one mail already; partner A's and partner B's workers each claim one
    more for it at the same moment, on their own connections: exactly one may go."""
    ours = make_tracked_campaign(world["a"])
    theirs = make_tracked_campaign(world["b"])
    earlier = [make_tracked_campaign(world["a"]), make_tracked_campaign(world["b"])]
    emails = [f"shared{i}@example.com" for i in range(40)]
    a_ids, b_ids = [], []
    for i, email in enumerate(emails):
        add_send(earlier[i % 2], email, days_ago=1)
        a_ids.append(add_send(ours, email, status="queued", days_ago=0).id)
        b_ids.append(add_send(theirs, email, status="queued", days_ago=0).id)
    set_rules(world, CAP_2_IN_7)
    start = threading.Barrier(2)
    out: dict = {}
    threads = [threading.Thread(target=_worker, args=(app, ids, start, out, key))
               for key, ids in (("a", a_ids), ("b", b_ids))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not isinstance(out["a"], BaseException), out["a"]
    assert not isinstance(out["b"], BaseException), out["b"]
    db.session.expire_all()
    counted = dict(db.session.execute(
        select(Send.email, db.func.count()).where(Send.status.in_(("sent", "claimed")))
        .group_by(Send.email)).all())
    assert counted == {email: 2 for email in emails}
    held = db.session.scalars(select(Send.status_reason).where(Send.status == "suppressed"))
    assert list(held) == ["frequency_cap"] * len(emails)
    assert len(out["a"]) + len(out["b"]) == len(emails)


def test_a_claim_waits_for_the_address_lock_then_sees_the_other_mail(world, app):
    """Deterministic interleaving: while another transaction holds the address's lock, a
    worker's claim waits; once that transaction commits a mail, the claim holds its row."""
    ours = make_tracked_campaign(world["a"])
    theirs = make_tracked_campaign(world["b"])
    add_send(make_tracked_campaign(world["b"]), "w@example.com", days_ago=1)
    queued = add_send(ours, "w@example.com", status="queued", days_ago=0)
    set_rules(world, CAP_2_IN_7)
    holder = db.engine.connect()
    transaction = holder.begin()
    holder.execute(text("SELECT pg_advisory_xact_lock(:ns, :key)"),
                   {"ns": sharing.LOCK_NAMESPACE, "key": sharing._lock_key("w@example.com")})
    start = threading.Barrier(2)
    out: dict = {}
    worker = threading.Thread(target=_worker, args=(app, [queued.id], start, out, "a"))
    worker.start()
    start.wait()
    # Wait until PostgreSQL itself shows the worker blocked on an advisory lock.
    waiting = 0
    while not waiting:
        waiting = holder.execute(text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND classid = :ns"), {"ns": sharing.LOCK_NAMESPACE}).scalar()
        assert worker.is_alive(), out
    step = db.session.scalar(select(JourneyStep.template_version_id).where(
        JourneyStep.journey_id == theirs.journey_id))
    contact = contact_of(world["b"], "w@example.com")
    holder.execute(Send.__table__.insert().values(
        campaign_id=theirs.id, step_index=0, contact_id=contact.id, partner_id=world["b"].id,
        journey_id=theirs.journey_id, template_version_id=step, email="w@example.com",
        status="claimed", due_at=clock.now(), attempts=1, last_error="", status_reason="",
        created_at=clock.now(), updated_at=clock.now()))
    transaction.commit()
    holder.close()
    worker.join()
    assert out["a"] == []
    db.session.expire_all()
    assert db.session.get(Send, queued.id).status_reason == "frequency_cap"
