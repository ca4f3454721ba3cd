"""Password reset by email: one answer whether or not the address exists, throttled, and
links that work once within the hour; the pages refuse bad links in words."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from accounts.models import PasswordReset
from core import clock
from core.db import db
from tests.builders import make_partner, make_user
from tests.network_helpers import link_in, mails_to, text_of, token_of
from tests.test_accounts_sessions import is_signed_in, signed_in
from tests.test_web_pages import PASSWORD, page_token

NEW = "a brand new passphrase"


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_reset_request_answers_the_same_for_known_and_unknown_addresses(app, make_api,
                                                                         mailbox):
    make_user("brand_marketer", email="known@example.com", password=PASSWORD)
    anon = make_api(None)
    known = anon.post("/api/password-reset", json={"email": "known@example.com"})
    unknown = anon.post("/api/password-reset", json={"email": "nobody@example.com"})
    assert known.status_code == unknown.status_code == 202
    assert known.get_data() == unknown.get_data()
    # The same work: one message rendered and delivered either way (only the known one links).
    [to_known] = mails_to(mailbox, "known@example.com")
    [to_unknown] = mails_to(mailbox, "nobody@example.com")
    assert "/reset/" in text_of(to_known) and "/reset/" not in text_of(to_unknown)
    assert to_known["Subject"] == to_unknown["Subject"]
    assert db.session.query(PasswordReset).count() == 1


def test_unstorable_text_in_a_reset_request_is_a_documented_422(app, make_api, client):
    # Found by tests/test_api_fuzz.py: a lone surrogate or NUL answered undocumented 422.
    from tests.test_openapi import conforms

    spec = client.get("/api/openapi.json").get_json()
    for body in ('{"email": "a\\u0000b@example.com"}', '{"email": "\\ud800@example.com"}'):
        resp = make_api(None).post("/api/password-reset", data=body,
                                   headers={"Content-Type": "application/json"})
        assert resp.status_code == 422, body
        assert resp.json["error"]["fields"]
        conforms(spec, "/api/password-reset", "post", resp)
    assert db.session.query(PasswordReset).count() == 0


def test_the_reset_link_sets_a_password_once_and_ends_sessions(app, mailbox):
    user, _token = make_user("brand_marketer", email="rae@example.com", password=PASSWORD)
    old_session = signed_in(app, "rae@example.com")
    client = app.test_client()
    page = client.get("/forgot").get_data(as_text=True)
    assert client.post("/forgot", data={"email": "rae@example.com",
                                        "csrf_token": _csrf(page)}).status_code == 200
    link = link_in(mails_to(mailbox, "rae@example.com")[0])
    path = link.replace("http://lastmile.test", "")
    form = client.get(path)
    assert form.status_code == 200 and "new password" in form.get_data(as_text=True).lower()
    weak = client.post(path, data={"password": "password123",
                                   "csrf_token": page_token(client, path)})
    assert weak.status_code == 422 and "common" in weak.get_data(as_text=True)
    done = client.post(path, data={"password": NEW, "csrf_token": page_token(client, path)})
    assert done.status_code == 302  # signed in
    assert not is_signed_in(old_session)
    assert signed_in(app, "rae@example.com", NEW)
    reused = app.test_client().get(path)
    assert reused.status_code == 410
    assert "already used" in reused.get_data(as_text=True)


def test_expired_and_tampered_reset_links_are_refused_with_a_clear_page(app, mailbox):
    make_user("brand_marketer", email="sam@example.com", password=PASSWORD)
    app.test_client().post("/api/password-reset", json={"email": "sam@example.com"})
    token = token_of(mails_to(mailbox, "sam@example.com")[0])
    client = app.test_client()
    tampered = client.get("/reset/" + token[:-3] + "abc")
    assert tampered.status_code == 410
    assert "This link is not valid" in tampered.get_data(as_text=True)
    assert "Ask for a new link" in tampered.get_data(as_text=True)
    clock.freeze(clock.now() + timedelta(minutes=61))
    expired = client.get("/reset/" + token)
    assert expired.status_code == 410 and "expired" in expired.get_data(as_text=True)
    api = client.post("/api/password-reset/complete", json={"token": token, "password": NEW})
    assert api.status_code == 410 and api.json["error"]["code"] == "link_expired"


def test_expired_reused_and_tampered_invitation_pages(app, make_api, mailbox):
    _admin, token = make_user("brand_admin")
    make_api(token).post("/api/invitations", json={"email": "tia@example.com",
                                                   "role": "brand_marketer"})
    invite = token_of(mails_to(mailbox, "tia@example.com")[0])
    client = app.test_client()
    bad = client.get("/join/" + invite.replace(".", ".x", 1))
    assert bad.status_code == 410 and "not valid" in bad.get_data(as_text=True)
    path = "/join/" + invite
    page = client.get(path)
    assert page.status_code == 200 and "tia@example.com" in page.get_data(as_text=True)
    joined = client.post(path, data={"name": "Tia", "password": NEW,
                                     "csrf_token": _csrf(page.get_data(as_text=True))})
    assert joined.status_code == 302
    assert is_signed_in(client)
    again = app.test_client().get(path)
    assert again.status_code == 410 and "already used" in again.get_data(as_text=True)
    make_api(token).post("/api/invitations", json={"email": "ula@example.com",
                                                   "role": "brand_marketer"})
    late = token_of(mails_to(mailbox, "ula@example.com")[0])
    clock.freeze(clock.now() + timedelta(days=8))
    expired = app.test_client().get("/join/" + late)
    assert expired.status_code == 410 and "expired" in expired.get_data(as_text=True)


def test_reset_requests_are_throttled_per_address_and_per_client(app, make_api, mailbox):
    make_user("brand_marketer", email="vic@example.com", password=PASSWORD)
    anon = make_api(None)
    answers = [anon.post("/api/password-reset", json={"email": "vic@example.com"}).status_code
               for _ in range(6)]
    assert answers == [202] * 5 + [429]
    assert len(mails_to(mailbox, "vic@example.com")) == 5
    # Other addresses from the same client: the per-client limit (20) stops a sweep.
    sweep = [anon.post("/api/password-reset", json={"email": f"n{i}@example.com"}).status_code
             for i in range(15)]
    assert sweep.count(429) == 1 and sweep[-1] == 429


def test_disabled_users_and_inactive_partners_get_no_reset_link(app, make_api, mailbox):
    partner = make_partner()
    user, _t = make_user("partner_user", partner, email="wes@example.com", password=PASSWORD)
    user.disabled_at = clock.now()
    db.session.commit()
    make_api(None).post("/api/password-reset", json={"email": "wes@example.com"})
    assert "/reset/" not in text_of(mails_to(mailbox, "wes@example.com")[0])


@pytest.mark.parametrize("password", ["short", "1234567890", "Password123", "x" * 1001])
def test_weak_passwords_are_refused_everywhere(app, make_api, password):
    _u, token = make_user("brand_marketer", password=PASSWORD)
    response = make_api(token).post("/api/me/password", json={
        "current_password": PASSWORD, "new_password": password})
    assert response.status_code == 422
    assert "new_password" in response.json["error"]["fields"]


def test_the_login_page_links_to_forgot_password(client):
    assert 'href="/forgot"' in client.get("/login").get_data(as_text=True)
