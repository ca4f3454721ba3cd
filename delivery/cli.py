"""CLI commands of the delivery package."""

from __future__ import annotations

import threading

import click
from flask import Flask, current_app

from delivery.catcher import start_catcher


@click.command("smtp-catcher")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8025, show_default=True, type=int, help="Port to listen on.")
def smtp_catcher(host: str, port: int) -> None:
    """Run a local SMTP server that stores every message in OUTBOX_DIR until Ctrl-C."""

    directory = current_app.config["OUTBOX_DIR"]
    controller = start_catcher(host, port, directory)
    click.echo(f"smtp-catcher listening on {host}:{port}, storing into {directory}", err=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()
        click.echo("smtp-catcher stopped", err=True)


def init_app(app: Flask) -> None:
    """Register this package's CLI commands."""
    app.cli.add_command(smtp_catcher)
