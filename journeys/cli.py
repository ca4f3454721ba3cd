"""`flask templates ...` commands: import the starter templates."""

from __future__ import annotations

import json

import click
from flask import Flask
from flask.cli import AppGroup
from sqlalchemy import select

from core.config import ROOT
from core.db import db
from core.errors import DomainError
from journeys import services
from journeys.models import Template
from personalization.slots import validate_slot_schema

STARTERS = ROOT / "templates" / "emails"
templates_cli = AppGroup("templates", help="Email templates (MJML with slots).")


def load_starters() -> list[dict]:
    """Read templates/emails/starters.json with each entry's MJML source."""
    entries = json.loads((STARTERS / "starters.json").read_text())
    for entry in entries:
        entry["mjml"] = (STARTERS / entry["file"]).read_text()
    return entries


def import_starters(publish: bool = True) -> dict[str, int]:
    """Create (and publish) every starter template not already present by name; return key -> id."""
    ids = {}
    for entry in load_starters():
        existing = db.session.scalar(select(Template).where(Template.name == entry["name"]))
        if existing is not None:
            ids[entry["key"]] = existing.id
            continue
        version = services.create_template(entry["name"], entry["subject"],
                                           entry.get("preheader", ""), entry["mjml"],
                                           entry["slots"])
        if publish:
            services.publish_template(version.template_id)
        ids[entry["key"]] = version.template_id
    return ids


def update_starters(publish: bool = True) -> dict[str, int]:
    """Save (and publish) a new version of each imported starter whose files changed.

    Compares each starter with its template's latest version (MJML, subject, preheader,
    slots); returns key -> the new version's number for those that changed. Journeys keep the
    versions they pinned: a new or draft journey picks up the new ones.
    """
    updated = {}
    for entry in load_starters():
        template = db.session.scalar(select(Template).where(Template.name == entry["name"]))
        if template is None:
            continue
        latest = services.latest_version(template.id)
        slots, _problems = validate_slot_schema(entry["slots"])
        if (latest.mjml, latest.subject, latest.preheader or "", latest.slots) == (
                entry["mjml"], entry["subject"].strip(), entry.get("preheader", ""), slots):
            continue
        version = services.update_template(template.id, entry["name"], entry["subject"],
                                           entry.get("preheader", ""), entry["mjml"],
                                           entry["slots"])
        if publish:
            services.publish_template(template.id)
        updated[entry["key"]] = version.version
    return updated


@templates_cli.command("import-starters")
@click.option("--draft", is_flag=True, help="Import as drafts instead of publishing.")
@click.option("--update", is_flag=True,
              help="Also add a new version of each starter whose files changed since it was "
                   "imported (e.g. the profile signature block); journeys keep the versions "
                   "they pinned.")
def import_starters_command(draft: bool, update: bool) -> None:
    """Import the starter templates from templates/emails/ (skips names that exist)."""
    try:
        ids = import_starters(publish=not draft)
        updated = update_starters(publish=not draft) if update else {}
    except DomainError as err:
        raise click.ClickException(f"{err.message} {err.fields}") from err
    for key, template_id in ids.items():
        note = f" (new version {updated[key]})" if key in updated else ""
        click.echo(f"{key}: template {template_id}{note}")


def init_app(app: Flask) -> None:
    """Register the templates CLI."""
    app.cli.add_command(templates_cli)
