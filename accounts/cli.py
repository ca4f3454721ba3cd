"""`flask users ...` commands."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from accounts import services
from core.errors import DomainError

users_cli = AppGroup("users", help="Create users and API tokens.")


@users_cli.command("create")
@click.option("--email", required=True, help="The user's email (their login).")
@click.option("--role", required=True,
              type=click.Choice(["brand_admin", "brand_marketer", "partner_admin", "partner_user"]))
@click.option("--partner", "partner_id", type=int, default=None,
              help="Partner id (required for partner roles).")
@click.option("--name", default="", help="Display name.")
@click.option("--password", default=None, help="Web-login password (optional).")
def create(email: str, role: str, partner_id: int | None, name: str, password: str | None) -> None:
    """Create a user and print its API token (shown only once)."""
    try:
        user, token = services.create_user(email, role, partner_id, name=name, password=password)
    except DomainError as err:
        detail = "; ".join(f"{k} {v}" for k, v in err.fields.items())
        raise click.ClickException(f"{err.message} {detail}".strip()) from err
    click.echo(token)
    click.echo(f"created user {user.id} ({user.email}, {user.role})", err=True)


@users_cli.command("token")
@click.option("--user-id", type=int, required=True)
def token(user_id: int) -> None:
    """Issue another API token for a user."""
    try:
        click.echo(services.issue_token(user_id))
    except DomainError as err:
        raise click.ClickException(err.message) from err


def init_app(app: Flask) -> None:
    """Register the users CLI."""
    app.cli.add_command(users_cli)
