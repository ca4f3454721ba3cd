"""Sessions that end: logout, a password change and disabling a user end every copy of a
session cookie and (password, disabling) every API token of that user at once."""

from __future__ import annotations

import pytest

from app import create_app
from core.db import db
from tests.builders import make_partner, make_user
from tests.conftest import DATABASE_URL, SECRET
from tests.test_openapi import conforms
from tests.test_web_pages import PASSWORD, login, page_token

NEW_PASSWORD = "a much longer passphrase"


def signed_in(app, email: str, password: str = PASSWORD):
    """Return a fresh test client signed in through the login form."""
    client = app.test_client()
    response = login(client, email, password)
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


def copy_of(app, client):
    """Return another client carrying a copy of `client`'s session cookie (a stolen cookie)."""
    other = app.test_client()
    other.set_cookie("session", client.get_cookie("session").value)
    return other


def is_signed_in(client) -> bool:
    response = client.get("/brand")
    if response.status_code == 302:
        assert response.headers["Location"].startswith("/login")
        return False
    assert response.status_code in (200, 403), response.status_code
    return True


@pytest.fixture
def marketer(app):
    return make_user("brand_marketer", password=PASSWORD)


def test_a_copied_cookie_stops_working_after_logout(app, marketer):
    user, token = marketer
    browser = signed_in(app, user.email)
    stolen = copy_of(app, browser)
    other_browser = signed_in(app, user.email)
    assert is_signed_in(stolen) and is_signed_in(other_browser)

    response = browser.post("/logout", data={"csrf_token": page_token(browser, "/brand")})
    assert response.status_code == 302

    assert not is_signed_in(browser)
    assert not is_signed_in(stolen)
    assert not is_signed_in(other_browser)  # logout ends every session of the user
    # Signing out ends the user's API tokens as well.
    assert app.test_client().get("/api/me", headers={"Authorization": f"Bearer {token}"}
                                 ).status_code == 401
    assert is_signed_in(signed_in(app, user.email))  # and signing in again works


def test_a_password_change_ends_every_session_and_token(app, make_api, marketer):
    user, token = marketer
    browser = signed_in(app, user.email)
    stolen = copy_of(app, browser)
    _, second_token = make_user("brand_admin")  # someone else's token is untouched
    from accounts import services

    services.issue_token(user.id)

    wrong = make_api(token).post("/api/me/password", json={"current_password": "guess-guess",
                                                           "new_password": NEW_PASSWORD})
    assert wrong.status_code == 422 and "current_password" in wrong.json["error"]["fields"]
    short = make_api(token).post("/api/me/password", json={"current_password": PASSWORD,
                                                           "new_password": "short"})
    assert short.status_code == 422 and "new_password" in short.json["error"]["fields"]
    assert is_signed_in(stolen)  # a refused change ends nothing

    changed = make_api(token).post("/api/me/password", json={"current_password": PASSWORD,
                                                             "new_password": NEW_PASSWORD})
    assert changed.status_code == 200
    new_token = changed.json["token"]

    assert not is_signed_in(browser) and not is_signed_in(stolen)
    assert make_api(token).get("/api/me").status_code == 401
    assert make_api(new_token).get("/api/me").json["id"] == user.id
    assert make_api(second_token).get("/api/me").status_code == 200
    assert login(app.test_client(), user.email).status_code == 401  # the old password
    assert is_signed_in(signed_in(app, user.email, NEW_PASSWORD))


def test_disabling_ends_every_session_and_token_and_refuses_sign_in(app, make_api, marketer):
    user, token = marketer
    _, admin_token = make_user("brand_admin")
    browser = signed_in(app, user.email)
    stolen = copy_of(app, browser)

    disabled = make_api(admin_token).post(f"/api/users/{user.id}/disable")
    assert disabled.status_code == 200 and disabled.json["disabled"] is True

    assert not is_signed_in(browser) and not is_signed_in(stolen)
    assert make_api(token).get("/api/me").status_code == 401
    refused = login(app.test_client(), user.email)
    assert refused.status_code == 403
    assert "This account is disabled" in refused.get_data(as_text=True)
    # The wrong password still says only that: being disabled is told to the account holder.
    wrong = login(app.test_client(), user.email, "not the password")
    assert wrong.status_code == 401 and "disabled" not in wrong.get_data(as_text=True)

    enabled = make_api(admin_token).post(f"/api/users/{user.id}/enable")
    assert enabled.status_code == 200 and enabled.json["disabled"] is False
    assert is_signed_in(signed_in(app, user.email))
    assert make_api(token).get("/api/me").status_code == 401  # revoked tokens stay revoked


def test_partner_admins_manage_only_their_own_partners_users(app, make_api):
    partner, other = make_partner(), make_partner()
    admin, admin_token = make_user("partner_admin", partner)
    colleague, colleague_token = make_user("partner_user", partner)
    stranger, _ = make_user("partner_user", other)
    brand_user, _ = make_user("brand_marketer")
    api = make_api(admin_token)

    assert api.post(f"/api/users/{stranger.id}/disable").status_code == 404
    assert api.post(f"/api/users/{brand_user.id}/disable").status_code == 404
    assert api.post("/api/users/2147483648/disable").status_code == 404
    assert api.post(f"/api/users/{admin.id}/disable").status_code == 409
    assert make_api(colleague_token).post(f"/api/users/{admin.id}/disable").status_code == 403
    listed = api.get("/api/users").json
    assert {u["id"] for u in listed["items"]} == {admin.id, colleague.id}

    assert api.post(f"/api/users/{colleague.id}/disable").json["disabled"] is True
    assert make_api(colleague_token).get("/api/me").status_code == 401
    assert api.post(f"/api/users/{stranger.id}/enable").status_code == 404
    assert make_api(admin_token).get("/api/me").status_code == 200


def test_user_endpoints_match_the_document(app, make_api, client, marketer):
    spec = client.get("/api/openapi.json").get_json()
    user, token = marketer
    partner = make_partner()
    _, admin_token = make_user("brand_admin")
    _, partner_admin_token = make_user("partner_admin", partner)
    admin = make_api(admin_token)
    conforms(spec, "/api/users", "get", admin.get("/api/users?per_page=2"))
    conforms(spec, "/api/users", "get", make_api(token).get("/api/users"))  # 403
    path = "/api/users/{user_id}/disable"
    conforms(spec, path, "post", admin.post(f"/api/users/{user.id}/disable"))
    conforms(spec, path, "post", make_api(partner_admin_token).post(
        f"/api/users/{user.id}/disable"))  # 404
    conforms(spec, "/api/users/{user_id}/enable", "post",
             admin.post(f"/api/users/{user.id}/enable"))
    conforms(spec, "/api/me/password", "post", make_api(token).post(
        "/api/me/password", json={"current_password": "x", "new_password": NEW_PASSWORD}))
    conforms(spec, "/api/me/password", "post", make_api(token).post(
        "/api/me/password", json={"current_password": PASSWORD, "new_password": NEW_PASSWORD}))


def test_users_cli_disables_enables_and_sets_passwords(app, make_api, marketer):
    user, token = marketer
    runner = app.test_cli_runner()
    browser = signed_in(app, user.email)

    result = runner.invoke(args=["users", "disable", "--user-id", str(user.id)])
    assert result.exit_code == 0, result.output
    assert not is_signed_in(browser) and make_api(token).get("/api/me").status_code == 401
    assert login(app.test_client(), user.email).status_code == 403
    assert runner.invoke(args=["users", "token", "--user-id", str(user.id)]).exit_code != 0

    assert runner.invoke(args=["users", "enable", "--user-id", str(user.id)]).exit_code == 0
    browser = signed_in(app, user.email)
    result = runner.invoke(args=["users", "password", "--user-id", str(user.id),
                                 "--password", NEW_PASSWORD])
    assert result.exit_code == 0, result.output
    assert not is_signed_in(browser)
    new_token = result.stdout.strip().splitlines()[0]
    assert make_api(new_token).get("/api/me").json["id"] == user.id
    assert is_signed_in(signed_in(app, user.email, NEW_PASSWORD))
    missing = runner.invoke(args=["users", "disable", "--user-id", "999999"])
    assert missing.exit_code != 0 and "not found" in missing.output


@pytest.mark.parametrize(("base_url", "secure"), [("https://mail.example", True),
                                                   ("http://127.0.0.1:5000", False)])
def test_session_cookie_is_secure_behind_https(app, base_url, secure, marketer):
    other = create_app({"TESTING": True, "DATABASE_URL": DATABASE_URL, "SECRET_KEY": SECRET,
                        "PUBLIC_BASE_URL": base_url, "REDIS_URL": app.config["REDIS_URL"]})
    user, _ = marketer
    try:
        cookie = login(other.test_client(), user.email).headers["Set-Cookie"]
    finally:
        with other.app_context():
            db.session.remove()
            db.engine.dispose()
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert ("; Secure" in cookie) is secure
