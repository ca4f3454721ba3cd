"""HTTP API: identity and partners."""

from __future__ import annotations

from flask import Blueprint, jsonify

from accounts import services
from accounts.auth import ANY, current_user, require_roles
from core.validate import Fields, json_body, page_args

bp = Blueprint("accounts", __name__)


def partner_json(p) -> dict:
    return {"id": p.id, "name": p.name, "tier": p.tier, "region": p.region,
            "logo_url": p.logo_url, "address": p.address, "phone": p.phone,
            "website": p.website, "created_at": p.created_at.isoformat()}


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
    unknown = set(data) - set(services.PARTNER_FIELDS)
    for name in unknown:
        f.problems[name] = "is not a partner field"
    f.check("Partner is invalid.")
    return out


@bp.get("/api/me")
@require_roles(*ANY)
def me():
    return jsonify(current_user().to_dict())


@bp.post("/api/partners")
@require_roles("brand_admin")
def create_partner():
    partner = services.create_partner(**_partner_fields(json_body(), partial=False))
    return jsonify(partner_json(partner)), 201


@bp.get("/api/partners")
@require_roles("brand_admin")
def list_partners():
    page, per_page = page_args()
    rows, total = services.list_partners(page, per_page)
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
