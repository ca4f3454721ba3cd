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


@templates_cli.command("import-starters")
@click.option("--draft", is_flag=True, help="Import as drafts instead of publishing.")
def import_starters_command(draft: bool) -> None:
    """Import the starter templates from templates/emails/ (skips names that exist)."""
    try:
        ids = import_starters(publish=not draft)
    except DomainError as err:
        raise click.ClickException(f"{err.message} {err.fields}") from err
    for key, template_id in ids.items():
        click.echo(f"{key}: template {template_id}")


def init_app(app: Flask) -> None:
    """Register the templates CLI."""
    app.cli.add_command(templates_cli)
