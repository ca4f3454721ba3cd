"""Sign in, sign out and the role-based landing redirect."""

from __future__ import annotations

from flask import current_app, redirect, render_template, request, session, url_for

from accounts import services as accounts
from accounts.auth import ANY, current_user, require_roles
from core import throttle
from web import csrf
from web.base import bp, home_for, safe_next

# Failed sign-ins allowed per window before the form answers 429, by address and by client.
LOGIN_WINDOW_SECONDS = 15 * 60
LOGIN_FAILURES_PER_EMAIL = 10
LOGIN_FAILURES_PER_IP = 50


@bp.get("/")
def index():
    user = current_user()
    return redirect(home_for(user) if user else url_for("web.login"))


@bp.route("/login", methods=["GET", "POST"])
def login():
    next_url = safe_next(request.values.get("next"))
    if request.method == "GET":
        user = current_user()
        if user is not None:
            return redirect(next_url or home_for(user))
        return render_template("web/login.html", next=next_url or "", email="", error=None)
    email = request.form.get("email", "")
    keys = (f"login:email:{email.strip().lower()}", f"login:ip:{request.remote_addr}")
    limits = (LOGIN_FAILURES_PER_EMAIL, LOGIN_FAILURES_PER_IP)
    if any(throttle.failures(current_app.config, k) >= n for k, n in zip(keys, limits,
                                                                          strict=True)):
        return render_template("web/login.html", next=next_url or "", email=email,
                               error="Too many failed sign-ins. Wait 15 minutes and try "
                                     "again."), 429
    user = accounts.authenticate(email, request.form.get("password", ""))
    if user is None:
        for key in keys:
            throttle.record_failure(current_app.config, key, LOGIN_WINDOW_SECONDS)
        return render_template("web/login.html", next=next_url or "", email=email,
                               error="Email or password is wrong."), 401
    # A fresh session on every sign-in: nothing from before survives (no fixation).
    session.clear()
    session["uid"] = user.id
    csrf.rotate()
    return redirect(next_url or home_for(user))


@bp.post("/logout")
@require_roles(*ANY)
def logout():
    session.clear()
    return redirect(url_for("web.login"))
