"""People: the brand's users and each partner's, their invitations, roles and access.

A brand admin sees the brand's team or any partner's people (?partner=ID); a partner admin
only its own partner's. Every action goes through the same checks as the API (a foreign id
is 404, a role the actor may not give 403).
"""

from __future__ import annotations

from flask import current_app, flash, redirect, render_template, request, url_for

from accounts import invitations
from accounts import services as accounts
from accounts.auth import manageable_user, require_roles, visible
from campaigns import network
from core.errors import DomainError, NotFound
from core.i18n import _
from web.base import bp, me

ADMINS = ("brand_admin", "partner_admin")


def _partner_param() -> int | None:
    """The partner whose people are shown: a partner admin's own, or ?partner= for the brand."""
    actor = me()
    if actor.role == "partner_admin":
        return actor.partner_id
    raw = request.values.get("partner", "")
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 9:
        raise NotFound(_("Partner not found."))
    return accounts.get_partner(int(raw)).id


def _back(partner_id: int | None):
    if me().role == "brand_admin" and partner_id is not None:
        return redirect(url_for("web.users_page", partner=partner_id))
    return redirect(url_for("web.users_page"))


def _page(form: dict | None = None, errors: dict | None = None, status: int = 200):
    actor = me()
    partner_id = _partner_param()
    partner = accounts.get_partner(partner_id) if partner_id is not None else None
    users, _total = accounts.list_users(partner_id, 1, 500, brand_only=partner_id is None)
    invited, _n = invitations.list_invitations(partner_id, 1, 200, brand_only=partner_id is None)
    roles = [r for r in invitations.grantable_roles(actor)
             if (r in ("partner_admin", "partner_user")) == (partner is not None)]
    return render_template(
        "web/users.html", users=users, invitations=invited, partner=partner, roles=roles,
        form=form or {"email": "", "role": roles[-1] if roles else ""}, errors=errors or {},
        partners=accounts.list_partners(1, 500)[0] if actor.role == "brand_admin" else []), status


@bp.get("/users")
@require_roles(*ADMINS)
def users_page():
    return _page()[0]


@bp.post("/users/invite")
@require_roles(*ADMINS)
def users_invite():
    partner_id = _partner_param()
    form = {"email": request.form.get("email", ""), "role": request.form.get("role", "")}
    try:
        network.invite(me(), form["email"], form["role"], partner_id, current_app.config)
    except DomainError as err:
        if err.status == 502:  # saved, not delivered: the list shows it with "Resend"
            flash(err.message, "error")
            return _back(partner_id)
        return _page(form=form, errors=err.fields or {"email": err.message}, status=err.status)
    flash(_("Invitation sent to %(email)s. The link works for 7 days.",
            email=form["email"].strip().lower()), "ok")
    return _back(partner_id)


def _invitation(invitation_id: int):
    return visible(invitations.get_invitation(invitation_id), "Invitation")


@bp.post("/users/invitations/<int:invitation_id>/resend")
@require_roles(*ADMINS)
def users_invitation_resend(invitation_id: int):
    invitation = _invitation(invitation_id)
    try:
        network.resend(me(), invitation, current_app.config)
        flash(_("Invitation sent again to %(email)s; the earlier link no longer works.",
                email=invitation.email), "ok")
    except DomainError as err:
        flash(err.message, "error")
    return _back(invitation.partner_id)


@bp.post("/users/invitations/<int:invitation_id>/revoke")
@require_roles(*ADMINS)
def users_invitation_revoke(invitation_id: int):
    invitation = _invitation(invitation_id)
    try:
        invitations.revoke_invitation(invitation)
        flash(_("The invitation to %(email)s is withdrawn; its link no longer works.",
                email=invitation.email), "ok")
    except DomainError as err:
        flash(err.message, "error")
    return _back(invitation.partner_id)


@bp.post("/users/<int:user_id>/role")
@require_roles(*ADMINS)
def users_role(user_id: int):
    actor = me()
    user = manageable_user(user_id)
    try:
        accounts.change_role(user, request.form.get("role"),
                             invitations.grantable_roles(actor), actor)
        flash(_("%(name)s is now %(role)s.", name=user.name,
                role=_role_words(user.role)), "ok")
    except DomainError as err:
        flash(err.message, "error")
    return _back(user.partner_id)


def _role_words(code: str) -> str:
    return current_app.jinja_env.filters["role_name"](code)


@bp.post("/users/<int:user_id>/disable")
@require_roles(*ADMINS)
def users_disable(user_id: int):
    user = manageable_user(user_id)
    try:
        accounts.disable_user(user, me())
        flash(_("%(name)s is disabled and signed out everywhere.", name=user.name), "ok")
    except DomainError as err:
        flash(err.message, "error")
    return _back(user.partner_id)


@bp.post("/users/<int:user_id>/enable")
@require_roles(*ADMINS)
def users_enable(user_id: int):
    user = manageable_user(user_id)
    accounts.enable_user(user)
    flash(_("%(name)s can sign in again.", name=user.name), "ok")
    return _back(user.partner_id)
