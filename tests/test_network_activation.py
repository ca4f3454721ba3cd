"""Activation stages from the data: invited -> joined -> profile complete -> first campaign ->
first send, with dates, the funnel across partners and who is stuck."""

from __future__ import annotations

from datetime import timedelta

from campaigns import activation
from core import clock
from core.db import db
from tests.builders import make_partner, make_user
from tests.test_pipeline_support import configured, drain, launch_campaign


def stage(partner_id: int) -> str:
    db.session.expire_all()
    return activation.activations([partner_id])[partner_id].stage


def test_stages_follow_what_the_partner_did(app, make_api, mailbox, tmp_path):
    _b, token = make_user("brand_admin")
    api = make_api(token)
    partner = make_partner("Stepwise")
    assert stage(partner.id) == "new"
    api.post("/api/invitations", json={"email": "s@stepwise.example", "role": "partner_admin",
                                       "partner_id": partner.id})
    assert stage(partner.id) == "invited"
    make_user("partner_user", partner, password="a long enough password")
    assert stage(partner.id) == "joined"
    partner.advisor_name, partner.address, partner.phone = "Sam", "1 Main St", "555"
    db.session.commit()
    assert stage(partner.id) == "profile_complete"
    with configured(app, OUTBOX_DIR=str(tmp_path / "out")):
        launched = launch_campaign(2, partner=partner, prefix="step")
        assert stage(partner.id) == "first_campaign"
        drain(app)
    found = activation.activations([partner.id])[partner.id]
    assert found.stage == "first_send"
    assert found.dates["first_send"] is not None and found.dates["invited"] is not None
    assert launched.campaign_id


def test_funnel_and_stuck_partners(app, make_api, mailbox):
    _b, token = make_user("brand_admin")
    api = make_api(token)
    waiting = make_partner("Waiting")
    make_partner("Untouched")
    api.post("/api/invitations", json={"email": "w@waiting.example", "role": "partner_admin",
                                       "partner_id": waiting.id})
    funnel = activation.funnel()
    assert funnel["partners"] == 2
    assert funnel["reached"]["invited"] == 1 and funnel["reached"]["joined"] == 0
    assert funnel["stuck"] == []
    clock.freeze(clock.now() + timedelta(days=activation.STUCK_DAYS + 1))
    assert activation.funnel()["stuck"] == [waiting.id]
