"""Contacts, the suppression list, campaigns, members and the sends ledger."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core import clock
from core.db import db

CAMPAIGN_STATUSES = (
    "draft", "pending_approval", "rejected", "scheduled", "running", "paused", "completed",
    "cancelled",
)
SEND_STATUSES = ("queued", "claimed", "sent", "retry", "failed", "suppressed", "skipped",
                 "cancelled")
SUPPRESSION_REASONS = ("unsubscribed", "bounced", "complained", "manual")

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT.
BigId = BigInteger().with_variant(db.Integer(), "sqlite")


class Contact(db.Model):
    __tablename__ = "contacts"
    __table_args__ = (UniqueConstraint("partner_id", "email"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), index=True)
    email: Mapped[str] = mapped_column(String(320))  # normalized (lower-cased domain etc.)
    first_name: Mapped[str] = mapped_column(String(200), default="")
    last_name: Mapped[str] = mapped_column(String(200), default="")
    attributes: Mapped[dict] = mapped_column(JSON, default=dict)
    consent: Mapped[bool] = mapped_column(default=False)
    # Where the consent came from when a CSV import recorded it: the importer's attestation
    # ("signed paper form at branch, 2026") or the file's consent column, with who and when.
    consent_source: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, onupdate=clock.now)

    def template_context(self) -> dict:
        """Return the merge fields templates see as `contact.*`."""
        return {"email": self.email, "first_name": self.first_name or "",
                "last_name": self.last_name or "", "attributes": dict(self.attributes or {})}


class Suppression(db.Model):
    """Brand-wide: an address here is never mailed, by any partner."""

    __tablename__ = "suppressions"
    __table_args__ = (
        CheckConstraint(f"reason IN {SUPPRESSION_REASONS!r}", name="reason_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    reason: Mapped[str] = mapped_column(String(20))
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=clock.now)


class Campaign(db.Model):
    __tablename__ = "campaigns"
    __table_args__ = (
        CheckConstraint(f"status IN {CAMPAIGN_STATUSES!r}", name="status_known"),
        CheckConstraint("kind IN ('journey','quick_send')", name="kind_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), index=True)
    journey_id: Mapped[int] = mapped_column(ForeignKey("journeys.id"), index=True)
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20), default="journey")
    status: Mapped[str] = mapped_column(String(20), default="draft", index=True)
    # {"0": {"slot": value}, "1": {...}}: validated values per step index.
    slot_values: Mapped[dict] = mapped_column(JSON, default=dict)
    sender_name: Mapped[str] = mapped_column(String(200))
    sender_reply_to: Mapped[str] = mapped_column(String(320))
    status_reason: Mapped[str] = mapped_column(Text, default="")  # rejection / pause reason
    approved_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    launched_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, onupdate=clock.now)

    members: Mapped[list[CampaignMember]] = relationship(back_populates="campaign")


class CampaignMember(db.Model):
    __tablename__ = "campaign_members"
    __table_args__ = (UniqueConstraint("campaign_id", "contact_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    overrides: Mapped[dict] = mapped_column(JSON, default=dict)  # {"step": {"slot": value}}
    added_at: Mapped[datetime] = mapped_column(default=clock.now)

    campaign: Mapped[Campaign] = relationship(back_populates="members")
    contact: Mapped[Contact] = relationship()


class Send(db.Model):
    """The ledger: one row per (campaign, step, contact); the state machine lives in services."""

    __tablename__ = "sends"
    __table_args__ = (
        UniqueConstraint("campaign_id", "step_index", "contact_id"),
        CheckConstraint(f"status IN {SEND_STATUSES!r}", name="status_known"),
        CheckConstraint("attempts >= 0", name="attempts_not_negative"),
        Index("ix_sends_status_due", "status", "due_at"),
        # SES notifications without our tag are matched by provider id; scorecards group by
        # partner and status.
        Index("ix_sends_provider_message_id", "provider_message_id"),
        Index("ix_sends_partner_status", "partner_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    step_index: Mapped[int]
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    # Denormalized so tracking and analytics need no joins on the hot path.
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"))
    journey_id: Mapped[int] = mapped_column(ForeignKey("journeys.id"))
    template_version_id: Mapped[int] = mapped_column(ForeignKey("template_versions.id"))
    email: Mapped[str] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(String(20), default="queued")
    due_at: Mapped[datetime]
    lease_expires_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    provider_message_id: Mapped[str | None] = mapped_column(String(300))
    status_reason: Mapped[str] = mapped_column(String(50), default="")  # e.g. suppressed why
    sent_at: Mapped[datetime | None]
    # Written with status `sent`: each link's rendered target by index (the version's links),
    # '' where it is not an http(s) URL; a click redirects only there. NULL until sent, and
    # for mail sent before migration 0006 (a click on it renders the message instead).
    link_targets: Mapped[list[str] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, onupdate=clock.now)

    campaign: Mapped[Campaign] = relationship()
    contact: Mapped[Contact] = relationship()


# `uploaded`: stored and checked, waiting for its column mapping (the web wizard).
IMPORT_STATUSES = ("uploaded", "queued", "checking", "importing", "done", "failed")


class ImportJob(db.Model):
    """One uploaded CSV waiting for or going through its import job; the report lands in `result`.

    The file itself is kept in `import_chunks` (any worker on any host can read it) and
    deleted when the job ends. `heartbeat_at` moves while a worker runs the job, so a job
    whose worker died is seen and started again (or failed with a reason), never left running.
    """

    __tablename__ = "import_jobs"
    __table_args__ = (CheckConstraint(f"status IN {IMPORT_STATUSES!r}", name="status_known"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    filename: Mapped[str] = mapped_column(String(300), default="")
    status: Mapped[str] = mapped_column(String(20), default="queued")
    total_bytes: Mapped[int] = mapped_column(default=0)
    processed_bytes: Mapped[int] = mapped_column(default=0)
    attempts: Mapped[int] = mapped_column(default=0)
    heartbeat_at: Mapped[datetime | None]
    result: Mapped[dict | None] = mapped_column(JSON)
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    finished_at: Mapped[datetime | None]
    # Detected at upload, chosen at the mapping step (campaigns/contacts_import.py).
    dry_run: Mapped[bool] = mapped_column(default=False)  # a check that writes no contact
    encoding: Mapped[str] = mapped_column(String(20), default="")
    delimiter: Mapped[str] = mapped_column(String(1), default=",")
    columns: Mapped[list | None] = mapped_column(JSON)  # the header row
    preview: Mapped[list | None] = mapped_column(JSON)  # the first rows, until imported
    mapping: Mapped[list | None] = mapped_column(JSON)  # one field (or null) per column
    consent_source: Mapped[str] = mapped_column(Text, default="")  # the attestation


class ImportChunk(db.Model):
    """One piece (up to 1 MiB) of an uploaded CSV, in order, until its import job ends."""

    __tablename__ = "import_chunks"

    job_id: Mapped[int] = mapped_column(ForeignKey("import_jobs.id", ondelete="CASCADE"),
                                        primary_key=True)
    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    data: Mapped[bytes] = mapped_column(LargeBinary)
