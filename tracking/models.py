"""Engagement: append-only events, per-send engagement rows, daily rollups, SNS dedupe.

Events are the raw record (one row per accepted hit or provider notification, never updated).
Analytics never scan them: the ingest step maintains `send_engagements` (one row per send,
which decides "unique" opens/clicks and feeds the per-recipient view) and `engagement_rollups`
(counters per day, campaign, step and link; journey and partner are carried along).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, CheckConstraint, Date, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from core import clock
from core.db import db

EVENT_KINDS = ("open", "click", "unsubscribe", "bounce", "complaint", "delivery")
BigId = BigInteger().with_variant(db.Integer(), "sqlite")
NO_LINK = -1  # rollup rows that are not about one link (opens, unsubscribes, bounces)


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
    # A human open fetched through a mail provider's image proxy (Gmail, Yahoo, Microsoft):
    # a person opened it; their device and location are not known.
    proxied: Mapped[bool] = mapped_column(default=False)
    # Denormalized from the send so rollups and analytics need no joins.
    campaign_id: Mapped[int | None] = mapped_column(index=True)
    journey_id: Mapped[int | None] = mapped_column(index=True)
    partner_id: Mapped[int | None]
    step_index: Mapped[int | None]
    # Idempotency key: the Redis stream entry id (or "unsub:<send>", "sns:<MessageId>:<send>"),
    # so a buffer that re-delivers after a crash can never count an event twice.
    event_key: Mapped[str | None] = mapped_column(String(120), unique=True)


class SendEngagement(db.Model):
    """One row per send that saw any engagement: decides uniqueness, feeds recipient views."""

    __tablename__ = "send_engagements"

    send_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("sends.id", ondelete="CASCADE"), primary_key=True
    )
    campaign_id: Mapped[int] = mapped_column(index=True)
    opens: Mapped[int] = mapped_column(default=0)  # human
    clicks: Mapped[int] = mapped_column(default=0)  # human
    machine_opens: Mapped[int] = mapped_column(default=0)
    machine_clicks: Mapped[int] = mapped_column(default=0)
    first_open_at: Mapped[datetime | None]  # first human open
    first_click_at: Mapped[datetime | None]  # first human click
    unsubscribed_at: Mapped[datetime | None]
    bounced_at: Mapped[datetime | None]
    complained_at: Mapped[datetime | None]
    last_activity_at: Mapped[datetime | None]


class EngagementRollup(db.Model):
    """Counters per (day, campaign, step, link); every analytics read sums these rows."""

    __tablename__ = "engagement_rollups"
    __table_args__ = (
        Index("ix_engagement_rollups_journey_day", "journey_id", "day"),
        Index("ix_engagement_rollups_campaign_day", "campaign_id", "day"),
        Index("ix_engagement_rollups_partner_id", "partner_id"),
    )

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    step_index: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    link_index: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    journey_id: Mapped[int]
    partner_id: Mapped[int]
    opens: Mapped[int] = mapped_column(default=0)
    unique_opens: Mapped[int] = mapped_column(default=0)
    clicks: Mapped[int] = mapped_column(default=0)
    unique_clicks: Mapped[int] = mapped_column(default=0)
    machine_opens: Mapped[int] = mapped_column(default=0)
    machine_clicks: Mapped[int] = mapped_column(default=0)
    proxied_opens: Mapped[int] = mapped_column(default=0)  # human opens through image proxies
    conversions: Mapped[int] = mapped_column(default=0)
    conversion_value_cents: Mapped[int] = mapped_column(BigId, default=0)
    unsubscribes: Mapped[int] = mapped_column(default=0)
    bounces: Mapped[int] = mapped_column(default=0)
    soft_bounces: Mapped[int] = mapped_column(default=0)
    complaints: Mapped[int] = mapped_column(default=0)
    deliveries: Mapped[int] = mapped_column(default=0)


ROLLUP_COUNTERS = (
    "opens", "unique_opens", "clicks", "unique_clicks", "machine_opens", "machine_clicks",
    "proxied_opens", "conversions", "conversion_value_cents",
    "unsubscribes", "bounces", "soft_bounces", "complaints", "deliveries",
)


class SnsMessage(db.Model):
    """Every accepted SNS message id, so a replayed notification is a no-op."""

    __tablename__ = "sns_messages"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[str] = mapped_column(String(100), unique=True)
    type: Mapped[str] = mapped_column(String(40))
    topic_arn: Mapped[str] = mapped_column(String(300))
    received_at: Mapped[datetime] = mapped_column(default=clock.now)


class IntegrationKey(db.Model):
    """A brand's key for its website or CRM to report conversions; only its hash is stored.

    The key itself is derived from SECRET_KEY and the row's salt (see tracking.conversions),
    so the database alone can neither reveal nor forge it; pixels are signed with it.
    """

    __tablename__ = "integration_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    salt: Mapped[str] = mapped_column(String(32))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hint: Mapped[str] = mapped_column(String(12), default="")  # the key's last characters
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class Conversion(db.Model):
    """What happened after a click (an appointment booked, an account opened), attributed."""

    __tablename__ = "conversions"
    __table_args__ = (
        CheckConstraint("value_cents IS NULL OR value_cents >= 0", name="value_not_negative"),
        Index("ix_conversions_contact", "contact_id"),
        Index("ix_conversions_send", "send_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    external_id: Mapped[str] = mapped_column(String(200), unique=True)  # idempotency
    integration_key_id: Mapped[int | None] = mapped_column(
        ForeignKey("integration_keys.id", ondelete="SET NULL"))
    source: Mapped[str] = mapped_column(String(10), default="api")  # api or pixel
    send_id: Mapped[int] = mapped_column(ForeignKey("sends.id", ondelete="CASCADE"))
    link_index: Mapped[int | None]
    # Denormalized from the send, like events: reports need no joins.
    contact_id: Mapped[int | None]
    campaign_id: Mapped[int] = mapped_column(index=True)
    journey_id: Mapped[int] = mapped_column(index=True)
    partner_id: Mapped[int]
    step_index: Mapped[int]
    name: Mapped[str] = mapped_column(String(100))
    value_cents: Mapped[int | None] = mapped_column(BigId)
    currency: Mapped[str] = mapped_column(String(3), default="")
    occurred_at: Mapped[datetime]
    recorded_at: Mapped[datetime] = mapped_column(default=clock.now)
