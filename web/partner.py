"""Partner pages: showroom, personalization with live preview, contacts, campaigns."""

from __future__ import annotations

from flask import abort, current_app, flash, jsonify, redirect, render_template, request, url_for

from accounts import services as accounts
from accounts.auth import ANY, PARTNER, require_roles, visible, visible_recipient
from campaigns import contacts as contacts_service
from campaigns import lifecycle, members, messages, suppression, values
from campaigns.models import Campaign
from campaigns.sending import preview_campaign
from core.errors import DomainError
from journeys import services as journeys
from personalization.preview import preview_version, sample_inputs
from tracking import analytics
from web.base import bp, me, preview_problems, preview_response

PREVIEW_CONTACTS = 100
ADD_ALL_LIMIT = 10_000


def _partner():
    return accounts.get_partner(me().partner_id)


def _steps(journey, kind: str = "journey") -> list[dict]:
    """Return each step's pinned version with its slots, as the form shows them."""
    versions = values.journey_versions(journey)
    if kind == "quick_send":
        versions = versions[:1]
    return [{"index": i, "version": v, "step": journey.steps[i]} for i, v in enumerate(versions)]


def _values_from_form(steps: list[dict]) -> dict[str, dict[str, str]]:
    values: dict[str, dict[str, str]] = {}
    for step in steps:
        i = step["index"]
        values[str(i)] = {slot["name"]: request.form.get(f"v-{i}-{slot['name']}", "")
                          for slot in step["version"].slots}
    return values


def _sender_from_form() -> dict:
    return {"name": request.form.get("sender_name", ""),
            "reply_to": request.form.get("sender_reply_to", "")}


# --- showroom -------------------------------------------------------------------------------

@bp.get("/partner")
@require_roles(*PARTNER)
def partner_home():
    partner = _partner()
    return render_template("web/showroom.html", partner=partner,
                           journeys=journeys.catalog_for(partner))


@bp.get("/partner/journeys/<int:journey_id>/thumbnail")
@require_roles(*PARTNER)
def journey_thumbnail(journey_id: int):
    partner = _partner()
    journey = journeys.catalog_journey(journey_id, partner)
    version = _steps(journey)[0]["version"]
    shown = preview_version(version, {}, *sample_inputs(me(), current_app.config,
                                                        partner.template_context()))
    return preview_response(shown.html)


def _personalize_page(journey, partner, *, campaign: Campaign | None = None,
                      values: dict | None = None, sender: dict | None = None,
                      name: str | None = None, errors: dict | None = None, status: int = 200):
    kind = campaign.kind if campaign else "journey"
    steps = _steps(journey, kind)
    if values is None:
        values = campaign.slot_values if campaign else {
            str(s["index"]): {slot["name"]: slot.get("default", "")
                              for slot in s["version"].slots} for s in steps}
    user = me()
    sender = sender or ({"name": campaign.sender_name, "reply_to": campaign.sender_reply_to}
                        if campaign else {"name": partner.name, "reply_to": user.email})
    recipients, _ = contacts_service.list_contacts(partner.id, "", 1, PREVIEW_CONTACTS)
    return render_template("web/personalize.html", journey=journey, partner=partner,
                           campaign=campaign, steps=steps, values=values, sender=sender,
                           name=name if name is not None else (
                               campaign.name if campaign else journey.name),
                           errors=errors or {}, recipients=recipients), status


@bp.route("/partner/journeys/<int:journey_id>", methods=["GET", "POST"])
@require_roles(*PARTNER)
def personalize(journey_id: int):
    partner = _partner()
    journey = journeys.catalog_journey(journey_id, partner)
    if request.method == "GET":
        return _personalize_page(journey, partner)[0]
    steps = _steps(journey)
    values, sender = _values_from_form(steps), _sender_from_form()
    name = request.form.get("name", "")
    try:
        campaign = lifecycle.create_campaign(partner, me(), {
            "journey_id": journey.id, "name": name, "slot_values": values, "sender": sender})
    except DomainError as err:
        return _personalize_page(journey, partner, values=values, sender=sender, name=name,
                                 errors=err.fields or {"campaign": err.message},
                                 status=err.status)
    flash("Campaign saved as a draft. Add contacts, then launch.", "ok")
    return redirect(url_for("web.campaign", campaign_id=campaign.id))


@bp.route("/partner/campaigns/<int:campaign_id>/edit", methods=["GET", "POST"])
@require_roles(*PARTNER)
def campaign_edit(campaign_id: int):
    campaign = visible(lifecycle.get_campaign(campaign_id), "Campaign")
    partner = _partner()
    journey = journeys.get_journey(campaign.journey_id)
    if request.method == "GET":
        return _personalize_page(journey, partner, campaign=campaign)[0]
    steps = _steps(journey, campaign.kind)
    values, sender = _values_from_form(steps), _sender_from_form()
    name = request.form.get("name", "")
    try:
        lifecycle.update_campaign(campaign, me(), {"name": name, "slot_values": values,
                                                   "sender": sender})
    except DomainError as err:
        return _personalize_page(journey, partner, campaign=campaign, values=values,
                                 sender=sender, name=name,
                                 errors=err.fields or {"campaign": err.message},
                                 status=err.status)
    flash("Campaign saved.", "ok")
    return redirect(url_for("web.campaign", campaign_id=campaign.id))


@bp.post("/partner/journeys/<int:journey_id>/validate")
@require_roles(*PARTNER)
def personalize_validate(journey_id: int):
    """Check slot values as the partner types; the same rules the campaign service applies."""
    journey = journeys.catalog_journey(journey_id, _partner())
    steps = _steps(journey)
    try:
        values.clean_campaign_values(_values_from_form(steps), [s["version"] for s in steps])
    except DomainError as err:
        return jsonify({"ok": False, "fields": err.fields})
    return jsonify({"ok": True, "fields": {}})


@bp.post("/partner/journeys/<int:journey_id>/preview")
@require_roles(*PARTNER)
def personalize_preview(journey_id: int):
    """Render one step for one recipient exactly as the worker would, from unsaved values."""
    partner = _partner()
    journey = journeys.catalog_journey(journey_id, partner)
    steps = _steps(journey)
    step = request.form.get("preview_step", "0")
    step_index = int(step) if step.isdigit() and int(step) < len(steps) else 0
    contact = None  # the sample contact
    contact_id = request.form.get("preview_contact", "")
    if contact_id.isdigit():
        contact = visible_recipient(contacts_service.get_contact(int(contact_id)), partner.id)
    try:
        slot_values = values.clean_campaign_values(_values_from_form(steps),
                                                   [s["version"] for s in steps])
        sender_name, reply_to = values.clean_sender(_sender_from_form(), partner, me())
    except DomainError as err:
        return preview_problems("Fix these values to see the preview:", err.fields)
    # An unsaved campaign (never added to the session) previews exactly as it would be sent.
    draft = Campaign(partner_id=partner.id, journey_id=journey.id, kind="journey",
                     slot_values=slot_values, sender_name=sender_name, sender_reply_to=reply_to)
    shown = preview_campaign(draft, step_index, contact, partner, config=current_app.config,
                             overrides={})
    return preview_response(shown.html)


# --- contacts -------------------------------------------------------------------------------

def _contacts_page(*, errors: dict | None = None, form: dict | None = None, status: int = 200):
    partner = _partner()
    q = request.args.get("q", "")
    page = max(1, request.args.get("page", 1, type=int) or 1)
    per_page = 25
    rows, total = contacts_service.list_contacts(partner.id, q, page, per_page)
    quick = [j for j in journeys.catalog_for(partner) if j.quick_send]
    return render_template("web/contacts.html", contacts=rows, total=total, q=q, page=page,
                           pages=max(1, -(-total // per_page)), quick_journeys=quick,
                           errors=errors or {}, form=form or {}), status


@bp.get("/partner/contacts")
@require_roles(*PARTNER)
def contacts():
    return _contacts_page()[0]


@bp.post("/partner/contacts")
@require_roles(*PARTNER)
def contact_create():
    form = {k: request.form.get(k, "") for k in ("email", "first_name", "last_name")}
    try:
        fields = contacts_service.clean_contact_fields(
            dict(form, consent=request.form.get("consent") == "on"), partial=False)
        contacts_service.create_contact(me().partner_id, **fields)
    except DomainError as err:
        return _contacts_page(errors=err.fields or {"email": err.message}, form=form,
                              status=err.status)
    flash(f"Contact {fields['email']} added.", "ok")
    return redirect(url_for("web.contacts"))


@bp.route("/partner/contacts/<int:contact_id>/quick-send", methods=["GET", "POST"])
@require_roles(*PARTNER)
def quick_send(contact_id: int):
    partner = _partner()
    contact = visible(contacts_service.get_contact(contact_id), "Contact")
    options = [j for j in journeys.catalog_for(partner) if j.quick_send]
    if request.method == "GET":
        return render_template("web/quick_send.html", contact=contact, journeys=options,
                               reason=suppression.exclusion_reason(contact))
    journey_id = request.form.get("journey_id", "")
    try:
        campaign, _result = lifecycle.quick_send(partner, me(), {
            "journey_id": int(journey_id) if journey_id.isdigit() else journey_id,
            "contact_ids": [contact.id]})
    except DomainError as err:
        flash(f"Not sent: {err.message}", "error")
        return redirect(url_for("web.quick_send", contact_id=contact.id))
    flash(f"Quick send to {contact.email}: {campaign.status.replace('_', ' ')}.", "ok")
    return redirect(url_for("web.campaign", campaign_id=campaign.id))


# --- campaigns ------------------------------------------------------------------------------

@bp.get("/partner/campaigns")
@require_roles(*PARTNER)
def campaigns_list():
    rows, _ = lifecycle.list_campaigns(me().partner_id, None, 1, 200)
    return render_template("web/campaigns.html", campaigns=rows)


bp.add_url_rule("/partner/campaigns", endpoint="campaigns", view_func=campaigns_list)


def _recipients(campaign: Campaign) -> dict:

    page = max(1, request.args.get("page", 1, type=int) or 1)
    return analytics.campaign_recipients(campaign, page, 100)


def _campaign_page(campaign: Campaign, *, added: dict | None = None) -> str:
    journey = journeys.get_journey(campaign.journey_id)
    owner_view = not me().is_brand
    contact_rows, contacts_total = [], 0
    q = request.args.get("q", "")
    if campaign.status in ("draft", "rejected") and not me().is_brand:
        contact_rows, contacts_total = contacts_service.list_contacts(campaign.partner_id, q, 1,
                                                                      50)
    excluded = []
    if added:
        by_id = {c.id: c for c in contact_rows}
        for row in added.get("excluded", [])[:100]:
            contact = by_id.get(row["contact_id"]) or contacts_service.get_contact(
                row["contact_id"])
            excluded.append({"contact": contact if contact and contact.partner_id ==
                             campaign.partner_id else None, "id": row["contact_id"],
                             "reason": row["reason"]})
    return render_template(
        "web/campaign.html", campaign=campaign, journey=journey,
        counts=messages.message_counts(campaign.id),
        members=members.member_count(campaign.id), steps=lifecycle.step_count(campaign),
        # Only the owning partner sees per-recipient rows; brand roles see the aggregates.
        recipients=_recipients(campaign) if owner_view else None,
        contacts=contact_rows, contacts_total=contacts_total, q=q, added=added,
        excluded=excluded,
        preview_contacts=contacts_service.list_contacts(campaign.partner_id, "", 1, 50)[0]
        if owner_view else [],
    )


@bp.get("/partner/campaigns/<int:campaign_id>")
@require_roles(*ANY)
def campaign(campaign_id: int):
    return _campaign_page(visible(lifecycle.get_campaign(campaign_id), "Campaign"))


@bp.post("/partner/campaigns/<int:campaign_id>/members")
@require_roles(*PARTNER)
def campaign_members(campaign_id: int):
    campaign = visible(lifecycle.get_campaign(campaign_id), "Campaign")
    if request.form.get("all") == "1":
        rows, _ = contacts_service.list_contacts(campaign.partner_id, request.form.get("q", ""),
                                                 1, ADD_ALL_LIMIT)
        ids = [c.id for c in rows]
    else:
        ids = [int(v) for v in request.form.getlist("contact_ids") if v.isdigit()]
    if not ids:
        flash("Choose at least one contact.", "error")
        return redirect(url_for("web.campaign", campaign_id=campaign.id))
    try:
        result = members.add_members(campaign, ids)
    except DomainError as err:
        flash(err.message, "error")
        return redirect(url_for("web.campaign", campaign_id=campaign.id))
    return _campaign_page(campaign, added=result)


STATE_ACTIONS = {"pause": lifecycle.pause_campaign, "resume": lifecycle.resume_campaign,
                 "cancel": lifecycle.cancel_campaign}


@bp.post("/partner/campaigns/<int:campaign_id>/<any(launch, pause, resume, cancel):action>")
@require_roles(*PARTNER)
def campaign_action(campaign_id: int, action: str):
    campaign = visible(lifecycle.get_campaign(campaign_id), "Campaign")
    try:
        if action == "launch":
            status = lifecycle.launch_campaign(campaign)
            flash("Sent for brand approval." if status == "pending_approval"
                  else "Launched: the first messages are on their way.", "ok")
        else:
            STATE_ACTIONS[action](campaign)
            flash(f"Campaign {campaign.status}.", "ok")
    except DomainError as err:
        flash(err.message, "error")
    return redirect(url_for("web.campaign", campaign_id=campaign.id))


@bp.get("/partner/campaigns/<int:campaign_id>/preview")
@require_roles(*ANY)
def campaign_preview(campaign_id: int):
    campaign = visible(lifecycle.get_campaign(campaign_id), "Campaign")
    step = request.args.get("step", 0, type=int) or 0
    if not 0 <= step < lifecycle.step_count(campaign):
        abort(404)
    contact = None  # the sample contact
    contact_id = request.args.get("contact_id", type=int)
    if contact_id:
        contact = visible_recipient(contacts_service.get_contact(contact_id),
                                    campaign.partner_id)
    partner = accounts.get_partner(campaign.partner_id)
    shown = preview_campaign(campaign, step, contact, partner, config=current_app.config)
    return preview_response(shown.html)
