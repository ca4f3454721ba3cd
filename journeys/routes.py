"""HTTP API: templates (brand), journeys (brand) and the partner catalog."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from accounts.auth import BRAND, PARTNER, current_user, require_roles
from accounts.services import get_partner
from core.errors import ValidationError
from core.validate import int_arg, json_body, page_args
from journeys import services
from journeys.models import Journey, TemplateVersion
from personalization.preview import preview_version, sample_inputs

bp = Blueprint("journeys", __name__)



def version_json(v: TemplateVersion) -> dict:
    return {"id": v.template_id, "version": v.version, "status": v.status, "name": v.name,
            "subject": v.subject, "preheader": v.preheader, "slots": v.slots, "mjml": v.mjml,
            "created_at": v.created_at.isoformat(),
            "published_at": v.published_at.isoformat() if v.published_at else None}


def template_json(template_id: int) -> dict:
    template = services.get_template(template_id)
    latest = services.latest_version(template_id)
    published = services.published_version(template_id)
    out = version_json(latest)
    out["published_version"] = published.version if published else None
    out["versions"] = [{"version": v.version, "status": v.status,
                        "published_at": v.published_at.isoformat() if v.published_at else None}
                       for v in template.versions]
    return out


def _template_args(data: dict) -> dict:
    unknown = set(data) - {"name", "subject", "preheader", "mjml", "slots"}
    if unknown:
        raise ValidationError("Template is invalid.",
                              {k: "is not a template field" for k in sorted(unknown)})
    return {"name": data.get("name"), "subject": data.get("subject"),
            "preheader": data.get("preheader", "") or "", "mjml": data.get("mjml"),
            "slots": data.get("slots", [])}


@bp.post("/api/templates")
@require_roles(*BRAND)
def create_template():
    version = services.create_template(**_template_args(json_body()),
                                       created_by=current_user().id)
    return jsonify(template_json(version.template_id)), 201


@bp.get("/api/templates")
@require_roles(*BRAND)
def list_templates():
    page, per_page = page_args()
    rows, total = services.list_templates(page, per_page)
    return jsonify({"items": [template_json(t.id) for t in rows], "page": page,
                    "per_page": per_page, "total": total})


@bp.get("/api/templates/<int:template_id>")
@require_roles(*BRAND)
def get_template(template_id: int):
    number = _version_arg()
    if number is not None:
        return jsonify(version_json(services.get_version(template_id, number)))
    return jsonify(template_json(template_id))


def _version_arg() -> int | None:
    """Return `?version=N` as an int (None when absent); anything else is a 400."""
    return int_arg("version", minimum=1)


@bp.put("/api/templates/<int:template_id>")
@require_roles(*BRAND)
def update_template(template_id: int):
    version = services.update_template(template_id, **_template_args(json_body()),
                                       created_by=current_user().id)
    return jsonify(template_json(version.template_id))


@bp.post("/api/templates/<int:template_id>/publish")
@require_roles(*BRAND)
def publish_template(template_id: int):
    version = services.publish_template(template_id)
    return jsonify({"id": version.template_id, "version": version.version,
                    "status": version.status, "links": version.links})


def preview_inputs(args, contact: dict) -> dict:
    """Return the `slot.NAME` query arguments as slot values; set `contact.FIELD` ones on
    `contact` (the sample contact, which they personalize)."""
    for key, value in args.items():
        if key.startswith("contact.attributes."):
            contact["attributes"][key[19:]] = value
        elif key.startswith("contact.") and key[8:] in ("first_name", "last_name", "email"):
            contact[key[8:]] = value
    return {k[5:]: v for k, v in args.items() if k.startswith("slot.")}


@bp.get("/api/templates/<int:template_id>/preview")
@require_roles(*BRAND)
def preview_template(template_id: int):
    version = services.get_version(template_id, _version_arg())
    inputs = sample_inputs(current_user(), current_app.config)
    slot_values = preview_inputs(request.args, inputs.contact)
    rendered = preview_version(version, slot_values, *inputs)
    response = Response(rendered.html, mimetype="text/html")
    # The preview is shown inside the app: it may not run script or load anything active.
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; img-src * data:; style-src 'unsafe-inline'; sandbox")
    response.headers["X-Lastmile-Subject"] = rendered.subject.encode("utf-8", "replace").decode(
        "latin-1", "replace")
    response.headers["X-Lastmile-Locked-Regions-Intact"] = (
        "true" if rendered.locked_regions_intact else "false")
    return response


def step_json(step) -> dict:
    version = step.template_version
    return {"index": step.position, "template_id": step.template_id,
            "template_version": version.version if version else None,
            "template_name": step.template.name, "delay_hours": step.delay_hours,
            "when": step.condition,
            "subject": version.subject if version else None,
            "slots": version.slots if version else None}


def journey_json(j: Journey) -> dict:
    return {"id": j.id, "name": j.name, "description": j.description, "category": j.category,
            "audience": {"tiers": j.audience_tiers, "regions": j.audience_regions},
            "requires_approval": j.requires_approval, "quick_send": j.quick_send,
            "status": j.status, "steps": [step_json(s) for s in j.steps],
            "version": j.version, "previous_id": j.previous_id,
            "created_at": j.created_at.isoformat(),
            "published_at": j.published_at.isoformat() if j.published_at else None}


def _journey_args(data: dict) -> dict:
    audience = data.get("audience") or {}
    if not isinstance(audience, dict):
        raise ValidationError("Journey is invalid.", {"audience": "must be an object"})
    flags = {}
    for key in ("requires_approval", "quick_send"):
        value = data.get(key, False)
        if not isinstance(value, bool):
            raise ValidationError("Journey is invalid.", {key: "must be true or false"})
        flags[key] = value
    return {"name": data.get("name"), "description": data.get("description", "") or "",
            "category": data.get("category", "") or "", "tiers": audience.get("tiers", []),
            "regions": audience.get("regions", []), "steps": data.get("steps"), **flags}


@bp.post("/api/journeys")
@require_roles(*BRAND)
def create_journey():
    journey = services.create_journey(**_journey_args(json_body()), created_by=current_user().id)
    return jsonify(journey_json(journey)), 201


@bp.put("/api/journeys/<int:journey_id>")
@require_roles(*BRAND)
def update_journey(journey_id: int):
    return jsonify(journey_json(services.update_journey(journey_id, **_journey_args(json_body()))))


@bp.get("/api/journeys")
@require_roles(*BRAND)
def list_journeys():
    page, per_page = page_args()
    status = request.args.get("status") or None
    rows, total = services.list_journeys(status, page, per_page)
    return jsonify({"items": [journey_json(j) for j in rows], "page": page,
                    "per_page": per_page, "total": total})


@bp.get("/api/journeys/<int:journey_id>")
@require_roles(*BRAND)
def get_journey(journey_id: int):
    return jsonify(journey_json(services.get_journey(journey_id)))


# Publishing (POST /api/journeys/<id>/publish) may move partners' campaigns to a new
# version, so it lives with the campaigns (campaigns/routes.py).


@bp.post("/api/journeys/<int:journey_id>/versions")
@require_roles(*BRAND)
def new_version(journey_id: int):
    journey = services.new_version(journey_id, created_by=current_user().id)
    return jsonify(journey_json(journey)), 201


@bp.post("/api/journeys/<int:journey_id>/duplicate")
@require_roles(*BRAND)
def duplicate_journey(journey_id: int):
    journey = services.duplicate_journey(journey_id, created_by=current_user().id)
    return jsonify(journey_json(journey)), 201


@bp.post("/api/journeys/<int:journey_id>/archive")
@require_roles(*BRAND)
def archive_journey(journey_id: int):
    return jsonify(journey_json(services.archive_journey(journey_id)))


@bp.get("/api/catalog")
@require_roles(*PARTNER)
def catalog():
    partner = get_partner(current_user().partner_id)
    return jsonify({"items": [journey_json(j) for j in services.catalog_for(partner)]})


@bp.get("/api/catalog/<int:journey_id>")
@require_roles(*PARTNER)
def catalog_journey(journey_id: int):
    partner = get_partner(current_user().partner_id)
    return jsonify(journey_json(services.catalog_journey(journey_id, partner)))
