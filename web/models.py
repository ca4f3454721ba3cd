"""Web-only state: background CSV imports whose progress the contacts page polls."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core import clock
from core.db import db

IMPORT_STATUSES = ("queued", "checking", "importing", "done", "failed")


class ImportJob(db.Model):
    """One uploaded CSV being imported in the background; the report lands in `result`."""

    __tablename__ = "import_jobs"
    __table_args__ = (CheckConstraint(f"status IN {IMPORT_STATUSES!r}", name="status_known"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    filename: Mapped[str] = mapped_column(String(300), default="")
    path: Mapped[str] = mapped_column(String(1000))
    status: Mapped[str] = mapped_column(String(20), default="queued")
    total_bytes: Mapped[int] = mapped_column(default=0)
    processed_bytes: Mapped[int] = mapped_column(default=0)
    result: Mapped[dict | None] = mapped_column(JSON)
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    finished_at: Mapped[datetime | None]
