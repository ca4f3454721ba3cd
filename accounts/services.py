"""Accounts logic: partners, users, tokens and passwords."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import delete, select
from werkzeug.security import check_password_hash, generate_password_hash

from accounts import lists
from accounts.models import PARTNER_ROLES, ROLES, ApiToken, Partner, User
from accounts.passwords import check_password
from core import clock
from core.db import db
from core.errors import AccountDisabled, Forbidden, NotFound, StateError, ValidationError
from core.i18n import _

PARTNER_FIELDS = ("name", "tier", "region", "logo_url", "address", "phone", "website")


def hash_token(token: str) -> str:
    """Hash an API token for storage; tokens are high-entropy so a plain SHA-256 suffices."""
    return hashlib.sha256(token.encode()).hexdigest()


def _listed(fields: dict) -> dict:
    """Spell `tier` and `region` as the brand's lists do; an unlisted one is a 422 naming it."""
    out = dict(fields)
    problems: dict[str, str] = {}
    for kind in lists.KINDS:
        if out.get(kind) is not None:
            try:
                out[kind] = lists.canonical(kind, [out[kind]], kind)[0]
            except ValidationError as err:
                problems.update(err.fields)
    if problems:
        raise ValidationError(_("Partner is invalid."), problems)
    return out


def create_partner(**fields) -> Partner:
    """Create a partner from validated fields (tier and region from the brand's lists)."""
    fields = _listed(fields)
    partner = Partner(**{k: fields.get(k) for k in PARTNER_FIELDS})
    db.session.add(partner)
    db.session.commit()
    return partner


def update_partner(partner_id: int, **fields) -> Partner:
    """Change a partner's profile fields."""
    partner = get_partner(partner_id)
    fields = _listed(fields)
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


def list_partners(page: int = 1, per_page: int = 50, *, q: str = "", tier: str = "",
                  region: str = "", active: bool | None = None,
                  ids: list[int] | None = None) -> tuple[list[Partner], int]:
    """Return one page of partners (name containing `q`, of a tier, region, state or among
    `ids`) and the total count."""
    query = select(Partner)
    if q:
        pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(Partner.name.ilike(pattern, escape="\\"))
    if tier:
        query = query.where(Partner.tier == tier)
    if region:
        query = query.where(Partner.region == region)
    if active is not None:
        query = query.where(Partner.deactivated_at.is_(None) if active
                            else Partner.deactivated_at.is_not(None))
    if ids is not None:
        query = query.where(Partner.id.in_(ids))
    total = db.session.scalar(select(db.func.count()).select_from(query.subquery())) or 0
    rows = db.session.scalars(
        query.order_by(Partner.name, Partner.id).limit(per_page).offset((page - 1) * per_page)
    ).all()
    return list(rows), total


def partner_choices() -> dict[str, list[str]]:
    """Return the brand's tiers and regions (the managed lists a partner must be in)."""
    return {kind: [entry.name for entry in lists.names(kind)] for kind in lists.KINDS}


def set_partner_active(partner_id: int, active: bool) -> Partner:
    """Deactivate a partner (its users cannot sign in, none of its mail leaves; its data stays)
    or reactivate it. Deactivating ends its users' sessions and API tokens at once."""
    partner = get_partner(partner_id)
    if active:
        partner.deactivated_at = None
    elif partner.deactivated_at is None:
        partner.deactivated_at = clock.now()
        for user in db.session.scalars(select(User).where(User.partner_id == partner.id)):
            _end_sessions(user)
            _revoke_tokens(user)
    db.session.commit()
    return partner


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
    """Create another API token for an existing, active user."""
    user = get_user(user_id)
    if user.disabled:
        raise StateError(_("This user is disabled; enable them first."))
    token = _add_token(user)
    db.session.commit()
    return token


def _add_token(user: User) -> str:
    token = "lm_" + secrets.token_urlsafe(32)
    db.session.add(ApiToken(user_id=user.id, token_hash=hash_token(token)))
    return token


def user_for_token(token: str) -> User | None:
    """Return the active user an API token belongs to, or None."""
    row = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    return row.user if row is not None and _may_act(row.user) else None


def _may_act(user: User) -> bool:
    """Tell whether a user may use the app: enabled, and of an active partner (or the brand)."""
    return not user.disabled and (user.partner is None or user.partner.active)


def user_for_session(user_id: object, version: object) -> User | None:
    """Return the active user a login session names, or None if the session has ended.

    A session ends when the user's session version moved on since it was issued (logout,
    password change, disabling) or the user is disabled.
    """
    if not isinstance(user_id, int) or not isinstance(version, int):
        return None  # also every session issued before session versions existed
    user = db.session.get(User, user_id)
    if user is None or not _may_act(user) or user.session_version != version:
        return None
    return user


def authenticate(email: str, password: str) -> User | None:
    """Return the user whose email and password match, or None.

    Raises AccountDisabled for a disabled user, and only once the password matched, so the
    answer tells nothing to someone who does not know it.
    """
    user = db.session.scalar(select(User).where(User.email == email.strip().lower()))
    if user and user.password_hash and check_password_hash(user.password_hash, password):
        if user.disabled:
            raise AccountDisabled(_("This account is disabled. Ask your administrator to "
                                    "enable it again."))
        if user.partner is not None and not user.partner.active:
            raise AccountDisabled(_("Your organisation's account is paused. Ask the brand to "
                                    "reactivate it."))
        return user
    # Spend comparable time on unknown emails so timing does not reveal which exist.
    check_password_hash(_DUMMY_HASH, password)
    return None


# --- sessions that end: logout, password change, disabling -------------------------------


def _end_sessions(user: User) -> None:
    # Every login session carries the version it was issued under (accounts/auth.py).
    user.session_version = (user.session_version or 1) + 1


def _revoke_tokens(user: User) -> None:
    db.session.execute(delete(ApiToken).where(ApiToken.user_id == user.id))


def log_out(user: User) -> None:
    """End every login session of the user, in every browser, and every API token."""
    # "Sessions that really end": a sign-out also ends what a stolen token could do; a script
    # gets a new token (`flask users token`), ideally on a user of its own.
    _end_sessions(user)
    _revoke_tokens(user)
    db.session.commit()


def change_password(user: User, current: object, new: object) -> str:
    """Check the current password, then set a new one; see `set_password`."""
    if (not isinstance(current, str) or not user.password_hash
            or not check_password_hash(user.password_hash, current)):
        message = _("The current password is wrong.")
        raise ValidationError(message, {"current_password": message})
    return set_password(user, new)


def set_password(user: User, new: object) -> str:
    """Set a new password, end every session and API token, and return one fresh token."""
    check_password(new)
    user.password_hash = generate_password_hash(new)
    _end_sessions(user)
    _revoke_tokens(user)
    token = _add_token(user)
    db.session.commit()
    return token


def disable_user(user: User, by: User | None = None) -> User:
    """Disable a user: every session and API token ends at once and sign-in is refused."""
    if by is not None and by.id == user.id:
        raise StateError(_("You cannot disable your own account."))
    if not user.disabled:
        user.disabled_at = clock.now()
        _end_sessions(user)
        _revoke_tokens(user)
        db.session.commit()
    return user


def enable_user(user: User) -> User:
    """Let a disabled user sign in again (their old tokens stay revoked; issue a new one)."""
    user.disabled_at = None
    db.session.commit()
    return user


def change_role(user: User, role: object, allowed: tuple[str, ...], by: User) -> User:
    """Give `user` another role of the same kind (brand or partner) among `allowed`."""
    if not isinstance(role, str) or role not in ROLES:
        message = _("Choose a role.")
        raise ValidationError(message, {"role": message})
    if role not in allowed:
        raise Forbidden(_("You may not give this role."))
    if (role in PARTNER_ROLES) != (user.role in PARTNER_ROLES):
        message = _("A partner's user keeps a partner role and a brand user a brand role; "
                    "invite the person again for the other kind.")
        raise ValidationError(message, {"role": message})
    if by.id == user.id and role != user.role:
        raise StateError(_("You cannot change your own role."))
    user.role = role  # read on every request: it applies at once
    db.session.commit()
    return user


def get_user(user_id: int) -> User:
    """Return a user or raise NotFound."""
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound(_("User not found."))
    return user


def list_users(partner_id: int | None, page: int = 1, per_page: int = 50, *,
               brand_only: bool = False) -> tuple[list[User], int]:
    """Return one page of users (of one partner, of the brand, or all) and the total count."""
    query = select(User)
    if partner_id is not None:
        query = query.where(User.partner_id == partner_id)
    elif brand_only:
        query = query.where(User.partner_id.is_(None))
    total = db.session.scalar(select(db.func.count()).select_from(query.subquery())) or 0
    rows = db.session.scalars(
        query.order_by(User.id).limit(per_page).offset((page - 1) * per_page)).all()
    return list(rows), total


_DUMMY_HASH = generate_password_hash(secrets.token_hex(8))
