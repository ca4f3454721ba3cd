"""The brand's sharing rules page: how often one person may be emailed across all partners."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for

from accounts.auth import BRAND, require_roles
from campaigns import sharing
from core.errors import DomainError
from core.i18n import _
from web.base import bp, me


def _whole(text: str) -> int | str:
    text = (text or "").strip()
    return int(text) if text.isdigit() and len(text) < 10 else text


def _form_rules() -> dict:
    """The page's form as the API's body (a number field left as typed when not a number)."""
    cap = None
    if request.form.get("cap_on") == "on":
        cap = {"max_sends": _whole(request.form.get("max_sends", "")),
               "days": _whole(request.form.get("days", ""))}
    same = _whole(request.form.get("same_journey_days", "")) \
        if request.form.get("same_on") == "on" else None
    return {"frequency_cap": cap, "same_journey_days": same}


def _page(form: dict | None = None, errors: dict | None = None, status: int = 200):
    rules = sharing.rules_json()
    form = form or {"frequency_cap": rules["frequency_cap"],
                    "same_journey_days": rules["same_journey_days"]}
    return render_template("web/sharing.html", form=form, errors=errors or {},
                           can_edit=me().role == "brand_admin",
                           stats=sharing.sharing_stats()), status


@bp.get("/brand/sharing")
@require_roles(*BRAND)
def sharing_rules_page():
    return _page()[0]


@bp.post("/brand/sharing")
@require_roles("brand_admin")
def sharing_rules_save():
    body = _form_rules()
    try:
        sharing.set_sharing_rules(sharing.clean_rules(body), me())
    except DomainError as err:
        return _page(form=body, errors=err.fields, status=422)
    flash(_("Sharing rules saved. They apply to every message from now on."), "ok")
    return redirect(url_for("web.sharing_rules_page"))
