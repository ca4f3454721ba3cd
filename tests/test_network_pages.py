"""The partners and people pages: filters, CSV import with a dry run, invitations, roles and
access, each behind its confirmation and CSRF."""

from __future__ import annotations

import html as htmllib
import io
import re
from datetime import timedelta

from accounts.models import Invitation, Partner, User
from core import clock
from core.db import db
from tests.builders import listed, make_partner, make_user
from tests.network_helpers import mails_to, text_of
from tests.test_accounts_sessions import is_signed_in, signed_in
from tests.test_web_pages import PASSWORD

CSV = (b"partner name,tier,region,admin email\n"
       b"Harbor Wealth,gold,west,ann@harbor.example\n"
       b"Summit Advisors,silver,east,bo@summit.example\n"
       b",gold,west,no-name@example.com\n"
       b"Harbor Wealth,gold,west,other@harbor.example\n"
       b"Delta Plans,gold,south,not-an-email\n"
       b"Nowhere Ltd,platinum,west,nora@nowhere.example\n")


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def _admin(app):
    make_user("brand_admin", email="boss@example.com", password=PASSWORD)
    return signed_in(app, "boss@example.com")


def test_import_shows_a_dry_run_then_creates_and_invites(app, mailbox):
    client = _admin(app)
    listed(["Gold", "silver"], ["west", "east", "south"])
    page = client.get("/brand/partners/import").get_data(as_text=True)
    check = client.post("/brand/partners/import", data={
        "csrf_token": _csrf(page), "file": (io.BytesIO(CSV), "partners.csv")},
        content_type="multipart/form-data")
    html = check.get_data(as_text=True)
    assert check.status_code == 200
    assert "2 partners will be created" in html and "4 lines have problems" in html
    assert "no such tier: “platinum”" in html  # tiers and regions come from the brand's lists
    assert "partner name is missing" in html and "earlier line" in html
    assert "not an email address" in html
    assert db.session.query(Partner).count() == 0 and not list(mailbox.glob("*.eml"))
    csv_text = re.search(r'<textarea name="csv_text"[^>]*>(.*?)</textarea>', html, re.S).group(1)
    done = client.post("/brand/partners/import/confirm", data={
        "csrf_token": _csrf(html), "csv_text": htmllib.unescape(csv_text)})
    assert done.status_code == 302
    assert sorted((p.name, p.tier) for p in db.session.query(Partner)) == [
        ("Harbor Wealth", "Gold"), ("Summit Advisors", "silver")]  # spelled as the list is
    [mail] = mails_to(mailbox, "ann@harbor.example")
    assert "Harbor Wealth" in text_of(mail)
    listing = client.get("/brand/partners").get_data(as_text=True)
    assert "2 partners imported" in listing and "Invited" in listing


def test_import_refuses_a_file_without_the_columns(app, mailbox):
    client = _admin(app)
    page = client.get("/brand/partners/import").get_data(as_text=True)
    bad = client.post("/brand/partners/import", data={
        "csrf_token": _csrf(page), "file": (io.BytesIO(b"a,b\n1,2\n"), "x.csv")},
        content_type="multipart/form-data")
    assert bad.status_code == 422 and "name the columns" in bad.get_data(as_text=True)
    binary = client.post("/brand/partners/import", data={
        "csrf_token": _csrf(page), "file": (io.BytesIO(b"\x00\x01"), "x.csv")},
        content_type="multipart/form-data")
    assert binary.status_code == 422


def test_partners_page_filters_and_stuck_partners_get_a_reminder(app, mailbox, make_api):
    _b, token = make_user("brand_admin")
    api = make_api(token)
    quiet = make_partner("Quiet Co", tier="gold", region="north")
    make_partner("Busy Co", tier="silver", region="south")
    api.post("/api/invitations", json={"email": "q@quiet.example", "role": "partner_admin",
                                       "partner_id": quiet.id})
    client = _admin(app)
    html = client.get("/brand/partners?tier=gold").get_data(as_text=True)
    assert "Quiet Co" in html and "Busy Co" not in html
    html = client.get("/brand/partners?stage=invited").get_data(as_text=True)
    assert "Quiet Co" in html and "Busy Co" not in html
    assert "Remind" not in client.get("/brand/partners?stuck=1").get_data(as_text=True)
    clock.freeze(clock.now() + timedelta(days=15))
    client = _admin(app) if not is_signed_in(client) else client
    html = client.get("/brand/partners?stuck=1").get_data(as_text=True)
    assert "Quiet Co" in html and "Remind" in html
    reminded = client.post(f"/brand/partners/{quiet.id}/remind",
                           data={"csrf_token": _csrf(html)})
    assert reminded.status_code == 302
    assert len(mails_to(mailbox, "q@quiet.example")) == 2  # the invitation, sent again


def test_people_page_invites_changes_roles_and_disables_with_confirmation(app, mailbox):
    partner = make_partner("Harbor")
    make_user("partner_admin", partner, email="pa@harbor.example", password=PASSWORD)
    colleague, _t = make_user("partner_user", partner, email="pu@harbor.example",
                              password=PASSWORD)
    other = make_partner("Elsewhere")
    make_user("partner_user", other, email="x@elsewhere.example")
    client = signed_in(app, "pa@harbor.example")
    their_session = signed_in(app, "pu@harbor.example")
    html = client.get(f"/users?partner={other.id}").get_data(as_text=True)
    assert "pu@harbor.example" in html and "x@elsewhere.example" not in html
    assert "Yes, disable" in html  # behind a confirmation
    token = _csrf(html)
    invited = client.post("/users/invite", data={"csrf_token": token,
                                                 "email": "new@harbor.example",
                                                 "role": "partner_user"})
    assert invited.status_code == 302
    assert db.session.query(Invitation).one().partner_id == partner.id
    assert mails_to(mailbox, "new@harbor.example")
    brand_role = client.post("/users/invite", data={"csrf_token": token,
                                                    "email": "b@harbor.example",
                                                    "role": "brand_admin"})
    assert brand_role.status_code == 403
    assert client.post(f"/users/{colleague.id}/role", data={
        "csrf_token": token, "role": "partner_admin"}).status_code == 302
    db.session.expire_all()
    assert db.session.get(User, colleague.id).role == "partner_admin"
    assert client.post(f"/users/{colleague.id}/disable", data={}).status_code == 400  # CSRF
    assert client.post(f"/users/{colleague.id}/disable",
                       data={"csrf_token": token}).status_code == 302
    assert not is_signed_in(their_session)
    stranger = db.session.query(User).filter_by(email="x@elsewhere.example").one()
    assert client.post(f"/users/{stranger.id}/disable",
                       data={"csrf_token": token}).status_code == 404


def test_partner_page_deactivates_behind_a_confirmation(app):
    partner = make_partner("Pause Me")
    client = _admin(app)
    html = client.get(f"/brand/partners/{partner.id}").get_data(as_text=True)
    assert "Yes, deactivate" in html
    assert client.post(f"/brand/partners/{partner.id}/deactivate",
                       data={"csrf_token": _csrf(html)}).status_code == 302
    html = client.get(f"/brand/partners/{partner.id}").get_data(as_text=True)
    assert "Inactive" in html and "Reactivate" in html
    saved = client.post(f"/brand/partners/{partner.id}", data={
        "csrf_token": _csrf(html), "name": "Paused", "tier": "", "region": "x"})
    assert saved.status_code == 422


def test_marketers_and_partner_users_have_no_people_pages(app):
    partner = make_partner()
    make_user("brand_marketer", email="m@example.com", password=PASSWORD)
    make_user("partner_user", partner, email="u@example.com", password=PASSWORD)
    for email in ("m@example.com", "u@example.com"):
        client = signed_in(app, email)
        assert client.get("/users").status_code == 403
        assert client.get("/brand/partners").status_code == 403


def test_people_page_shows_pending_accepted_and_expired_invitations(app, make_api, mailbox):
    from tests.network_helpers import token_of

    _b, token = make_user("brand_admin", email="lead@example.com", password=PASSWORD)
    api = make_api(token)
    for address in ("old@example.com", "joined@example.com"):
        api.post("/api/invitations", json={"email": address, "role": "brand_marketer"})
    make_api(None).post("/api/invitations/accept", json={
        "token": token_of(mails_to(mailbox, "joined@example.com")[0]), "name": "Jo",
        "password": "a long enough password"})
    clock.freeze(clock.now() + timedelta(days=8))
    api.post("/api/invitations", json={"email": "new@example.com", "role": "brand_admin"})
    html = signed_in(app, "lead@example.com").get("/users").get_data(as_text=True)
    rows = {m.group(1): m.group(2) for m in re.finditer(
        r'data-email="([^"]+)">(.*?)</tr>', html, re.S)}
    assert "Waiting" in rows["new@example.com"]
    assert "Expired" in rows["old@example.com"] and "Resend" in rows["old@example.com"]
    assert "Accepted" in rows["joined@example.com"]
    assert "Resend" not in rows["joined@example.com"]


def test_import_and_the_form_refuse_partner_names_that_look_like_addresses(app, mailbox):
    from campaigns import network

    listed(["gold"], ["west"])
    [row] = network.plan_partner_import(
        b"partner name,tier,region,admin email\nBank <help@bank.example>,gold,west,a@b.example\n")
    assert not row.ok and "sender name" in row.problems[0]
    client = _admin(app)
    page = client.get("/brand/partners").get_data(as_text=True)
    refused = client.post("/brand/partners", data={
        "csrf_token": _csrf(page), "name": "help@bank.example", "tier": "gold",
        "region": "west", "admin_email": ""})
    assert refused.status_code == 422 and db.session.query(Partner).count() == 0
