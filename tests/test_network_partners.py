"""Partners the brand deactivates: their users cannot sign in, their mail does not leave, their
data stays; roles change only within what the actor may give."""

from __future__ import annotations

from accounts.models import User
from campaigns import ledger
from core.db import db
from tests.builders import make_partner, make_user
from tests.test_accounts_sessions import is_signed_in, signed_in
from tests.test_pipeline_support import (
    configured,
    drain,
    launch_campaign,
    statuses,
)
from tests.test_web_pages import PASSWORD, login


def test_a_deactivated_partners_scheduled_sends_do_not_leave(app, make_api, tmp_path):
    _b, brand = make_user("brand_admin")
    brand_api = make_api(brand)
    with configured(app, DELIVERY_BACKEND="outbox", OUTBOX_DIR=str(tmp_path)):
        launched = launch_campaign(3, prefix="paused")
        off = brand_api.post(f"/api/partners/{launched.partner.id}/deactivate")
        assert off.status_code == 200 and off.json["active"] is False
        drain(app)
        assert statuses(launched.campaign_id) == {"queued": 3}
        assert ledger.claim_batch(10) == []
        assert not list(tmp_path.glob("*.eml"))
        on = brand_api.post(f"/api/partners/{launched.partner.id}/reactivate")
        assert on.status_code == 200 and on.json["active"] is True
        drain(app)
        assert statuses(launched.campaign_id) == {"sent": 3}


def test_a_deactivated_partners_users_cannot_sign_in_and_their_sessions_end(app, make_api):
    partner = make_partner()
    _u, token = make_user("partner_admin", partner, email="pat@example.com",
                          password=PASSWORD)
    session = signed_in(app, "pat@example.com")
    _b, brand = make_user("brand_admin")
    assert make_api(brand).post(f"/api/partners/{partner.id}/deactivate").status_code == 200
    assert not is_signed_in(session)
    assert make_api(token).get("/api/me").status_code == 401
    refused = login(app.test_client(), "pat@example.com")
    assert refused.status_code == 403 and "paused" in refused.get_data(as_text=True)
    make_api(brand).post(f"/api/partners/{partner.id}/reactivate")
    assert login(app.test_client(), "pat@example.com").status_code == 302
    assert db.session.query(User).filter_by(email="pat@example.com").one()  # data stays


def test_partners_list_filters(app, make_api):
    make_partner("Acme North", tier="gold", region="north")
    make_partner("Acme South", tier="silver", region="south")
    other = make_partner("Bolt Advisors", tier="gold", region="south")
    _b, brand = make_user("brand_admin")
    api = make_api(brand)
    api.post(f"/api/partners/{other.id}/deactivate")

    def names(query: str) -> list[str]:
        return [p["name"] for p in api.get("/api/partners" + query).json["items"]]

    assert names("?q=acme") == ["Acme North", "Acme South"]
    assert names("?tier=gold") == ["Acme North", "Bolt Advisors"]
    assert names("?region=south&state=active") == ["Acme South"]
    assert names("?state=inactive") == ["Bolt Advisors"]
    assert names("?q=%25") == []


def test_roles_change_only_within_what_the_actor_may_give(app, make_api):
    mine, other = make_partner(), make_partner()
    admin, token = make_user("partner_admin", mine)
    colleague, _t = make_user("partner_user", mine)
    stranger, _t = make_user("partner_user", other)
    marketer, _t = make_user("brand_marketer")
    api = make_api(token)
    promoted = api.patch(f"/api/users/{colleague.id}", json={"role": "partner_admin"})
    assert promoted.status_code == 200 and promoted.json["role"] == "partner_admin"
    assert api.patch(f"/api/users/{colleague.id}", json={"role": "brand_admin"}).status_code \
        == 403
    assert api.patch(f"/api/users/{stranger.id}", json={"role": "partner_admin"}).status_code \
        == 404
    assert api.patch(f"/api/users/{marketer.id}", json={"role": "brand_admin"}).status_code \
        == 404
    assert api.patch(f"/api/users/{admin.id}", json={"role": "partner_user"}).status_code == 409
    _b, brand = make_user("brand_admin")
    brand_api = make_api(brand)
    assert brand_api.patch(f"/api/users/{marketer.id}", json={"role": "brand_admin"}).json[
        "role"] == "brand_admin"
    mixed = brand_api.patch(f"/api/users/{stranger.id}", json={"role": "brand_admin"})
    assert mixed.status_code == 422
    assert brand_api.patch(f"/api/users/{stranger.id}", json={"role": "boss"}).status_code == 422
