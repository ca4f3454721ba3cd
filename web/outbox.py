"""The development outbox: every stored message, viewable as rendered HTML with live links."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

from flask import abort, current_app, render_template
from sqlalchemy import select

from accounts.auth import ANY, partner_scope, require_roles
from campaigns.models import Send, TestSend
from core.db import db
from core.validate import MAX_PAGE, int_arg
from delivery.outbox import id_of_test_send, list_outbox, read_outbox, send_id_of
from web.base import bp, preview_response

PER_PAGE = 50


def outbox_enabled() -> bool:
    """Tell whether this deployment keeps mail in the outbox (outbox backend or SMTP catcher)."""
    config = current_app.config
    if str(config.get("DELIVERY_BACKEND", "")).lower() == "outbox":
        return True
    return bool(config.get("OUTBOX_DIR")) and Path(config["OUTBOX_DIR"]).is_dir()


@bp.record_once
def _expose(state) -> None:
    state.app.jinja_env.globals["outbox_enabled"] = outbox_enabled


def _visible_sends(send_ids: set[int]) -> set[int]:
    """Return the send ids the caller may see: all for brand roles, its own for a partner."""
    scope = partner_scope()
    if scope is None:
        return send_ids
    ids, mine = sorted(send_ids), set()
    for start in range(0, len(ids), 1000):  # keep each IN list well under bind-parameter limits
        mine.update(db.session.scalars(select(Send.id).where(
            Send.id.in_(ids[start:start + 1000]), Send.partner_id == scope)))
    return mine


def _visible_tests(test_ids: set[int]) -> set[int]:
    """Return the test sends (campaigns.testsend) the caller may see: a partner, its own."""
    scope = partner_scope()
    if scope is None:
        return test_ids
    ids, mine = sorted(test_ids), set()
    for start in range(0, len(ids), 1000):
        mine.update(db.session.scalars(select(TestSend.id).where(
            TestSend.id.in_(ids[start:start + 1000]), TestSend.partner_id == scope)))
    return mine


def _message(message_id: str) -> EmailMessage:
    if not outbox_enabled():
        abort(404)
    send_id, test_id = send_id_of(message_id), id_of_test_send(message_id)
    # A partner sees only mail of its own sends and tests; anything else answers 404 like a
    # missing id.
    if partner_scope() is not None and not (
            (send_id is not None and _visible_sends({send_id}))
            or (test_id is not None and _visible_tests({test_id}))):
        abort(404)
    raw = read_outbox(current_app.config["OUTBOX_DIR"], message_id)
    if raw is None:
        abort(404)
    return BytesParser(policy=policy.default).parsebytes(raw)  # type: ignore[return-value]


@bp.get("/outbox")
@require_roles(*ANY)
def outbox():
    if not outbox_enabled():
        abort(404)
    page = int_arg("page", 1, minimum=1, maximum=MAX_PAGE)
    items = list_outbox(current_app.config["OUTBOX_DIR"], page, PER_PAGE + 1,
                        only=_visible_sends, only_tests=_visible_tests)
    return render_template("web/outbox.html", items=items[:PER_PAGE], page=page,
                           more=len(items) > PER_PAGE)


@bp.get("/outbox/<message_id>")
@require_roles(*ANY)
def outbox_message(message_id: str):
    message = _message(message_id)
    text = message.get_body(preferencelist=("plain",))
    headers = [(k, str(message.get(k, ""))) for k in
               ("Subject", "From", "To", "Reply-To", "Date", "List-Unsubscribe")]
    return render_template("web/outbox_message.html", message_id=message_id, headers=headers,
                           text=text.get_content() if text is not None else "")


@bp.get("/outbox/<message_id>/html")
@require_roles(*ANY)
def outbox_html(message_id: str):
    body = _message(message_id).get_body(preferencelist=("html",))
    if body is None:
        abort(404)
    return preview_response(body.get_content())
