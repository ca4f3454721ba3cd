"""Contacts: one partner's recipients, one by one (CSV imports: campaigns/contacts_import.py).

Addresses are normalized once, here, so the per-partner unique constraint and the brand-wide
suppression list compare like with like. The whole address is lower-cased: RFC 5321 lets a
mailbox's local part be case-sensitive, but no mainstream mailbox provider treats it so, and
an unsubscribe recorded for "Ann@x.com" must also stop mail to "ann@x.com".
"""

from __future__ import annotations

import re

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import delete, func, or_, select

from campaigns.models import CampaignMember, Contact, Send
from core import clock
from core.db import db
from core.errors import StateError, ValidationError

MAX_ATTRIBUTES = 50
MAX_ATTRIBUTE_VALUE = 1000
NAME_MAX = 200
ATTRIBUTE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class InvalidEmail(ValueError):
    """An address that cannot be mailed; str() says why."""


def normalize_email(raw: str) -> str:
    """Return the normalized (fully lower-cased) form of `raw` or raise InvalidEmail."""
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidEmail("email is missing")
    candidate = raw.strip()
    if len(candidate) > 320 or CONTROL.search(candidate) or "\r" in candidate or "\n" in candidate:
        raise InvalidEmail("email is not a valid address")
    try:
        result = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidEmail(str(exc)) from exc
    return result.normalized.lower()


def loose_email(raw: str) -> str:
    """Normalize an address if it validates, else just trim and lower-case it (suppression keys)."""
    try:
        return normalize_email(raw)
    except InvalidEmail:
        return (raw or "").strip().lower()


# ---------------------------------------------------------------------------- single contacts


def clean_contact_fields(data: dict, *, partial: bool) -> dict:
    """Validate a contact JSON body; return the fields to store or raise one 422 listing all."""
    problems: dict[str, str] = {}
    out: dict = {}
    allowed = {"email", "first_name", "last_name", "attributes", "consent"}
    for key in set(data) - allowed:
        problems[key] = "is not a contact field"
    if not partial or "email" in data:
        try:
            out["email"] = normalize_email(data.get("email"))  # type: ignore[arg-type]
        except InvalidEmail as exc:
            problems["email"] = str(exc)
    for name in ("first_name", "last_name"):
        if name in data:
            value = data[name]
            if value is None:
                value = ""
            if not isinstance(value, str):
                problems[name] = "must be a string"
            elif len(value.strip()) > NAME_MAX:
                problems[name] = f"must be at most {NAME_MAX} characters"
            elif CONTROL.search(value) or "\r" in value or "\n" in value:
                problems[name] = "must be a single line of text"
            else:
                out[name] = value.strip()
    if "attributes" in data:
        attrs = data["attributes"]
        if attrs is None:
            attrs = {}
        if not isinstance(attrs, dict):
            problems["attributes"] = "must be an object of string values"
        else:
            for key, message in _attribute_problems(attrs).items():
                problems[f"attributes.{key}"] = message
            out["attributes"] = {k: v.strip() for k, v in attrs.items() if isinstance(v, str)}
    if not partial or "consent" in data:
        consent = data.get("consent")
        if not isinstance(consent, bool):
            problems["consent"] = "must be true or false"
        else:
            out["consent"] = consent
    if problems:
        raise ValidationError("Contact is invalid.", problems)
    return out


def _attribute_problems(attrs: dict) -> dict[str, str]:
    problems: dict[str, str] = {}
    if len(attrs) > MAX_ATTRIBUTES:
        problems["_"] = f"at most {MAX_ATTRIBUTES} attributes"
    for key, value in attrs.items():
        if not isinstance(key, str) or not ATTRIBUTE_KEY.match(key):
            problems[str(key)[:64]] = "name must be letters, digits and _ (max 64)"
        elif not isinstance(value, str):
            problems[key] = "must be a string"
        elif len(value) > MAX_ATTRIBUTE_VALUE:
            problems[key] = f"must be at most {MAX_ATTRIBUTE_VALUE} characters"
        elif "\x00" in value:
            problems[key] = "must not contain NUL characters"
    return problems


def _email_taken(partner_id: int, email: str, exclude_id: int | None = None) -> bool:
    query = select(Contact.id).where(Contact.partner_id == partner_id, Contact.email == email)
    if exclude_id is not None:
        query = query.where(Contact.id != exclude_id)
    return db.session.scalar(query.limit(1)) is not None


def create_contact(partner_id: int, *, email: str, first_name: str = "", last_name: str = "",
                   attributes: dict | None = None, consent: bool = False) -> Contact:
    """Create a contact for a partner (fields already cleaned); 409 if the address exists."""
    if _email_taken(partner_id, email):
        raise StateError("This partner already has a contact with that email.",
                         fields={"email": "already exists"}, code="duplicate")
    contact = Contact(partner_id=partner_id, email=email, first_name=first_name or "",
                      last_name=last_name or "", attributes=dict(attributes or {}),
                      consent=consent)
    db.session.add(contact)
    db.session.commit()
    return contact


def update_contact(contact: Contact, **fields) -> Contact:
    """Change a contact's cleaned fields; 409 if the new address belongs to another contact."""
    if "email" in fields and fields["email"] != contact.email and _email_taken(
        contact.partner_id, fields["email"], exclude_id=contact.id
    ):
        raise StateError("This partner already has a contact with that email.",
                         fields={"email": "already exists"}, code="duplicate")
    for key, value in fields.items():
        setattr(contact, key, value)
    contact.updated_at = clock.now()
    db.session.commit()
    return contact


def delete_contact(contact: Contact) -> None:
    """Delete a contact and its not-yet-sent memberships; 409 once mail has been queued for it."""
    has_sends = db.session.scalar(
        select(Send.id).where(Send.contact_id == contact.id).limit(1)
    )
    if has_sends is not None:
        raise StateError(
            "This contact already has messages in a campaign; its history is kept. "
            "Set consent to false to stop further mail.",
        )
    db.session.execute(delete(CampaignMember).where(CampaignMember.contact_id == contact.id))
    db.session.delete(contact)
    db.session.commit()


def get_contact(contact_id: int) -> Contact | None:
    """Return a contact by id (callers pass it through `visible()`)."""
    return db.session.get(Contact, contact_id)


def list_contacts(partner_id: int, q: str = "", page: int = 1,
                  per_page: int = 50) -> tuple[list[Contact], int]:
    """Return one page of a partner's contacts matching `q` (email or names) and the total."""
    query = select(Contact).where(Contact.partner_id == partner_id)
    q = (q or "").strip()
    if q:
        pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(or_(
            Contact.email.ilike(pattern, escape="\\"),
            Contact.first_name.ilike(pattern, escape="\\"),
            Contact.last_name.ilike(pattern, escape="\\"),
        ))
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = db.session.scalars(
        query.order_by(Contact.id).limit(per_page).offset((page - 1) * per_page)
    ).all()
    return list(rows), total


def contact_json(contact: Contact) -> dict:
    """Serialize a contact for the API."""
    return {"id": contact.id, "email": contact.email, "first_name": contact.first_name,
            "last_name": contact.last_name, "attributes": contact.attributes or {},
            "consent": contact.consent, "partner_id": contact.partner_id,
            "created_at": contact.created_at.isoformat(),
            "updated_at": contact.updated_at.isoformat()}
