"""The web blueprint, its app-wide hooks (CSRF, security headers) and small view helpers."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, redirect, render_template, request, url_for
from flask.blueprints import BlueprintSetupState
from markupsafe import escape

from accounts.auth import current_user
from accounts.models import BRAND_ROLES, User
from campaigns.states import EDITABLE, allowed
from core.errors import Unauthorized
from journeys import states as journey_states
from web import csrf, labels

bp = Blueprint("web", __name__)

# Pages: scripts and styles only from /static (no inline code), frames only from this origin.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https: http:; "
    "frame-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'self'"
)
# Email previews and outbox messages: rendered in a sandboxed iframe, no script, no fetch.
PREVIEW_CSP = (
    "default-src 'none'; img-src * data:; style-src 'unsafe-inline'; font-src * data:; "
    "frame-ancestors 'self'; base-uri 'none'; form-action 'none'"
)


def _security_headers(response: Response) -> Response:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
    if csrf.is_exempt(request.path) or request.path.startswith("/static/"):
        return response
    if response.mimetype == "text/html":
        response.headers.setdefault("Content-Security-Policy", PAGE_CSP)
        response.headers.setdefault("Referrer-Policy", "same-origin")
    if request.path != "/login" and response.mimetype == "text/html":
        response.headers.setdefault("Cache-Control", "no-store")
    return response


@bp.record_once
def _install(state: BlueprintSetupState) -> None:
    app: Flask = state.app
    csrf.init_app(app)
    app.after_request(_security_headers)
    app.jinja_env.globals["current_user"] = current_user
    # Pages offer exactly the actions the state tables allow, nothing of their own.
    app.jinja_env.globals["campaign_can"] = allowed
    app.jinja_env.globals["campaign_editable"] = lambda campaign: campaign.status in EDITABLE
    # One function for both tables (it picks by model); two names so pages read plainly.
    app.jinja_env.globals["journey_can"] = journey_states.allowed
    app.jinja_env.globals["template_can"] = journey_states.allowed
    # Words, not codes: status and reason codes become words (web/labels.py).
    app.jinja_env.filters.update(labels.FILTERS)
    app.jinja_env.globals["field_errors_in_words"] = labels.field_errors_in_words
    app.jinja_env.globals["field_label"] = labels.field_label


@bp.errorhandler(Unauthorized)
def _login_first(err: Unauthorized):
    """Send a signed-out visitor of a page to the login form instead of a JSON 401."""
    if request.method == "GET" and not request.headers.get(csrf.HEADER):
        return redirect(url_for("web.login", next=request.full_path.rstrip("?")))
    return render_template("error.html", error=err), 401


def home_for(user: User) -> str:
    """Return the landing page URL of a user's role."""
    return url_for("web.brand_home") if user.role in BRAND_ROLES else url_for("web.partner_home")


def safe_next(target: str | None) -> str | None:
    """Return `target` if it is a local path (never another host), else None."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target \
            or any(ord(c) < 32 or ord(c) == 127 for c in target):  # CR/LF would split headers
        return None
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else None


def me() -> User:
    """Return the signed-in user of a view already guarded by require_roles."""
    user = current_user()
    if user is None:
        raise Unauthorized("Sign in first.")
    return user


def preview_response(html: str) -> Response:
    """Serve email HTML for a sandboxed iframe under the restrictive preview policy."""
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = PREVIEW_CSP
    response.headers["Cache-Control"] = "no-store"
    return response


def preview_problems(heading: str, fields: dict) -> Response:
    """Serve, in place of a preview, why it cannot be shown: `heading` and each field's problem."""
    items = "".join(f"<li><b>{escape(k)}</b>: {escape(v)}</li>" for k, v in fields.items())
    return preview_response(
        "<!doctype html><meta charset=utf-8><body style=\"font:14px sans-serif;color:#a11\">"
        f"<p>{escape(heading)}</p><ul>{items}</ul></body>")
