"""The brand's partners page: search and filters, create and edit, CSV import with a dry run,
deactivate and reactivate, and activation (the funnel, stuck partners, reminders)."""

from __future__ import annotations

from flask import current_app, flash, redirect, render_template, request, url_for

from accounts import services as accounts
from accounts.auth import require_roles
from campaigns import activation, network
from core import clock
from core.errors import DomainError, ValidationError
from core.i18n import _, ngettext
from core.validate import Fields, sender_name_problem
from web.base import bp, me

PER_PAGE = 50
IMPORT_EXAMPLE = ("partner name,tier,region,admin email\n"
                  "Harbor Wealth,gold,west,ann@harbor.example\n")


def _filters() -> dict:
    args = request.args
    return {"q": args.get("q", "").strip()[:200], "tier": args.get("tier", "")[:50],
            "region": args.get("region", "")[:50],
            "stage": args.get("stage", "") if args.get("stage") in activation.STAGES else "",
            "state": args.get("state", "") if args.get("state") in ("active", "inactive")
            else "", "stuck": args.get("stuck") == "1"}


def _page(form: dict | None = None, errors: dict | None = None, status: int = 200):
    filters = _filters()
    try:
        page = max(1, min(int(request.args.get("page", 1)), 10**6))
    except ValueError:
        page = 1
    found = activation.activations()
    now = clock.now()
    ids = None
    if filters["stage"] or filters["stuck"]:
        ids = [pid for pid, a in found.items()
               if (not filters["stage"] or a.stage == filters["stage"])
               and (not filters["stuck"] or a.stuck(now))]
    partners, total = accounts.list_partners(
        page, PER_PAGE, q=filters["q"], tier=filters["tier"], region=filters["region"],
        active={"active": True, "inactive": False}.get(filters["state"]), ids=ids)
    return render_template(
        "web/partners.html", partners=partners, total=total, page=page, per_page=PER_PAGE,
        filters=filters, filtered=any(filters.values()), choices=accounts.partner_choices(),
        stages=activation.STAGES, found=found, now=now, funnel=activation.funnel(),
        stuck_days=activation.STUCK_DAYS, form=form or {}, errors=errors or {},
        example=IMPORT_EXAMPLE,
        query_args={k: v for k, v in request.args.items() if k != "page"}), status


def _partner_form() -> dict:
    return {k: request.form.get(k, "") for k in ("name", "tier", "region", "admin_email")}


def _clean_partner(form: dict) -> dict:
    f = Fields(form)
    out = {"name": f.text("name", required=True, max_length=200),
           "tier": f.text("tier", required=True, max_length=50),
           "region": f.text("region", required=True, max_length=50)}
    # The account name is the sender name of last resort (Partner.default_sender_name).
    if out["name"] and "name" not in f.problems and sender_name_problem(out["name"]):
        f.problems["name"] = str(sender_name_problem(out["name"]))
    f.check(_("The partner is not complete."))
    return out


@bp.get("/brand/partners")
@require_roles("brand_admin")
def partners_page():
    return _page()[0]


@bp.post("/brand/partners")
@require_roles("brand_admin")
def partner_create():
    form = _partner_form()
    try:
        partner = accounts.create_partner(**_clean_partner(form))
    except DomainError as err:
        return _page(form=form, errors=err.fields, status=422)
    message = _("Partner “%(name)s” created.", name=partner.name)
    if form["admin_email"].strip():
        try:
            network.invite(me(), form["admin_email"], "partner_admin", partner.id,
                           current_app.config)
            message += " " + _("Its administrator is invited by email.")
        except DomainError as err:
            flash(message, "ok")
            flash(_("The invitation was not sent: %(why)s", why=err.message), "error")
            return redirect(url_for("web.partner_page", partner_id=partner.id))
    flash(message, "ok")
    return redirect(url_for("web.partner_page", partner_id=partner.id))


def _partner_view(partner_id: int, form: dict | None = None, errors: dict | None = None,
                  status: int = 200):
    partner = accounts.get_partner(partner_id)
    users, _total = accounts.list_users(partner.id, 1, 200)
    found = activation.activations([partner.id]).get(partner.id)
    return render_template("web/partner_edit.html", partner=partner, users=users,
                           activation=found, stages=activation.STAGES[1:], now=clock.now(),
                           form=form or {"name": partner.name, "tier": partner.tier,
                                         "region": partner.region},
                           errors=errors or {}, choices=accounts.partner_choices()), status


@bp.get("/brand/partners/<int:partner_id>")
@require_roles("brand_admin")
def partner_page(partner_id: int):
    return _partner_view(partner_id)[0]


@bp.post("/brand/partners/<int:partner_id>")
@require_roles("brand_admin")
def partner_save(partner_id: int):
    form = _partner_form()
    try:
        accounts.update_partner(partner_id, **_clean_partner(form))
    except ValidationError as err:
        return _partner_view(partner_id, form, err.fields, 422)
    flash(_("Partner saved."), "ok")
    return redirect(url_for("web.partner_page", partner_id=partner_id))


@bp.post("/brand/partners/<int:partner_id>/deactivate")
@require_roles("brand_admin")
def partner_deactivate(partner_id: int):
    partner = accounts.set_partner_active(partner_id, False)
    flash(_("“%(name)s” is inactive: its people cannot sign in and nothing of it is sent. "
            "Its data stays.", name=partner.name), "ok")
    return redirect(url_for("web.partner_page", partner_id=partner_id))


@bp.post("/brand/partners/<int:partner_id>/reactivate")
@require_roles("brand_admin")
def partner_reactivate(partner_id: int):
    partner = accounts.set_partner_active(partner_id, True)
    flash(_("“%(name)s” is active again.", name=partner.name), "ok")
    return redirect(url_for("web.partner_page", partner_id=partner_id))


@bp.post("/brand/partners/<int:partner_id>/remind")
@require_roles("brand_admin")
def partner_remind(partner_id: int):
    partner = accounts.get_partner(partner_id)
    stage = activation.activations([partner.id])[partner.id].stage
    try:
        sent = network.remind_partner(me(), partner, stage, current_app.config)
    except DomainError as err:
        flash(err.message, "error")
        return redirect(request.referrer or url_for("web.partners_page"))
    if sent:
        flash(ngettext("Reminder sent to %(name)s.", "%(num)d reminders sent to %(name)s.",
                       sent, name=partner.name), "ok")
    else:
        flash(_("Nobody to remind at “%(name)s”: invite its administrator first.",
                name=partner.name), "error")
    return redirect(url_for("web.partners_page", stuck=1))


# --- bulk import ------------------------------------------------------------------------

@bp.get("/brand/partners/import")
@require_roles("brand_admin")
def partners_import_page():
    return render_template("web/partners_import.html", rows=None, csv_text="", error=None,
                           example=IMPORT_EXAMPLE)


def _uploaded() -> bytes:
    upload = request.files.get("file")
    if upload is not None and upload.filename:
        return upload.stream.read(network.MAX_IMPORT_BYTES + 1)
    return request.form.get("csv_text", "").encode()


@bp.post("/brand/partners/import")
@require_roles("brand_admin")
def partners_import_check():
    data = _uploaded()
    try:
        rows = network.plan_partner_import(data)
    except DomainError as err:
        return render_template("web/partners_import.html", rows=None, csv_text="",
                               error=err.message, example=IMPORT_EXAMPLE), err.status
    return render_template("web/partners_import.html", rows=rows,
                           csv_text=data.decode("utf-8-sig", "replace"), error=None,
                           example=IMPORT_EXAMPLE)


@bp.post("/brand/partners/import/confirm")
@require_roles("brand_admin")
def partners_import_run():
    try:
        rows = network.run_partner_import(me(), request.form.get("csv_text", "").encode(),
                                          current_app.config)
    except DomainError as err:
        return render_template("web/partners_import.html", rows=None, csv_text="",
                               error=err.message, example=IMPORT_EXAMPLE), err.status
    created = [r for r in rows if r.partner_id]
    flash(ngettext("%(num)d partner imported; its administrator is invited by email.",
                   "%(num)d partners imported; their administrators are invited by email.",
                   len(created)), "ok")
    for row in created:
        if row.delivery_error:
            flash(_("The invitation to %(email)s was not delivered: %(why)s. Resend it from "
                    "the users page.", email=row.admin_email, why=row.delivery_error), "error")
    skipped = len(rows) - len(created)
    if skipped:
        flash(ngettext("%(num)d line was skipped because of its problems.",
                       "%(num)d lines were skipped because of their problems.", skipped),
              "error")
    return redirect(url_for("web.partners_page"))
