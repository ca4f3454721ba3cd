"""Quick send pages: one email to one or a few clients, on one page in four clear steps.

1. who (the chosen contacts; those who cannot be emailed are shown with the reason, never sent)
2. choose the email (quick-send journeys as cards with a thumbnail)
3. personalize (the slot form, counters and as-you-type errors in words)
4. preview exactly as it will be sent (switchable between recipients) and confirm: send now,
   send later, or submit for brand approval when the journey requires it.

Everything works as plain forms without JavaScript; static/app.js only adds the live checks.
"""

from __future__ import annotations

from flask import abort, current_app, flash, jsonify, redirect, render_template, request, url_for

from accounts import services as accounts
from accounts.auth import PARTNER, require_roles, visible_recipient
from campaigns import contacts as contacts_service
from campaigns import lifecycle, schedule, values
from campaigns.models import Campaign
from campaigns.sending import preview_campaign
from core import clock
from core.errors import DomainError
from core.i18n import _, ngettext
from journeys import services as journeys
from web import labels
from web.base import bp, me, preview_problems, preview_response
from web.partner import send_time_words

MAX_RECIPIENTS = 50


def _partner():
    return accounts.get_partner(me().partner_id)


def _contact_ids(source) -> list[int]:
    """The chosen contact ids, in order, once each (bad ids are ignored: they name nobody)."""
    ids: list[int] = []
    for raw in source.getlist("contact_ids")[:MAX_RECIPIENTS + 1]:
        if raw.isdigit() and int(raw) not in ids:
            ids.append(int(raw))
    return ids


def _recipients(partner_id: int, ids: list[int]) -> list[dict]:
    """Each chosen contact with its status in words; another partner's contact answers 404."""
    statuses = contacts_service.statuses_of(ids)
    rows = []
    for contact_id in ids:
        contact = visible_recipient(contacts_service.get_contact(contact_id), partner_id)
        status = statuses.get(contact.id, "mailable")
        rows.append({"contact": contact, "status": status, "mailable": status == "mailable",
                     "label": contacts_service.STATUS_LABELS.get(status, status),
                     "reason": contacts_service.STATUS_REASONS.get(status, ""),
                     "name": _person(contact)})
    return rows


def _person(contact) -> str:
    name = f"{contact.first_name or ''} {contact.last_name or ''}".strip()
    return name or contact.email


def _versions(journey) -> list:
    return values.journey_versions(journey)[:1]


def _slot_values(versions, source=None) -> dict[str, dict[str, str]]:
    slots = versions[0].slots if versions else []
    if source is None:
        return {"0": {s["name"]: s.get("default", "") for s in slots}}
    return {"0": {s["name"]: source.get(f"v-0-{s['name']}", "") for s in slots}}


def _journey(partner, raw: str | None):
    if not raw or not raw.isdigit():
        return None
    journey = journeys.catalog_journey(int(raw), partner)
    if not journey.quick_send:
        abort(404)
    return journey


def _who(mailable: list[dict]) -> str:
    if len(mailable) == 1:
        return mailable[0]["name"]
    return ngettext("%(num)d client", "%(num)d clients", len(mailable))


def _when_words(send_at, zone: str) -> str:
    return send_time_words(send_at, zone)


def _page(partner, ids, recipients, journey, *, stage: str, slot_values=None, errors=None,
          when=None, when_errors=None, problem: str = "", status: int = 200):
    versions = _versions(journey) if journey else []
    mailable = [r for r in recipients if r["mailable"]]
    slot_values = slot_values or (_slot_values(versions) if journey else {})
    preview_urls = []
    if journey and stage == "confirm":
        params = {f"v-0-{k}": v for k, v in slot_values.get("0", {}).items()}
        preview_urls = [{"name": r["name"], "url": url_for(
            "web.quick_send_preview", journey_id=journey.id, contact_id=r["contact"].id,
            **params)} for r in mailable]
    when = when or {"when": "now", "date": "", "time": "09:00", "timezone": ""}
    return render_template(
        "web/quick_send.html", partner=partner, ids=ids, recipients=recipients,
        mailable=mailable, who=_who(mailable) if mailable else "",
        journeys=[j for j in journeys.catalog_for(partner) if j.quick_send],
        journey=journey, versions=versions, stage=stage, values=slot_values,
        errors=errors or {}, error_lines=labels.field_errors_in_words(errors, versions),
        preview_urls=preview_urls, when=when, when_errors=when_errors or {},
        when_lines=labels.field_errors_in_words(when_errors),
        zones=schedule.sorted_zones(), problem=problem,
        back=request.values.get("back", ""),
    ), status


@bp.route("/partner/quick-send", methods=["GET", "POST"])
@require_roles(*PARTNER)
def quick_send_flow():
    """The whole quick send on one page; each button posts the form to the next step."""
    partner = _partner()
    source = request.form if request.method == "POST" else request.args
    ids = _contact_ids(source)
    if len(ids) > MAX_RECIPIENTS:
        flash(_("A quick send goes to at most %(num)d clients; for more, create a campaign.",
                num=MAX_RECIPIENTS), "error")
        return redirect(url_for("web.contacts"))
    recipients = _recipients(partner.id, ids)
    journey = _journey(partner, source.get("journey_id"))
    if request.method == "GET" or journey is None:
        return _page(partner, ids, recipients, journey,
                     stage="personalize" if journey else "choose")[0]
    versions = _versions(journey)
    raw = _slot_values(versions, request.form)
    try:
        cleaned = values.clean_campaign_values(raw, versions)
    except DomainError as err:
        return _page(partner, ids, recipients, journey, stage="personalize", slot_values=raw,
                     errors=err.fields, status=422)
    action = request.form.get("action", "preview")
    when = {"when": request.form.get("when", "now"), "date": request.form.get("date", ""),
            "time": request.form.get("time", ""),
            "timezone": request.form.get("timezone", "") or "UTC"}
    if action != "send":
        return _page(partner, ids, recipients, journey, stage="confirm", slot_values=cleaned)
    refused = [r for r in recipients if not r["mailable"]]
    if refused or not recipients:
        problem = _("Nothing was sent: choose at least one client.") if not recipients else \
            _("Nothing was sent. %(who)s cannot be emailed: %(why)s",
              who=", ".join(r["name"] for r in refused),
              why="; ".join(str(r["label"]).lower() for r in refused))
        return _page(partner, ids, recipients, journey, stage="confirm", slot_values=cleaned,
                     when=when, problem=problem, status=422)
    data = {"journey_id": journey.id, "contact_ids": ids, "slot_values": cleaned,
            "name": _("Quick send: %(journey)s to %(who)s", journey=journey.name,
                      who=_who(recipients))[:200]}
    try:
        if when["when"] == "later":
            data["send_at"] = schedule.local_send_at(when["date"], when["time"],
                                                     when["timezone"])
            data["timezone"] = when["timezone"]
            schedule.parse_send_at(data["send_at"], clock.now())
        campaign, _result = lifecycle.quick_send(partner, me(), data)
    except DomainError as err:
        if err.status == 422 and set(err.fields or {}) & {"date", "time", "timezone",
                                                          "send_at"}:
            return _page(partner, ids, recipients, journey, stage="confirm",
                         slot_values=cleaned, when=when, when_errors=err.fields, status=422)
        return _page(partner, ids, recipients, journey, stage="confirm", slot_values=cleaned,
                     when=when, problem=_("Nothing was sent: %(why)s", why=err.message),
                     status=err.status)
    flash(_sent_words(campaign, journey, recipients), "ok")
    return redirect(url_for("web.campaign", campaign_id=campaign.id))


def _sent_words(campaign: Campaign, journey, recipients: list[dict]) -> str:
    """What happened and what happens next, after the partner confirmed."""
    who = _who(recipients)
    when = _when_words(campaign.send_at, campaign.timezone) if campaign.send_at else None
    if campaign.status == "pending_approval":
        then = _("Once the brand approves it, it goes to %(who)s at %(when)s (or straight away "
                 "if the approval comes later).", who=who, when=when) if when else \
            _("Once the brand approves it, it goes to %(who)s straight away.", who=who)
        return _("Submitted “%(journey)s” for brand approval.", journey=journey.name) + " " + \
            then + " " + _("This page shows when it is approved.")
    if when:
        return _("“%(journey)s” is scheduled for %(who)s at %(when)s. Until then you can change "
                 "the time or cancel it here.", journey=journey.name, who=who, when=when)
    return _("“%(journey)s” is on its way to %(who)s: it goes out within a minute. Opens and "
             "clicks appear on this page.", journey=journey.name, who=who)


@bp.post("/partner/quick-send/<int:journey_id>/validate")
@require_roles(*PARTNER)
def quick_send_validate(journey_id: int):
    """Check the slot values as the partner types: the rules the send applies."""
    journey = _journey(_partner(), str(journey_id))
    versions = _versions(journey)
    try:
        values.clean_campaign_values(_slot_values(versions, request.form), versions)
    except DomainError as err:
        return jsonify({"ok": False, "fields": err.fields})
    return jsonify({"ok": True, "fields": {}})


@bp.get("/partner/quick-send/<int:journey_id>/preview")
@require_roles(*PARTNER)
def quick_send_preview(journey_id: int):
    """The email exactly as one chosen recipient will get it, from values in the query."""
    partner = _partner()
    journey = _journey(partner, str(journey_id))
    versions = _versions(journey)
    contact = None  # the sample contact
    contact_id = request.args.get("contact_id", "")
    if contact_id.isdigit():
        contact = visible_recipient(contacts_service.get_contact(int(contact_id)), partner.id)
    try:
        slot_values = values.clean_campaign_values(_slot_values(versions, request.args),
                                                   versions)
        sender_name, reply_to = values.clean_sender(None, partner, me())
    except DomainError as err:
        return preview_problems(_("Fix these values to see the preview:"), {
            labels.field_label(k, versions): v for k, v in (err.fields or {}).items()})
    draft = Campaign(partner_id=partner.id, journey_id=journey.id, kind="quick_send",
                     slot_values=slot_values, sender_name=sender_name, sender_reply_to=reply_to)
    shown = preview_campaign(draft, 0, contact, partner, config=current_app.config,
                             overrides={})
    return preview_response(shown.html)
