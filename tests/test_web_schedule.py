"""The campaign page's schedule form and "Send me a test" through Flask's test client."""

from __future__ import annotations

from datetime import datetime

from campaigns.models import Campaign, TestSend
from core import clock
from core.db import db
from tests.builders import make_campaign, make_contact, make_journey, make_partner, make_user
from tests.test_web_pages import PASSWORD, login, page_token

T0 = datetime(2030, 3, 4, 9, 0, 0)  # Monday; 03:00 in Chicago


def _setup(app, client, approval: bool = False, n: int = 3):
    partner = make_partner(tier="gold")
    user, _ = make_user("partner_user", partner, password=PASSWORD)
    campaign = make_campaign(partner, user, make_journey(requires_approval=approval),
                             [make_contact(partner) for _ in range(n)])
    login(client, user.email)
    return campaign, page_token(client, f"/partner/campaigns/{campaign.id}")


def _post(client, campaign, token, **form):
    return client.post(f"/partner/campaigns/{campaign.id}/schedule",
                       data={"csrf_token": token, **form})


def _fresh(campaign_id: int) -> Campaign:
    db.session.expire_all()
    return db.session.get(Campaign, campaign_id)


def test_schedule_asks_first_naming_count_and_time_then_schedules(app, client):
    clock.freeze(T0)
    campaign, token = _setup(app, client, n=3)
    form = {"when": "later", "date": "2030-03-05", "time": "09:00",
            "timezone": "America/Chicago"}
    asked = _post(client, campaign, token, **form)
    assert asked.status_code == 200
    html = asked.get_data(as_text=True)
    assert "Send to 3 clients at Tue 5 Mar, 9:00 America/Chicago?" in html
    assert _fresh(campaign.id).status == "draft"  # nothing happens before the answer

    done = _post(client, campaign, token, confirm="1", **form)
    assert done.status_code == 302
    stored = _fresh(campaign.id)
    assert (stored.status, stored.send_at, stored.timezone) == (
        "scheduled", datetime(2030, 3, 5, 15, 0), "America/Chicago")
    page = client.get(f"/partner/campaigns/{campaign.id}").get_data(as_text=True)
    assert "Scheduled for Tue 5 Mar, 9:00 America/Chicago." in page  # the flash
    assert "Scheduled: goes to 3 clients at Tue 5 Mar, 9:00 America/Chicago." in page


def test_bad_times_are_explained_inline_and_change_nothing(app, client):
    clock.freeze(T0)
    campaign, token = _setup(app, client)
    cases = [
        ({"date": "2030-03-03", "time": "09:00", "timezone": "America/Chicago"}, "in the past"),
        ({"date": "", "time": "09:00", "timezone": "America/Chicago"}, "choose a date"),
        ({"date": "2030-03-05", "time": "25:99", "timezone": "UTC"}, "choose a time"),
        ({"date": "2030-03-05", "time": "09:00", "timezone": "Mars/Base"}, "IANA"),
        # 02:30 on 10 March 2030 does not exist in Chicago: the clocks jump from 2 to 3.
        ({"date": "2030-03-10", "time": "02:30", "timezone": "America/Chicago"}, "skip"),
        ({"date": "2031-06-01", "time": "09:00", "timezone": "UTC"}, "more than a year"),
        ({"date": "2030-03-05\x00", "time": "09:00", "timezone": "UTC"}, "NUL characters"),
    ]
    for form, says in cases:
        response = _post(client, campaign, token, when="later", confirm="1", **form)
        assert response.status_code == 422, form
        assert says in response.get_data(as_text=True), form
    stored = _fresh(campaign.id)
    assert (stored.status, stored.send_at) == ("draft", None)


def test_under_approval_the_button_submits_and_the_page_says_what_next(app, client):
    clock.freeze(T0)
    campaign, token = _setup(app, client, approval=True)
    page = client.get(f"/partner/campaigns/{campaign.id}").get_data(as_text=True)
    assert "Submit for approval" in page and "Send now" not in page
    form = {"when": "later", "date": "2030-03-05", "time": "09:00", "timezone": "Europe/Oslo"}
    asked = _post(client, campaign, token, **form).get_data(as_text=True)
    assert "Submit for approval?" in asked
    assert ("Once the brand approves it, it goes to 3 clients at Tue 5 Mar, 9:00 Europe/Oslo, "
            "or straight away if the approval comes after that time.") in asked
    _post(client, campaign, token, confirm="1", **form)
    assert _fresh(campaign.id).status == "pending_approval"
    page = client.get(f"/partner/campaigns/{campaign.id}").get_data(as_text=True)
    assert "Once approved, it goes out at Tue 5 Mar, 9:00 Europe/Oslo" in page


def test_move_and_back_to_draft_from_the_page(app, client):
    clock.freeze(T0)
    campaign, token = _setup(app, client)
    _post(client, campaign, token, when="later", date="2030-03-05", time="09:00",
          timezone="UTC", confirm="1")
    page = client.get(f"/partner/campaigns/{campaign.id}").get_data(as_text=True)
    assert "Move to this time" in page and 'value="2030-03-05"' in page
    _post(client, campaign, token, when="later", date="2030-03-06", time="10:30",
          timezone="UTC", confirm="1")
    assert _fresh(campaign.id).send_at == datetime(2030, 3, 6, 10, 30)
    client.post(f"/partner/campaigns/{campaign.id}/unschedule", data={"csrf_token": token})
    stored = _fresh(campaign.id)
    assert (stored.status, stored.send_at) == ("draft", datetime(2030, 3, 6, 10, 30))


def test_send_me_a_test_button(app, client):
    campaign, token = _setup(app, client)
    response = client.post(f"/partner/campaigns/{campaign.id}/test-send",
                           data={"csrf_token": token}, follow_redirects=True)
    html = response.get_data(as_text=True)
    assert "Test sent to partner_user" in html and "[TEST]" in html
    record = db.session.query(TestSend).one()
    assert record.status == "sent" and record.email.startswith("partner_user")
    refused = client.post(f"/partner/campaigns/{campaign.id}/test-send",
                          data={"csrf_token": "wrong"})
    assert refused.status_code == 400
