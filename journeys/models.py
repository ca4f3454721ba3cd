"""Templates with immutable published versions, journeys and their steps."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core import clock
from core.db import db

STEP_CONDITIONS = ("always", "opened", "not_opened", "clicked", "not_clicked")


class Template(db.Model):
    __tablename__ = "templates"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=clock.now)

    versions: Mapped[list[TemplateVersion]] = relationship(
        back_populates="template", order_by="TemplateVersion.version"
    )


class TemplateVersion(db.Model):
    """One version of a template. Once `status` is published, nothing in the row changes."""

    __tablename__ = "template_versions"
    __table_args__ = (
        UniqueConstraint("template_id", "version"),
        CheckConstraint("status IN ('draft','published')", name="status_known"),
        CheckConstraint("status = 'draft' OR compiled_html IS NOT NULL", name="published_compiled"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("templates.id"), index=True)
    version: Mapped[int]
    status: Mapped[str] = mapped_column(String(20), default="draft")
    name: Mapped[str] = mapped_column(String(200))
    subject: Mapped[str] = mapped_column(String(500))
    preheader: Mapped[str] = mapped_column(String(500), default="")
    mjml: Mapped[str] = mapped_column(Text)
    slots: Mapped[list] = mapped_column(JSON, default=list)
    # Filled once at publish: the frozen Jinja HTML, its plain-text twin and its links.
    compiled_html: Mapped[str | None] = mapped_column(Text)
    compiled_text: Mapped[str | None] = mapped_column(Text)
    links: Mapped[list | None] = mapped_column(JSON)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    published_at: Mapped[datetime | None]

    template: Mapped[Template] = relationship(back_populates="versions")


class Journey(db.Model):
    __tablename__ = "journeys"
    __table_args__ = (
        CheckConstraint("status IN ('draft','published','archived')", name="status_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str] = mapped_column(String(100), default="")
    audience_tiers: Mapped[list] = mapped_column(JSON, default=list)  # empty = every tier
    audience_regions: Mapped[list] = mapped_column(JSON, default=list)  # empty = every region
    requires_approval: Mapped[bool] = mapped_column(default=False)
    quick_send: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(20), default="draft", index=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    published_at: Mapped[datetime | None]
    # Versions (journeys.versions): a new version is a draft copy of a published journey;
    # `previous_id` names the journey it replaces once published, `version` counts from 1.
    previous_id: Mapped[int | None] = mapped_column(ForeignKey("journeys.id"), index=True)
    version: Mapped[int] = mapped_column(default=1, server_default="1")

    steps: Mapped[list[JourneyStep]] = relationship(
        back_populates="journey", order_by="JourneyStep.position", cascade="all, delete-orphan"
    )

    def matches(self, tier: str, region: str) -> bool:
        """Tell whether a partner of `tier` and `region` is in this journey's audience.

        Names compare case-insensitively, as the brand's lists do (accounts.lists).
        """
        def within(value: str, names: list) -> bool:
            return not names or (value or "").strip().lower() in {
                n.strip().lower() for n in names}
        return within(tier, self.audience_tiers) and within(region, self.audience_regions)


class JourneyStep(db.Model):
    __tablename__ = "journey_steps"
    __table_args__ = (
        UniqueConstraint("journey_id", "position"),
        CheckConstraint("delay_hours >= 0", name="delay_not_negative"),
        CheckConstraint(f"condition IN {STEP_CONDITIONS!r}", name="condition_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    journey_id: Mapped[int] = mapped_column(ForeignKey("journeys.id", ondelete="CASCADE"))
    position: Mapped[int]  # 0-based step index
    template_id: Mapped[int] = mapped_column(ForeignKey("templates.id"))
    # Pinned when the journey is published; a campaign renders exactly this version.
    template_version_id: Mapped[int | None] = mapped_column(ForeignKey("template_versions.id"))
    delay_hours: Mapped[float] = mapped_column(default=0)
    condition: Mapped[str] = mapped_column(String(20), default="always")

    journey: Mapped[Journey] = relationship(back_populates="steps")
    template: Mapped[Template] = relationship()
    template_version: Mapped[TemplateVersion | None] = relationship()
