"""Authentication and authorization in one place: who is calling, may they, is it theirs.

API calls authenticate with `Authorization: Bearer <token>`; the web UI with a login
session (a signed cookie naming the user and the session version it was issued under, checked
against the user on every request, so logout, a password change or disabling the user ends
every copy of it). Every route declares its roles with `@require_roles`, and every partner-scoped
object goes through `visible()` (a foreign id answers 404, exactly like a missing one), and
every preview as a recipient through `visible_recipient()`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

from flask import Flask, g, request, session

from accounts.models import BRAND_ROLES, PARTNER_ROLES, ROLES, User
from accounts.services import get_user, user_for_session, user_for_token
from core.errors import Forbidden, NotFound, Unauthorized
from core.i18n import _

BRAND = BRAND_ROLES
PARTNER = PARTNER_ROLES
ANY = ROLES
T = TypeVar("T")
SESSION_USER = "uid"
SESSION_VERSION = "sv"


def current_user() -> User | None:
    """Return the authenticated user of this request, or None."""
    if "user" in g:
        return g.user

    user = None
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        user = user_for_token(header[7:].strip())
    elif not request.path.startswith("/api/") and session.get(SESSION_USER):
        # Sessions authenticate only the web UI, whose forms carry CSRF tokens.
        user = user_for_session(session.get(SESSION_USER), session.get(SESSION_VERSION))
    g.user = user
    return user


def sign_in(user: User) -> None:
    """Make this (already cleared) session the user's, under their current session version."""
    session[SESSION_USER] = user.id
    session[SESSION_VERSION] = user.session_version
    g.user = user


def require_roles(*roles: str) -> Callable:
    """Decorate a view: 401 without a valid identity, 403 for a role not in `roles`."""

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            user = current_user()
            if user is None:
                raise Unauthorized("A valid bearer token is required.")
            if user.role not in roles:
                raise Forbidden(f"The {user.role} role may not do this.")
            return view(*args, **kwargs)

        return wrapped

    return decorator


def partner_scope() -> int | None:
    """Return the caller's partner id (partner roles) or None (brand roles see all partners)."""
    user = current_user()
    if user is None:
        raise Unauthorized("A valid bearer token is required.")
    return user.partner_id if user.role in PARTNER_ROLES else None


def visible(obj: T | None, what: str = "Not found") -> T:
    """Return `obj` if the caller may see it; otherwise 404 as if it did not exist."""
    if obj is None:
        raise NotFound(f"{what} not found.")
    scope = partner_scope()
    if scope is not None and getattr(obj, "partner_id", None) != scope:
        raise NotFound(f"{what} not found.")
    return obj


def manageable_user(user_id: int) -> User:
    """Return a user the caller may disable or enable; otherwise 404 as if it did not exist.

    A brand admin manages every user; a partner admin only the users of its own partner.
    """
    user = get_user(user_id)
    scope = partner_scope()
    if scope is not None and user.partner_id != scope:
        raise NotFound(_("User not found."))
    return user


def visible_recipient(contact: T | None, campaign_partner_id: int | None) -> T:
    """Return `contact` if the caller may preview the message it receives; otherwise 404.

    A contact's personalized message is per-recipient data: only a user of the partner that
    owns both the campaign and the contact may preview it. Brand roles preview with the sample
    contact, never as a recipient.
    """
    scope = partner_scope()
    if (contact is None or scope is None or scope != campaign_partner_id
            or getattr(contact, "partner_id", None) != campaign_partner_id):
        raise NotFound("Contact not found.")
    return contact


def init_app(app: Flask) -> None:
    """Drop the per-request user cache when the request ends."""

    @app.teardown_request
    def _forget(_exc):
        g.pop("user", None)
