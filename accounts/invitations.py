"""Invitations and password resets: signed, single-use links that expire.

A link's token is a payload signed with SECRET_KEY (itsdangerous, one salt per purpose)
naming the row and a random nonce; the row keeps only the nonce's hash. So a token that was
tampered with fails the signature, a used or revoked one finds its row closed, and resending
an invitation replaces the nonce (the older link stops working). Expiry is the row's
`expires_at`, checked against core.clock.

Sending the emails is campaigns.network's job (accounts sits below delivery).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import func, select
from werkzeug.security import generate_password_hash

from accounts.models import BRAND_ROLES, PARTNER_ROLES, ROLES, Invitation, PasswordReset, User
from accounts.passwords import check_password
from accounts.services import _end_sessions, _revoke_tokens, get_partner
from core import clock
from core.db import db
from core.errors import Forbidden, LinkRefused, NotFound, StateError, ValidationError
from core.i18n import _

INVITATION_DAYS = 7
RESET_MINUTES = 60
MAX_TOKEN_CHARS = 200


def _serializer(secret: str, purpose: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret, salt=f"lastmile/{purpose}")


def _digest(nonce: str) -> str:
    return hashlib.sha256(nonce.encode()).hexdigest()


def _new_token(secret: str, purpose: str, row_id: int) -> tuple[str, str]:
    """Return (token, nonce hash) for a row."""
    nonce = secrets.token_urlsafe(16)
    return _serializer(secret, purpose).dumps([row_id, nonce]), _digest(nonce)


def _read(secret: str, purpose: str, token: object) -> tuple[int, str]:
    """Return (row id, nonce hash) of a token whose signature verifies; else LinkRefused."""
    refused = LinkRefused(_("This link is not valid. Copy the whole link from the email, or "
                            "ask for a new one."), code="link_invalid")
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
        raise refused
    try:
        data = _serializer(secret, purpose).loads(token)
    except BadSignature as exc:
        raise refused from exc
    if (not isinstance(data, list) or len(data) != 2 or not isinstance(data[0], int)
            or isinstance(data[0], bool) or not isinstance(data[1], str)):
        raise refused
    return data[0], _digest(data[1])


# --- who may invite whom --------------------------------------------------------------------

def grantable_roles(actor: User) -> tuple[str, ...]:
    """Return the roles `actor` may give: every role for a brand admin, partner roles for a
    partner admin (in its own partner), none for anyone else."""
    if actor.role == "brand_admin":
        return ROLES
    if actor.role == "partner_admin":
        return PARTNER_ROLES
    return ()


def check_grant(actor: User, role: object, partner_id: object) -> tuple[str, int | None]:
    """Return (role, partner id) if `actor` may give `role` in `partner_id`.

    A partner admin naming another partner gets 404 (it does not exist for them), and a
    brand role 403; a partner admin's own partner is the default.
    """
    if not isinstance(role, str) or role not in ROLES:
        message = _("Choose a role.")
        raise ValidationError(message, {"role": message})
    if partner_id is not None and (isinstance(partner_id, bool) or not isinstance(partner_id, int)
                                   or not 0 < partner_id < 2**31):
        raise ValidationError(_("Choose a partner."), {"partner_id": _("Choose a partner.")})
    if actor.role == "partner_admin":
        if partner_id is not None and partner_id != actor.partner_id:
            raise NotFound(_("Partner not found."))
        partner_id = actor.partner_id
    if role not in grantable_roles(actor):
        raise Forbidden(_("You may not give this role."))
    if role in PARTNER_ROLES:
        if partner_id is None:
            message = _("Choose the partner this person belongs to.")
            raise ValidationError(message, {"partner_id": message})
        get_partner(partner_id)
    elif partner_id is not None:
        message = _("Brand roles belong to no partner.")
        raise ValidationError(message, {"partner_id": message})
    return role, partner_id


# --- invitations ----------------------------------------------------------------------------

def _clean_email(email: object) -> str:
    text = email.strip().lower() if isinstance(email, str) else ""
    if not 3 <= len(text) <= 320 or text.count("@") != 1 or any(c.isspace() for c in text) \
            or text.startswith("@") or text.endswith("@"):
        message = _("Enter an email address.")
        raise ValidationError(message, {"email": message})
    return text


def create_invitation(actor: User, email: object, role: object, partner_id: object,
                      secret: str) -> tuple[Invitation, str]:
    """Record an invitation (not yet emailed: the caller sends it) and return it with its token."""
    role, partner = check_grant(actor, role, partner_id)
    address = _clean_email(email)
    if db.session.scalar(select(User.id).where(User.email == address)):
        raise StateError(_("Someone with this email address already has an account."),
                         {"email": _("already has an account")})
    now = clock.now()
    pending = db.session.scalar(select(Invitation).where(
        Invitation.email == address, Invitation.accepted_at.is_(None),
        Invitation.revoked_at.is_(None), Invitation.expires_at > now))
    if pending is not None:
        raise StateError(_("This address already has an invitation waiting; resend it "
                           "instead."), {"email": _("already invited")})
    invitation = Invitation(email=address, role=role, partner_id=partner, invited_by=actor.id,
                            nonce_hash="", created_at=now, sent_at=now,
                            expires_at=now + timedelta(days=INVITATION_DAYS))
    db.session.add(invitation)
    db.session.flush()
    token, invitation.nonce_hash = _new_token(secret, "invitation", invitation.id)
    return invitation, token


def renew_invitation(invitation: Invitation, secret: str) -> str:
    """Give a pending or expired invitation a new link and 7 more days; the old link dies."""
    if invitation.accepted_at is not None:
        raise StateError(_("This invitation was already accepted."))
    now = clock.now()
    token, invitation.nonce_hash = _new_token(secret, "invitation", invitation.id)
    invitation.revoked_at = None
    invitation.sent_at = now
    invitation.expires_at = now + timedelta(days=INVITATION_DAYS)
    return token


def revoke_invitation(invitation: Invitation) -> Invitation:
    """Revoke an invitation that was not accepted: its link stops working."""
    if invitation.accepted_at is not None:
        raise StateError(_("This invitation was already accepted; disable the user instead."))
    if invitation.revoked_at is None:
        invitation.revoked_at = clock.now()
    db.session.commit()
    return invitation


def get_invitation(invitation_id: int) -> Invitation:
    invitation = db.session.get(Invitation, invitation_id)
    if invitation is None:
        raise NotFound(_("Invitation not found."))
    return invitation


def list_invitations(partner_id: int | None, page: int = 1, per_page: int = 50,
                     brand_only: bool = False) -> tuple[list[Invitation], int]:
    """Return one page of invitations (of one partner, or all with None), newest first."""
    query = select(Invitation)
    if partner_id is not None:
        query = query.where(Invitation.partner_id == partner_id)
    elif brand_only:
        query = query.where(Invitation.role.in_(BRAND_ROLES))
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = db.session.scalars(query.order_by(Invitation.id.desc()).limit(per_page)
                              .offset((page - 1) * per_page)).all()
    return list(rows), total


def open_invitation(token: object, secret: str) -> Invitation:
    """Return the pending invitation a link names; else LinkRefused saying why."""
    row_id, nonce_hash = _read(secret, "invitation", token)
    invitation = db.session.get(Invitation, row_id)
    if invitation is None or not hmac.compare_digest(invitation.nonce_hash, nonce_hash):
        if invitation is not None and invitation.accepted_at is None:
            raise LinkRefused(_("This invitation link was replaced by a newer one. Use the "
                                "latest email."), code="link_replaced")
        if invitation is None:
            raise LinkRefused(_("This invitation no longer exists."), code="link_invalid")
    assert invitation is not None
    if invitation.accepted_at is not None:
        raise LinkRefused(_("This invitation was already used. Sign in, or reset your "
                            "password if you forgot it."), code="link_used")
    if invitation.revoked_at is not None:
        raise LinkRefused(_("This invitation was withdrawn. Ask the person who invited you."),
                          code="link_revoked")
    if invitation.expires_at <= clock.now():
        raise LinkRefused(_("This invitation expired. Ask the person who invited you to send "
                            "it again."), code="link_expired")
    return invitation


def accept_invitation(token: object, name: object, password: object, secret: str) -> User:
    """Create the invited user with a name and password; the link is used up."""
    # Lock the row: two clicks on the link cannot both create the user.
    row_id, _hash = _read(secret, "invitation", token)
    db.session.execute(select(Invitation.id).where(Invitation.id == row_id).with_for_update())
    invitation = open_invitation(token, secret)
    clean = name.strip() if isinstance(name, str) else ""
    if not clean or len(clean) > 200:
        message = _("Enter your name (at most 200 characters).")
        raise ValidationError(message, {"name": message})
    check_password(password, "password")
    if invitation.partner is not None and not invitation.partner.active:
        raise LinkRefused(_("Your organisation's account is paused. Ask the brand to "
                            "reactivate it."), code="partner_inactive")
    if db.session.scalar(select(User.id).where(User.email == invitation.email)):
        raise LinkRefused(_("This address already has an account. Sign in instead."),
                          code="link_used")
    user = User(email=invitation.email, name=clean, role=invitation.role,
                partner_id=invitation.partner_id, password_hash=generate_password_hash(password))
    db.session.add(user)
    db.session.flush()
    invitation.accepted_at = clock.now()
    invitation.user_id = user.id
    db.session.commit()
    return user


# --- password resets ------------------------------------------------------------------------

def create_reset(email: object, secret: str) -> tuple[User | None, str]:
    """Return (user, token) for an address with an active account, else (None, a token of the
    same shape for nobody): the caller does the same work either way."""
    address = email.strip().lower() if isinstance(email, str) else ""
    user = db.session.scalar(select(User).where(User.email == address)) if address else None
    if user is not None and (user.disabled or (user.partner is not None
                                               and not user.partner.active)):
        user = None
    now = clock.now()
    if user is None:
        # Signing costs the same; nothing is stored and the token opens nothing.
        return None, _new_token(secret, "reset", 0)[0]
    reset = PasswordReset(user_id=user.id, nonce_hash="", created_at=now,
                          expires_at=now + timedelta(minutes=RESET_MINUTES))
    db.session.add(reset)
    db.session.flush()
    token, reset.nonce_hash = _new_token(secret, "reset", reset.id)
    db.session.commit()
    return user, token


def open_reset(token: object, secret: str) -> PasswordReset:
    """Return the unused reset a link names; else LinkRefused saying why."""
    row_id, nonce_hash = _read(secret, "reset", token)
    reset = db.session.get(PasswordReset, row_id) if row_id > 0 else None
    if reset is None or not hmac.compare_digest(reset.nonce_hash, nonce_hash):
        raise LinkRefused(_("This link is not valid. Ask for a new one."), code="link_invalid")
    if reset.used_at is not None:
        raise LinkRefused(_("This link was already used. Ask for a new one if you need to."),
                          code="link_used")
    if reset.expires_at <= clock.now():
        raise LinkRefused(_("This link expired (it works for %(n)s minutes). Ask for a new one.",
                            n=RESET_MINUTES), code="link_expired")
    return reset


def complete_reset(token: object, password: object, secret: str) -> User:
    """Set the new password from a reset link: the link is used up, every session ends."""
    row_id, _hash = _read(secret, "reset", token)
    db.session.execute(select(PasswordReset.id).where(PasswordReset.id == row_id)
                       .with_for_update())
    reset = open_reset(token, secret)
    check_password(password, "password")
    user = db.session.get(User, reset.user_id)
    assert user is not None
    user.password_hash = generate_password_hash(password)
    now = clock.now()
    # Every other reset link of the user dies with this one.
    for other in db.session.scalars(select(PasswordReset).where(
            PasswordReset.user_id == user.id, PasswordReset.used_at.is_(None))):
        other.used_at = now
    _end_sessions(user)
    _revoke_tokens(user)
    db.session.commit()
    return user
