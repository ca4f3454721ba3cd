"""Run Alembic migrations programmatically against the app's database."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from flask import current_app

from core.config import ROOT


def alembic_config(url: str | None = None) -> Config:
    """Return an Alembic config pointed at migrations/ and the app's database URL."""
    cfg = Config()
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url or current_app.config["SQLALCHEMY_DATABASE_URI"])
    return cfg


def upgrade(url: str | None = None, revision: str = "head") -> None:
    """Bring the schema up to `revision`."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str | None = None, revision: str = "base") -> None:
    """Take the schema down to `revision`."""
    command.downgrade(alembic_config(url), revision)
