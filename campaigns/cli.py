"""CLI commands of the campaigns package."""

from flask import Flask


def init_app(app: Flask) -> None:
    """Register this package's CLI commands."""
