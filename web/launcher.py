"""The launcher: from a showroom journey to a launch in four steps, each one resumable.

Campaign → Audience → Personalize → Preview & Send. "Use this journey" creates a draft
campaign; every step saves into it as the partner goes (Back and Next keep what was entered)
and records how far they got (`lifecycle.record_launch_step`), so reopening a draft lands on
its next unfinished step. The views parse the form, call one service and render; the rules
live in campaigns/ (lifecycle, members, schedule, testsend, launch_checks).

Everything works as plain forms without JavaScript; static/app.js adds the live checks and
preview, and the rich-text editor (Quill, vendored) over the textarea it fills.
"""

from __future__ import annotations

import csv
import io

from babel.dates import format_date
from flask import Response, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import get_locale

from accounts import services as accounts
from accounts.auth import PARTNER, require_roles, visible
from campaigns import contacts as contacts_service
from campaigns import launch_checks, lifecycle, members, schedule, testsend, values
from campaigns.models import Campaign
from campaigns.states import EDITABLE
from core import clock
from core.errors import DomainError, ValidationError
from core.i18n import _, lazy_gettext, ngettext
from core.validate import MAX_PAGE, int_arg, is_db_id
from journeys import services as journeys
from personalization.slots import removed_markup
from web import labels
from web.base import bp, me, preview_problems
from web.partner import (
    launch_confirmation,
    launched_words,
    preview_target,
    schedule_data,
    schedule_form_from_request,
    send_time_words,
    unsaved_preview,
)

STEPS = ("campaign", "audience", "personalize", "send")
STEP_NAMES = {"campaign": lazy_gettext("Campaign"), "audience": lazy_gettext("Audience"),
              "personalize": lazy_gettext("Personalize"),
              "send": lazy_gettext("Preview & Send")}
PER_PAGE = 25
RECIPIENTS_PER_PAGE = 20
LEFT_OUT_SHOWN = 20
LEFT_OUT_CSV = 100_000
SEARCH_MAX = 320


def _partner():
    return accounts.get_partner(me().partner_id)


def _draft(campaign_id: int) -> Campaign | Response:
    """The partner's own draft (or rejected) journey campaign; anything else goes to its page."""
    campaign = visible(lifecycle.get_campaign(campaign_id), "Campaign")
    if campaign.kind != "journey" or campaign.status not in EDITABLE:
        return redirect(url_for("web.campaign", campaign_id=campaign.id))
    return campaign


def _step_url(campaign: Campaign, step: str, **args) -> str:
    return url_for("web.launch_step", campaign_id=campaign.id, step=step, **args)


def _progress(campaign: Campaign, current: str) -> list[dict]:
    """The progress header: each step's name, whether done or current, and a link if reachable."""
    done = campaign.launch_steps_done or 0
    rows = []
    for index, key in enumerate(STEPS):
        rows.append({"key": key, "number": index + 1, "name": STEP_NAMES[key],
                     "current": key == current, "done": index < done,
                     "url": _step_url(campaign, key) if index <= done else None})
    return rows


def _versions(campaign: Campaign) -> list:
    return values.campaign_versions(campaign)


def _render(campaign: Campaign, step: str, status: int = 200, **context):
    journey = journeys.get_journey(campaign.journey_id)
    return render_template(f"web/launch_{step}.html", campaign=campaign, journey=journey,
                           step=step, progress=_progress(campaign, step),
                           step_number=STEPS.index(step) + 1, chosen=members.member_count(
                               campaign.id), **context), status


# --- start and resume -------------------------------------------------------------------------

@bp.route("/partner/journeys/<int:journey_id>/launch", methods=["GET", "POST"])
@require_roles(*PARTNER)
def launch_start(journey_id: int):
    """"Use this journey": create a draft campaign with sensible defaults, open step 1."""
    partner = _partner()
    journey = journeys.catalog_journey(journey_id, partner)
    if request.method == "GET":  # creating a campaign takes a POST (the showroom's button)
        return redirect(url_for("web.partner_home") + f"#journey-{journey.id}")
    name = _("%(journey)s, %(date)s", journey=journey.name,
             date=format_date(clock.now(), "d MMM y", locale=get_locale()))
    campaign = lifecycle.create_campaign(partner, me(), {"journey_id": journey.id,
                                                         "name": name[:200]})
    return redirect(_step_url(campaign, "campaign"))


@bp.get("/partner/campaigns/<int:campaign_id>/launch")
@require_roles(*PARTNER)
def launch_resume(campaign_id: int):
    """Reopen a draft at its next unfinished step."""
    campaign = _draft(campaign_id)
    if not isinstance(campaign, Campaign):
        return campaign
    return redirect(_step_url(campaign, STEPS[min(campaign.launch_steps_done or 0,
                                                  len(STEPS) - 1)]))


@bp.route("/partner/campaigns/<int:campaign_id>/launch/<any(campaign, audience, personalize, "
          "send):step>", methods=["GET", "POST"])
@require_roles(*PARTNER)
def launch_step(campaign_id: int, step: str):
    campaign = _draft(campaign_id)
    if not isinstance(campaign, Campaign):
        return campaign
    if STEPS.index(step) > (campaign.launch_steps_done or 0):
        # A step not reached yet: the next unfinished one instead (its own checks apply).
        return redirect(url_for("web.launch_resume", campaign_id=campaign.id))
    view = {"campaign": _campaign_step, "audience": _audience_step,
            "personalize": _personalize_step, "send": _send_step}[step]
    return view(campaign)


def _advance(campaign: Campaign, step: str):
    """After a step's form was saved: Back, Next (recording the step as done) or stay."""
    action = request.form.get("action", "next")
    index = STEPS.index(step)
    if action == "back" and index > 0:
        return redirect(_step_url(campaign, STEPS[index - 1]))
    if action == "next" and index + 1 < len(STEPS):
        lifecycle.record_launch_step(campaign, index + 1)
        return redirect(_step_url(campaign, STEPS[index + 1]))
    return redirect(_step_url(campaign, step))


# --- 1. campaign ------------------------------------------------------------------------------

def _campaign_step(campaign: Campaign):
    partner = _partner()
    form = {"name": campaign.name, "sender_name": campaign.sender_name,
            "reply_to": campaign.sender_reply_to}
    if request.method == "POST":
        form = {key: request.form.get(key, "") for key in form}
        try:
            lifecycle.update_campaign(campaign, me(), {
                "name": form["name"],
                "sender": {"name": form["sender_name"], "reply_to": form["reply_to"]}})
        except DomainError as err:
            errors = err.fields or {"name": err.message}
            return _render(campaign, "campaign", err.status, form=form, errors=errors,
                           error_lines=labels.field_errors_in_words(errors), partner=partner)
        return _advance(campaign, "campaign")
    return _render(campaign, "campaign", form=form, errors={}, error_lines=[],
                   partner=partner)


# --- 2. audience ------------------------------------------------------------------------------

def _filters(source) -> dict:
    """The audience filter as asked: search text, one tag, one status; 422 if unusable."""
    q = source.get("q", "")[:SEARCH_MAX]
    tag = source.get("tag", "")
    status = source.get("status", "")
    if status and status not in contacts_service.CONTACT_STATUSES:
        raise ValidationError(_("The status filter is invalid."),
                              {"status": _("choose a status from the list")})
    return {"q": q, "tag": tag, "tags": contacts_service.clean_tag_filter([tag] if tag else []),
            "status": status or None}


def _filter_args(filters: dict) -> dict:
    return {k: v for k, v in (("q", filters["q"]), ("tag", filters["tag"]),
                              ("status", filters["status"] or "")) if v}


def _added_words(result: dict) -> str:
    """"Added 180 clients. Left out 4: unsubscribed (2), ..." from an add's result."""
    words = ngettext("Added %(num)d client.", "Added %(num)d clients.", result["added"])
    reasons: dict[str, int] = {}
    if "exclusions" in result:  # a whole audience: counts per reason cover everyone left out
        for row in result["exclusions"]:
            reason = labels.exclusion_reason(row["reason"])
            reasons[reason] = reasons.get(reason, 0) + row["count"]
    else:
        for row in result["excluded"]:
            reason = labels.exclusion_reason(row["reason"])
            reasons[reason] = reasons.get(reason, 0) + 1
    if reasons:
        words += " " + _("Left out %(num)d: %(reasons)s.", num=sum(reasons.values()),
                         reasons=", ".join(f"{reason.lower()} ({n})"
                                           for reason, n in reasons.items()))
    return words


def _audience_step(campaign: Campaign):
    partner = _partner()
    source = request.form if request.method == "POST" else request.args
    page = int_arg("page", 1, minimum=1, maximum=MAX_PAGE) if request.method == "GET" else 1
    problem, status = "", 200
    try:
        filters = _filters(source)
    except DomainError as err:
        filters = {"q": "", "tag": "", "tags": [], "status": None}
        problem, status = "; ".join(labels.field_errors_in_words(err.fields)), err.status
    if request.method == "POST" and not problem:
        action = request.form.get("action", "next")
        ticked = [int(v) for v in request.form.getlist("contact_ids") if v.isdigit()]
        try:
            if action == "add_all":
                flash(_added_words(members.add_matching(
                    campaign, filters["q"], tags=filters["tags"], status=filters["status"])),
                    "ok")
            elif action.startswith("remove:") and action[7:].isdigit():
                members.remove_member(campaign, int(action[7:]))
                flash(_("Removed from this campaign."), "ok")
            elif ticked:
                flash(_added_words(members.add_members(campaign, ticked[:members.
                                                                        MAX_MEMBERS_PER_CALL])),
                      "ok")
            if action == "next" and members.member_count(campaign.id) == 0:
                problem, status = _("Choose at least one client: nobody would get this "
                                    "campaign. Tick clients below, or add all who match "
                                    "your search."), 422
            elif action in ("next", "back"):
                return _advance(campaign, "audience")
            else:
                return redirect(_step_url(campaign, "audience", **_filter_args(filters)))
        except DomainError as err:
            problem, status = err.message, err.status
    rows, total = contacts_service.search_contacts(
        partner.id, filters["q"], tags=filters["tags"], status=filters["status"], page=page,
        per_page=PER_PAGE)
    left_out, left_rows = members.unmailable_matching(
        partner.id, filters["q"], tags=filters["tags"], status=filters["status"],
        limit=LEFT_OUT_SHOWN)
    return _render(
        campaign, "audience", status, rows=rows, total=total, page=page,
        pages=max(1, -(-total // PER_PAGE)), filters=filters, args=_filter_args(filters),
        chosen_ids=members.member_ids_among(campaign.id, [c.id for c, _s in rows]),
        tags=contacts_service.partner_tags(partner.id),
        statuses=contacts_service.CONTACT_STATUSES,
        status_labels=contacts_service.STATUS_LABELS, left_out=left_out,
        left_out_total=sum(left_out.values()), left_rows=left_rows, problem=problem)


@bp.get("/partner/campaigns/<int:campaign_id>/launch/audience/left-out.csv")
@require_roles(*PARTNER)
def launch_left_out_csv(campaign_id: int):
    """The contacts matching the audience filter who cannot be emailed, and why (CSV)."""
    campaign = visible(lifecycle.get_campaign(campaign_id), "Campaign")
    filters = _filters(request.args)
    _counts, rows = members.unmailable_matching(
        campaign.partner_id, filters["q"], tags=filters["tags"], status=filters["status"],
        limit=LEFT_OUT_CSV)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([_("Email"), _("First name"), _("Last name"), _("Why they are left out")])
    for contact, status in rows:
        writer.writerow([contact.email, contact.first_name, contact.last_name,
                         labels.exclusion_reason(status)])
    return Response(out.getvalue(), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="campaign-{campaign.id}-left-out.csv"'})


# --- 3. personalize ---------------------------------------------------------------------------

def _values_from_form(versions: list) -> dict[str, dict[str, str]]:
    return {str(i): {slot["name"]: request.form.get(f"v-{i}-{slot['name']}", "")
                     for slot in version.slots} for i, version in enumerate(versions)}


def _removed_words(found: list[tuple[str, str, int]]) -> str:
    """"We removed a script and an onclick attribute." from personalization.slots.removed_markup."""
    parts = []
    for kind, name, count in found:
        vowel = name[:1].lower() in "aeiou"
        if kind == "element" and name == "script":
            parts.append(ngettext("a script", "%(num)d scripts", count))
        elif kind == "element" and name == "style":
            parts.append(ngettext("a style block", "%(num)d style blocks", count))
        elif kind == "element":
            parts.append(ngettext("an “%(name)s” element", "%(num)d “%(name)s” elements",
                                  count, name=name) if vowel else
                         ngettext("a “%(name)s” element", "%(num)d “%(name)s” elements",
                                  count, name=name))
        elif kind == "attribute":
            parts.append(ngettext("an %(name)s attribute", "%(num)d %(name)s attributes",
                                  count, name=name) if vowel else
                         ngettext("a %(name)s attribute", "%(num)d %(name)s attributes",
                                  count, name=name))
        elif kind == "link":
            parts.append(ngettext("a “%(name)s:” link", "%(num)d “%(name)s:” links", count,
                                  name=name))
        else:
            parts.append(ngettext("a comment", "%(num)d comments", count))
    listed = parts[0] if len(parts) == 1 else _("%(first)s and %(last)s",
                                                 first=", ".join(parts[:-1]), last=parts[-1])
    return _("We removed %(what)s: the brand allows only bold, italic, lists and links.",
             what=listed)


def _personalize_step(campaign: Campaign):
    versions = _versions(campaign)
    slot_values = campaign.slot_values
    errors: dict = {}
    removed: dict[str, str] = {}
    status = 200
    if request.method == "POST":
        slot_values = _values_from_form(versions)
        for i, version in enumerate(versions):
            for slot in version.slots:
                found = removed_markup(slot_values[str(i)][slot["name"]]) \
                    if slot["type"] == "richtext" else []
                if found:
                    removed[f"steps.{i}.{slot['name']}"] = _removed_words(found)
        try:
            lifecycle.update_campaign(campaign, me(), {"slot_values": slot_values})
        except DomainError as err:
            errors, status, removed = err.fields or {"slot_values": err.message}, err.status, {}
        else:
            if not removed:
                return _advance(campaign, "personalize")
            slot_values = campaign.slot_values  # as kept: the page shows what was removed
    journey = journeys.get_journey(campaign.journey_id)
    return _render(
        campaign, "personalize", status, versions=versions, values=slot_values,
        journey_steps=journey.steps, errors=errors, removed=removed,
        error_lines=labels.field_errors_in_words(errors, versions),
        preview_contacts=members.list_members(campaign.id, "", 1, 50)[0])


@bp.post("/partner/campaigns/<int:campaign_id>/launch/preview")
@require_roles(*PARTNER)
def launch_preview(campaign_id: int):
    """Render one step for one member from the unsaved values, as the worker would send it."""
    campaign = visible(lifecycle.get_campaign(campaign_id), "Campaign")
    partner = _partner()
    versions = _versions(campaign)
    step_index, contact = preview_target(partner, len(versions))
    try:
        slot_values = values.clean_campaign_values(_values_from_form(versions), versions)
    except DomainError as err:
        return preview_problems(_("Fix these values to see the preview:"), {
            labels.field_label(k, versions): v for k, v in (err.fields or {}).items()})
    return unsaved_preview(Campaign(partner_id=partner.id, journey_id=campaign.journey_id,
                                    kind=campaign.kind, slot_values=slot_values,
                                    sender_name=campaign.sender_name,
                                    sender_reply_to=campaign.sender_reply_to),
                           step_index, contact, partner)


@bp.post("/partner/campaigns/<int:campaign_id>/launch/validate")
@require_roles(*PARTNER)
def launch_validate(campaign_id: int):
    """Check slot values as the partner types: the rules saving applies."""
    campaign = visible(lifecycle.get_campaign(campaign_id), "Campaign")
    versions = _versions(campaign)
    try:
        values.clean_campaign_values(_values_from_form(versions), versions)
    except DomainError as err:
        return jsonify({"ok": False, "fields": err.fields})
    return jsonify({"ok": True, "fields": {}})


# --- 4. preview & send ------------------------------------------------------------------------

def _flags(campaign: Campaign, partner) -> list[str]:
    """What the partner should know about the recipients, in words."""
    counts = launch_checks.recipient_flags(campaign)
    lines = []
    if counts.get("no_first_name"):
        greeting = launch_checks.unnamed_greeting(campaign, partner, current_app.config)
        n = counts["no_first_name"]
        lines.append(ngettext("%(num)d recipient has no first name: they will see “%(line)s”.",
                              "%(num)d recipients have no first name: they will see "
                              "“%(line)s”.", n, line=greeting) if greeting else
                     ngettext("%(num)d recipient has no first name.",
                              "%(num)d recipients have no first name.", n))
    if counts.get("cannot_email"):
        lines.append(ngettext(
            "%(num)d recipient can no longer be emailed (unsubscribed, bounced or no consent "
            "since you chose them): they will be skipped.",
            "%(num)d recipients can no longer be emailed (unsubscribed, bounced or no consent "
            "since you chose them): they will be skipped.", counts["cannot_email"]))
    if counts.get("no_timezone"):
        lines.append(ngettext(
            "%(num)d recipient has no time zone of their own: they get it at the time you "
            "choose, in your time zone.",
            "%(num)d recipients have no time zone of their own: they get it at the time you "
            "choose, in your time zone.", counts["no_timezone"]))
    return lines


def _schedule_defaults(campaign: Campaign) -> dict:
    if campaign.send_at is None:
        return {"when": "now", "date": "", "time": "09:00", "timezone": campaign.timezone or "",
                "recipient_timezone": campaign.recipient_timezone}
    local = schedule.to_local(campaign.send_at, campaign.timezone)
    return {"when": "later", "date": local.date().isoformat(),
            "time": local.strftime("%H:%M"), "timezone": campaign.timezone or "UTC",
            "recipient_timezone": campaign.recipient_timezone}


def _send_page(campaign: Campaign, *, form: dict | None = None, errors: dict | None = None,
               confirming: dict | None = None, status: int = 200):
    partner = _partner()
    q = request.args.get("q", "")[:SEARCH_MAX]
    page = int_arg("page", 1, minimum=1, maximum=MAX_PAGE)
    rows, total = members.list_members(campaign.id, q, page, RECIPIENTS_PER_PAGE)
    shown_id = int_arg("contact_id") or (rows[0][0].id if rows else None)
    steps = lifecycle.step_count(campaign)
    shown_step = int_arg("email", 0, minimum=0, maximum=steps - 1)
    last_test = testsend.last_test(campaign)
    return _render(
        campaign, "send", status, rows=rows, total=total, q=q, page=page,
        pages=max(1, -(-total // RECIPIENTS_PER_PAGE)), shown_id=shown_id,
        shown_step=shown_step, own_words=_override_fields(campaign, shown_id, shown_step)
        if any(c.id == shown_id for c, _s in rows) else [],
        steps=steps, flags=_flags(campaign, partner),
        locks=launch_checks.lock_status(campaign, partner, current_app.config),
        form=form or _schedule_defaults(campaign), errors=errors or {},
        error_lines=labels.field_errors_in_words(errors), confirming=confirming,
        zones=schedule.sorted_zones(), last_test=last_test,
        last_test_when=send_time_words(last_test.created_at, campaign.timezone)
        if last_test else None, test_limit=testsend.LIMIT_PER_HOUR)


def _send_step(campaign: Campaign):
    if request.method == "GET":
        return _send_page(campaign)
    if request.form.get("action") == "back":
        return redirect(_step_url(campaign, "personalize"))
    form = schedule_form_from_request()
    count = members.member_count(campaign.id)
    try:
        if count == 0:
            raise ValidationError(_("Nobody would get it."), {"members": _(
                "no client is chosen: go back to Audience and choose at least one")})
        send_at, data = schedule_data(form)
        if request.form.get("confirm") != "1":
            return _send_page(campaign, form=form, confirming=launch_confirmation(
                campaign, count, send_at, form["timezone"], data["recipient_timezone"]))
        status = lifecycle.launch_campaign(campaign, data)
    except DomainError as err:
        return _send_page(campaign, form=form, errors=err.fields or {"status": err.message},
                          status=err.status if err.status >= 400 else 422)
    flash(launched_words(campaign, status), "ok")
    return redirect(url_for("web.campaign", campaign_id=campaign.id))


# Slot kinds a partner may change for one client (links and images stay the campaign's).
OVERRIDABLE = ("text", "richtext")


def _override_fields(campaign: Campaign, contact_id: int | None, step: int) -> list[dict]:
    """The shown email's changeable slots with the value this client gets now."""
    versions = values.campaign_versions(campaign)
    if contact_id is None or not 0 <= step < len(versions):
        return []
    own = members.member_overrides(campaign.id, contact_id).get(str(step), {})
    shared = (campaign.slot_values or {}).get(str(step), {})
    return [{"name": slot["name"], "label": slot.get("label") or slot["name"],
             "type": slot["type"], "max_length": slot.get("max_length"),
             "value": own.get(slot["name"], shared.get(slot["name"], slot.get("default", ""))),
             "own": slot["name"] in own}
            for slot in versions[step].slots if slot["type"] in OVERRIDABLE]


@bp.post("/partner/campaigns/<int:campaign_id>/launch/override")
@require_roles(*PARTNER)
def launch_override(campaign_id: int):
    """Save (or drop) one client's own words for one email of the campaign."""
    campaign = visible(lifecycle.get_campaign(campaign_id), "Campaign")
    raw_id, raw_step = request.form.get("contact_id", ""), request.form.get("step", "0")
    if not (raw_id.isdigit() and is_db_id(int(raw_id)) and raw_step.isdigit()
            and len(raw_step) < 4):
        raise ValidationError(_("Choose a client and an email."), {
            "contact_id": _("must be one of the campaign's clients")})
    step = int(raw_step)
    contact = visible(contacts_service.get_contact(int(raw_id)), "Contact")
    stored = members.member_overrides(campaign.id, contact.id)
    if request.form.get("action") == "reset":
        stored.pop(str(step), None)
    else:
        shared = (campaign.slot_values or {}).get(str(step), {})
        changed = {f["name"]: request.form.get(f"o-{f['name']}", "")
                   for f in _override_fields(campaign, contact.id, step)}
        stored[str(step)] = {name: value for name, value in changed.items()
                             if value != shared.get(name)}
        if not stored[str(step)]:
            stored.pop(str(step))
    back = _step_url(campaign, "send", contact_id=contact.id, email=step) + "#shown"
    try:
        members.set_member_overrides(campaign, contact.id, stored)
    except DomainError as err:
        flash(_("Not saved: %(why)s", why="; ".join(
            labels.field_errors_in_words(err.fields) or [err.message])), "error")
        return redirect(back)
    name = " ".join(p for p in (contact.first_name, contact.last_name) if p) or contact.email
    flash(_("Saved: %(name)s gets their own words in this email.", name=name)
          if str(step) in stored else
          _("%(name)s gets the campaign's words again.", name=name), "ok")
    return redirect(back)


@bp.post("/partner/campaigns/<int:campaign_id>/launch/test-send")
@require_roles(*PARTNER)
def launch_test_send(campaign_id: int):
    """Send me a test from the last step: to the signed-in user only, marked [TEST]."""
    campaign = visible(lifecycle.get_campaign(campaign_id), "Campaign")
    step = request.form.get("step", "")
    contact_id = request.form.get("contact_id", "")
    contact = visible(contacts_service.get_contact(int(contact_id)), "Contact") \
        if contact_id.isdigit() else None
    try:
        record = testsend.send_test(campaign, me(), config=current_app.config,
                                    step=int(step) if step.isdigit() else None, contact=contact)
    except DomainError as err:
        flash(err.message, "error")
    else:
        flash(ngettext("Test sent to %(email)s: %(num)d message, its subject starts with "
                       "[TEST]. Only you got it.",
                       "Test sent to %(email)s: %(num)d messages, their subjects start with "
                       "[TEST]. Only you got them.", len(record.steps), email=record.email),
              "ok")
    return redirect(_step_url(campaign, "send") + "#test-send")
