"""Sign in, sign out and the role-based landing redirect."""

from __future__ import annotations

from flask import current_app, redirect, render_template, request, session, url_for

from accounts import services as accounts
from accounts.auth import ANY, current_user, require_roles, sign_in
from core import throttle
from core.errors import AccountDisabled
from web import csrf
from web.base import bp, home_for, safe_next

# Failed sign-ins allowed per window before the form answers 429: for one address from one
# client, and for one address from anywhere. The client is REMOTE_ADDR; behind a proxy set
# PROXY_FIX_HOPS so it is the real client, not the load balancer.
LOGIN_WINDOW_SECONDS = 15 * 60
LOGIN_FAILURES_PER_CLIENT = 10
LOGIN_FAILURES_PER_EMAIL = 100


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
    # Guessing one account's password from one client is cut off quickly; an address under
    # attack from many clients is slowed much later, so nobody can lock a user out cheaply.
    pair = f"login:{email.strip().lower()}|{request.remote_addr}"
    address = f"login:{email.strip().lower()}"
    config = current_app.config
    if (throttle.failures(config, pair) >= LOGIN_FAILURES_PER_CLIENT
            or throttle.failures(config, address) >= LOGIN_FAILURES_PER_EMAIL):
        return render_template("web/login.html", next=next_url or "", email=email,
                               error="Too many failed sign-ins. Wait 15 minutes and try "
                                     "again."), 429
    try:
        user = accounts.authenticate(email, request.form.get("password", ""))
    except AccountDisabled as err:
        return render_template("web/login.html", next=next_url or "", email=email,
                               error=err.message), 403
    if user is None:
        throttle.record_failure(config, pair, LOGIN_WINDOW_SECONDS)
        throttle.record_failure(config, address, LOGIN_WINDOW_SECONDS)
        return render_template("web/login.html", next=next_url or "", email=email,
                               error="Email or password is wrong."), 401
    # A fresh session on every sign-in: nothing from before survives (no fixation).
    session.clear()
    sign_in(user)
    csrf.rotate()
    return redirect(next_url or home_for(user))


@bp.post("/logout")
@require_roles(*ANY)
def logout():
    # Ends every session of this user, not only this cookie: a copy of it stops working too.
    accounts.log_out(current_user())
    session.clear()
    return redirect(url_for("web.login"))
