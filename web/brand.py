"""Brand marketer pages: template editor with live preview, journey builder, approvals."""

from __future__ import annotations

from flask import current_app, flash, redirect, render_template, request, url_for

from accounts import lists
from accounts import profile as profiles
from accounts.auth import BRAND, require_roles, visible
from accounts.services import get_partner
from campaigns import compliance, lifecycle, versions
from core.errors import DomainError, StateError
from core.i18n import _, ngettext
from core.i18n import lazy_gettext as _l
from core.validate import int_arg
from journeys import services as journeys
from personalization.preview import preview_source, preview_version, sample_inputs
from web import forms
from web.base import bp, me, preview_problems, preview_response, safe_next

STARTER_MJML = """<mjml>
  <mj-body background-color="#f4f4f7">
    <mj-section background-color="#ffffff">
      <mj-column>
        <mj-text font-size="22px" font-weight="bold">{{ slots.headline }}</mj-text>
        <mj-text>Hello {{ contact.first_name }},</mj-text>
        <mj-text>{{ slots.body }}</mj-text>
        <mj-button href="https://www.example.com/">Learn more</mj-button>
        <mj-text font-size="12px" color="#666666">{{ partner.name }} · {{ sender.name }}</mj-text>
      </mj-column>
    </mj-section>
  </mj-body>
</mjml>
"""
STARTER_SLOTS = [
    {"name": "headline", "type": "text", "label": "Headline", "default": "Hello from us",
     "max_length": 60},
    {"name": "body", "type": "text", "label": "Message", "default": "We have news for you.",
     "max_length": 400},
]


def _source_from_form() -> dict:
    return {"name": request.form.get("name", ""), "subject": request.form.get("subject", ""),
            "preheader": request.form.get("preheader", ""),
            "mjml": request.form.get("mjml", "").replace("\r\n", "\n"),
            "slots": forms.slots_from_form(request.form)}


def _editor(source: dict, *, template=None, errors: dict | None = None, status: int = 200):
    errors = errors or {}
    slots = source["slots"] if isinstance(source["slots"], list) else []
    declared = frozenset(s.get("name", "") for s in slots if isinstance(s, dict))
    mjml_errors = forms.mjml_errors(errors, source["mjml"], declared)
    return render_template(
        "web/template_edit.html", source=source, template=template,
        slot_rows=forms.slot_rows(slots) or forms.slot_rows([{}]),
        errors=errors, slot_errors=forms.slot_errors(errors, slots), mjml_errors=mjml_errors,
        excerpt=forms.source_excerpt(source["mjml"], mjml_errors),
        versions=list(template.versions) if template else [],
        published=journeys.published_version(template.id) if template else None,
    ), status


@bp.get("/brand")
@require_roles(*BRAND)
def brand_home():
    templates, _total = journeys.list_templates(1, 200)
    rows = [{"template": t, "latest": journeys.latest_version(t.id),
             "published": journeys.published_version(t.id)} for t in templates]
    return render_template("web/templates.html", rows=rows)


@bp.route("/brand/templates/new", methods=["GET", "POST"])
@require_roles(*BRAND)
def template_new():
    if request.method == "GET":
        return _editor({"name": "", "subject": "News for {{ contact.first_name }}",
                        "preheader": "", "mjml": STARTER_MJML, "slots": STARTER_SLOTS})[0]
    source = _source_from_form()
    try:
        version = journeys.create_template(**source, created_by=me().id)
    except DomainError as err:
        return _editor(source, errors=err.fields or {"template": err.message}, status=422)
    flash(f"Draft version {version.version} saved.", "ok")
    return redirect(url_for("web.template_edit", template_id=version.template_id))


@bp.route("/brand/templates/<int:template_id>", methods=["GET", "POST"])
@require_roles(*BRAND)
def template_edit(template_id: int):
    template = journeys.get_template(template_id)
    if request.method == "GET":
        number = int_arg("version", minimum=1)
        v = journeys.get_version(template_id, number)
        source = {"name": v.name, "subject": v.subject, "preheader": v.preheader,
                  "mjml": v.mjml, "slots": v.slots}
        return _editor(source, template=template)[0]
    source = _source_from_form()
    try:
        version = journeys.update_template(template_id, **source, created_by=me().id)
    except DomainError as err:
        return _editor(source, template=template, errors=err.fields or {"template": err.message},
                       status=422)
    flash(f"Draft version {version.version} saved.", "ok")
    return redirect(url_for("web.template_edit", template_id=template_id))


@bp.post("/brand/templates/<int:template_id>/publish")
@require_roles(*BRAND)
def template_publish(template_id: int):
    template = journeys.get_template(template_id)
    try:
        version = journeys.publish_template(template_id)
    except DomainError as err:
        v = journeys.latest_version(template_id)
        source = {"name": v.name, "subject": v.subject, "preheader": v.preheader,
                  "mjml": v.mjml, "slots": v.slots}
        fields = err.fields or {"template": err.message}
        return _editor(source, template=template, errors=fields, status=err.status)
    flash(f"Version {version.version} published.", "ok")
    return redirect(url_for("web.template_edit", template_id=template_id))


@bp.get("/brand/templates/<int:template_id>/versions/<int:number>/preview")
@require_roles(*BRAND)
def template_version_preview(template_id: int, number: int):
    version = journeys.get_version(template_id, number)
    shown = preview_version(version, {}, *sample_inputs(me(), current_app.config))
    return preview_response(shown.html)


@bp.post("/brand/templates/preview")
@require_roles(*BRAND)
def template_live_preview():
    """Render the editor's unsaved source with sample data, for the preview iframe."""
    source = _source_from_form()
    try:
        shown = preview_source(source["mjml"], source["subject"], source["preheader"],
                               source["slots"], {}, *sample_inputs(me(), current_app.config))
    except DomainError as err:
        return preview_problems("Cannot preview yet:", err.fields or {"template": err.message})
    return preview_response(shown.html)


# --- journeys -------------------------------------------------------------------------------

def _journey_source() -> dict:
    return {"name": request.form.get("name", ""),
            "description": request.form.get("description", ""),
            "category": request.form.get("category", ""),
            "tiers": request.form.getlist("tiers"),
            "regions": request.form.getlist("regions"),
            "requires_approval": request.form.get("requires_approval") == "on",
            "quick_send": request.form.get("quick_send") == "on",
            "steps": forms.steps_from_form(request.form)}


def _builder(source: dict, *, journey=None, errors: dict | None = None, status: int = 200):
    templates, _ = journeys.list_templates(1, 500)
    steps = source["steps"] or [{"template_id": "", "delay_hours": 0, "when": "always"}]
    reached = journeys.partners_reached(journey) if journey else None
    move_counts = versions.campaign_counts(journey.previous_id) if journey and \
        journey.previous_id and journey.status == "draft" else None
    draft_version = journeys.draft_version_of(journey) if journey else None
    return render_template("web/journey_edit.html", source=source, journey=journey,
                           steps=steps, templates=templates, errors=errors or {},
                           tiers=lists.names("tier"), regions=lists.names("region"),
                           reached=reached, audience_words=_audience_words(journey),
                           move_counts=move_counts, draft_version=draft_version,
                           confirm_none=request.args.get("confirm") == "none",
                           conditions=("always", "opened", "not_opened", "clicked",
                                       "not_clicked")), status


def _audience_words(journey) -> str:
    """Name a journey's audience in words: "Gold/West", "Gold, every region"."""
    if journey is None:
        return ""
    tiers = ", ".join(journey.audience_tiers) or _("every tier")
    regions = ", ".join(journey.audience_regions) or _("every region")
    return f"{tiers}/{regions}"


@bp.route("/brand/audience-lists", methods=["GET", "POST"])
@require_roles(*BRAND)
def audience_lists():
    """The brand's tiers and regions: what partners are in and audiences pick from."""
    errors: dict[str, str] = {}
    status = 200
    if request.method == "POST":
        kind = request.form.get("kind")
        if kind not in lists.KINDS:
            kind = "tier"
        try:
            entry, created = lists.add_name(kind, request.form.get("name", ""))
        except DomainError as err:
            errors[kind] = err.fields.get("name", err.message)
            status = 422
        else:
            flash(_("“%(name)s” added.", name=entry.name) if created else
                  _("“%(name)s” is already in the list.", name=entry.name), "ok")
            return redirect(url_for("web.audience_lists"))
    return render_template(
        "web/audience_lists.html", errors=errors,
        groups=[("tier", _("Tiers"), lists.names("tier"), lists.usage("tier")),
                ("region", _("Regions"), lists.names("region"), lists.usage("region"))],
    ), status


@bp.get("/brand/journeys")
@require_roles(*BRAND)
def journeys_list():
    rows, _ = journeys.list_journeys(None, 1, 200)
    return render_template("web/journeys.html", journeys=rows)


# The nav names the list simply "journeys".
bp.add_url_rule("/brand/journeys", endpoint="journeys", view_func=journeys_list)


@bp.route("/brand/journeys/new", methods=["GET", "POST"])
@require_roles(*BRAND)
def journey_new():
    if request.method == "GET":
        return _builder({"name": "", "description": "", "category": "", "tiers": [],
                         "regions": [], "requires_approval": False, "quick_send": False,
                         "steps": []})[0]
    source = _journey_source()
    try:
        journey = journeys.create_journey(**source, created_by=me().id)
    except DomainError as err:
        return _builder(source, errors=err.fields or {"journey": err.message}, status=422)
    flash("Journey saved as a draft.", "ok")
    return redirect(url_for("web.journey_edit", journey_id=journey.id))


@bp.route("/brand/journeys/<int:journey_id>", methods=["GET", "POST"])
@require_roles(*BRAND)
def journey_edit(journey_id: int):
    journey = journeys.get_journey(journey_id)
    if request.method == "GET":
        source = {"name": journey.name, "description": journey.description,
                  "category": journey.category, "tiers": journey.audience_tiers,
                  "regions": journey.audience_regions,
                  "requires_approval": journey.requires_approval,
                  "quick_send": journey.quick_send,
                  "steps": [{"template_id": s.template_id, "delay_hours": s.delay_hours,
                             "when": s.condition, "version": s.template_version}
                            for s in journey.steps]}
        return _builder(source, journey=journey)[0]
    source = _journey_source()
    try:
        journeys.update_journey(journey_id, **source)
    except DomainError as err:
        return _builder(source, journey=journey, errors=err.fields or {"journey": err.message},
                        status=err.status)
    flash("Journey saved.", "ok")
    return redirect(url_for("web.journey_edit", journey_id=journey_id))


@bp.post("/brand/journeys/<int:journey_id>/<any(publish, archive):action>")
@require_roles(*BRAND)
def journey_action(journey_id: int, action: str):
    try:
        if action == "publish":
            journey = journeys.get_journey(journey_id)
            if journeys.partners_reached(journey) == 0 and request.form.get("anyway") != "1":
                # Nobody would see it: ask first (the page shows the question).
                return redirect(url_for("web.journey_edit", journey_id=journey_id,
                                        confirm="none", **{
                                            k: request.form[k] for k in (
                                                "move_campaigns", "mandatory")
                                            if k in request.form}))
            move = request.form.get("move_campaigns", "none")
            journey, report = versions.publish_version(
                journey_id, move if move in versions.MOVES else "none",
                request.form.get("mandatory") == "on")
            reached = journeys.partners_reached(journey)
            flash(ngettext("Journey published: %(num)d partner now sees it in the showroom.",
                           "Journey published: %(num)d partners now see it in the showroom.",
                           reached), "ok")
            if journey.previous_id:
                flash(_("Campaigns moved to version %(v)d: %(moved)d; moved but waiting for "
                        "the partner to correct values: %(stopped)d; left on the earlier "
                        "version: %(left)d.", v=journey.version, moved=len(report.moved),
                        stopped=len(report.stopped), left=len(report.left)), "ok")
        else:
            journeys.archive_journey(journey_id)
            flash("Journey archived.", "ok")
    except StateError as err:
        flash(err.message, "error")  # the message says it all; fields only repeat the status
    return redirect(safe_next(request.form.get("back"))
                    or url_for("web.journey_edit", journey_id=journey_id))


@bp.post("/brand/journeys/<int:journey_id>/<any(new_version, duplicate):action>")
@require_roles(*BRAND)
def journey_copy(journey_id: int, action: str):
    try:
        if action == "new_version":
            copy = journeys.new_version(journey_id, created_by=me().id)
            flash(_("Version %(n)d opened as a draft: change it, then publish it.",
                    n=copy.version), "ok")
        else:
            copy = journeys.duplicate_journey(journey_id, created_by=me().id)
            flash(_("Copied as a new draft journey."), "ok")
    except StateError as err:
        flash(err.message, "error")
        return redirect(url_for("web.journey_edit", journey_id=journey_id))
    return redirect(url_for("web.journey_edit", journey_id=copy.id))


# --- compliance rules -----------------------------------------------------------------------

RULE_KINDS = {"phrase": _l("Restricted phrase"),
              "regex": _l("Restricted pattern (regular expression)"),
              "image_domain": _l("Allowed image domain")}


@bp.route("/brand/compliance", methods=["GET", "POST"])
@require_roles(*BRAND)
def compliance_rules():
    """The brand's rules on partners' text: add, list, delete."""
    errors: dict[str, str] = {}
    form = {"kind": "phrase", "pattern": "", "message": "", "journey_id": ""}
    status = 200
    if request.method == "POST":
        form = {k: request.form.get(k, "") for k in form}
        data = {"kind": form["kind"], "pattern": form["pattern"], "message": form["message"]}
        if form["journey_id"]:
            data["journey_id"] = int(form["journey_id"]) if form["journey_id"].isdigit() else -1
        try:
            compliance.add_rule(data, created_by=me().id)
        except DomainError as err:
            errors, status = err.fields or {"rule": err.message}, err.status
        else:
            flash(_("Rule added: it applies from now on, to saved values and to sends."), "ok")
            return redirect(url_for("web.compliance_rules"))
    rows, _total = journeys.list_journeys(None, 1, 500)
    names = {j.id: j.name for j in rows}
    return render_template("web/compliance.html", rules=compliance.list_rules(), errors=errors,
                           form=form, kinds=RULE_KINDS, journeys=rows, journey_names=names
                           ), status


@bp.post("/brand/compliance/<int:rule_id>/delete")
@require_roles(*BRAND)
def compliance_rule_delete(rule_id: int):
    compliance.delete_rule(rule_id)
    flash(_("Rule deleted."), "ok")
    return redirect(url_for("web.compliance_rules"))


# --- approvals ------------------------------------------------------------------------------

@bp.get("/brand/approvals")
@require_roles(*BRAND)
def approvals():

    pending, _ = lifecycle.list_campaigns(None, "pending_approval", 1, 100)
    rows = [{"campaign": c, "partner": get_partner(c.partner_id),
             "journey": journeys.get_journey(c.journey_id),
             "changes": lifecycle.campaign_changes(c)} for c in pending]
    # Partners' profile changes to the fields the brand approves first (accounts/profile.py).
    profile_changes, _total = profiles.list_pending_changes(1, 200)
    return render_template("web/approvals.html", rows=rows, profile_changes=profile_changes,
                           profile_rules=profiles.approval_fields(),
                           profile_fields=profiles.PROFILE_FIELDS)


@bp.post("/brand/approvals/<int:campaign_id>/<any(approve, reject):action>")
@require_roles(*BRAND)
def approval_action(campaign_id: int, action: str):

    campaign = visible(lifecycle.get_campaign(campaign_id), "Campaign")
    try:
        if action == "approve":
            lifecycle.approve_campaign(campaign, me())
            flash(f"“{campaign.name}” approved and scheduled.", "ok")
        else:
            lifecycle.reject_campaign(campaign, me(), request.form.get("reason", ""))
            flash(f"“{campaign.name}” rejected; the partner sees your reason.", "ok")
    except DomainError as err:
        flash(f"{err.message} {' '.join(err.fields.values())}".strip(), "error")
    return redirect(url_for("web.approvals"))
