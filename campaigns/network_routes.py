"""HTTP API of the partner network: invitations and password resets by email."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from accounts import invitations
from accounts.auth import current_user, partner_scope, require_roles, visible
from campaigns import network
from core import throttle
from core.errors import RateLimited
from core.i18n import _
from core.validate import json_body, page_args

bp = Blueprint("network", __name__)

INVITERS = ("brand_admin", "partner_admin")
# Reset requests allowed per window: for one address (from anywhere), and from one client.
RESET_WINDOW_SECONDS = 60 * 60
RESETS_PER_ADDRESS = 5
RESETS_PER_CLIENT = 20


def invitation_json(inv) -> dict:
    return {"id": inv.id, "email": inv.email, "role": inv.role, "partner_id": inv.partner_id,
            "partner_name": inv.partner.name if inv.partner is not None else None,
            "status": inv.status, "created_at": inv.created_at.isoformat(),
            "sent_at": inv.sent_at.isoformat(), "expires_at": inv.expires_at.isoformat(),
            "accepted_at": inv.accepted_at.isoformat() if inv.accepted_at else None}


@bp.post("/api/invitations")
@require_roles(*INVITERS)
def create_invitation():
    data = json_body()
    invitation = network.invite(current_user(), data.get("email"), data.get("role"),
                                data.get("partner_id"), current_app.config)
    return jsonify(invitation_json(invitation)), 201


@bp.get("/api/invitations")
@require_roles(*INVITERS)
def list_invitations():
    page, per_page = page_args()
    rows, total = invitations.list_invitations(partner_scope(), page, per_page)
    return jsonify({"items": [invitation_json(i) for i in rows], "page": page,
                    "per_page": per_page, "total": total})


def _visible_invitation(invitation_id: int):
    return visible(invitations.get_invitation(invitation_id), "Invitation")


@bp.delete("/api/invitations/<int:invitation_id>")
@require_roles(*INVITERS)
def revoke_invitation(invitation_id: int):
    return jsonify(invitation_json(invitations.revoke_invitation(
        _visible_invitation(invitation_id))))


@bp.post("/api/invitations/<int:invitation_id>/resend")
@require_roles(*INVITERS)
def resend_invitation(invitation_id: int):
    invitation = network.resend(current_user(), _visible_invitation(invitation_id),
                                current_app.config)
    return jsonify(invitation_json(invitation))


@bp.post("/api/invitations/accept")
def accept_invitation():
    data = json_body()
    user = invitations.accept_invitation(data.get("token"), data.get("name"),
                                         data.get("password"), current_app.config["SECRET_KEY"])
    return jsonify(user.to_dict()), 201


def check_reset_throttle(email: object) -> None:
    """Count one reset request for the address and the client; 429 over either limit."""
    config = current_app.config
    address = f"reset:{email.strip().lower() if isinstance(email, str) else ''}"
    client = f"reset-client:{request.remote_addr}"
    over = (throttle.record_failure(config, address, RESET_WINDOW_SECONDS) > RESETS_PER_ADDRESS)
    over = (throttle.record_failure(config, client, RESET_WINDOW_SECONDS)
            > RESETS_PER_CLIENT) or over
    if over:
        raise RateLimited(_("Too many password reset requests. Wait an hour and try again."))


def reset_answer() -> str:
    """The one answer to every reset request, whether or not the address has an account."""
    return _("If an account uses this address, an email with a link to choose a new "
             "password is on its way. The link works for one hour.")


@bp.post("/api/password-reset")
def request_password_reset():
    email = json_body().get("email")
    check_reset_throttle(email)
    network.request_password_reset(email, current_app.config)
    return jsonify({"message": reset_answer()}), 202


@bp.post("/api/password-reset/complete")
def complete_password_reset():
    data = json_body()
    user = invitations.complete_reset(data.get("token"), data.get("password"),
                                      current_app.config["SECRET_KEY"])
    return jsonify(user.to_dict())
