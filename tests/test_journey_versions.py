"""Journey versions: a draft copy of a published journey, published with campaigns moved."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from campaigns import lifecycle
from campaigns.ledger import start_scheduled_campaigns
from campaigns.models import Campaign, Send
from core import clock
from core.db import db
from core.errors import StateError
from journeys import services as journeys
from tests.builders import (
    DEFAULT_SLOTS,
    make_campaign,
    make_contact,
    make_journey,
    make_partner,
    make_user,
    template_mjml,
)


@pytest.fixture
def brand(app, make_api):
    _, token = make_user("brand_marketer")
    return make_api(token)


@pytest.fixture
def world(app):
    """A published two-step journey and a partner who can use it."""
    partner = make_partner()
    user, _ = make_user("partner_admin", partner)
    journey = make_journey(steps=2)
    return journey, partner, user


def republish_templates(journey, headline_max: int = 80, footer: str = "Legal v2"):
    """Publish a new version of each step's template (a changed footer, a headline limit)."""
    slots = [dict(s) for s in DEFAULT_SLOTS]
    slots[0]["max_length"] = headline_max
    slots[0]["default"] = "Hi"
    mjml = template_mjml(slots).replace("Brand-locked legal text.", footer)
    for step in journey.steps:
        journeys.update_template(step.template_id, "T", "{{ slots.headline }}", "", mjml, slots)
        journeys.publish_template(step.template_id)


def campaign_in(status: str, journey, partner, user, headline: str = "Spring news"):
    contacts = [make_contact(partner) for _ in range(2)]
    campaign = make_campaign(partner, user, journey, contacts,
                             slot_values={"0": {"headline": headline}})
    if status == "scheduled":  # a day ahead: the scheduler leaves it waiting
        later = (clock.now() + timedelta(days=1)).isoformat() + "+00:00"
        lifecycle.launch_campaign(campaign, {"send_at": later})
    if status == "running":
        lifecycle.launch_campaign(campaign)
    if status == "running":
        assert start_scheduled_campaigns() >= 1
    db.session.refresh(campaign)
    assert campaign.status == status
    return campaign


def fresh(campaign_id: int) -> Campaign:
    db.session.expire_all()
    return db.session.get(Campaign, campaign_id)


def test_new_version_is_a_draft_copy_and_replaces_the_journey_when_published(brand, world):
    journey, _partner, _user = world
    created = brand.post(f"/api/journeys/{journey.id}/versions")
    assert created.status_code == 201
    body = created.json
    assert body["status"] == "draft" and body["version"] == 2
    assert body["previous_id"] == journey.id and body["name"] == journey.name
    assert [s["template_id"] for s in body["steps"]] == [s.template_id for s in journey.steps]
    # One draft version at a time; a draft journey has no "new version".
    again = brand.post(f"/api/journeys/{journey.id}/versions")
    assert again.status_code == 409 and again.json["error"]["fields"]["draft_id"] == str(
        body["id"])
    assert brand.post(f"/api/journeys/{body['id']}/versions").status_code == 409
    published = brand.post(f"/api/journeys/{body['id']}/publish")
    assert published.status_code == 200
    assert published.json["campaigns"] == {"moved": [], "stopped": [], "left": []}
    assert brand.get(f"/api/journeys/{journey.id}").json["status"] == "archived"
    assert brand.post("/api/journeys/9999/versions").status_code == 404


def test_duplicate_makes_a_separate_draft_journey(brand, world):
    journey, _partner, _user = world
    copy = brand.post(f"/api/journeys/{journey.id}/duplicate")
    assert copy.status_code == 201
    assert copy.json["name"] == f"Copy of {journey.name}" and copy.json["status"] == "draft"
    assert copy.json["previous_id"] is None and copy.json["version"] == 1
    assert len(copy.json["steps"]) == 2
    brand.post(f"/api/journeys/{copy.json['id']}/publish")
    assert brand.get(f"/api/journeys/{journey.id}").json["status"] == "published"


def test_publish_options_are_checked(brand, world):
    journey, _partner, _user = world
    draft = brand.post(f"/api/journeys/{journey.id}/versions").json["id"]
    for body in ({"move_campaigns": "all"}, {"mandatory": "yes"}, {"force": True}):
        bad = brand.post(f"/api/journeys/{draft}/publish", json=body)
        assert bad.status_code == 422
    assert brand.get(f"/api/journeys/{draft}").json["status"] == "draft"


def test_draft_and_scheduled_campaigns_move_with_their_values(brand, world):
    journey, partner, user = world
    draft = campaign_in("draft", journey, partner, user)
    scheduled = campaign_in("scheduled", journey, partner, user)
    running = campaign_in("running", journey, partner, user)
    republish_templates(journey)
    new = brand.post(f"/api/journeys/{journey.id}/versions").json["id"]
    published = brand.post(f"/api/journeys/{new}/publish",
                           json={"move_campaigns": "drafts_and_scheduled"})
    assert published.status_code == 200
    assert published.json["campaigns"] == {"moved": [draft.id, scheduled.id], "stopped": [],
                                           "left": [running.id]}
    for moved, status in ((draft, "draft"), (scheduled, "scheduled")):
        row = fresh(moved.id)
        assert row.journey_id == new and row.status == status
        assert row.slot_values["0"]["headline"] == "Spring news"  # kept
    # Not mandatory: the running campaign keeps its version.
    assert fresh(running.id).journey_id == journey.id


def test_running_campaigns_move_only_when_mandatory_and_unsent_steps_use_the_new_version(
        brand, world):
    journey, partner, user = world
    running = campaign_in("running", journey, partner, user)
    old_versions = {s.position: s.template_version_id for s in journey.steps}
    queued = db.session.scalars(select(Send).where(Send.campaign_id == running.id)).all()
    assert {s.template_version_id for s in queued} == {old_versions[0]}
    # One of the two first-step mails already went out: it stays as sent.
    sent = queued[0]
    sent.status = "sent"
    db.session.commit()

    republish_templates(journey, footer="New legal footer")
    new = brand.post(f"/api/journeys/{journey.id}/versions").json["id"]
    published = brand.post(f"/api/journeys/{new}/publish", json={"mandatory": True})
    assert published.json["campaigns"]["moved"] == [running.id]
    new_versions = {s.position: s.template_version_id for s in journeys.get_journey(new).steps}
    assert new_versions[0] != old_versions[0]
    db.session.expire_all()
    rows = {s.id: s for s in db.session.scalars(select(Send).where(
        Send.campaign_id == running.id))}
    assert rows[sent.id].template_version_id == old_versions[0]
    assert {s.template_version_id for i, s in rows.items() if i != sent.id} == {
        new_versions[0]}
    row = fresh(running.id)
    assert row.status == "running" and row.journey_id == new


def test_values_that_no_longer_validate_pause_the_campaign_with_the_reason(brand, world,
                                                                            make_api):
    journey, partner, user = world
    running = campaign_in("running", journey, partner, user, headline="A long spring headline")
    scheduled = campaign_in("scheduled", journey, partner, user, headline="Another long one")
    republish_templates(journey, headline_max=10)
    new = brand.post(f"/api/journeys/{journey.id}/versions").json["id"]
    published = brand.post(f"/api/journeys/{new}/publish",
                           json={"move_campaigns": "drafts_and_scheduled", "mandatory": True})
    assert published.json["campaigns"]["stopped"] == [running.id, scheduled.id]

    paused = fresh(running.id)
    assert paused.status == "paused" and paused.journey_id == new
    assert "step 1, Headline" in paused.status_reason and "version 2" in paused.status_reason
    assert "resume" in paused.status_reason
    back = fresh(scheduled.id)
    assert back.status == "draft" and "launch it again" in back.status_reason

    # The partner sees the reason, cannot resume before correcting, then resumes.
    _, token = make_user("partner_user", partner)
    api = make_api(token)
    shown = api.get(f"/api/campaigns/{running.id}").json
    assert shown["status"] == "paused" and "Headline" in shown["status_reason"]
    refused = api.post(f"/api/campaigns/{running.id}/resume")
    assert refused.status_code == 409 and "Headline" in refused.json["error"]["message"]
    fixed = api.patch(f"/api/campaigns/{running.id}",
                      json={"slot_values": {"0": {"headline": "Short"}}})
    assert fixed.status_code == 200, fixed.json
    assert api.post(f"/api/campaigns/{running.id}/resume").status_code == 200
    assert fresh(running.id).status == "running"
    # The one sent back to draft cannot launch until its values fit.
    launch = api.post(f"/api/campaigns/{scheduled.id}/launch")
    assert launch.status_code == 422 and "Headline" in launch.json["error"]["message"]


def test_the_approver_sees_the_slot_diff_against_the_rejected_submission(brand, app):
    partner = make_partner()
    user, _ = make_user("partner_admin", partner)
    journey = make_journey(requires_approval=True)
    campaign = make_campaign(partner, user, journey, [make_contact(partner)],
                             slot_values={"0": {"headline": "Guaranteed returns"}})
    lifecycle.launch_campaign(campaign)
    assert brand.get(f"/api/campaigns/{campaign.id}/changes").json["previous"] is None
    rejected = brand.post(f"/api/campaigns/{campaign.id}/reject",
                          json={"reason": "No promises of returns"})
    assert rejected.status_code == 200
    lifecycle.update_campaign(fresh(campaign.id), user,
                              {"slot_values": {"0": {"headline": "Plan with us"}}})
    lifecycle.launch_campaign(fresh(campaign.id))
    changes = brand.get(f"/api/campaigns/{campaign.id}/changes").json
    assert changes["previous"]["reason"] == "No promises of returns"
    assert changes["previous"]["slots"] == [{"step": 0, "slot": "headline",
                                             "label": "Headline",
                                             "before": "Guaranteed returns",
                                             "after": "Plan with us"}]


def test_a_paused_campaign_whose_values_fit_stays_frozen(world):
    journey, partner, user = world
    running = campaign_in("running", journey, partner, user)
    paused = lifecycle.pause_campaign(running)
    with pytest.raises(StateError):
        lifecycle.update_campaign(paused, user, {"slot_values": {"0": {"headline": "Other"}}})
    assert fresh(running.id).slot_values["0"]["headline"] == "Spring news"


def test_the_partner_page_says_why_it_was_paused_and_takes_corrected_values(brand, world,
                                                                             client):
    from tests.test_web_pages import login, page_token

    journey, partner, _user = world
    owner, _ = make_user("partner_admin", partner, password="correct horse battery")
    running = campaign_in("running", journey, partner, owner, headline="A long spring headline")
    republish_templates(journey, headline_max=10)
    new = brand.post(f"/api/journeys/{journey.id}/versions").json["id"]
    brand.post(f"/api/journeys/{new}/publish", json={"mandatory": True})

    login(client, owner.email)
    page = client.get(f"/partner/campaigns/{running.id}").get_data(as_text=True)
    assert 'id="status-reason"' in page and "Paused: The brand published version 2" in page
    assert "Correct the values" in page
    token = page_token(client, f"/partner/campaigns/{running.id}/edit")
    form = {"csrf_token": token, "v-0-headline": "Short", "v-0-body": "<p>We are here.</p>",
            "v-0-cta_url": "https://brand.example/book",
            "v-1-headline": "Hi", "v-1-body": "<p>We are here.</p>",
            "v-1-cta_url": "https://brand.example/book"}
    saved = client.post(f"/partner/campaigns/{running.id}/edit", data=form)
    assert saved.status_code == 302, saved.get_data(as_text=True)[:2000]
    assert fresh(running.id).slot_values["0"]["headline"] == "Short"
    page = client.get(f"/partner/campaigns/{running.id}").get_data(as_text=True)
    assert 'id="values-problem"' not in page
