"""accounts/auth.py, function by function: who is calling, may they, is it theirs (these are
the tests `make mutation` runs against the module)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from flask import g, session

from accounts.auth import (
    BRAND,
    SESSION_USER,
    SESSION_VERSION,
    current_user,
    partner_scope,
    require_roles,
    visible,
    visible_recipient,
)
from accounts.models import User
from core.db import db
from core.errors import Forbidden, NotFound, Unauthorized
from tests.builders import make_partner, make_user


@pytest.fixture
def people(app):
    partner, other = make_partner(), make_partner()
    admin, admin_token = make_user("partner_admin", partner)
    brand, brand_token = make_user("brand_marketer")
    return SimpleNamespace(partner=partner, other=other, admin=admin, admin_token=admin_token,
                           brand=brand, brand_token=brand_token)


def _as(app, path="/api/x", token=None, header=None, uid=None):
    headers = {"Authorization": header or f"Bearer {token}"} if (token or header) else {}
    ctx = app.test_request_context(path, headers=headers)
    ctx.push()
    if uid is not None:
        session[SESSION_USER] = uid
        session[SESSION_VERSION] = db.session.get(User, uid).session_version
    return ctx


def test_a_bearer_token_identifies_its_user_once_per_request(app, people):
    ctx = _as(app, token=people.admin_token)
    try:
        assert current_user().id == people.admin.id
        assert g.user.id == people.admin.id  # cached for the request
    finally:
        ctx.pop()
    ctx = _as(app, header=f"Bearer   {people.brand_token}  ")
    try:
        assert current_user().id == people.brand.id
    finally:
        ctx.pop()


@pytest.mark.parametrize("header", ["bearer {t}", "Token {t}", "Bearer", "Bearer nope", "{t}"])
def test_anything_but_a_valid_bearer_token_is_nobody(app, people, header):
    ctx = _as(app, header=header.format(t=people.admin_token))
    try:
        assert current_user() is None
    finally:
        ctx.pop()


def test_a_session_identifies_only_web_pages(app, people):
    ctx = _as(app, path="/partner/contacts", uid=people.admin.id)
    try:
        assert current_user().id == people.admin.id
    finally:
        ctx.pop()
    ctx = _as(app, path="/api/contacts", uid=people.admin.id)
    try:
        assert current_user() is None  # the API takes tokens only (no CSRF there)
    finally:
        ctx.pop()
    ctx = _as(app, path="/partner/contacts")
    try:
        assert current_user() is None
    finally:
        ctx.pop()


def test_require_roles_answers_401_then_403_with_words(app, people):
    view = require_roles(*BRAND)(lambda: "ok")
    ctx = _as(app)
    try:
        with pytest.raises(Unauthorized) as err:
            view()
        assert err.value.message == "A valid bearer token is required."
    finally:
        ctx.pop()
    ctx = _as(app, token=people.admin_token)
    try:
        with pytest.raises(Forbidden) as err:
            view()
        assert err.value.message == "The partner_admin role may not do this."
    finally:
        ctx.pop()
    ctx = _as(app, token=people.brand_token)
    try:
        assert view() == "ok"
    finally:
        ctx.pop()


def test_partner_scope(app, people):
    ctx = _as(app)
    try:
        with pytest.raises(Unauthorized):
            partner_scope()
    finally:
        ctx.pop()
    ctx = _as(app, token=people.admin_token)
    try:
        assert partner_scope() == people.partner.id
    finally:
        ctx.pop()
    ctx = _as(app, token=people.brand_token)
    try:
        assert partner_scope() is None
    finally:
        ctx.pop()


def test_visible_hides_what_is_missing_or_foreign_alike(app, people):
    mine = SimpleNamespace(partner_id=people.partner.id)
    theirs = SimpleNamespace(partner_id=people.other.id)
    ctx = _as(app, token=people.admin_token)
    try:
        assert visible(mine, "Contact") is mine
        for obj in (None, theirs, SimpleNamespace()):
            with pytest.raises(NotFound) as err:
                visible(obj, "Contact")
            assert err.value.message == "Contact not found."
    finally:
        ctx.pop()
    ctx = _as(app, token=people.brand_token)
    try:
        assert visible(theirs) is theirs
        with pytest.raises(NotFound) as err:
            visible(None)
        assert err.value.message == "Not found not found."
    finally:
        ctx.pop()


def test_visible_recipient_needs_the_partner_of_both_campaign_and_contact(app, people):
    pid, other = people.partner.id, people.other.id
    contact = SimpleNamespace(partner_id=pid)
    ctx = _as(app, token=people.admin_token)
    try:
        assert visible_recipient(contact, pid) is contact
        for who, campaign_partner in ((None, pid), (contact, other),
                                      (SimpleNamespace(partner_id=other), pid),
                                      (SimpleNamespace(partner_id=other), other)):
            with pytest.raises(NotFound) as err:
                visible_recipient(who, campaign_partner)
            assert err.value.message == "Contact not found."
    finally:
        ctx.pop()
    ctx = _as(app, token=people.brand_token)
    try:
        with pytest.raises(NotFound):  # brand roles preview with the sample contact only
            visible_recipient(contact, pid)
    finally:
        ctx.pop()


def test_each_request_forgets_the_previous_ones_user(app, people, make_api):
    # One client, two tokens in a row: each request sees its own caller.
    assert make_api(people.admin_token).get("/api/me").json["id"] == people.admin.id
    assert make_api(people.brand_token).get("/api/me").json["id"] == people.brand.id
    assert make_api(None).get("/api/me").status_code == 401
