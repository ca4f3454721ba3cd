"""`flask users ...` commands."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from accounts import services
from core.errors import DomainError

users_cli = AppGroup("users", help="Create, disable and enable users; passwords and API tokens.")


def _fail(err: DomainError) -> click.ClickException:
    detail = "; ".join(f"{k}: {v}" for k, v in err.fields.items())
    return click.ClickException(f"{err.message} {detail}".strip())


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


@users_cli.command("disable")
@click.option("--user-id", type=int, required=True)
def disable(user_id: int) -> None:
    """Disable a user: their sessions and API tokens end now and sign-in is refused."""
    try:
        user = services.disable_user(services.get_user(user_id))
    except DomainError as err:
        raise _fail(err) from err
    click.echo(f"disabled user {user.id} ({user.email}); every session and token ended")


@users_cli.command("enable")
@click.option("--user-id", type=int, required=True)
def enable(user_id: int) -> None:
    """Let a disabled user sign in again (issue a token with `users token` if they need one)."""
    try:
        user = services.enable_user(services.get_user(user_id))
    except DomainError as err:
        raise _fail(err) from err
    click.echo(f"enabled user {user.id} ({user.email})")


@users_cli.command("password")
@click.option("--user-id", type=int, required=True)
@click.password_option("--password", help="The new password (asked for when omitted).")
def password(user_id: int, password: str) -> None:
    """Set a user's password; every session and token ends, and one new token is printed."""
    try:
        click.echo(services.set_password(services.get_user(user_id), password))
    except DomainError as err:
        raise _fail(err) from err
    click.echo(f"password of user {user_id} set; every session and older token ended", err=True)


def init_app(app: Flask) -> None:
    """Register the users CLI."""
    app.cli.add_command(users_cli)
