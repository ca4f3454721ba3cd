"""CSRF protection for the web UI: one random token per session, checked on every unsafe method.

Forms carry it in a hidden `csrf_token` input; fetch calls send it as `X-CSRFToken`.
API, tracking, unsubscribe and webhook routes are exempt: they authenticate by bearer token or
signed URL, never by the session cookie (and RFC 8058 one-click POST must stay token-free).
"""

from __future__ import annotations

import hmac
import secrets

from flask import Flask, request, session

from core.errors import BadRequest

SESSION_KEY = "csrf"
FORM_FIELD = "csrf_token"
HEADER = "X-CSRFToken"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
EXEMPT_PREFIXES = ("/api/", "/t/", "/u/", "/webhooks/")


class CsrfError(BadRequest):
    code = "csrf_failed"


def csrf_token() -> str:
    """Return this session's CSRF token, creating it on first use."""
    token = session.get(SESSION_KEY)
    if not token:
        token = secrets.token_urlsafe(32)
        session[SESSION_KEY] = token
    return token


def rotate() -> str:
    """Replace the session's CSRF token (on login) and return the new one."""
    session[SESSION_KEY] = secrets.token_urlsafe(32)
    return session[SESSION_KEY]


def is_exempt(path: str) -> bool:
    """Tell whether a path is outside the session-authenticated web UI."""
    return path.startswith(EXEMPT_PREFIXES)


def check_request() -> None:
    """Refuse an unsafe request whose CSRF token is missing or wrong."""
    if request.method in SAFE_METHODS or is_exempt(request.path):
        return
    expected = session.get(SESSION_KEY)
    sent = request.headers.get(HEADER) or request.form.get(FORM_FIELD, "")
    if not expected or not sent or not hmac.compare_digest(str(expected), str(sent)):
        raise CsrfError("The form expired or did not come from this site; reload and try again.")


def init_app(app: Flask) -> None:
    """Check CSRF tokens before every request and expose csrf_token() to templates."""
    app.before_request(check_request)
    app.jinja_env.globals["csrf_token"] = csrf_token
