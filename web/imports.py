"""The contact import wizard: upload → match the columns → check (dry run) → import → report.

Every step is a plain page that works without JavaScript; app.js only polls the progress and
shows the extra-field name box when "Extra field" is chosen. The steps call the services in
campaigns/contacts_import.py, which own the rules (what a mapping may be, how consent is set).
"""

from __future__ import annotations

from flask import flash, jsonify, redirect, render_template, request, url_for

from accounts.auth import PARTNER, require_roles, visible
from campaigns import contacts_import as imports
from campaigns.models import ImportJob
from core.db import db
from core.errors import DomainError
from core.i18n import _
from web.base import bp, me

# The choices of the "Import as" menu; "attribute" takes its name from a text box beside it.
TARGET_CHOICES = ("email", "first_name", "last_name", "consent", "attribute", "ignore")


def _job(job_id: int) -> ImportJob:
    job = db.session.get(ImportJob, job_id)
    if job is not None:
        db.session.refresh(job)  # the worker writes it on its own connections
    return visible(job, "Import")


def _editable(job: ImportJob) -> bool:
    return job.status == "uploaded" or (job.status == "done" and job.dry_run)


def _upload_page(errors: dict | None = None, status: int = 200):
    return render_template("web/import_upload.html", errors=errors or {}), status


@bp.get("/partner/contacts/import")
@require_roles(*PARTNER)
def contacts_import_upload():
    return _upload_page()[0]


@bp.post("/partner/contacts/import")
@require_roles(*PARTNER)
def contacts_import():
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _upload_page({"file": _("Choose a CSV file to import.")}, 422)
    try:
        job = imports.upload_import(me().partner_id, me().id, upload.filename, upload.stream)
    except DomainError as err:
        return _upload_page({"file": err.message}, err.status)
    return redirect(url_for("web.contacts_import_columns", job_id=job.id))


def _choice(target: str | None) -> tuple[str, str]:
    """The menu choice and extra-field name that show a target."""
    if target is None:
        return "ignore", ""
    if target.startswith(imports.ATTRIBUTE_PREFIX):
        return "attribute", target[len(imports.ATTRIBUTE_PREFIX):]
    return (target, "") if target in TARGET_CHOICES else ("ignore", "")


def _columns_page(job: ImportJob, targets: list[str | None], consent: imports.Consent | None,
                  errors: dict | None = None, status: int = 200):
    columns = job.columns or []
    preview = job.preview or []
    rows = []
    for index, name in enumerate(columns):
        choice, attribute = _choice(targets[index] if index < len(targets) else None)
        examples = [r["cells"][index] for r in preview
                    if index < len(r["cells"]) and r["cells"][index].strip()][:3]
        rows.append({"index": index, "name": name, "choice": choice,
                     "attribute": attribute or imports.attribute_name(name),
                     "examples": examples})
    return render_template(
        "web/import_columns.html", job=job, rows=rows, preview=preview,
        consent=consent, errors=errors or {},
        encoding=imports.encoding_words(job.encoding),
        delimiter=imports.delimiter_words(job.delimiter),
        delimiters=imports.DELIMITERS, field_words=imports.field_words,
    ), status


@bp.get("/partner/contacts/imports/<int:job_id>/columns")
@require_roles(*PARTNER)
def contacts_import_columns(job_id: int):
    job = _job(job_id)
    if not _editable(job):
        return redirect(url_for("web.contacts_import_status", job_id=job.id))
    targets = job.mapping or imports.auto_targets(job.columns or [])
    consent = imports.job_consent(job)
    if consent is None and "consent" in targets:
        consent = imports.Consent("column")  # the file has a consent column: use it
    return _columns_page(job, targets, consent)[0]


def _targets_from_form(count: int) -> list[str | None]:
    targets: list[str | None] = []
    for index in range(count):
        choice = request.form.get(f"target-{index}", "ignore")
        if choice == "ignore":
            targets.append(None)
        elif choice == "attribute":
            name = request.form.get(f"attr-{index}", "").strip()
            targets.append(imports.ATTRIBUTE_PREFIX + name)
        else:
            targets.append(choice)
    return targets


@bp.post("/partner/contacts/imports/<int:job_id>/columns")
@require_roles(*PARTNER)
def contacts_import_check(job_id: int):
    job = _job(job_id)
    targets = _targets_from_form(len(job.columns or []))
    consent = imports.Consent(request.form.get("consent_mode", ""),
                              request.form.get("consent_source", ""))
    try:
        imports.configure_import(job, targets, consent)
    except DomainError as err:
        errors = dict(err.fields or {})
        if "email" in errors:
            errors["email"] = _("Choose the column that holds the email addresses.")
        if not errors:
            errors["form"] = err.message
        return _columns_page(job, targets, consent, errors, err.status)
    return redirect(url_for("web.contacts_import_status", job_id=job.id))


@bp.post("/partner/contacts/imports/<int:job_id>/delimiter")
@require_roles(*PARTNER)
def contacts_import_delimiter(job_id: int):
    job = _job(job_id)
    try:
        imports.set_import_delimiter(job, request.form.get("delimiter", ""))
    except DomainError as err:
        flash(err.message, "error")
    return redirect(url_for("web.contacts_import_columns", job_id=job.id))


@bp.get("/partner/contacts/imports/<int:job_id>")
@require_roles(*PARTNER)
def contacts_import_status(job_id: int):
    job = _job(job_id)
    if request.accept_mimetypes.best == "application/json" or request.args.get("format") == "json":
        return jsonify(imports.import_json(job))
    if job.status == "uploaded":
        return redirect(url_for("web.contacts_import_columns", job_id=job.id))
    return render_template("web/import.html", job=job, info=imports.import_json(job),
                           field_words=imports.field_words, count_words=imports.count_words)


@bp.post("/partner/contacts/imports/<int:job_id>/confirm")
@require_roles(*PARTNER)
def contacts_import_confirm(job_id: int):
    job = _job(job_id)
    try:
        imports.confirm_import(job)
    except DomainError as err:
        flash(err.message, "error")
    return redirect(url_for("web.contacts_import_status", job_id=job.id))
