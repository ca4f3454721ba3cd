"""CLI commands of the journeys package."""

from flask import Flask


def init_app(app: Flask) -> None:
    """Register this package's CLI commands."""
