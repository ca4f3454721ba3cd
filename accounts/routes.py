"""HTTP API: identity, partners and partner profiles (plus the uploaded images they use)."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request, send_file

from accounts import invitations, lists, media, profile, services
from accounts.auth import ANY, BRAND, current_user, manageable_user, partner_scope, require_roles
from core.errors import BadRequest, NotFound, ValidationError
from core.i18n import _
from core.validate import Fields, json_body, page_args, sender_name_problem

bp = Blueprint("accounts", __name__)


def partner_json(p) -> dict:
    return {"id": p.id, "name": p.name, "tier": p.tier, "region": p.region,
            "logo_url": p.logo_url, "address": p.address, "phone": p.phone,
            "website": p.website, "created_at": p.created_at.isoformat(),
            "active": p.active,
            "deactivated_at": p.deactivated_at.isoformat() if p.deactivated_at else None}


def _partner_fields(data: dict, *, partial: bool) -> dict:
    f = Fields(data)
    out = {}
    for name in ("name", "tier", "region"):
        if not partial or name in data:
            out[name] = f.text(name, required=True, max_length=200 if name == "name" else 50)
    for name in ("logo_url", "website"):
        if name in data:
            out[name] = f.url(name)
    for name, limit in (("address", 500), ("phone", 50)):
        if name in data:
            out[name] = f.text(name, required=False, max_length=limit)
    # The account name is the sender name of last resort (Partner.default_sender_name).
    if out.get("name") and "name" not in f.problems and sender_name_problem(out["name"]):
        f.problems["name"] = str(sender_name_problem(out["name"]))
    unknown = set(data) - set(services.PARTNER_FIELDS)
    for name in unknown:
        f.problems[name] = "is not a partner field"
    f.check("Partner is invalid.")
    return out


@bp.get("/api/me")
@require_roles(*ANY)
def me():
    return jsonify(current_user().to_dict())


@bp.post("/api/me/password")
@require_roles(*ANY)
def change_password():
    data = json_body()
    token = services.change_password(current_user(), data.get("current_password"),
                                     data.get("new_password"))
    return jsonify({"token": token})


# --- users: brand admins manage every user, partner admins their own partner's --------------

USER_ADMINS = ("brand_admin", "partner_admin")


@bp.get("/api/users")
@require_roles(*USER_ADMINS)
def list_users():
    page, per_page = page_args()
    rows, total = services.list_users(partner_scope(), page, per_page)
    return jsonify({"items": [u.to_dict() for u in rows], "page": page, "per_page": per_page,
                    "total": total})


@bp.post("/api/users/<int:user_id>/disable")
@require_roles(*USER_ADMINS)
def disable_user(user_id: int):
    return jsonify(services.disable_user(manageable_user(user_id), current_user()).to_dict())


@bp.patch("/api/users/<int:user_id>")
@require_roles(*USER_ADMINS)
def change_user_role(user_id: int):
    actor = current_user()
    user = services.change_role(manageable_user(user_id), json_body().get("role"),
                                invitations.grantable_roles(actor), actor)
    return jsonify(user.to_dict())


@bp.post("/api/users/<int:user_id>/enable")
@require_roles(*USER_ADMINS)
def enable_user(user_id: int):
    return jsonify(services.enable_user(manageable_user(user_id)).to_dict())


@bp.post("/api/partners")
@require_roles("brand_admin")
def create_partner():
    partner = services.create_partner(**_partner_fields(json_body(), partial=False))
    return jsonify(partner_json(partner)), 201


@bp.get("/api/partners")
@require_roles("brand_admin")
def list_partners():
    page, per_page = page_args()
    state = request.args.get("state", "")
    rows, total = services.list_partners(
        page, per_page, q=request.args.get("q", "")[:200],
        tier=request.args.get("tier", "")[:50], region=request.args.get("region", "")[:50],
        active={"active": True, "inactive": False}.get(state))
    return jsonify({"items": [partner_json(p) for p in rows], "page": page,
                    "per_page": per_page, "total": total})


@bp.get("/api/partners/<int:partner_id>")
@require_roles("brand_admin")
def get_partner(partner_id: int):
    return jsonify(partner_json(services.get_partner(partner_id)))


@bp.patch("/api/partners/<int:partner_id>")
@require_roles("brand_admin")
def update_partner(partner_id: int):
    fields = _partner_fields(json_body(), partial=True)
    return jsonify(partner_json(services.update_partner(partner_id, **fields)))


@bp.post("/api/partners/<int:partner_id>/deactivate")
@require_roles("brand_admin")
def deactivate_partner(partner_id: int):
    return jsonify(partner_json(services.set_partner_active(partner_id, False)))


@bp.post("/api/partners/<int:partner_id>/reactivate")
@require_roles("brand_admin")
def reactivate_partner(partner_id: int):
    return jsonify(partner_json(services.set_partner_active(partner_id, True)))


# --- the partner profile (accounts/profile.py) and its images (accounts/media.py) -----------

PROFILE_EDITORS = ("brand_admin", "partner_admin")


def _profile_partner(partner_id: int) -> int:
    """Return `partner_id` if the caller may see that partner's profile; else 404."""
    scope = partner_scope()
    if scope is not None and scope != partner_id:
        raise NotFound(_("Partner not found."))
    return partner_id


def change_json(change, partner) -> dict:
    return {"id": change.id, "partner_id": change.partner_id, "field": change.field,
            "status": change.status, "value": change.value,
            "current_value": getattr(partner, change.field), "reason": change.reason,
            "requested_at": change.requested_at.isoformat(),
            "decided_at": change.decided_at.isoformat() if change.decided_at else None}


def profile_json(state: profile.ProfileState, update: profile.ProfileUpdate | None = None,
                 image_url: str | None = None) -> dict:
    out = {"partner_id": state.partner.id, "name": state.partner.name, "fields": state.fields,
           "approval_required": state.approval_required,
           "changes": {name: change_json(c, state.partner) for name, c in state.changes.items()}}
    if update is not None:
        out["update"] = {"applied": update.applied, "pending": update.pending}
    if image_url is not None:
        out["image_url"] = image_url
    return out


@bp.get("/api/partners/<int:partner_id>/profile")
@require_roles(*ANY)
def get_profile(partner_id: int):
    return jsonify(profile_json(profile.get_profile(_profile_partner(partner_id))))


@bp.put("/api/partners/<int:partner_id>/profile")
@require_roles(*PROFILE_EDITORS)
def put_profile(partner_id: int):
    partner_id = _profile_partner(partner_id)
    update = profile.update_profile(partner_id, json_body(), current_user(), current_app.config)
    return jsonify(profile_json(profile.get_profile(partner_id), update))


def _upload(partner_id: int, kind: str):
    partner_id = _profile_partner(partner_id)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        message = _("Choose an image file to upload (form field “file”).")
        raise ValidationError(message, {"file": message})
    data = upload.stream.read(media.MAX_UPLOAD_BYTES + 1)
    update, url = profile.set_profile_image(partner_id, kind, data, current_user(),
                                            current_app.config)
    return jsonify(profile_json(profile.get_profile(partner_id), update, url))


@bp.post("/api/partners/<int:partner_id>/profile/photo")
@require_roles(*PROFILE_EDITORS)
def upload_profile_photo(partner_id: int):
    return _upload(partner_id, "photo")


@bp.post("/api/partners/<int:partner_id>/profile/logo")
@require_roles(*PROFILE_EDITORS)
def upload_profile_logo(partner_id: int):
    return _upload(partner_id, "logo")


@bp.post("/api/partners/<int:partner_id>/profile/approve")
@require_roles(*BRAND)
def approve_profile(partner_id: int):
    data = request.get_json(silent=True) if request.data else {}
    if not isinstance(data, dict):
        raise BadRequest(_("Request body must be a JSON object."))
    decided = profile.approve_changes(partner_id, data.get("fields"), current_user())
    return jsonify(profile_json(profile.get_profile(partner_id),
                                profile.ProfileUpdate(applied=decided)))


@bp.post("/api/partners/<int:partner_id>/profile/reject")
@require_roles(*BRAND)
def reject_profile(partner_id: int):
    data = json_body()
    profile.reject_changes(partner_id, data.get("fields"), data.get("reason"), current_user())
    return jsonify(profile_json(profile.get_profile(partner_id)))


@bp.get("/api/profile-changes")
@require_roles(*BRAND)
def list_profile_changes():
    page, per_page = page_args()
    rows, total = profile.list_pending_changes(page, per_page)
    return jsonify({"items": [dict(change_json(c, p), partner_name=p.name) for c, p in rows],
                    "page": page, "per_page": per_page, "total": total})


@bp.get("/api/brand/profile-rules")
@require_roles(*BRAND)
def get_profile_rules():
    return jsonify({"approval_required": profile.approval_fields()})


@bp.put("/api/brand/profile-rules")
@require_roles("brand_admin")
def put_profile_rules():
    chosen = profile.set_approval_fields(json_body().get("approval_required"), current_user())
    return jsonify({"approval_required": chosen})


@bp.get("/media/<name>")
def media_file(name: str):
    """Serve an uploaded image (public: recipients' mail clients load it)."""
    path = media.local_media_path(name, current_app.config)
    if path is None:
        raise NotFound(_("Image not found."))
    response = send_file(path, mimetype=media.CONTENT_TYPES[name.rsplit(".", 1)[1]],
                         max_age=31_536_000, conditional=True, etag=True)
    response.headers["Cache-Control"] = media.CACHE_CONTROL
    return response


# --- the brand's tier and region lists (accounts/lists.py) -----------------------------------

def _names_json(kind: str) -> dict:
    counts = lists.usage(kind)
    return {"items": [{"id": e.id, "name": e.name, "partners": counts.get(e.key, 0)}
                      for e in lists.names(kind)]}


def _add_name(kind: str):
    data = json_body()
    unknown = set(data) - {"name"}
    if unknown:
        raise ValidationError(_("Only a name can be given."),
                              {str(k)[:100]: _("is not a field") for k in unknown})
    entry, created = lists.add_name(kind, data.get("name"))
    return jsonify({"id": entry.id, "name": entry.name, "created": created}), (
        201 if created else 200)


@bp.get("/api/tiers")
@require_roles(*BRAND)
def list_tiers():
    return jsonify(_names_json("tier"))


@bp.post("/api/tiers")
@require_roles(*BRAND)
def add_tier():
    return _add_name("tier")


@bp.get("/api/regions")
@require_roles(*BRAND)
def list_regions():
    return jsonify(_names_json("region"))


@bp.post("/api/regions")
@require_roles(*BRAND)
def add_region():
    return _add_name("region")
