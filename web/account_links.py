"""The pages emailed links open: accept an invitation, forgot password, choose a new one.

Each link is checked before its form is shown: a tampered, used, revoked or expired link
gets a page saying so in words (accounts.invitations.LinkRefused), with what to do next.
"""

from __future__ import annotations

from flask import current_app, redirect, render_template, request, session

from accounts import invitations
from accounts.auth import sign_in
from campaigns import network
from campaigns.network_routes import check_reset_throttle, reset_answer
from core.errors import LinkRefused, RateLimited, ValidationError
from web import csrf
from web.base import bp, home_for


def _refused(err: LinkRefused, reset: bool = False):
    return render_template("web/link_refused.html", error=err, reset=reset), err.status


def _start_session(user) -> None:
    session.clear()
    sign_in(user)
    csrf.rotate()


@bp.route("/join/<token>", methods=["GET", "POST"])
def join(token: str):
    secret = current_app.config["SECRET_KEY"]
    try:
        invitation = invitations.open_invitation(token, secret)
    except LinkRefused as err:
        return _refused(err)
    if request.method == "GET":
        return render_template("web/join.html", invitation=invitation, name="", errors={})
    name = request.form.get("name", "")
    try:
        user = invitations.accept_invitation(token, name, request.form.get("password", ""),
                                             secret)
    except LinkRefused as err:
        return _refused(err)
    except ValidationError as err:
        return render_template("web/join.html", invitation=invitation, name=name,
                               errors=err.fields), 422
    _start_session(user)
    return redirect(home_for(user))


@bp.route("/forgot", methods=["GET", "POST"])
def forgot_password():
    if request.method == "GET":
        return render_template("web/forgot.html", email="", sent=None, error=None)
    email = request.form.get("email", "")
    try:
        check_reset_throttle(email)
    except RateLimited as err:
        return render_template("web/forgot.html", email=email, sent=None,
                               error=err.message), 429
    network.request_password_reset(email, current_app.config)
    return render_template("web/forgot.html", email="", sent=reset_answer(), error=None)


@bp.route("/reset/<token>", methods=["GET", "POST"])
def reset_password(token: str):
    secret = current_app.config["SECRET_KEY"]
    try:
        invitations.open_reset(token, secret)
    except LinkRefused as err:
        return _refused(err, reset=True)
    if request.method == "GET":
        return render_template("web/reset.html", errors={})
    try:
        user = invitations.complete_reset(token, request.form.get("password", ""), secret)
    except LinkRefused as err:
        return _refused(err, reset=True)
    except ValidationError as err:
        return render_template("web/reset.html", errors=err.fields), 422
    _start_session(user)
    return redirect(home_for(user))


