"""Typed domain errors and the one handler that maps them to the API's JSON error shape."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from core.db import db

log = logging.getLogger("lastmile")


class DomainError(Exception):
    """Base for errors a service raises; the handler turns them into JSON."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, fields: dict | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        if code:
            self.code = code


class BadRequest(DomainError):
    status, code = 400, "bad_request"


class Unauthorized(DomainError):
    status, code = 401, "unauthorized"


class Forbidden(DomainError):
    status, code = 403, "forbidden"


class AccountDisabled(Forbidden):
    code = "account_disabled"


class NotFound(DomainError):
    status, code = 404, "not_found"


class StateError(DomainError):
    status, code = 409, "state_conflict"


class TooLarge(DomainError):
    status, code = 413, "too_large"


class ValidationError(DomainError):
    status, code = 422, "invalid"


class RateLimited(DomainError):
    status, code = 429, "rate_limited"


class LinkRefused(DomainError):
    """An emailed link (invitation, password reset) that is tampered, used, revoked or expired."""

    status, code = 410, "link_refused"


class DeliveryFailed(DomainError):
    """The mail server (or provider) did not take a message sent while the caller waits."""

    status, code = 502, "delivery_failed"


class SlotError(ValidationError):
    code = "invalid_slots"


class TemplateError(ValidationError):
    code = "invalid_template"


class RenderError(TemplateError):
    """A message could not be rendered: it would exceed the sandbox's bounds (size, work,
    time) or an expression fails on the values given. A send that raises it fails with this
    reason; a preview answers 422."""


def error_body(code: str, message: str, fields: dict | None = None) -> dict:
    """Build the API's error JSON (`Error` in web/openapi.yaml)."""
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


# Paths called by programs, not people: their failures answer in the JSON error shape. The
# conversion pixel is one: a site's server builds and signs its URL, and its errors are
# documented as JSON (web/openapi.yaml), not as a page.
_JSON_PREFIXES = ("/api/", "/webhooks/", "/c.gif")


def _wants_json() -> bool:
    return request.path.startswith(_JSON_PREFIXES) or request.is_json


def init_app(app: Flask) -> None:
    """Register the handlers that turn every failure into the API's error shape."""

    @app.errorhandler(DomainError)
    def _domain(err: DomainError):

        db.session.rollback()
        if _wants_json():
            return jsonify(error_body(err.code, err.message, err.fields)), err.status

        return render_template("error.html", error=err), err.status

    @app.errorhandler(HTTPException)
    def _http(err: HTTPException):
        if not _wants_json():
            return err
        code = (err.name or "error").lower().replace(" ", "_")
        return jsonify(error_body(code, err.description or err.name)), err.code or 500

    @app.errorhandler(Exception)
    def _unexpected(err: Exception):

        db.session.rollback()
        log.exception("unhandled error on %s %s", request.method, request.path)
        if _wants_json():
            return jsonify(error_body("internal", "Internal error; it has been logged.")), 500
        return "Internal error; it has been logged.", 500
