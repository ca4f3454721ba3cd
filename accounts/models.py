"""Accounts: the brand, its partners, users and API tokens."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, Text
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
    # The profile (accounts/profile.py): the approved values emails use. A change the brand
    # must approve first waits in partner_profile_changes and is copied here when approved.
    logo_url: Mapped[str | None] = mapped_column(String(2000))
    address: Mapped[str | None] = mapped_column(String(500))
    phone: Mapped[str | None] = mapped_column(String(50))
    website: Mapped[str | None] = mapped_column(String(2000))
    display_name: Mapped[str | None] = mapped_column(String(200))
    advisor_name: Mapped[str | None] = mapped_column(String(100))
    title: Mapped[str | None] = mapped_column(String(100))
    photo_url: Mapped[str | None] = mapped_column(String(2000))
    signature: Mapped[str | None] = mapped_column(Text)
    disclosures: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    # An inactive partner's users cannot sign in and none of its sends leave; its data stays.
    deactivated_at: Mapped[datetime | None] = mapped_column()

    @property
    def active(self) -> bool:
        return self.deactivated_at is None

    @property
    def shown_name(self) -> str:
        """The name emails show for the business: the profile's display name, else the account's."""
        return self.display_name or self.name

    @property
    def default_sender_name(self) -> str:
        """The sender name a new campaign starts with: the advisor, else the business."""
        return self.advisor_name or self.shown_name

    def template_context(self) -> dict:
        """Return the co-branding fields templates see as `partner.*` (approved values only)."""
        return {
            "name": self.name,
            "tier": self.tier,
            "region": self.region,
            "display_name": self.shown_name,
            "advisor_name": self.advisor_name or "",
            "title": self.title or "",
            "photo_url": self.photo_url or "",
            "logo_url": self.logo_url or "",
            "signature": self.signature or "",
            "phone": self.phone or "",
            "address": self.address or "",
            "website": self.website or "",
            "disclosures": self.disclosures or "",
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
    # Login sessions carry the version they were issued under (accounts/auth.py); bumping it
    # (logout, password change, disabling) ends every session of the user at once.
    session_version: Mapped[int] = mapped_column(default=1, server_default="1")
    # A disabled user cannot sign in and has no API tokens; None means active.
    disabled_at: Mapped[datetime | None] = mapped_column()

    partner: Mapped[Partner | None] = relationship()

    @property
    def is_brand(self) -> bool:
        return self.role in BRAND_ROLES

    @property
    def disabled(self) -> bool:
        return self.disabled_at is not None

    def to_dict(self) -> dict:
        return {"id": self.id, "email": self.email, "name": self.name, "role": self.role,
                "partner_id": self.partner_id, "disabled": self.disabled}


class ApiToken(db.Model):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)

    user: Mapped[User] = relationship()


PROFILE_CHANGE_STATUSES = ("pending", "approved", "rejected", "superseded")


class ProfileChange(db.Model):
    """A partner's change to a profile field the brand approves first (accounts/profile.py)."""

    __tablename__ = "partner_profile_changes"
    __table_args__ = (
        CheckConstraint(f"status IN {PROFILE_CHANGE_STATUSES!r}", name="status_known"),
        Index("ix_partner_profile_changes_partner_status", "partner_id", "status"),
        Index("ix_partner_profile_changes_status", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id", ondelete="CASCADE"))
    field: Mapped[str] = mapped_column(String(50))
    value: Mapped[str | None] = mapped_column(Text)  # None: the partner cleared the field
    status: Mapped[str] = mapped_column(String(20), default="pending")
    reason: Mapped[str] = mapped_column(Text, default="")
    requested_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    requested_at: Mapped[datetime] = mapped_column(default=clock.now)
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    decided_at: Mapped[datetime | None] = mapped_column()


class BrandSetting(db.Model):
    """One brand-wide setting (this deployment serves one brand), e.g. the profile rules."""

    __tablename__ = "brand_settings"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[dict] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now)
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class Invitation(db.Model):
    """An emailed invitation to join as a user (accounts/invitations.py).

    The link carries a signed payload naming the invitation and a random nonce; only the
    nonce's hash is stored, and resending replaces it, so an older link stops working.
    """

    __tablename__ = "invitations"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), index=True)
    role: Mapped[str] = mapped_column(String(20))
    partner_id: Mapped[int | None] = mapped_column(
        ForeignKey("partners.id", ondelete="CASCADE"), index=True)
    invited_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    nonce_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    sent_at: Mapped[datetime] = mapped_column(default=clock.now)
    expires_at: Mapped[datetime] = mapped_column()
    accepted_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    partner: Mapped[Partner | None] = relationship()

    @property
    def status(self) -> str:
        """pending, accepted, revoked or expired."""
        if self.accepted_at is not None:
            return "accepted"
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.expires_at <= clock.now() else "pending"


class PasswordReset(db.Model):
    """A single-use, short-lived link to set a new password (accounts/invitations.py)."""

    __tablename__ = "password_resets"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    nonce_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column()
