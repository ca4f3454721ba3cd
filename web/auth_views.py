"""Sign in, sign out and the role-based landing redirect."""

from __future__ import annotations

from flask import redirect, render_template, request, session, url_for

from accounts import services as accounts
from accounts.auth import ANY, current_user, require_roles
from web import csrf
from web.base import bp, home_for, safe_next


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
    user = accounts.authenticate(email, request.form.get("password", ""))
    if user is None:
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
