"""The web UI through Flask's test client: sign-in, CSRF, security headers, tenancy, escaping."""

from __future__ import annotations

import re

import pytest

from core.tokens import make_token
from tests.builders import (
    listed,
    make_campaign,
    make_contact,
    make_journey,
    make_partner,
    make_sent_message,
    make_user,
)
from tests.conftest import SECRET

PASSWORD = "correct horse battery"


def _token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "page has no CSRF token"
    return match.group(1)


def login(client, email: str, password: str = PASSWORD):
    """Sign in through the form (fetching its CSRF token first); return the response."""
    token = _token(client.get("/login").get_data(as_text=True))
    return client.post("/login", data={"email": email, "password": password,
                                       "csrf_token": token})


def page_token(client, path: str) -> str:
    return _token(client.get(path).get_data(as_text=True))


@pytest.fixture
def marketer(app):
    user, _ = make_user("brand_marketer", password=PASSWORD)
    return user


@pytest.fixture
def partner_user(app):
    partner = make_partner(tier="gold")
    user, _ = make_user("partner_user", partner, password=PASSWORD)
    return user


def test_signed_out_pages_redirect_to_login(client):
    response = client.get("/brand/journeys")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=/brand/journeys")


def test_login_lands_each_role_on_its_home(client, marketer, partner_user):
    response = login(client, marketer.email)
    assert response.status_code == 302 and response.headers["Location"] == "/brand"
    assert client.get("/brand").status_code == 200
    client.post("/logout", data={"csrf_token": page_token(client, "/brand")})
    assert client.get("/brand").status_code == 302

    response = login(client, partner_user.email)
    assert response.headers["Location"] == "/partner"
    assert client.get("/partner").status_code == 200
    # A partner is not a marketer.
    assert client.get("/brand").status_code == 403


def test_wrong_password_is_refused(client, marketer):
    response = login(client, marketer.email, "not the password")
    assert response.status_code == 401
    assert "Email or password is wrong" in response.get_data(as_text=True)
    assert client.get("/brand").status_code == 302


def test_login_starts_a_fresh_session_and_token(client, marketer):
    before = _token(client.get("/login").get_data(as_text=True))
    login(client, marketer.email)
    after = page_token(client, "/brand")
    assert before != after
    with client.session_transaction() as session:
        assert session["uid"] == marketer.id


def test_login_next_never_leaves_the_site(client, marketer):
    token = _token(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"email": marketer.email, "password": PASSWORD,
                                           "csrf_token": token, "next": "//evil.example/x"})
    assert response.headers["Location"] == "/brand"


def test_forms_without_csrf_token_are_refused(client, marketer):
    from core.db import db
    from journeys.models import Template

    login(client, marketer.email)
    data = {"name": "T", "subject": "S", "mjml": "<mjml><mj-body></mj-body></mjml>"}
    response = client.post("/brand/templates/new", data=data)
    assert response.status_code == 400
    response = client.post("/brand/templates/new", data=dict(data, csrf_token="forged"))
    assert response.status_code == 400
    assert db.session.query(Template).count() == 0
    # Sign-out needs the token too.
    assert client.post("/logout").status_code == 400
    assert client.get("/brand").status_code == 200


def test_login_form_needs_csrf_token(client, marketer):
    client.get("/login")
    response = client.post("/login", data={"email": marketer.email, "password": PASSWORD})
    assert response.status_code == 400


def test_api_and_one_click_routes_are_exempt_from_csrf(client, make_api):
    from campaigns.models import Suppression
    from core.db import db

    _, token = make_user("brand_admin")
    listed(["gold"], ["west"])
    response = make_api(token).post("/api/partners", json={"name": "P", "tier": "gold",
                                                           "region": "west"})
    assert response.status_code == 201
    # An RFC 8058 one-click POST carries no CSRF token: it must reach the unsubscribe route
    # and suppress the address (a CSRF refusal would answer 400 and suppress nothing).
    send = make_sent_message(email="reader@example.com")
    response = client.post(f"/u/{make_token(SECRET, 'unsubscribe', send.id)}",
                           data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    assert [(s.email, s.reason) for s in db.session.query(Suppression)] == [
        ("reader@example.com", "unsubscribed")]


def test_pages_carry_security_headers(client, marketer):
    login(client, marketer.email)
    response = client.get("/brand")
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp.split("style-src")[0]
    assert response.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "<script>" not in response.get_data(as_text=True)


def test_session_cookie_is_httponly_and_lax(client, marketer):
    response = login(client, marketer.email)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_template_editor_shows_mjml_error_at_its_line(client, marketer):
    login(client, marketer.email)
    token = page_token(client, "/brand/templates/new")
    mjml = ("<mjml>\n<mj-body>\n<mj-section>\n<mj-column>\n"
            "<mj-bogus>{{ slots.headline }}</mj-bogus>\n</mj-column>\n</mj-section>\n"
            "</mj-body>\n</mjml>")
    response = client.post("/brand/templates/new", data={
        "csrf_token": token, "name": "Welcome", "subject": "Hi", "mjml": mjml,
        "slot-0-name": "headline", "slot-0-type": "text", "slot-0-label": "Headline",
        "slot-0-default": "Hello", "slot-0-max_length": "40",
    })
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert re.search(r'data-line="5">Line 5: [^<]*mj-bogus', html)
    # The form keeps what the marketer typed.
    assert 'value="headline"' in html and "&lt;mj-bogus&gt;" in html


def test_template_editor_shows_slot_error_next_to_its_row(client, marketer):
    login(client, marketer.email)
    token = page_token(client, "/brand/templates/new")
    mjml = "<mjml><mj-body><mj-section><mj-column><mj-text>{{ slots.title }}</mj-text>" \
           "</mj-column></mj-section></mj-body></mjml>"
    response = client.post("/brand/templates/new", data={
        "csrf_token": token, "name": "T", "subject": "S", "mjml": mjml,
        "slot-0-name": "title", "slot-0-type": "text", "slot-0-label": "Title",
        "slot-0-default": "x" * 50, "slot-0-max_length": "10",
    })
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    row = html.split('data-index="0"')[1].split("</div>")[0]
    assert "slot-error" in row and "at most 10 characters" in row


def test_marketer_creates_publishes_template_and_journey(client, marketer):
    from journeys import services as journeys

    login(client, marketer.email)
    token = page_token(client, "/brand/templates/new")
    mjml = "<mjml><mj-body><mj-section><mj-column><mj-text>{{ slots.title }}</mj-text>" \
           "</mj-column></mj-section></mj-body></mjml>"
    response = client.post("/brand/templates/new", data={
        "csrf_token": token, "name": "Hello", "subject": "S", "mjml": mjml,
        "slot-0-name": "title", "slot-0-type": "text", "slot-0-label": "Title",
        "slot-0-default": "Hi", "slot-3-name": "", "slot-3-label": ""})
    assert response.status_code == 302
    template_id = int(response.headers["Location"].rsplit("/", 1)[1])
    client.post(f"/brand/templates/{template_id}/publish", data={"csrf_token": token})
    assert journeys.published_version(template_id) is not None

    listed(["gold", "silver"])
    response = client.post("/brand/journeys/new", data={
        "csrf_token": token, "name": "Welcome series", "category": "onboarding",
        "tiers": ["gold", "silver"], "requires_approval": "on",
        "step-0-template_id": str(template_id), "step-0-delay_hours": "0",
        "step-0-when": "always", "step-1-template_id": str(template_id),
        "step-1-delay_hours": "48", "step-1-when": "not_opened"})
    assert response.status_code == 302
    journey_id = int(response.headers["Location"].rsplit("/", 1)[1])
    # No partner is in gold or silver yet: publishing asks first, and publishes on "anyway".
    asked = client.post(f"/brand/journeys/{journey_id}/publish", data={"csrf_token": token})
    assert asked.status_code == 302 and "confirm=none" in asked.headers["Location"]
    assert journeys.get_journey(journey_id).status == "draft"
    page = client.get(asked.headers["Location"]).get_data(as_text=True)
    assert "No partner is in gold, silver/every region yet: publish anyway?" in page
    client.post(f"/brand/journeys/{journey_id}/publish", data={"csrf_token": token,
                                                                "anyway": "1"})
    journey = journeys.get_journey(journey_id)
    assert journey.status == "published" and journey.requires_approval
    assert journey.audience_tiers == ["gold", "silver"]
    assert [(s.delay_hours, s.condition) for s in journey.steps] == [(0, "always"),
                                                                    (48, "not_opened")]


def test_partner_cannot_open_another_partners_things(client, app):
    owner = make_partner(tier="gold")
    owner_user, _ = make_user("partner_user", owner, password=PASSWORD)
    journey = make_journey(steps=1)
    contact = make_contact(owner)
    campaign = make_campaign(owner, owner_user, journey, contacts=[contact])
    other = make_partner(tier="gold")
    intruder, _ = make_user("partner_admin", other, password=PASSWORD)
    login(client, intruder.email)
    for path in (f"/partner/campaigns/{campaign.id}", f"/partner/campaigns/{campaign.id}/edit",
                 f"/partner/campaigns/{campaign.id}/preview",
                 f"/partner/campaigns/{campaign.id}/report",
                 f"/partner/campaigns/{campaign.id}/recipients.csv",
                 f"/partner/contacts/{contact.id}/quick-send"):
        assert client.get(path).status_code == 404, path
    token = page_token(client, "/partner")
    response = client.post(f"/partner/campaigns/{campaign.id}/launch",
                           data={"csrf_token": token})
    assert response.status_code == 404
    assert campaign.status == "draft"
    # The owner sees it.
    client.post("/logout", data={"csrf_token": token})
    login(client, owner_user.email)
    assert client.get(f"/partner/campaigns/{campaign.id}").status_code == 200


def test_catalog_is_filtered_by_tier(client, app):
    journey = make_journey(steps=1, tiers=["gold"], name="Gold only")
    silver = make_partner(tier="silver")
    user, _ = make_user("partner_user", silver, password=PASSWORD)
    login(client, user.email)
    assert "Gold only" not in client.get("/partner").get_data(as_text=True)
    assert client.get(f"/partner/journeys/{journey.id}").status_code == 404


def test_script_in_contact_name_and_slot_value_is_text(client, app):
    partner = make_partner(tier="gold")
    user, _ = make_user("partner_user", partner, password=PASSWORD)
    make_contact(partner, first_name="<script>alert(1)</script>")
    journey = make_journey(steps=1)
    login(client, user.email)
    html = client.get("/partner/contacts").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html

    token = page_token(client, f"/partner/journeys/{journey.id}")
    response = client.post(f"/partner/journeys/{journey.id}", data={
        "csrf_token": token, "name": "Mine", "sender_name": "Pat",
        "sender_reply_to": "pat@partner.example",
        "v-0-headline": "<script>alert(2)</script>"})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "<script>alert(2)</script>" not in html
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in html


def test_too_long_slot_value_is_reported_inline_and_by_the_validator(client, app):
    partner = make_partner(tier="gold")
    user, _ = make_user("partner_user", partner, password=PASSWORD)
    journey = make_journey(steps=1)
    login(client, user.email)
    token = page_token(client, f"/partner/journeys/{journey.id}")
    data = {"csrf_token": token, "name": "Mine", "sender_name": "Pat",
            "sender_reply_to": "pat@partner.example", "v-0-headline": "x" * 81}
    response = client.post(f"/partner/journeys/{journey.id}/validate", data=data)
    assert response.json["fields"] == {"steps.0.headline": "must be at most 80 characters"}
    response = client.post(f"/partner/journeys/{journey.id}", data=data)
    assert response.status_code == 422
    assert re.search(r'data-for="steps.0.headline"[^>]*>must be at most 80 characters',
                     response.get_data(as_text=True))
    data["v-0-headline"] = "Spring offer"
    response = client.post(f"/partner/journeys/{journey.id}", data=data)
    assert response.status_code == 302


def test_preview_is_served_with_a_restrictive_policy(client, app):
    partner = make_partner(tier="gold")
    user, _ = make_user("partner_user", partner, password=PASSWORD)
    journey = make_journey(steps=1)
    login(client, user.email)
    token = page_token(client, f"/partner/journeys/{journey.id}")
    response = client.post(f"/partner/journeys/{journey.id}/preview", data={
        "csrf_token": token, "sender_name": "Pat", "sender_reply_to": "pat@partner.example",
        "v-0-headline": "Spring offer"})
    assert response.status_code == 200
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert "Spring offer" in response.get_data(as_text=True)


def test_add_members_shows_exclusion_reasons(client, app):
    partner = make_partner(tier="gold")
    user, _ = make_user("partner_user", partner, password=PASSWORD)
    journey = make_journey(steps=1)
    ok = make_contact(partner, email="ok@example.com")
    no = make_contact(partner, email="no@example.com", consent=False)
    campaign = make_campaign(partner, user, journey)
    login(client, user.email)
    token = page_token(client, f"/partner/campaigns/{campaign.id}")
    response = client.post(f"/partner/campaigns/{campaign.id}/members", data={
        "csrf_token": token, "contact_ids": [str(ok.id), str(no.id)]})
    html = response.get_data(as_text=True)
    assert "1 contact added" in html
    exclusions = html.split('class="list exclusions"')[1].split("</table>")[0]
    assert "no@example.com" in exclusions and "No consent to email" in exclusions


def test_outbox_lists_and_shows_messages(client, app, marketer):
    from delivery.outbox import store_eml

    raw = (b"From: news@acme.example\r\nTo: ann@example.com\r\nSubject: Hello Ann\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
           b"<p><a href=\"http://lastmile.test/t/c/abc\">Go</a></p>")
    message_id = store_eml(app.config["OUTBOX_DIR"], raw, 7)
    login(client, marketer.email)
    assert "Hello Ann" in client.get("/outbox").get_data(as_text=True)
    assert client.get(f"/outbox/{message_id}").status_code == 200
    html = client.get(f"/outbox/{message_id}/html")
    assert html.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert b"http://lastmile.test/t/c/abc" in html.data
    assert client.get("/outbox/..%2Fsecret").status_code == 404


def test_outbox_shows_a_partner_only_its_own_mail(client, app):
    from sqlalchemy import select

    from campaigns import ledger, lifecycle
    from campaigns.models import Send
    from core.db import db
    from delivery.outbox import store_eml

    journey = make_journey(steps=1)
    stored = {}
    for label in ("mine", "theirs"):
        partner = make_partner(tier="gold")
        user, _ = make_user("partner_user", partner, password=PASSWORD)
        campaign = make_campaign(partner, user, journey, contacts=[make_contact(partner)])
        lifecycle.launch_campaign(campaign)
        ledger.start_scheduled_campaigns()
        send_id = db.session.scalar(select(Send.id).where(Send.campaign_id == campaign.id))
        mail = f"Subject: outbox-{label}\r\nTo: x@example.com\r\n\r\nbody\r\n".encode()
        stored[label] = (user, store_eml(app.config["OUTBOX_DIR"], mail, send_id))
    owner, (mine, theirs) = stored["mine"][0], (stored["mine"][1], stored["theirs"][1])

    login(client, owner.email)
    listing = client.get("/outbox").get_data(as_text=True)
    assert "outbox-mine" in listing and "outbox-theirs" not in listing
    assert client.get(f"/outbox/{mine}").status_code == 200
    for path in (f"/outbox/{theirs}", f"/outbox/{theirs}/html"):
        assert client.get(path).status_code == 404, path

    client.post("/logout", data={"csrf_token": page_token(client, "/partner")})
    marketer, _ = make_user("brand_marketer", password=PASSWORD)
    login(client, marketer.email)
    listing = client.get("/outbox").get_data(as_text=True)
    assert "outbox-mine" in listing and "outbox-theirs" in listing


def test_brand_roles_see_campaign_aggregates_but_no_recipient_rows(client, app):
    partner = make_partner(tier="gold")
    user, _ = make_user("partner_user", partner, password=PASSWORD)
    contact = make_contact(partner, email="private.person@example.com")
    campaign = make_campaign(partner, user, make_journey(steps=1), contacts=[contact])
    marketer, _ = make_user("brand_marketer", password=PASSWORD)
    login(client, marketer.email)
    page = client.get(f"/partner/campaigns/{campaign.id}")
    assert page.status_code == 200
    assert "private.person@example.com" not in page.get_data(as_text=True)
    assert client.get(f"/partner/campaigns/{campaign.id}/recipients.csv").status_code == 403
    preview = client.get(f"/partner/campaigns/{campaign.id}/preview?contact_id={contact.id}")
    assert preview.status_code == 404
    assert client.get(f"/partner/campaigns/{campaign.id}/preview").status_code == 200
    # The owning partner does see its recipients.
    client.post("/logout", data={"csrf_token": page_token(client, "/brand")})
    login(client, user.email)
    body = client.get(f"/partner/campaigns/{campaign.id}").get_data(as_text=True)
    assert "private.person@example.com" in body


def test_repeated_failed_sign_ins_are_throttled(client, app):
    from web.auth_views import LOGIN_FAILURES_PER_CLIENT

    user, _ = make_user("partner_user", make_partner(), password=PASSWORD)
    for _ in range(LOGIN_FAILURES_PER_CLIENT):
        assert login(client, user.email, "wrong password").status_code == 401
    # Even the right password is refused from this client until the window passes.
    refused = login(client, user.email)
    assert refused.status_code == 429
    assert "Too many failed sign-ins" in refused.get_data(as_text=True)
    # Other clients and other accounts are not locked out by this one's guessing.
    other_client = app.test_client()
    other_client.environ_base["REMOTE_ADDR"] = "198.51.100.7"
    assert login(other_client, user.email).status_code == 302
    other, _ = make_user("partner_user", make_partner(), password=PASSWORD)
    assert login(client, other.email).status_code == 302


def test_sign_in_still_works_when_redis_is_unreachable(client, app):
    user, _ = make_user("partner_user", make_partner(), password=PASSWORD)
    saved = app.config["REDIS_URL"]
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"  # nothing listens there
    try:
        assert login(client, user.email, "wrong password").status_code == 401
        assert login(client, user.email).status_code == 302
    finally:
        app.config["REDIS_URL"] = saved
