"""Identity and partners through HTTP, and the users CLI."""

from __future__ import annotations

from tests.builders import make_partner, make_user


def test_me_requires_valid_token(client, make_api, app):
    assert client.get("/api/me").status_code == 401
    assert make_api("lm_bogus").get("/api/me").status_code == 401
    body = make_api("lm_bogus").get("/api/me").json
    assert body["error"]["code"] == "unauthorized"


def test_me_reports_identity(app, make_api):
    with app.app_context():
        partner = make_partner()
        user, token = make_user("partner_user", partner)
        expected = {
            "id": user.id,
            "email": user.email,
            "role": "partner_user",
            "partner_id": partner.id,
        }
    body = make_api(token).get("/api/me").json
    assert {k: body[k] for k in expected} == expected


def test_tokens_are_stored_hashed(app):
    from sqlalchemy import select

    from accounts.models import ApiToken
    from core.db import db

    with app.app_context():
        _, token = make_user("brand_admin")
        stored = db.session.scalars(select(ApiToken.token_hash)).all()
    assert token not in stored and len(stored) == 1


def test_partner_crud_by_brand_admin(app, make_api):
    with app.app_context():
        _, token = make_user("brand_admin")
    api = make_api(token)
    for path, name in (("/api/tiers", "Gold"), ("/api/tiers", "Silver"),
                       ("/api/regions", "North")):
        assert api.post(path, json={"name": name}).status_code == 201
    created = api.post(
        "/api/partners",
        json={
            "name": "North Co",
            "tier": "gold",
            "region": "north",
            "website": "https://n.example",
        },
    )
    assert created.status_code == 201
    pid = created.json["id"]
    assert api.get(f"/api/partners/{pid}").json["website"] == "https://n.example"
    patched = api.patch(f"/api/partners/{pid}", json={"phone": "555-0100", "tier": "silver"})
    assert patched.status_code == 200 and patched.json["tier"] == "Silver"
    listing = api.get("/api/partners").json
    assert listing["total"] == 1 and listing["items"][0]["phone"] == "555-0100"
    assert api.get("/api/partners/9999").status_code == 404


def test_partner_validation_lists_every_problem_and_writes_nothing(app, make_api):
    with app.app_context():
        _, token = make_user("brand_admin")
    api = make_api(token)
    bad = api.post("/api/partners", json={"name": "", "tier": "x" * 80, "website": "javascript:x"})
    assert bad.status_code == 422
    assert set(bad.json["error"]["fields"]) == {"name", "tier", "region", "website"}
    assert (
        api.post("/api/partners", data="{nope", content_type="application/json").status_code == 400
    )
    assert api.get("/api/partners").json["total"] == 0


def test_partner_and_marketer_roles_cannot_manage_partners(app, make_api):
    with app.app_context():
        partner = make_partner()
        _, partner_token = make_user("partner_admin", partner)
        _, marketer_token = make_user("brand_marketer")
    for token in (partner_token, marketer_token):
        api = make_api(token)
        assert api.get("/api/partners").status_code == 403
        assert (
            api.post("/api/partners", json={"name": "x", "tier": "a", "region": "b"}).status_code
            == 403
        )
        assert api.patch(f"/api/partners/{partner.id}", json={"name": "y"}).status_code == 403


def test_users_create_cli_prints_a_working_token(app, make_api):
    runner = app.test_cli_runner()
    with app.app_context():
        partner = make_partner()
    result = runner.invoke(
        args=[
            "users",
            "create",
            "--email",
            "Ann@Example.test",
            "--role",
            "partner_user",
            "--partner",
            str(partner.id),
        ]
    )
    assert result.exit_code == 0, result.output
    token = result.stdout.strip().splitlines()[0]
    assert make_api(token).get("/api/me").json["email"] == "ann@example.test"
    refused = runner.invoke(
        args=["users", "create", "--email", "b@example.test", "--role", "partner_user"]
    )
    assert refused.exit_code != 0 and "partner" in refused.output
