"""The launcher (web/launcher.py) through Flask's test client: each step, resuming, bad input."""

from __future__ import annotations

import re
from datetime import datetime

from campaigns import contacts as contacts_service
from campaigns import members
from campaigns.models import Campaign, CampaignMember, Suppression
from core import clock
from core.db import db
from tests.builders import make_contact, make_journey, make_partner, make_template, make_user
from tests.test_web_pages import PASSWORD, login, page_token

T0 = datetime(2030, 3, 4, 15, 0, 0)  # Monday, 09:00 in Chicago


def _fresh(campaign_id: int) -> Campaign:
    db.session.expire_all()
    return db.session.get(Campaign, campaign_id)


def _start(client, *, approval: bool = False, journey=None, contacts: int = 0):
    """A signed-in partner who pressed "Use this journey": (campaign, token, partner)."""
    partner = make_partner(tier="gold")
    user, _ = make_user("partner_user", partner, password=PASSWORD)
    journey = journey or make_journey(requires_approval=approval, name="Spring check-in")
    for n in range(contacts):
        make_contact(partner, email=f"c{n}.{partner.id}@example.com", first_name=f"Client{n}")
    login(client, user.email)
    token = page_token(client, "/partner")
    response = client.post(f"/partner/journeys/{journey.id}/launch", data={"csrf_token": token})
    assert response.status_code == 302
    match = re.search(r"/partner/campaigns/(\d+)/launch/campaign$", response.headers["Location"])
    assert match, response.headers["Location"]
    return _fresh(int(match.group(1))), token, partner


def _post(client, campaign, step, token, **form):
    return client.post(f"/partner/campaigns/{campaign.id}/launch/{step}",
                       data={"csrf_token": token, **form})


def test_use_this_journey_creates_a_draft_with_defaults_and_the_progress_header(app, client):
    clock.freeze(T0)
    campaign, _token, partner = _start(client)
    assert campaign.status == "draft"
    assert campaign.name == "Spring check-in, 4 Mar 2030"
    assert campaign.sender_name == partner.default_sender_name
    html = client.get(f"/partner/campaigns/{campaign.id}/launch/campaign").get_data(as_text=True)
    assert 'aria-current="step"' in html
    for name in ("Campaign", "Audience", "Personalize", "Preview & Send"):
        assert f'<span class="step-label">{name}' in html
    # A step not reached yet opens the next unfinished one instead.
    later = client.get(f"/partner/campaigns/{campaign.id}/launch/send")
    assert later.headers["Location"].endswith(f"/partner/campaigns/{campaign.id}/launch")


def test_the_campaign_step_saves_and_explains_bad_input_in_words(app, client):
    campaign, token, _partner = _start(client)
    bad = _post(client, campaign, "campaign", token, action="next", name="Mine",
                sender_name="Pat", reply_to="not an address")
    assert bad.status_code == 422
    html = bad.get_data(as_text=True)
    assert "Reply-to:" in html and "sender.reply_to:" not in html
    assert _fresh(campaign.id).launch_steps_done == 0
    good = _post(client, campaign, "campaign", token, action="next", name="Mine",
                 sender_name="Pat Lee", reply_to="pat@example.com")
    assert good.headers["Location"].endswith("/launch/audience")
    stored = _fresh(campaign.id)
    assert (stored.name, stored.sender_name, stored.sender_reply_to, stored.launch_steps_done) \
        == ("Mine", "Pat Lee", "pat@example.com", 1)


def test_audience_without_recipients_says_so_and_stays(app, client):
    campaign, token, _partner = _start(client)
    _post(client, campaign, "campaign", token, action="next", name="Mine", sender_name="Pat",
          reply_to="pat@example.com")
    response = _post(client, campaign, "audience", token, action="next")
    assert response.status_code == 422
    assert "Choose at least one client: nobody would get this campaign." in \
        response.get_data(as_text=True)
    assert _fresh(campaign.id).launch_steps_done == 1


def test_select_all_matching_adds_every_match_past_any_page_and_lists_who_is_left_out(
        app, client):
    campaign, token, partner = _start(client, contacts=60)
    tagged = [c for c, _s in contacts_service.search_contacts(partner.id, per_page=100)[0]]
    for contact in tagged[:55]:
        contacts_service.update_contact(contact, tags=["vip"])
    contacts_service.update_contact(tagged[0], consent=False)
    db.session.add(Suppression(email=tagged[1].email, email_hash=tagged[1].email_hash,
                               reason="unsubscribed"))
    db.session.commit()
    _post(client, campaign, "campaign", token, action="next", name="Mine", sender_name="Pat",
          reply_to="pat@example.com")
    page = client.get(f"/partner/campaigns/{campaign.id}/launch/audience?tag=vip")
    html = page.get_data(as_text=True)
    assert "55 contacts match." in html and "Select all 55 matching" in html
    assert "Page 1 of 3" in html
    assert "Left out: 2 matching contacts cannot be emailed" in html
    added = _post(client, campaign, "audience", token, action="add_all", tag="vip")
    assert added.headers["Location"].endswith("/launch/audience?tag=vip")
    assert members.member_count(campaign.id) == 53
    shown = client.get(added.headers["Location"]).get_data(as_text=True)
    assert "Added 53 clients. Left out 2: no consent to email (1), unsubscribed (1)." in shown
    csv = client.get(f"/partner/campaigns/{campaign.id}/launch/audience/left-out.csv?tag=vip")
    lines = csv.get_data(as_text=True).splitlines()
    assert lines[0] == "Email,First name,Last name,Why they are left out"
    assert sorted(line.rsplit(",", 1)[1] for line in lines[1:]) == [
        "No consent to email", "Unsubscribed"]
    # Again: everyone is already in, in words.
    _post(client, campaign, "audience", token, action="add_all", tag="vip")
    again = client.get(f"/partner/campaigns/{campaign.id}/launch/audience?tag=vip")
    assert "already in this campaign (53)" in again.get_data(as_text=True)
    nxt = _post(client, campaign, "audience", token, action="next", tag="vip")
    assert nxt.headers["Location"].endswith("/launch/personalize")


def test_leaving_at_personalize_and_coming_back_keeps_everything(app, client):
    campaign, token, partner = _start(client, contacts=2)
    _post(client, campaign, "campaign", token, action="next", name="Kept", sender_name="Pat",
          reply_to="pat@example.com")
    ids = [c.id for c, _s in contacts_service.search_contacts(partner.id)[0]]
    _post(client, campaign, "audience", token, action="next", contact_ids=[str(i) for i in ids])
    assert members.member_count(campaign.id) == 2
    saved = _post(client, campaign, "personalize", token, action="back",
                  **{"v-0-headline": "Kept headline", "v-0-body": "<p>Kept <b>body</b></p>",
                     "v-0-cta_url": "https://brand.example/kept"})
    assert saved.headers["Location"].endswith("/launch/audience")  # Back keeps what was typed
    resumed = client.get(f"/partner/campaigns/{campaign.id}/launch")
    assert resumed.headers["Location"].endswith("/launch/personalize")  # step 3: unfinished
    html = client.get(resumed.headers["Location"]).get_data(as_text=True)
    assert 'value="Kept headline"' in html and "Kept &lt;b&gt;body&lt;/b&gt;" in html
    assert "2 clients chosen" in html
    stored = _fresh(campaign.id)
    assert stored.name == "Kept" and stored.slot_values["0"]["headline"] == "Kept headline"
    done = _post(client, campaign, "personalize", token, action="next",
                 **{"v-0-headline": "Kept headline", "v-0-body": "<p>Kept</p>",
                    "v-0-cta_url": "https://brand.example/kept"})
    assert done.headers["Location"].endswith("/launch/send")
    assert client.get(f"/partner/campaigns/{campaign.id}/launch").headers[
        "Location"].endswith("/launch/send")


def _to_send_step(client, *, approval: bool = False, first_names: bool = True):
    template = make_template(mjml=None)
    campaign, token, partner = _start(client, approval=approval,
                                      journey=make_journey(requires_approval=approval,
                                                           templates=[template]), contacts=3)
    if not first_names:
        contact = contacts_service.search_contacts(partner.id)[0][0][0]
        contacts_service.update_contact(contact, first_name="")
    _post(client, campaign, "campaign", token, action="next", name="Go", sender_name="Pat",
          reply_to="pat@example.com")
    _post(client, campaign, "audience", token, action="add_all")
    _post(client, campaign, "audience", token, action="next")
    _post(client, campaign, "personalize", token, action="next",
          **{"v-0-headline": "Hi", "v-0-body": "<p>Body</p>",
             "v-0-cta_url": "https://brand.example/x"})
    assert _fresh(campaign.id).launch_steps_done == 3
    return campaign, token


def test_personalize_errors_are_in_words_and_removed_markup_is_named(app, client):
    campaign, token = _to_send_step(client)
    bad = _post(client, campaign, "personalize", token, action="next",
                **{"v-0-headline": "x" * 81, "v-0-body": "<p>ok</p>",
                   "v-0-cta_url": "https://elsewhere.example/"})
    assert bad.status_code == 422
    html = bad.get_data(as_text=True)
    assert "Step 1 · Headline: must be at most 80 characters" in html
    assert "Headline: must be at most 80 characters" in html
    assert "steps.0.headline" not in html.replace('data-for="steps.0.headline"', "")
    removed = _post(client, campaign, "personalize", token, action="next",
                    **{"v-0-headline": "Fine", "v-0-cta_url": "https://brand.example/x",
                       "v-0-body": '<p onclick="steal()">Hello</p><script>alert(1)</script>'})
    assert removed.status_code == 200  # saved, and the page says what was removed
    assert "We removed an onclick attribute and a script" in removed.get_data(as_text=True)
    assert _fresh(campaign.id).slot_values["0"]["body"] == "<p>Hello</p>"


def test_preview_and_send_flags_lock_and_a_confirmation_naming_count_and_time(app, client):
    clock.freeze(T0)
    campaign, token = _to_send_step(client, first_names=False)
    html = client.get(f"/partner/campaigns/{campaign.id}/launch/send").get_data(as_text=True)
    assert "1 recipient has no first name: they will see “Dear ,”." in html
    assert "Brand lock: intact." in html
    assert "3 clients will get it." in html
    form = {"when": "later", "date": "2030-03-05", "time": "09:00",
            "timezone": "America/Chicago"}
    asked = _post(client, campaign, "send", token, **form)
    assert "Send to 3 clients at Tue 5 Mar, 9:00 America/Chicago?" in asked.get_data(
        as_text=True)
    assert _fresh(campaign.id).status == "draft"
    done = _post(client, campaign, "send", token, confirm="1", **form)
    assert done.headers["Location"].endswith(f"/partner/campaigns/{campaign.id}")
    stored = _fresh(campaign.id)
    assert (stored.status, stored.send_at) == ("scheduled", datetime(2030, 3, 5, 15, 0))
    page = client.get(done.headers["Location"]).get_data(as_text=True)
    assert "Scheduled: goes to 3 clients at Tue 5 Mar, 9:00 America/Chicago." in page
    # A launched campaign is no longer set up in the launcher: its page instead.
    again = client.get(f"/partner/campaigns/{campaign.id}/launch/send")
    assert again.headers["Location"].endswith(f"/partner/campaigns/{campaign.id}")


def test_bad_send_times_and_zones_are_explained_and_change_nothing(app, client):
    clock.freeze(T0)
    campaign, token = _to_send_step(client)
    cases = [
        ({"date": "2030-03-03", "time": "09:00", "timezone": "America/Chicago"}, "in the past"),
        ({"date": "2030-03-05", "time": "09:00", "timezone": "Mars/Olympus"},
         "Time zone: must be an IANA time zone name"),
        ({"date": "", "time": "09:00", "timezone": "UTC"}, "Date: choose a date"),
    ]
    for form, says in cases:
        for confirm in ("", "1"):
            response = _post(client, campaign, "send", token, when="later", confirm=confirm,
                             **form)
            assert response.status_code == 422, form
            assert says in response.get_data(as_text=True), form
    stored = _fresh(campaign.id)
    assert (stored.status, stored.send_at) == ("draft", None)


def test_send_without_recipients_is_refused_in_words(app, client):
    campaign, token = _to_send_step(client)
    db.session.query(CampaignMember).filter_by(campaign_id=campaign.id).delete()
    db.session.commit()
    response = _post(client, campaign, "send", token, when="now", confirm="1")
    assert response.status_code == 422
    assert "no client is chosen: go back to Audience" in response.get_data(as_text=True)
    assert _fresh(campaign.id).status == "draft"


def test_under_approval_the_button_submits_and_says_what_happens_next(app, client):
    campaign, token = _to_send_step(client, approval=True)
    html = client.get(f"/partner/campaigns/{campaign.id}/launch/send").get_data(as_text=True)
    assert "Submit for approval</button>" in html
    assert "What happens next: the brand checks your texts" in html
    asked = _post(client, campaign, "send", token, when="now")
    assert "Submit for approval?" in asked.get_data(as_text=True)
    _post(client, campaign, "send", token, when="now", confirm="1")
    assert _fresh(campaign.id).status == "pending_approval"


def test_another_partners_campaign_is_not_found_in_the_launcher(app, client):
    campaign, _token, _partner = _start(client)
    other = app.test_client()
    _other_campaign, token, _ = _start(other)  # another partner's user
    assert other.get(f"/partner/campaigns/{campaign.id}/launch/campaign").status_code == 404
    assert _post(other, campaign, "audience", token, action="add_all").status_code == 404
    assert other.get(f"/partner/campaigns/{campaign.id}/launch/audience/left-out.csv"
                     ).status_code == 404
    assert members.member_count(campaign.id) == 0


def test_one_client_gets_their_own_words_and_can_go_back_to_the_campaigns(app, client):
    campaign, token = _to_send_step(client)
    people = sorted(db.session.scalars(
        db.select(CampaignMember.contact_id).where(CampaignMember.campaign_id == campaign.id)))
    chosen, other = people[0], people[1]
    page = client.get(f"/partner/campaigns/{campaign.id}/launch/send?contact_id={chosen}"
                      ).get_data(as_text=True)
    assert "Change the words for this client only" in page
    assert 'name="o-headline" value="Hi"' in page  # starts from the campaign's words
    saved = client.post(f"/partner/campaigns/{campaign.id}/launch/override", data={
        "csrf_token": token, "contact_id": chosen, "step": "0", "action": "save",
        "o-headline": "Hi Ann, as we discussed", "o-body": "<p>Body</p>"})
    assert saved.status_code == 302
    # Only what differs from the campaign is stored, and only for that client.
    assert members.member_overrides(campaign.id, chosen) == {
        "0": {"headline": "Hi Ann, as we discussed"}}
    assert members.member_overrides(campaign.id, other) == {}
    shown = client.get(f"/partner/campaigns/{campaign.id}/preview?contact_id={chosen}")
    assert "Hi Ann, as we discussed" in shown.get_data(as_text=True)
    assert "Hi Ann" not in client.get(
        f"/partner/campaigns/{campaign.id}/preview?contact_id={other}").get_data(as_text=True)
    page = client.get(saved.headers["Location"]).get_data(as_text=True)
    assert "gets their own words in this email" in page and "Own words" in page

    too_long = client.post(f"/partner/campaigns/{campaign.id}/launch/override", data={
        "csrf_token": token, "contact_id": chosen, "step": "0", "action": "save",
        "o-headline": "x" * 81, "o-body": "<p>Body</p>"})
    assert "Headline" in client.get(too_long.headers["Location"]).get_data(as_text=True)
    assert members.member_overrides(campaign.id, chosen) == {
        "0": {"headline": "Hi Ann, as we discussed"}}  # unchanged

    client.post(f"/partner/campaigns/{campaign.id}/launch/override", data={
        "csrf_token": token, "contact_id": chosen, "step": "0", "action": "reset"})
    assert members.member_overrides(campaign.id, chosen) == {}


def test_own_words_for_someone_outside_the_campaign_change_nothing(app, client):
    campaign, token = _to_send_step(client)
    stranger = make_contact(make_partner(), email="stranger@example.com")
    answer = client.post(f"/partner/campaigns/{campaign.id}/launch/override", data={
        "csrf_token": token, "contact_id": stranger.id, "step": "0", "action": "save",
        "o-headline": "Hello"})
    assert answer.status_code == 404
    for bad in ("x", "99999999999999999999", "\x00"):
        answer = client.post(f"/partner/campaigns/{campaign.id}/launch/override", data={
            "csrf_token": token, "contact_id": bad, "step": "0", "o-headline": "Hello"})
        assert answer.status_code in (400, 422)
