"""Partner pages: showroom, personalization with live preview, contacts, campaigns."""

from __future__ import annotations

from babel.dates import format_datetime
from flask import (
    Response,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import get_locale

from accounts import services as accounts
from accounts.auth import ANY, PARTNER, require_roles, visible, visible_recipient
from campaigns import (
    audiences,
    lifecycle,
    members,
    messages,
    schedule,
    testsend,
    values,
    versions,
)
from campaigns import contacts as contacts_service
from campaigns.models import Campaign, Contact
from campaigns.sending import preview_campaign
from core import clock
from core.errors import DomainError
from core.i18n import _, lazy_gettext, ngettext
from core.validate import MAX_PAGE, int_arg
from journeys import services as journeys
from personalization.preview import preview_version, sample_inputs
from tracking import analytics
from web import labels
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
                        if campaign else {"name": partner.default_sender_name,
                                          "reply_to": user.email})
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
    # A campaign paused by a mandatory journey version takes corrected values only.
    changes = {"slot_values": values} if campaign.status == "paused" else {
        "name": name, "slot_values": values, "sender": sender}
    try:
        lifecycle.update_campaign(campaign, me(), changes)
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
    step_index, contact = preview_target(partner, len(steps))
    try:
        slot_values = values.clean_campaign_values(_values_from_form(steps),
                                                   [s["version"] for s in steps])
        sender_name, reply_to = values.clean_sender(_sender_from_form(), partner, me())
    except DomainError as err:
        return preview_problems(_("Fix these values to see the preview:"), {
            labels.field_label(k, [s["version"] for s in steps]): v
            for k, v in (err.fields or {}).items()})
    return unsaved_preview(Campaign(partner_id=partner.id, journey_id=journey.id, kind="journey",
                                    slot_values=slot_values, sender_name=sender_name,
                                    sender_reply_to=reply_to), step_index, contact, partner)


def preview_target(partner, steps: int) -> tuple[int, Contact | None]:  # noqa: ANN001
    """The step and recipient a preview form asks for (the sample contact when none)."""
    step = request.form.get("preview_step", "0")
    step_index = int(step) if step.isdigit() and len(step) < 4 and int(step) < steps else 0
    contact_id = request.form.get("preview_contact", "")
    contact = (visible_recipient(contacts_service.get_contact(int(contact_id)), partner.id)
               if contact_id.isdigit() and len(contact_id) < 19 else None)
    return step_index, contact


def unsaved_preview(draft: Campaign, step_index: int, contact: Contact | None,
                    partner) -> Response:  # noqa: ANN001
    """Render a campaign that is never saved (not added to the session) exactly as it would be
    sent: the live preview of values being typed."""
    shown = preview_campaign(draft, step_index, contact, partner, config=current_app.config,
                             overrides={})
    return preview_response(shown.html)


# --- contacts (the list and contact pages live in web/contacts.py) ----------------------------

@bp.get("/partner/contacts/<int:contact_id>/quick-send")
@require_roles(*PARTNER)
def quick_send(contact_id: int):
    """A contact's quick send: the flow on /partner/quick-send (web/quick_send.py)."""
    contact = visible(contacts_service.get_contact(contact_id), "Contact")
    return redirect(url_for("web.quick_send_flow", contact_ids=contact.id))


# --- campaigns ------------------------------------------------------------------------------

@bp.get("/partner/campaigns")
@require_roles(*PARTNER)
def campaigns_list():
    rows, _ = lifecycle.list_campaigns(me().partner_id, None, 1, 200)
    return render_template("web/campaigns.html", campaigns=rows)


bp.add_url_rule("/partner/campaigns", endpoint="campaigns", view_func=campaigns_list)


def _recipients(campaign: Campaign) -> dict:

    page = int_arg("page", 1, minimum=1, maximum=MAX_PAGE)
    return analytics.campaign_recipients(campaign, page, 100)


def send_time_words(send_at, zone: str | None) -> str:
    """Say a send time the way a person reads it: "Tue 8 Dec, 9:00 America/Chicago"."""
    local = schedule.to_local(send_at, zone)
    pattern = "EEE d MMM, H:mm" if local.year == schedule.to_local(clock.now(), zone).year \
        else "EEE d MMM y, H:mm"
    return f"{format_datetime(local, pattern, locale=get_locale())} {zone or 'UTC'}"


def _schedule_form(campaign: Campaign) -> dict:
    """The schedule form's values: the campaign's send time in its zone, if it has one."""
    if campaign.send_at is None:
        return {"date": "", "time": "09:00", "timezone": campaign.timezone or "",
                "recipient_timezone": campaign.recipient_timezone}
    local = schedule.to_local(campaign.send_at, campaign.timezone)
    return {"date": local.date().isoformat(), "time": local.strftime("%H:%M"),
            "timezone": campaign.timezone or "UTC",
            "recipient_timezone": campaign.recipient_timezone}


def _campaign_page(campaign: Campaign, *, added: dict | None = None,
                   schedule_form: dict | None = None, schedule_errors: dict | None = None,
                   confirming: dict | None = None, status: int = 200):
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
    member_total = members.member_count(campaign.id)
    last_test = testsend.last_test(campaign)
    values_problem = versions.values_problem(campaign) if campaign.status in (
        "draft", "paused") else ""
    return render_template(
        "web/campaign.html", campaign=campaign, journey=journey, values_problem=values_problem,
        counts=messages.message_counts(campaign.id),
        members=member_total, steps=lifecycle.step_count(campaign),
        send_time=send_time_words(campaign.send_at, campaign.timezone)
        if campaign.send_at else None,
        schedule_form=schedule_form or _schedule_form(campaign),
        schedule_errors=schedule_errors or {}, confirming=confirming,
        zones=schedule.sorted_zones(), last_test=last_test,
        last_test_when=send_time_words(last_test.created_at, campaign.timezone)
        if last_test else None,
        test_limit=testsend.LIMIT_PER_HOUR,
        # Only the owning partner sees per-recipient rows; brand roles see the aggregates.
        recipients=_recipients(campaign) if owner_view else None,
        contacts=contact_rows, contacts_total=contacts_total, q=q, added=added,
        statuses=contacts_service.statuses_of(c.id for c in contact_rows),
        status_labels=contacts_service.STATUS_LABELS,
        excluded=excluded,
        preview_contacts=contacts_service.list_contacts(campaign.partner_id, "", 1, 50)[0]
        if owner_view else [],
        segments=audiences.list_segments(campaign.partner_id, 1, 200)[0]
        if campaign.status in ("draft", "rejected") and not me().is_brand else [],
    ), status


@bp.get("/partner/campaigns/<int:campaign_id>")
@require_roles(*ANY)
def campaign(campaign_id: int):
    return _campaign_page(visible(lifecycle.get_campaign(campaign_id), "Campaign"))[0]


def launch_confirmation(campaign: Campaign, count: int, send_at: str | None, zone: str,
                  per_recipient: bool) -> dict:
    """The question the partner answers before a campaign is launched or its time moved."""
    approval = campaign.status == "draft" and journeys.get_journey(
        campaign.journey_id).requires_approval
    when = send_time_words(schedule.parse_send_at(send_at, clock.now()), zone) \
        if send_at else None
    if approval:
        question = _("Submit for approval?")
        then = (ngettext("Once the brand approves it, it goes to %(num)d client at %(when)s, "
                         "or straight away if the approval comes after that time.",
                         "Once the brand approves it, it goes to %(num)d clients at "
                         "%(when)s, or straight away if the approval comes after that time.",
                         count, when=when) if when else
                ngettext("Once the brand approves it, it goes to %(num)d client straight "
                         "away.", "Once the brand approves it, it goes to %(num)d clients "
                         "straight away.", count))
        answer = _("Yes, submit for approval")
    elif when:
        question = ngettext("Send to %(num)d client at %(when)s?",
                            "Send to %(num)d clients at %(when)s?", count, when=when)
        then = _("Until then you can change the time, or cancel.")
        answer = _("Yes, schedule it") if campaign.status == "draft" else _("Yes, change it")
    else:
        question = ngettext("Send to %(num)d client now?", "Send to %(num)d clients now?",
                            count)
        then = _("The first messages go out within a minute; this cannot be undone.")
        answer = _("Yes, send now")
    if when and per_recipient:
        then += " " + _("Clients whose time zone we know get it at that time of day in their "
                        "own zone; the others at %(when)s.", when=when)
    return {"question": question, "then": then, "answer": answer}


def schedule_form_from_request() -> dict:
    """The send-now-or-later form as posted: when, date, time, timezone, recipient_timezone."""
    return {"when": request.form.get("when", "now"), "date": request.form.get("date", ""),
            "time": request.form.get("time", ""),
            "timezone": request.form.get("timezone", "") or "UTC",
            "recipient_timezone": request.form.get("recipient_timezone") == "on"}


def schedule_data(form: dict) -> tuple[str | None, dict]:
    """Return (send_at as ISO 8601 or None, the launch data) of a schedule form; 422 if bad."""
    send_at = None
    if form["when"] == "later":
        send_at = schedule.local_send_at(form["date"], form["time"], form["timezone"])
        schedule.parse_send_at(send_at, clock.now())  # past or too far: say so now
    return send_at, {"send_at": send_at, "timezone": form["timezone"] if send_at else None,
                     "recipient_timezone": form["recipient_timezone"] and send_at is not None}


def launched_words(campaign: Campaign, status: str) -> str:
    """What happened once a draft was launched (a flash on the campaign page)."""
    if status == "pending_approval":
        return _("Submitted for the brand's approval.")
    if campaign.send_at:
        return _("Scheduled for %(when)s.", when=send_time_words(campaign.send_at,
                                                                  campaign.timezone))
    return _("Launched: the first messages are on their way.")


@bp.post("/partner/campaigns/<int:campaign_id>/schedule")
@require_roles(*PARTNER)
def campaign_schedule(campaign_id: int):
    """Launch with a send time, or move the time of a campaign that has not started.

    Two posts: the first checks the form and asks "Send to 184 clients at ...?", the second
    (confirm=1) launches or reschedules.
    """
    campaign = visible(lifecycle.get_campaign(campaign_id), "Campaign")
    form = schedule_form_from_request()
    try:
        send_at, data = schedule_data(form)
        if request.form.get("confirm") != "1":
            confirming = launch_confirmation(campaign, members.member_count(campaign.id),
                                             send_at, form["timezone"],
                                             data["recipient_timezone"])
            return _campaign_page(campaign, schedule_form=form, confirming=confirming)[0]
        if campaign.status == "draft":
            status = lifecycle.launch_campaign(campaign, data)
            flash(launched_words(campaign, status), "ok")
        else:
            lifecycle.update_campaign(campaign, me(), data)
            flash(_("Now scheduled for %(when)s.", when=send_time_words(
                campaign.send_at, campaign.timezone)) if campaign.send_at
                else _("It goes out as soon as possible."), "ok")
    except DomainError as err:
        if err.status == 422:
            return _campaign_page(campaign, schedule_form=form, schedule_errors=err.fields,
                                  status=422)[0], 422
        flash(err.message, "error")
    return redirect(url_for("web.campaign", campaign_id=campaign.id))


@bp.post("/partner/campaigns/<int:campaign_id>/test-send")
@require_roles(*ANY)
def campaign_test_send(campaign_id: int):
    campaign = visible(lifecycle.get_campaign(campaign_id), "Campaign")
    step = request.form.get("step", "")
    try:
        record = testsend.send_test(campaign, me(), config=current_app.config,
                                    step=int(step) if step.isdigit() else None)
    except DomainError as err:
        flash(err.message, "error")
    else:
        flash(ngettext("Test sent to %(email)s: %(num)d message, its subject starts with "
                       "[TEST]. Only you got it.",
                       "Test sent to %(email)s: %(num)d messages, their subjects start with "
                       "[TEST]. Only you got them.", len(record.steps), email=record.email),
              "ok")
    return redirect(url_for("web.campaign", campaign_id=campaign.id) + "#test-send")


@bp.post("/partner/campaigns/<int:campaign_id>/members")
@require_roles(*PARTNER)
def campaign_members(campaign_id: int):
    campaign = visible(lifecycle.get_campaign(campaign_id), "Campaign")
    if request.form.get("segment_id", "").isdigit():
        try:
            result = members.add_members_request(
                campaign, {"segment_id": int(request.form["segment_id"])})
        except DomainError as err:
            flash(err.message, "error")
            return redirect(url_for("web.campaign", campaign_id=campaign.id))
        return _campaign_page(campaign, added=result)[0]
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
    return _campaign_page(campaign, added=result)[0]


STATE_ACTIONS = {"pause": lifecycle.pause_campaign, "resume": lifecycle.resume_campaign,
                 "cancel": lifecycle.cancel_campaign,
                 "unschedule": lifecycle.unschedule_campaign}
STATE_DONE = {"unschedule": lazy_gettext("Back to draft: change what you need, then launch it "
                                         "again.")}


@bp.post("/partner/campaigns/<int:campaign_id>/"
         "<any(launch, pause, resume, cancel, unschedule):action>")
@require_roles(*PARTNER)
def campaign_action(campaign_id: int, action: str):
    campaign = visible(lifecycle.get_campaign(campaign_id), "Campaign")
    try:
        if action == "launch":
            status = lifecycle.launch_campaign(campaign)
            flash(_("Sent for brand approval. Once the brand approves it, it goes out straight "
                    "away.") if status == "pending_approval"
                  else _("Launched: the first messages are on their way."), "ok")
        else:
            STATE_ACTIONS[action](campaign)
            done = STATE_DONE.get(action) or _("Done. The campaign is now: %(status)s.",
                                                status=labels.campaign_status(campaign.status))
            flash(str(done), "ok")
    except DomainError as err:
        flash(err.message, "error")
    return redirect(url_for("web.campaign", campaign_id=campaign.id))


@bp.get("/partner/campaigns/<int:campaign_id>/preview")
@require_roles(*ANY)
def campaign_preview(campaign_id: int):
    campaign = visible(lifecycle.get_campaign(campaign_id), "Campaign")
    step = int_arg("step", 0)
    if not 0 <= step < lifecycle.step_count(campaign):
        abort(404)
    contact = None  # the sample contact
    contact_id = int_arg("contact_id")
    if contact_id:
        contact = visible_recipient(contacts_service.get_contact(contact_id),
                                    campaign.partner_id)
    partner = accounts.get_partner(campaign.partner_id)
    shown = preview_campaign(campaign, step, contact, partner, config=current_app.config)
    return preview_response(shown.html)
