"""Engagement events: append-only rows, one per accepted hit or provider notification."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from core import clock
from core.db import db

EVENT_KINDS = ("open", "click", "unsubscribe", "bounce", "complaint", "delivery")
BigId = BigInteger().with_variant(db.Integer(), "sqlite")


class Event(db.Model):
    __tablename__ = "events"
    __table_args__ = (
        CheckConstraint(f"kind IN {EVENT_KINDS!r}", name="kind_known"),
        Index("ix_events_send_kind", "send_id", "kind"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    send_id: Mapped[int] = mapped_column(ForeignKey("sends.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    link_index: Mapped[int | None]
    occurred_at: Mapped[datetime] = mapped_column(default=clock.now)
    user_agent: Mapped[str] = mapped_column(String(1000), default="")
    ip: Mapped[str] = mapped_column(String(64), default="")
    machine: Mapped[bool] = mapped_column(default=False)  # classified, never dropped
    machine_reason: Mapped[str] = mapped_column(String(50), default="")
    # Denormalized from the send so rollups and analytics need no joins.
    campaign_id: Mapped[int | None] = mapped_column(index=True)
    journey_id: Mapped[int | None] = mapped_column(index=True)
    partner_id: Mapped[int | None]
    step_index: Mapped[int | None]
