"""Accounts logic: partners, users, tokens and passwords."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash

from accounts.models import PARTNER_ROLES, ROLES, ApiToken, Partner, User
from core.db import db
from core.errors import NotFound, StateError, ValidationError

PARTNER_FIELDS = ("name", "tier", "region", "logo_url", "address", "phone", "website")


def hash_token(token: str) -> str:
    """Hash an API token for storage; tokens are high-entropy so a plain SHA-256 suffices."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_partner(**fields) -> Partner:
    """Create a partner from validated fields."""
    partner = Partner(**{k: fields.get(k) for k in PARTNER_FIELDS})
    db.session.add(partner)
    db.session.commit()
    return partner


def update_partner(partner_id: int, **fields) -> Partner:
    """Change a partner's profile fields."""
    partner = get_partner(partner_id)
    for key, value in fields.items():
        if key in PARTNER_FIELDS:
            setattr(partner, key, value)
    db.session.commit()
    return partner


def get_partner(partner_id: int) -> Partner:
    """Return a partner or raise NotFound."""
    partner = db.session.get(Partner, partner_id)
    if partner is None:
        raise NotFound("Partner not found.")
    return partner


def list_partners(page: int = 1, per_page: int = 50) -> tuple[list[Partner], int]:
    """Return one page of partners and the total count."""
    total = db.session.scalar(select(db.func.count()).select_from(Partner)) or 0
    rows = db.session.scalars(
        select(Partner).order_by(Partner.id).limit(per_page).offset((page - 1) * per_page)
    ).all()
    return list(rows), total


def create_user(email: str, role: str, partner_id: int | None = None, *, name: str = "",
                password: str | None = None) -> tuple[User, str]:
    """Create a user and return it with a fresh API token (shown once, stored hashed)."""
    email = email.strip().lower()
    problems = {}
    if role not in ROLES:
        problems["role"] = f"must be one of {', '.join(ROLES)}"
    if role in PARTNER_ROLES and partner_id is None:
        problems["partner"] = "partner roles need --partner"
    if role not in PARTNER_ROLES and partner_id is not None:
        problems["partner"] = "brand roles belong to no partner"
    if "@" not in email:
        problems["email"] = "is not an email address"
    if problems:
        raise ValidationError("Cannot create user.", problems)
    if partner_id is not None:
        get_partner(partner_id)
    if db.session.scalar(select(User).where(User.email == email)):
        raise StateError(f"A user with email {email} already exists.")
    user = User(email=email, role=role, partner_id=partner_id, name=name or email.split("@")[0])
    if password:
        user.password_hash = generate_password_hash(password)
    db.session.add(user)
    db.session.flush()
    token = _add_token(user)
    db.session.commit()
    return user, token


def issue_token(user_id: int) -> str:
    """Create another API token for an existing user."""
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound("User not found.")
    token = _add_token(user)
    db.session.commit()
    return token


def _add_token(user: User) -> str:
    token = "lm_" + secrets.token_urlsafe(32)
    db.session.add(ApiToken(user_id=user.id, token_hash=hash_token(token)))
    return token


def user_for_token(token: str) -> User | None:
    """Return the user an API token belongs to, or None."""
    row = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    return row.user if row else None


def authenticate(email: str, password: str) -> User | None:
    """Return the user whose email and password match, or None."""
    user = db.session.scalar(select(User).where(User.email == email.strip().lower()))
    if user and user.password_hash and check_password_hash(user.password_hash, password):
        return user
    # Spend comparable time on unknown emails so timing does not reveal which exist.
    check_password_hash(_DUMMY_HASH, password)
    return None


_DUMMY_HASH = generate_password_hash(secrets.token_hex(8))
