"""Accounts: the brand, its partners, users and API tokens."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core import clock
from core.db import db

BRAND_ROLES = ("brand_admin", "brand_marketer")
PARTNER_ROLES = ("partner_admin", "partner_user")
ROLES = BRAND_ROLES + PARTNER_ROLES


class Partner(db.Model):
    __tablename__ = "partners"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    tier: Mapped[str] = mapped_column(String(50), index=True)
    region: Mapped[str] = mapped_column(String(50), index=True)
    logo_url: Mapped[str | None] = mapped_column(String(2000))
    address: Mapped[str | None] = mapped_column(String(500))
    phone: Mapped[str | None] = mapped_column(String(50))
    website: Mapped[str | None] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(default=clock.now)

    def template_context(self) -> dict:
        """Return the co-branding fields templates see as `partner.*`."""
        return {
            "name": self.name,
            "tier": self.tier,
            "region": self.region,
            "logo_url": self.logo_url or "",
            "address": self.address or "",
            "phone": self.phone or "",
            "website": self.website or "",
        }


class User(db.Model):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(f"role IN {ROLES!r}", name="role_known"),
        CheckConstraint(
            "(role IN ('partner_admin','partner_user')) = (partner_id IS NOT NULL)",
            name="partner_roles_have_partner",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(20))
    partner_id: Mapped[int | None] = mapped_column(ForeignKey("partners.id"), index=True)
    password_hash: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)

    partner: Mapped[Partner | None] = relationship()

    @property
    def is_brand(self) -> bool:
        return self.role in BRAND_ROLES

    def to_dict(self) -> dict:
        return {"id": self.id, "email": self.email, "name": self.name, "role": self.role,
                "partner_id": self.partner_id}


class ApiToken(db.Model):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)

    user: Mapped[User] = relationship()
