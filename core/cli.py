"""`flask db ...` and `flask config-table` commands."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from core import migrate
from core.config import SETTINGS

db_cli = AppGroup("db", help="Database schema (Alembic migrations).")


@db_cli.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION."""
    migrate.upgrade(revision=revision)
    click.echo(f"database at {revision}")


@db_cli.command("downgrade")
@click.option("--revision", default="base", show_default=True, help="Target revision.")
def db_downgrade(revision: str) -> None:
    """Revert migrations down to REVISION."""
    migrate.downgrade(revision=revision)
    click.echo(f"database at {revision}")


@click.command("config-table")
def config_table() -> None:
    """Print the configuration variables as a Markdown table."""
    click.echo("| variable | default | meaning |\n|---|---|---|")
    for name, default, help_text in SETTINGS:
        shown = f"`{default}`" if default else "(see meaning)"
        click.echo(f"| `{name}` | {shown} | {help_text} |")


def init_app(app: Flask) -> None:
    """Register the core CLI commands."""
    app.cli.add_command(db_cli)
    app.cli.add_command(config_table)
