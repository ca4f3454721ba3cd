"""HTTP API: contacts, campaigns, members, approvals, quick sends and messages."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from accounts.auth import (
    ANY,
    BRAND,
    PARTNER,
    current_user,
    partner_scope,
    require_roles,
    visible,
    visible_recipient,
)
from accounts.models import Partner
from campaigns import (
    audiences,
    compliance,
    consent,
    contacts,
    csv_files,
    erasure,
    lifecycle,
    members,
    messages,
    schedule,
    sharing,
    testsend,
    versions,
)
from campaigns import contacts_import as imports
from campaigns.models import CAMPAIGN_STATUSES, Campaign, ImportJob
from campaigns.sending import preview_campaign
from core.db import db
from core.errors import BadRequest, NotFound, TooLarge, ValidationError
from core.i18n import _
from core.validate import int_arg, json_body, page_args, parse_json
from journeys import routes as journey_routes
from journeys import services as journey_services

bp = Blueprint("campaigns", __name__)


def _partner() -> Partner:
    partner = db.session.get(Partner, partner_scope())
    if partner is None:
        raise NotFound("Partner not found.")
    return partner


# -------------------------------------------------------------------------------------- contacts


def _contact(contact_id: int):
    return visible(contacts.get_contact(contact_id), "Contact")


@bp.post("/api/contacts")
@require_roles(*PARTNER)
def create_contact():
    fields = contacts.clean_contact_fields(json_body(), partial=False)
    contact = contacts.create_contact(partner_scope(), **fields, source="api",
                                      user_id=current_user().id)
    return jsonify(contacts.contact_json(contact)), 201


@bp.get("/api/contacts")
@require_roles(*PARTNER)
def list_contacts():
    page, per_page = page_args()
    tags = contacts.clean_tag_filter([t for t in request.args.getlist("tag") if t])
    status = request.args.get("status") or None
    if status is not None and status not in contacts.CONTACT_STATUSES:
        raise ValidationError(_("Unknown status filter."), {
            "status": _("must be one of %(names)s", names=", ".join(contacts.CONTACT_STATUSES))})
    chosen = [audiences.clean_query_args(request.args.get("q", ""), tags, status)]
    if request.args.get("filter") and request.args.get("segment_id"):
        raise ValidationError(_("Choose contacts by a filter or by a segment, not both."),
                              {"segment_id": _("send either filter or segment_id")})
    if request.args.get("filter"):
        chosen.append(audiences.clean_filter(parse_json(request.args["filter"])))
    segment_id = int_arg("segment_id")
    if segment_id is not None:
        segment = audiences.partner_segment(partner_scope(), segment_id)
        chosen.append(audiences.clean_filter(segment.filter or {}))
    rows, total = audiences.find_contacts(partner_scope(), chosen, page, per_page)
    return jsonify({"items": contacts.contacts_json(rows), "page": page,
                    "per_page": per_page, "total": total})


@bp.get("/api/contacts/<int:contact_id>")
@require_roles(*PARTNER)
def get_contact(contact_id: int):
    return jsonify(contacts.contact_json(_contact(contact_id)))


@bp.patch("/api/contacts/<int:contact_id>")
@require_roles(*PARTNER)
def update_contact(contact_id: int):
    contact = _contact(contact_id)
    fields = contacts.clean_contact_fields(json_body(), partial=True)
    return jsonify(contacts.contact_json(contacts.update_contact(
        contact, source="api", user_id=current_user().id, **fields)))


@bp.delete("/api/contacts/<int:contact_id>")
@require_roles(*PARTNER)
def delete_contact(contact_id: int):
    erasure.erase_contact(_contact(contact_id))
    return "", 204


@bp.get("/api/contacts/<int:contact_id>/consent")
@require_roles(*PARTNER)
def contact_consent(contact_id: int):
    contact = _contact(contact_id)
    page, per_page = page_args()
    items, total = consent.consent_history(contact.id, page, per_page)
    return jsonify({"items": items, "page": page, "per_page": per_page, "total": total})


@bp.post("/api/contacts/import")
@require_roles(*PARTNER)
def import_contacts():
    # Refuse an obviously oversized upload before the multipart parser spools it to disk.
    if (request.content_length or 0) > csv_files.MAX_IMPORT_BYTES + 1024 * 1024:
        raise TooLarge(_("The file is larger than %(mb)s MB; split it into smaller files.",
                         mb=csv_files.MAX_IMPORT_BYTES // (1024 * 1024)))
    if not (request.mimetype or "").startswith("multipart/form-data"):
        raise BadRequest(_("Upload the CSV as multipart/form-data with a field named file."))
    upload = request.files.get("file")
    if upload is None:
        raise ValidationError(_("No file was uploaded."), {"file": _("is required")})
    job = imports.start_import(partner_scope(), current_user().id, upload.filename or "",
                               upload.stream, request.form)
    response = jsonify(imports.import_json(job))
    response.headers["Location"] = f"/api/imports/{job.id}"
    return response, 202


def _import_job(import_id: int) -> ImportJob:
    job = db.session.get(ImportJob, import_id)
    if job is not None:
        db.session.refresh(job)  # the worker writes it on its own connections
    return visible(job, "Import")


@bp.get("/api/imports/<int:import_id>")
@require_roles(*PARTNER)
def get_import(import_id: int):
    return jsonify(imports.import_json(_import_job(import_id)))


@bp.post("/api/imports/<int:import_id>/confirm")
@require_roles(*PARTNER)
def confirm_import(import_id: int):
    job = imports.confirm_import(_import_job(import_id))
    response = jsonify(imports.import_json(job))
    response.headers["Location"] = f"/api/imports/{job.id}"
    return response, 202


# -------------------------------------------------------------------------------------- segments


def _segment(segment_id: int):
    return visible(audiences.get_segment(segment_id), "Segment")


@bp.get("/api/segments")
@require_roles(*PARTNER)
def list_segments():
    page, per_page = page_args()
    rows, total = audiences.list_segments(partner_scope(), page, per_page)
    return jsonify({"items": [audiences.segment_json(s) for s in rows], "page": page,
                    "per_page": per_page, "total": total})


@bp.post("/api/segments")
@require_roles(*PARTNER)
def create_segment():
    fields = audiences.clean_segment(json_body(), partial=False)
    segment = audiences.create_segment(partner_scope(), current_user().id, **fields)
    response = jsonify(audiences.segment_json(segment, with_count=True))
    response.headers["Location"] = f"/api/segments/{segment.id}"
    return response, 201


@bp.get("/api/segments/<int:segment_id>")
@require_roles(*PARTNER)
def get_segment(segment_id: int):
    return jsonify(audiences.segment_json(_segment(segment_id), with_count=True))


@bp.patch("/api/segments/<int:segment_id>")
@require_roles(*PARTNER)
def update_segment(segment_id: int):
    segment = _segment(segment_id)
    fields = audiences.clean_segment(json_body(), partial=True)
    return jsonify(audiences.segment_json(audiences.update_segment(segment, **fields),
                                          with_count=True))


@bp.delete("/api/segments/<int:segment_id>")
@require_roles(*PARTNER)
def delete_segment(segment_id: int):
    audiences.delete_segment(_segment(segment_id))
    return "", 204


# ------------------------------------------------------------------- the brand's sharing rules


@bp.get("/api/brand/sharing-rules")
@require_roles(*BRAND)
def get_sharing_rules():
    return jsonify(sharing.rules_json())


@bp.put("/api/brand/sharing-rules")
@require_roles("brand_admin")
def put_sharing_rules():
    sharing.set_sharing_rules(sharing.clean_rules(json_body()), current_user())
    return jsonify(sharing.rules_json())


@bp.get("/api/analytics/sharing")
@require_roles(*BRAND)
def sharing_analytics():
    return jsonify(sharing.sharing_stats())


# ------------------------------------------------------------------------------------- campaigns


def _campaign(campaign_id: int) -> Campaign:
    return visible(lifecycle.get_campaign(campaign_id), "Campaign")


def campaign_json(campaign: Campaign, *, detail: bool = False) -> dict:
    """Serialize a campaign; `detail` adds member and message counts."""
    out = {
        "id": campaign.id, "partner_id": campaign.partner_id, "journey_id": campaign.journey_id,
        "name": campaign.name, "kind": campaign.kind, "status": campaign.status,
        "status_reason": campaign.status_reason, "slot_values": campaign.slot_values,
        "sender": {"name": campaign.sender_name, "reply_to": campaign.sender_reply_to},
        "created_by": campaign.created_by, "approved_by": campaign.approved_by,
        "launched_at": campaign.launched_at.isoformat() if campaign.launched_at else None,
        "created_at": campaign.created_at.isoformat(),
        # The send time in the partner's zone, with its offset (campaigns.schedule).
        "send_at": schedule.send_at_json(campaign.send_at, campaign.timezone),
        "timezone": campaign.timezone,
        "recipient_timezone": campaign.recipient_timezone,
    }
    if detail:
        out["members"] = members.member_count(campaign.id)
        out["messages"] = messages.message_counts(campaign.id)
    return out


@bp.post("/api/campaigns")
@require_roles(*PARTNER)
def create_campaign():
    campaign = lifecycle.create_campaign(_partner(), current_user(), json_body())
    return jsonify(campaign_json(campaign)), 201


@bp.get("/api/campaigns")
@require_roles(*ANY)
def list_campaigns():
    page, per_page = page_args()
    status = request.args.get("status") or None
    if status is not None and status not in CAMPAIGN_STATUSES:
        raise ValidationError("Unknown status filter.",
                              {"status": "must be one of " + ", ".join(CAMPAIGN_STATUSES)})
    rows, total = lifecycle.list_campaigns(partner_scope(), status, page, per_page)
    return jsonify({"items": [campaign_json(c) for c in rows], "page": page,
                    "per_page": per_page, "total": total})


@bp.get("/api/campaigns/<int:campaign_id>")
@require_roles(*ANY)
def get_campaign(campaign_id: int):
    return jsonify(campaign_json(_campaign(campaign_id), detail=True))


@bp.patch("/api/campaigns/<int:campaign_id>")
@require_roles(*PARTNER)
def update_campaign(campaign_id: int):
    campaign = lifecycle.update_campaign(_campaign(campaign_id), current_user(), json_body())
    return jsonify(campaign_json(campaign))


@bp.post("/api/campaigns/<int:campaign_id>/members")
@require_roles(*PARTNER)
def add_members(campaign_id: int):
    return jsonify(members.add_members_request(_campaign(campaign_id), json_body()))


@bp.delete("/api/campaigns/<int:campaign_id>/members/<int:contact_id>")
@require_roles(*PARTNER)
def remove_member(campaign_id: int, contact_id: int):
    members.remove_member(_campaign(campaign_id), contact_id)
    return "", 204


@bp.get("/api/campaigns/<int:campaign_id>/preview")
@require_roles(*ANY)
def preview(campaign_id: int):
    campaign = _campaign(campaign_id)
    step = int_arg("step", 0)
    contact_id = int_arg("contact_id")
    contact = None  # the sample contact
    if contact_id:
        contact = visible_recipient(contacts.get_contact(contact_id), campaign.partner_id)
    partner = db.session.get(Partner, campaign.partner_id)
    shown = preview_campaign(campaign, step, contact, partner, config=current_app.config)
    return jsonify({"subject": shown.subject, "html": shown.html, "text": shown.text,
                    "step": step, "locked_regions_intact": shown.locked_regions_intact,
                    "locked_region_problems": list(shown.locked_region_problems)})


def _optional_body() -> dict:
    """Return the JSON object body, or {} when the request has none."""
    return json_body() if request.get_data(cache=True) else {}


@bp.post("/api/campaigns/<int:campaign_id>/launch")
@require_roles(*PARTNER)
def launch(campaign_id: int):
    campaign = _campaign(campaign_id)
    # "scheduled" or "pending_approval"; the body may set the send time in the same step.
    status = lifecycle.launch_campaign(campaign, _optional_body())
    return jsonify({"id": campaign.id, "status": status,
                    "send_at": schedule.send_at_json(campaign.send_at, campaign.timezone)}), 202


@bp.post("/api/campaigns/<int:campaign_id>/unschedule")
@require_roles(*PARTNER)
def unschedule(campaign_id: int):
    return jsonify(campaign_json(lifecycle.unschedule_campaign(_campaign(campaign_id)),
                                 detail=True))


@bp.post("/api/campaigns/<int:campaign_id>/test-send")
@require_roles(*ANY)
def test_send(campaign_id: int):
    campaign = _campaign(campaign_id)
    data = _optional_body()
    unknown = set(data) - {"step", "contact_id"}
    if unknown:
        raise ValidationError(_("A test send takes only step and contact_id."),
                              {str(k)[:100]: _("is not a test send field") for k in unknown})
    contact = None  # the sample contact
    if data.get("contact_id") is not None:
        contact_id = data["contact_id"]
        if isinstance(contact_id, bool) or not isinstance(contact_id, int) \
                or not 0 < contact_id < 2**63:
            raise ValidationError(_("A test send is invalid."),
                                  {"contact_id": _("must be a contact id (a whole number)")})
        contact = visible_recipient(contacts.get_contact(contact_id), campaign.partner_id)
    record = testsend.send_test(campaign, current_user(), config=current_app.config,
                                step=data.get("step"), contact=contact)
    return jsonify(testsend.json_of(record)), 202


@bp.post("/api/campaigns/<int:campaign_id>/approve")
@require_roles(*BRAND)
def approve(campaign_id: int):
    campaign = lifecycle.approve_campaign(_campaign(campaign_id), current_user())
    return jsonify(campaign_json(campaign))


@bp.post("/api/campaigns/<int:campaign_id>/reject")
@require_roles(*BRAND)
def reject(campaign_id: int):
    campaign = _campaign(campaign_id)
    data = json_body()
    return jsonify(campaign_json(lifecycle.reject_campaign(campaign, current_user(),
                                                          data.get("reason"))))


@bp.get("/api/campaigns/<int:campaign_id>/changes")
@require_roles(*ANY)
def changes(campaign_id: int):
    return jsonify(lifecycle.campaign_changes(_campaign(campaign_id)))


@bp.post("/api/campaigns/<int:campaign_id>/pause")
@require_roles(*ANY)
def pause(campaign_id: int):
    return jsonify(campaign_json(lifecycle.pause_campaign(_campaign(campaign_id)),
                                 detail=True))


@bp.post("/api/campaigns/<int:campaign_id>/resume")
@require_roles(*ANY)
def resume(campaign_id: int):
    return jsonify(campaign_json(lifecycle.resume_campaign(_campaign(campaign_id)),
                                 detail=True))


@bp.post("/api/campaigns/<int:campaign_id>/cancel")
@require_roles(*ANY)
def cancel(campaign_id: int):
    return jsonify(campaign_json(lifecycle.cancel_campaign(_campaign(campaign_id)),
                                 detail=True))


# ------------------------------------------------------------------------------------ quick send


@bp.post("/api/quick-sends")
@require_roles(*PARTNER)
def quick_send():
    campaign, result = lifecycle.quick_send(_partner(), current_user(), json_body())
    return jsonify({"campaign_id": campaign.id, "status": campaign.status,
                    "send_at": schedule.send_at_json(campaign.send_at, campaign.timezone),
                    **result}), 202


# -------------------------------------------------------------------------------------- messages


@bp.get("/api/messages/<int:message_id>")
@require_roles(*PARTNER)  # a message is per-recipient data: the owning partner's only
def get_message(message_id: int):
    return jsonify(messages.message_json(visible(messages.get_send(message_id), "Message")))


@bp.post("/api/journeys/<int:journey_id>/publish")
@require_roles(*BRAND)
def publish_journey(journey_id: int):
    data = json_body() if request.get_data(cache=True).strip() else {}  # the body is optional
    move, mandatory = versions.publish_options(data)
    journey, report = versions.publish_version(journey_id, move, mandatory)
    return jsonify({**journey_routes.journey_json(journey),
                    "partners_reached": journey_services.partners_reached(journey),
                    "campaigns": report.to_dict()})


# --- the brand's compliance rules (campaigns/compliance.py) ----------------------------------

def rule_json(rule) -> dict:
    return {"id": rule.id, "kind": rule.kind, "pattern": rule.pattern, "message": rule.message,
            "journey_id": rule.journey_id, "created_at": rule.created_at.isoformat()}


@bp.get("/api/compliance-rules")
@require_roles(*BRAND)
def list_compliance_rules():
    return jsonify({"items": [rule_json(r) for r in compliance.list_rules()]})


@bp.post("/api/compliance-rules")
@require_roles(*BRAND)
def add_compliance_rule():
    rule = compliance.add_rule(json_body(), created_by=current_user().id)
    return jsonify(rule_json(rule)), 201


@bp.delete("/api/compliance-rules/<int:rule_id>")
@require_roles(*BRAND)
def delete_compliance_rule(rule_id: int):
    compliance.delete_rule(rule_id)
    return "", 204
