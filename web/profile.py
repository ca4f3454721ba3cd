"""The partner profile page (with a live email preview) and the brand's profile approvals."""

from __future__ import annotations

from flask import current_app, flash, jsonify, redirect, render_template, request, url_for

from accounts import media
from accounts import profile as profiles
from accounts.auth import BRAND, PARTNER, require_roles
from accounts.models import Partner
from accounts.services import get_partner
from campaigns import values
from core.errors import DomainError
from core.i18n import _
from core.i18n import lazy_gettext as _l
from journeys import services as journeys
from journeys.cli import load_starters
from personalization.preview import preview_source, preview_version, sample_inputs
from web.base import bp, me, preview_problems, preview_response

IMAGE_KINDS = ("photo", "logo")
TEXT_FIELDS = tuple(n for n, s in profiles.PROFILE_FIELDS.items() if s.kind != "image")
# The form's sections, in the order a partner fills them in.
SECTIONS = (
    (_l("About you"), ("advisor_name", "title")),
    (_l("Your business"), ("display_name", "phone", "website", "address")),
    (_l("Sign-off and disclosures"), ("signature", "disclosures")),
)


def _partner() -> Partner:
    return get_partner(me().partner_id)


def _stored(partner: Partner) -> dict[str, str | None]:
    return {name: getattr(partner, name) for name in profiles.PROFILE_FIELDS}


def _shown_values(state: profiles.ProfileState) -> dict[str, str]:
    """What the form shows: a change waiting for approval, else the approved value."""
    shown = {}
    for name in profiles.PROFILE_FIELDS:
        change = state.changes.get(name)
        value = change.value if change is not None and change.status == "pending" else (
            getattr(state.partner, name))
        shown[name] = value or ""
    return shown


def _page(*, form: dict | None = None, errors: dict | None = None, status: int = 200):
    partner = _partner()
    state = profiles.get_profile(partner.id)
    shown = _shown_values(state)
    if form:
        shown.update({k: v for k, v in form.items() if k in TEXT_FIELDS})
    return render_template(
        "web/profile.html", partner=partner, state=state, shown=shown,
        fields=profiles.PROFILE_FIELDS, sections=SECTIONS, images=IMAGE_KINDS,
        gated=set(state.approval_required),
        errors=errors or {}, editable=me().role == "partner_admin",
        catalog=journeys.catalog_for(partner), max_mb=media.MAX_UPLOAD_BYTES // (1024 * 1024),
    ), status


@bp.get("/partner/profile")
@require_roles(*PARTNER)
def profile_page():
    return _page()[0]


@bp.post("/partner/profile")
@require_roles("partner_admin")
def profile_save():
    form = {name: request.form.get(name, "") for name in TEXT_FIELDS if name in request.form}
    data: dict = dict(form)
    images: dict[str, bytes] = {}
    for kind in IMAGE_KINDS:
        upload = request.files.get(kind)
        if upload is not None and upload.filename:
            images[kind] = upload.stream.read(media.MAX_UPLOAD_BYTES + 1)
        elif request.form.get(f"remove_{kind}") == "on":
            data[f"{kind}_url"] = None
    try:
        update = profiles.update_profile(me().partner_id, data, me(), current_app.config,
                                         images=images)
    except DomainError as err:
        errors = dict(err.fields or {"profile": err.message})
        for kind in images:
            if f"{kind}_url" in errors:
                errors[f"{kind}_url"] += " " + _("Choose the file again after fixing this.")
        return _page(form=form, errors=errors, status=err.status)
    labels = [str(profiles.PROFILE_FIELDS[name].label) for name in update.pending]
    if update.pending:
        flash(_("Saved. Waiting for brand approval: %(fields)s. Your emails keep the approved "
                "values until then.", fields=", ".join(labels)), "ok")
    elif update.applied:
        flash(_("Profile saved. Your next emails use it."), "ok")
    else:
        flash(_("Nothing changed."), "ok")
    return redirect(url_for("web.profile_page"))


@bp.post("/partner/profile/validate")
@require_roles(*PARTNER)
def profile_validate():
    """Check the fields as the partner types; the same rules saving applies."""
    data = {name: request.form.get(name, "") for name in TEXT_FIELDS if name in request.form}
    try:
        profiles.clean_profile(data, current_app.config, _stored(_partner()))
    except DomainError as err:
        return jsonify({"ok": False, "fields": err.fields})
    return jsonify({"ok": True, "fields": {}})


def _preview_partner(partner: Partner, state: profiles.ProfileState) -> Partner:
    """An unsaved copy of the partner with the form's values (never added to the session)."""
    shown = _shown_values(state)
    draft = Partner(name=partner.name, tier=partner.tier, region=partner.region,
                    **{name: shown[name] or None for name in profiles.PROFILE_FIELDS})
    if request.method == "POST":
        data = {name: request.form.get(name, "") for name in TEXT_FIELDS
                if name in request.form}
        for key, value in profiles.clean_profile(data, current_app.config,
                                                 _stored(partner)).items():
            setattr(draft, key, value)
        for kind in IMAGE_KINDS:
            if request.form.get(f"remove_{kind}") == "on":
                setattr(draft, f"{kind}_url", None)
    return draft


@bp.route("/partner/profile/preview", methods=["GET", "POST"])
@require_roles(*PARTNER)
def profile_preview():
    """Render a journey from the partner's showroom with the form's (unsaved) profile."""
    partner = _partner()
    state = profiles.get_profile(partner.id)
    try:
        draft = _preview_partner(partner, state)
    except DomainError as err:
        labels = {str(profiles.PROFILE_FIELDS[k].label) if k in profiles.PROFILE_FIELDS else k: v
                  for k, v in err.fields.items()}
        return preview_problems(_("Fix these fields to see the preview:"), labels)
    inputs = sample_inputs(me(), current_app.config, draft.template_context())
    # Signed as a new campaign is by default: by the advisor, else the business.
    inputs = inputs._replace(sender={"name": draft.default_sender_name, "reply_to": me().email})
    catalog = journeys.catalog_for(partner)
    chosen = request.values.get("preview_journey", "")
    journey = next((j for j in catalog if str(j.id) == chosen), catalog[0] if catalog else None)
    if journey is not None:
        shown = preview_version(values.journey_versions(journey)[0], {}, *inputs)
    else:  # nothing in the showroom yet: the brand's welcome starter shows the signature
        entry = next(e for e in load_starters() if e["key"] == "welcome")
        shown = preview_source(entry["mjml"], entry["subject"], entry.get("preheader", ""),
                               entry["slots"], {}, *inputs)
    return preview_response(shown.html)


# --- the brand: approve or reject profile changes, choose which fields need approval ---------

@bp.post("/brand/profile-changes/<int:partner_id>/<field>/<any(approve, reject):action>")
@require_roles(*BRAND)
def profile_change_action(partner_id: int, field: str, action: str):
    partner = get_partner(partner_id)
    spec = profiles.PROFILE_FIELDS.get(field)
    label = str(spec.brand_label) if spec else field
    try:
        if action == "approve":
            profiles.approve_changes(partner.id, [field], me())
            flash(_("%(partner)s: the new “%(field)s” is approved and used from now on.",
                    partner=partner.name, field=label), "ok")
        else:
            profiles.reject_changes(partner.id, [field], request.form.get("reason", ""), me())
            flash(_("%(partner)s: the change to “%(field)s” is rejected; they see your reason.",
                    partner=partner.name, field=label), "ok")
    except DomainError as err:
        flash(" ".join([err.message, *map(str, err.fields.values())]), "error")
    return redirect(url_for("web.approvals") + "#profile-changes")


@bp.post("/brand/profile-rules")
@require_roles("brand_admin")
def profile_rules_save():
    chosen = [name for name in profiles.PROFILE_FIELDS if request.form.get(f"rule_{name}") == "on"]
    profiles.set_approval_fields(chosen, me())
    flash(_("Saved: partners' changes to the chosen profile fields now wait for your approval.")
          if chosen else _("Saved: partners' profile changes are used without approval."), "ok")
    return redirect(url_for("web.approvals") + "#profile-rules")
