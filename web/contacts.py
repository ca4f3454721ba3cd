"""Partner pages for contacts: the list (search, filters, status in words, tags) and one
contact's page (details, attributes, tags, consent with its history, messages and engagement,
delete with confirmation). The CSV import views stay in web/partner.py.
"""

from __future__ import annotations

from datetime import datetime

from flask import flash, redirect, render_template, request, url_for
from flask_babel import format_date, format_datetime

from accounts import services as accounts
from accounts.auth import PARTNER, require_roles, visible
from campaigns import audiences, erasure
from campaigns import consent as consent_service
from campaigns import contacts as contacts_service
from campaigns.models import Contact
from core.errors import DomainError, ValidationError
from core.i18n import _
from journeys import services as journeys
from tracking import analytics
from web.base import bp, me

PER_PAGE = 25
TIMELINE_PER_PAGE = 10
CONSENT_LINES = 50
BLANK_ATTRIBUTE_ROWS = 1


def _partner_id() -> int:
    return me().partner_id


def _contact(contact_id: int) -> Contact:
    return visible(contacts_service.get_contact(contact_id), "Contact")


def _page_arg(name: str) -> int:
    return min(max(1, request.args.get(name, 1, type=int) or 1), 1_000_000)


def _quick_journeys():
    return [j for j in journeys.catalog_for(accounts.get_partner(_partner_id())) if j.quick_send]


def _day(value: datetime) -> str:
    return format_date(value, "d MMM yyyy")


# --- the list -------------------------------------------------------------------------------

def _filter_form() -> dict[str, str]:
    return {k: request.args.get(k, "") for k in audiences.FORM_FIELDS}


def contacts_page(*, errors: dict | None = None, form: dict | None = None, status: int = 200):
    """Render the contacts list (also what the CSV import form re-renders with its error)."""
    partner_id = _partner_id()
    wanted = _filter_form()
    page = _page_arg("page")
    segment = None
    filter_errors: dict[str, str] = {}
    chosen: list[dict] = []
    try:
        chosen.append(audiences.form_filter(wanted))
    except DomainError as err:
        filter_errors = dict(err.fields) or {"q": err.message}
    segment_arg = request.args.get("segment", type=int)
    if segment_arg:
        try:
            segment = audiences.partner_segment(partner_id, segment_arg)
            chosen.append(segment.filter or {})
        except DomainError:
            filter_errors["segment"] = _("This segment no longer exists.")
    rows, total = audiences.find_contacts(partner_id, chosen, page, PER_PAGE)
    tag_lists = contacts_service.tags_of(c.id for c, _status in rows)
    args = {k: v for k, v in wanted.items() if v}
    if segment is not None:
        args["segment"] = segment.id
    segments, _segment_total = audiences.list_segments(partner_id, 1, 200)
    return render_template(
        "web/contacts.html", rows=rows, tag_lists=tag_lists, total=total, f=wanted,
        q=wanted["q"], tag=wanted["tag"], status_filter=wanted["status"],
        filter_errors=filter_errors, page=page, pages=max(1, -(-total // PER_PAGE)),
        filtered=bool(args), args=args, segment=segment, segments=segments,
        can_save=bool(chosen and chosen[0]) and not filter_errors,
        form_ops=audiences.FORM_OPS,
        all_tags=contacts_service.partner_tags(partner_id),
        labels=contacts_service.STATUS_LABELS, quick_journeys=_quick_journeys(),
        errors=errors or {}, form=form or {}), status


@bp.get("/partner/contacts")
@require_roles(*PARTNER)
def contacts():
    return contacts_page()[0]


def _tags_from_form(text: str) -> list[str]:
    return [t for t in (text or "").split(",") if t.strip()]


def _field_errors(err: DomainError) -> dict:
    """Fold the service's field problems into the form's fields (tags.3 -> tags)."""
    out: dict[str, str] = {}
    for key, message in (err.fields or {}).items():
        field = key.split(".", 1)[0] if key.startswith(("tags", "attributes")) else key
        if field == "attributes" and "." in key:
            message = f"{key.split('.', 1)[1]}: {message}"
        out.setdefault(field, message)
    return out or {"email": err.message}


@bp.post("/partner/contacts")
@require_roles(*PARTNER)
def contact_create():
    form = {k: request.form.get(k, "") for k in ("email", "first_name", "last_name", "tags",
                                                  "consent_note")}
    form["consent"] = request.form.get("consent") == "on"
    try:
        fields = contacts_service.clean_contact_fields(
            {"email": form["email"], "first_name": form["first_name"],
             "last_name": form["last_name"], "consent": form["consent"],
             "tags": _tags_from_form(form["tags"]),
             "consent_note": form["consent_note"]}, partial=False)
        contact = contacts_service.create_contact(_partner_id(), **fields, source="form",
                                                  user_id=me().id)
    except DomainError as err:
        return contacts_page(errors=_field_errors(err), form=form, status=err.status)
    flash(_("Contact %(email)s added.", email=contact.email), "ok")
    return redirect(url_for("web.contact", contact_id=contact.id))


# --- one contact ----------------------------------------------------------------------------

def consent_line(event: dict) -> str:
    """One consent event in words: 'Consent given by Ann Advisor on 2 Dec 2026 via the form'."""
    when = _day(datetime.fromisoformat(event["created_at"]))
    how = consent_service.SOURCE_WORDS[event["source"]]
    who = event["user_name"]
    if event["consent"] is None:
        return _("Mail stopped on %(date)s after %(how)s.", date=when, how=how)
    if event["consent"]:
        if who:
            return _("Consent given by %(who)s on %(date)s via %(how)s.", who=who, date=when,
                     how=how)
        return _("Consent given on %(date)s via %(how)s.", date=when, how=how)
    if who:
        return _("Consent withdrawn by %(who)s on %(date)s via %(how)s.", who=who, date=when,
                 how=how)
    return _("Consent withdrawn on %(date)s via %(how)s.", date=when, how=how)


def _attribute_rows(attributes: dict) -> list[dict]:
    rows = [{"key": k, "value": v} for k, v in sorted(attributes.items())]
    return rows + [{"key": "", "value": ""}] * BLANK_ATTRIBUTE_ROWS


def _contact_page(contact: Contact, *, errors: dict | None = None, form: dict | None = None,
                  consent_errors: dict | None = None, consent_form: dict | None = None,
                  status: int = 200):
    contact_status = contacts_service.contact_status(contact)
    tags = contacts_service.tags_of([contact.id])[contact.id]
    history, history_total = consent_service.consent_history(contact.id, 1, CONSENT_LINES)
    tpage = _page_arg("tpage")
    timeline = analytics.contact_timeline(contact.id, tpage, TIMELINE_PER_PAGE)
    form = form or {"email": contact.email, "first_name": contact.first_name,
                    "last_name": contact.last_name, "tags": ", ".join(tags),
                    "attributes": _attribute_rows(contact.attributes or {})}
    return render_template(
        "web/contact.html", contact=contact, status=contact_status,
        status_label=contacts_service.STATUS_LABELS[contact_status],
        status_reason=contacts_service.STATUS_REASONS[contact_status], tags=tags,
        history=[dict(e, line=consent_line(e)) for e in history], history_total=history_total,
        timeline=timeline, tpage=tpage,
        tpages=max(1, -(-timeline["total"] // TIMELINE_PER_PAGE)),
        quick_journeys=_quick_journeys() if contact_status == "mailable" else [],
        form=form, errors=errors or {}, consent_form=consent_form or {},
        consent_errors=consent_errors or {}, fmt_time=_time), status


def _time(value: str | None) -> str:
    return format_datetime(datetime.fromisoformat(value), "d MMM yyyy, HH:mm") if value else ""


@bp.get("/partner/contacts/<int:contact_id>")
@require_roles(*PARTNER)
def contact(contact_id: int):
    return _contact_page(_contact(contact_id))[0]


def _attributes_from_form() -> tuple[list[dict], dict[str, str], dict[str, str]]:
    """Return the attribute rows as typed, the attributes they give and their problems."""
    rows: dict[int, dict] = {}
    for name, value in request.form.items():
        if name.startswith("attr-") and name.count("-") == 2:
            _prefix, index, part = name.split("-")
            if index.isdigit() and part in ("key", "value"):
                rows.setdefault(int(index), {"key": "", "value": ""})[part] = value
    typed = [rows[i] for i in sorted(rows)][:contacts_service.MAX_ATTRIBUTES + 10]
    attributes: dict[str, str] = {}
    problems: dict[str, str] = {}
    for row in typed:
        key, value = row["key"].strip(), row["value"].strip()
        if not key and value:
            problems["attributes"] = _("Give the value “%(value)s” a name, or clear it.",
                                       value=value[:40])
        elif key and value:
            attributes[key] = value  # cleared values are removed
    return typed, attributes, problems


@bp.post("/partner/contacts/<int:contact_id>")
@require_roles(*PARTNER)
def contact_update(contact_id: int):
    contact = _contact(contact_id)
    form = {k: request.form.get(k, "") for k in ("email", "first_name", "last_name", "tags")}
    typed, attributes, problems = _attributes_from_form()
    form["attributes"] = typed + [{"key": "", "value": ""}]
    try:
        fields = contacts_service.clean_contact_fields(
            {"email": form["email"], "first_name": form["first_name"],
             "last_name": form["last_name"], "tags": _tags_from_form(form["tags"]),
             "attributes": attributes}, partial=True)
        if problems:
            raise ValidationError(_("Some attributes have no name."), problems)
        contacts_service.update_contact(contact, source="form", user_id=me().id, **fields)
    except DomainError as err:
        return _contact_page(contact, errors={**_field_errors(err), **problems}, form=form,
                             status=err.status)
    flash(_("Contact saved."), "ok")
    return redirect(url_for("web.contact", contact_id=contact.id))


@bp.post("/partner/contacts/<int:contact_id>/consent")
@require_roles(*PARTNER)
def contact_consent(contact_id: int):
    contact = _contact(contact_id)
    choice = request.form.get("consent", "")
    note = request.form.get("consent_note", "")
    consent_form = {"consent": choice, "consent_note": note}
    if choice not in ("yes", "no"):
        return _contact_page(contact, consent_form=consent_form, status=422, consent_errors={
            "consent": _("Choose whether they agreed to receive email.")})
    try:
        fields = contacts_service.clean_contact_fields(
            {"consent": choice == "yes", "consent_note": note}, partial=True)
        if fields["consent"] == contact.consent:
            raise ValidationError(_("Nothing changed."), {"consent": (
                _("They already agreed to receive email.") if contact.consent
                else _("They are already recorded as not agreeing."))})
        contacts_service.update_contact(contact, source="form", user_id=me().id, **fields)
    except DomainError as err:
        return _contact_page(contact, consent_form=consent_form, consent_errors=err.fields,
                             status=422)
    flash(_("Consent given and recorded.") if contact.consent
          else _("Consent withdrawn and recorded."), "ok")
    return redirect(url_for("web.contact", contact_id=contact.id) + "#consent")


@bp.get("/partner/contacts/<int:contact_id>/delete")
@require_roles(*PARTNER)
def contact_delete_confirm(contact_id: int):
    contact = _contact(contact_id)
    return render_template("web/contact_delete.html", contact=contact,
                           kept=erasure.erasure_preview(contact),
                           labels=contacts_service.STATUS_LABELS)


@bp.post("/partner/contacts/<int:contact_id>/delete")
@require_roles(*PARTNER)
def contact_delete(contact_id: int):
    contact = _contact(contact_id)
    email = contact.email
    try:
        erasure.erase_contact(contact)
    except DomainError as err:
        flash(err.message, "error")
        return redirect(url_for("web.contact", contact_id=contact_id))
    flash(_("%(email)s was deleted: their personal data is erased.", email=email), "ok")
    return redirect(url_for("web.contacts"))


# --- segments: saved filters ----------------------------------------------------------------

@bp.post("/partner/segments")
@require_roles(*PARTNER)
def segment_create():
    wanted = {k: request.form.get(k, "") for k in audiences.FORM_FIELDS}
    back = {k: v for k, v in wanted.items() if v}
    try:
        fields = audiences.clean_segment({"name": request.form.get("name", ""),
                                          "filter": audiences.form_filter(wanted)},
                                         partial=False)
        segment = audiences.create_segment(_partner_id(), me().id, **fields)
    except DomainError as err:
        problem = next(iter(err.fields.values()), err.message) if err.fields else err.message
        flash(_("The segment was not saved: %(why)s", why=problem), "error")
        return redirect(url_for("web.contacts", **back) + "#save-segment")
    flash(_("Segment “%(name)s” saved.", name=segment.name), "ok")
    return redirect(url_for("web.contacts", segment=segment.id))


@bp.post("/partner/segments/<int:segment_id>/delete")
@require_roles(*PARTNER)
def segment_delete(segment_id: int):
    segment = visible(audiences.get_segment(segment_id), "Segment")
    name = segment.name
    audiences.delete_segment(segment)
    flash(_("Segment “%(name)s” deleted. Campaigns keep the people it added.", name=name),
          "ok")
    return redirect(url_for("web.contacts") + "#segments")
