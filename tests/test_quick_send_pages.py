"""Quick send pages over the Flask test client: choose, personalize, preview, confirm."""

from __future__ import annotations

import re
from datetime import timedelta
from email import message_from_bytes, policy
from html import unescape

import pytest

from campaigns.models import Campaign, Send
from campaigns.worker import run_embedded
from core import clock
from core.db import db
from delivery.outbox import list_outbox, read_outbox
from tests.builders import make_contact, make_journey, make_partner, make_template, make_user
from tests.test_pipeline_support import configured
from tests.test_web_pages import PASSWORD, login, page_token
from web import labels


@pytest.fixture(autouse=True)
def _own_outbox(app, tmp_path):
    with configured(app, OUTBOX_DIR=str(tmp_path / "outbox")):
        yield


@pytest.fixture
def world(app, client):
    partner = make_partner(tier="gold")
    user, _ = make_user("partner_user", partner, password=PASSWORD)
    maria = make_contact(partner, email="maria@home.example", first_name="Maria",
                         last_name="Garcia")
    joe = make_contact(partner, email="joe@home.example", first_name="Joe", last_name="Bloggs")
    quiet = make_contact(partner, email="quiet@home.example", first_name="Quinn",
                         last_name="Quiet", consent=False)
    journey = make_journey(steps=1, quick_send=True, name="Client appreciation")
    login(client, user.email)
    return {"partner": partner, "user": user, "maria": maria, "joe": joe, "quiet": quiet,
            "journey": journey}


def text_of(response) -> str:
    return unescape(response.get_data(as_text=True))


def form_data(client, path: str, **extra) -> dict:
    return {"csrf_token": page_token(client, path), **extra}


def outbox_html(app) -> list[tuple[str, str]]:
    directory = app.config["OUTBOX_DIR"]
    out = []
    for item in list_outbox(directory, 1, 100):
        message = message_from_bytes(read_outbox(directory, item["id"]), policy=policy.default)
        out.append((message["To"], message.get_body(preferencelist=("html",)).get_content()))
    return out


def test_the_whole_flow_from_a_contact_sends_exactly_what_was_previewed(world, client, app):
    maria, journey = world["maria"], world["journey"]
    # The contact row's button leads to the flow with Maria chosen.
    start = client.get(f"/partner/contacts/{maria.id}/quick-send")
    assert start.status_code == 302 and f"contact_ids={maria.id}" in start.location
    page = text_of(client.get(start.location))
    assert "Maria Garcia" in page and "Choose “Client appreciation”" in page
    path = f"/partner/quick-send?contact_ids={maria.id}&journey_id={journey.id}"
    page = text_of(client.get(path))
    assert 'name="v-0-headline"' in page and "up to 80 characters" in page

    # A value that breaks the rules: the form comes back with the problem in words.
    too_long = client.post("/partner/quick-send", data=form_data(
        client, path, contact_ids=str(maria.id), journey_id=str(journey.id),
        **{"v-0-headline": "x" * 81, "v-0-body": "<p>Hi</p>",
           "v-0-cta_url": "https://brand.example/book"}, action="preview"))
    assert too_long.status_code == 422
    page = text_of(too_long)
    assert "Step 1 · Headline:" in page
    assert 'data-for="steps.0.headline"' in page and 'aria-invalid="true"' in page
    assert "steps.0.headline:" not in page
    assert db.session.query(Campaign).count() == 0

    # A good value: the preview, for Maria, shows the personalized text.
    values = {"v-0-headline": "Thank you for 10 years", "v-0-body": "<p>Lunch is on me.</p>",
              "v-0-cta_url": "https://brand.example/book"}
    confirm = client.post("/partner/quick-send", data=form_data(
        client, path, contact_ids=str(maria.id), journey_id=str(journey.id), **values,
        action="preview"))
    assert confirm.status_code == 200
    page = text_of(confirm)
    assert "Send “Client appreciation” to Maria Garcia now?" in page
    preview_url = re.search(r'<iframe name="qs-preview"[^>]*src="([^"]+)"', page).group(1)
    shown = client.get(unescape(preview_url))
    assert shown.status_code == 200
    assert "Thank you for 10 years" in shown.get_data(as_text=True)
    assert "Dear Maria" in shown.get_data(as_text=True)
    assert db.session.query(Campaign).count() == 0  # nothing happens before the confirmation

    sent = client.post("/partner/quick-send", data=form_data(
        client, path, contact_ids=str(maria.id), journey_id=str(journey.id), **values,
        action="send", when="now"))
    assert sent.status_code == 302
    campaign = db.session.query(Campaign).one()
    assert sent.location.endswith(f"/partner/campaigns/{campaign.id}")
    assert (campaign.kind, campaign.status) == ("quick_send", "scheduled")
    result = text_of(client.get(sent.location))
    assert "is on its way to Maria Garcia" in result
    with configured(app, REDIS_URL=""):
        run_embedded(app, burst=True, interval=0.01, batch_size=10)
    mails = outbox_html(app)
    assert len(mails) == 1 and "maria@home.example" in mails[0][0]
    assert "Thank you for 10 years" in mails[0][1] and "Lunch is on me." in mails[0][1]


def test_several_recipients_preview_switches_and_approval_journeys_submit(world, client):
    maria, joe = world["maria"], world["joe"]
    journey = make_journey(steps=1, quick_send=True, requires_approval=True,
                           name="Market update")
    path = f"/partner/quick-send?contact_ids={maria.id}&contact_ids={joe.id}"
    page = text_of(client.get(path))
    assert "Market update" in page and "Brand approves before sending" in page
    data = {"contact_ids": [str(maria.id), str(joe.id)], "journey_id": str(journey.id),
            "v-0-headline": "Markets this month", "v-0-body": "<p>Calm.</p>",
            "v-0-cta_url": "https://brand.example/book"}
    page = text_of(client.post("/partner/quick-send",
                               data=form_data(client, path, **data, action="preview")))
    assert "Submit “Market update” to 2 clients for brand approval?" in page
    urls = re.findall(r'<a href="([^"]+)" target="qs-preview">As ([^<]+)</a>', page)
    assert [name for _url, name in urls] == ["Maria Garcia", "Joe Bloggs"]
    assert "Dear Joe" in client.get(unescape(urls[1][0])).get_data(as_text=True)
    sent = client.post("/partner/quick-send",
                       data=form_data(client, path, **data, action="send", when="now"))
    campaign = db.session.query(Campaign).one()
    assert campaign.status == "pending_approval"
    result = text_of(client.get(sent.location))
    assert "Submitted “Market update” for brand approval" in result
    assert "Waiting for brand approval" in result
    assert "pending_approval" not in re.sub(r'class="[^"]*"', "", result)
    assert db.session.query(Send).count() == 0


def test_send_later_uses_the_schedule(world, client):
    maria, journey = world["maria"], world["journey"]
    path = f"/partner/quick-send?contact_ids={maria.id}&journey_id={journey.id}"
    data = {"contact_ids": str(maria.id), "journey_id": str(journey.id),
            "v-0-headline": "Later", "v-0-body": "<p>x</p>",
            "v-0-cta_url": "https://brand.example/book", "action": "send", "when": "later",
            "time": "09:00", "timezone": "America/Chicago"}
    past = client.post("/partner/quick-send", data=form_data(client, path, **data,
                                                             date="2001-01-01"))
    assert past.status_code == 422 and db.session.query(Campaign).count() == 0
    assert "Send time:" in text_of(past) or "Date:" in text_of(past)
    day = (clock.now() + timedelta(days=30)).date()
    later = client.post("/partner/quick-send", data=form_data(client, path, **data,
                                                              date=day.isoformat()))
    assert later.status_code == 302
    campaign = db.session.query(Campaign).one()
    assert campaign.timezone == "America/Chicago"
    assert campaign.send_at.date() in (day, day + timedelta(days=1))
    assert "is scheduled for Maria Garcia" in text_of(client.get(later.location))


def test_a_contact_who_cannot_be_emailed_cannot_be_chosen(world, client, app):
    quiet, maria, journey = world["quiet"], world["maria"], world["journey"]
    contacts = text_of(client.get("/partner/contacts"))
    row = re.search(rf'<tr data-contact="{quiet.id}".*?</tr>', contacts, re.S).group(0)
    assert "disabled" in row and "No consent to email" in row
    assert "quick-send" not in row
    good_row = re.search(rf'<tr data-contact="{maria.id}".*?</tr>', contacts, re.S).group(0)
    assert f'name="contact_ids" value="{maria.id}"' in good_row
    page = text_of(client.get(f"/partner/quick-send?contact_ids={quiet.id}"))
    assert "No consent to email" in page and "nothing can be sent" in page
    assert "Choose “" not in page

    # A forged post with its id is refused with a clear message; nothing is created or sent.
    path = f"/partner/quick-send?contact_ids={maria.id}&journey_id={journey.id}"
    forged = client.post("/partner/quick-send", data=form_data(
        client, path, contact_ids=[str(maria.id), str(quiet.id)],
        journey_id=str(journey.id), **{"v-0-headline": "Hi", "v-0-body": "<p>x</p>",
                                       "v-0-cta_url": "https://brand.example/book"},
        action="send", when="now"))
    assert forged.status_code == 422
    assert "Nothing was sent. Quinn Quiet cannot be emailed: no consent to email" in \
        text_of(forged)
    assert db.session.query(Campaign).count() == 0 and db.session.query(Send).count() == 0
    with configured(app, REDIS_URL=""):
        run_embedded(app, burst=True, interval=0.01, batch_size=10)
    assert outbox_html(app) == []


def test_other_partners_contacts_and_journeys_not_offered_answer_404(world, client):
    stranger = make_contact(make_partner(tier="gold"))
    assert client.get(f"/partner/quick-send?contact_ids={stranger.id}").status_code == 404
    plain = make_journey(steps=1, name="Not for quick sends")
    maria = world["maria"]
    assert client.get(f"/partner/quick-send?contact_ids={maria.id}&journey_id={plain.id}"
                      ).status_code == 404
    assert client.get(f"/partner/quick-send/{plain.id}/preview").status_code == 404


def test_as_you_type_check_names_the_field(world, client):
    journey = world["journey"]
    path = f"/partner/quick-send?contact_ids={world['maria'].id}&journey_id={journey.id}"
    answer = client.post(f"/partner/quick-send/{journey.id}/validate", data=form_data(
        client, path, **{"v-0-headline": "x" * 81, "v-0-body": "<p>x</p>",
                         "v-0-cta_url": "https://brand.example/book"}))
    assert answer.json["ok"] is False and "steps.0.headline" in answer.json["fields"]


def test_labels_say_codes_in_words(app):
    version = make_template(slots=[{"name": "headline", "type": "text", "label": "Headline",
                                    "default": "Hi", "max_length": 80}])
    with app.test_request_context():
        assert labels.campaign_status("pending_approval") == "Waiting for brand approval"
        assert labels.campaign_status("running") == "Sending"
        assert labels.exclusion_reason("no_consent") == "No consent to email"
        assert labels.exclusion_reason("duplicate") == "Already in this campaign"
        assert labels.message_reason("condition:opened") == "the step's condition was not met"
        assert labels.field_errors_in_words(
            {"steps.0.headline": "at most 80 characters"}, [version]) == [
            "Step 1 · Headline: at most 80 characters"]
