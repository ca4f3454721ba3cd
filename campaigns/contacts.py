"""Contacts: one partner's recipients, one by one (CSV imports: campaigns/contacts_import.py).

Addresses are normalized once, here, so the per-partner unique constraint and the brand-wide
suppression list compare like with like. The whole address is lower-cased: RFC 5321 lets a
mailbox's local part be case-sensitive, but no mainstream mailbox provider treats it so, and
an unsubscribe recorded for "Ann@x.com" must also stop mail to "ann@x.com".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import Select, and_, case, delete, exists, false, func, insert, or_, select

from campaigns.consent import record_consent
from campaigns.models import Contact, ContactTag, Suppression
from core import clock
from core.db import db
from core.errors import StateError, ValidationError
from core.i18n import _, lazy_gettext
from core.validate import unstorable_text

MAX_ATTRIBUTES = 50
MAX_ATTRIBUTE_VALUE = 1000
NAME_MAX = 200
ATTRIBUTE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
MAX_TAGS = 50
TAG_MAX = 50
CONSENT_NOTE_MAX = 500
# Any control character (tabs and line breaks too) or a comma (the web form separates tags
# with commas) has no place in a tag.
TAG_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f,]")

# A contact's status: whether it can be mailed, and if not why (suppressions come first).
CONTACT_STATUSES = ("mailable", "unsubscribed", "bounced", "complained", "no_consent",
                    "suppressed")
STATUS_LABELS = {
    "mailable": lazy_gettext("Can be emailed"),
    "unsubscribed": lazy_gettext("Unsubscribed"),
    "bounced": lazy_gettext("Email address bounced"),
    "complained": lazy_gettext("Marked an email as spam"),
    "no_consent": lazy_gettext("No consent to email"),
    "suppressed": lazy_gettext("Blocked by the brand"),
}
STATUS_REASONS = {
    "mailable": lazy_gettext("This person agreed to receive email and can be sent messages."),
    "unsubscribed": lazy_gettext("This person unsubscribed with the link in an email. No "
                                 "partner of the brand can email them again."),
    "bounced": lazy_gettext("Mail to this address bounced: the receiving server says it does "
                            "not exist. It is no longer mailed."),
    "complained": lazy_gettext("This person marked an email as spam. No partner of the brand "
                               "can email them again."),
    "no_consent": lazy_gettext("This person has not agreed to receive email. Record their "
                               "consent below once they have."),
    "suppressed": lazy_gettext("The brand blocked email to this address."),
}


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
    allowed = {"email", "first_name", "last_name", "attributes", "consent", "tags",
               "consent_note"}
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
            elif unstorable_text(value):
                problems[name] = _("contains a NUL character or broken Unicode")
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
    if "tags" in data:
        try:
            out["tags"] = clean_tags(data["tags"])
        except ValidationError as err:
            problems.update(err.fields)
    if "consent_note" in data:
        note = data["consent_note"]
        if note is None:
            note = ""
        if not isinstance(note, str):
            problems["consent_note"] = _("must be a string")
        elif unstorable_text(note):
            problems["consent_note"] = _("contains a NUL character or broken Unicode")
        elif len(note.strip()) > CONSENT_NOTE_MAX:
            problems["consent_note"] = _("must be at most %(n)s characters", n=CONSENT_NOTE_MAX)
        elif CONTROL.search(note) or "\r" in note or "\n" in note:
            problems["consent_note"] = _("must be a single line of text")
        elif "consent" not in data:
            problems["consent_note"] = _("says where consent came from: send it with consent")
        else:
            out["consent_note"] = note.strip()
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
        elif unstorable_text(value):
            problems[key] = "must not contain NUL characters or broken Unicode"
    return problems


def clean_tags(raw: object) -> list[str]:
    """Return tags trimmed, inner spaces collapsed, lower-cased and de-duplicated, or 422.

    Tags are short labels (at most 50 characters, no control characters or commas), at most
    50 per contact. `None` means no tags.
    """
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ValidationError(_("Tags are invalid."), {"tags": _("must be a list of strings")})
    if len(raw) > 4 * MAX_TAGS:  # far too many even before duplicates are dropped
        raise ValidationError(_("Tags are invalid."),
                              {"tags": _("at most %(n)s tags per contact", n=MAX_TAGS)})
    problems: dict[str, str] = {}
    tags: list[str] = []
    for i, item in enumerate(raw):
        if not isinstance(item, str):
            problems[f"tags.{i}"] = _("must be a string")
            continue
        tag = re.sub(r"\s+", " ", item).strip().lower()
        if TAG_FORBIDDEN.search(item):
            problems[f"tags.{i}"] = _("must not contain commas or control characters")
        elif unstorable_text(item):
            problems[f"tags.{i}"] = _("contains broken Unicode")
        elif not tag:
            problems[f"tags.{i}"] = _("must not be empty")
        elif len(tag) > TAG_MAX:
            problems[f"tags.{i}"] = _("must be at most %(n)s characters", n=TAG_MAX)
        elif tag not in tags:
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        problems["tags"] = _("at most %(n)s tags per contact", n=MAX_TAGS)
    if problems:
        raise ValidationError(_("Tags are invalid."), problems)
    return tags


def clean_tag_filter(raw: Sequence[str]) -> list[str]:
    """Validate `?tag=` values the way tags are stored; 422 names the bad one."""
    if len(raw) > 10:
        raise ValidationError(_("Too many tag filters."), {"tag": _("at most 10")})
    try:
        return clean_tags(list(raw))
    except ValidationError as err:
        raise ValidationError(_("The tag filter is invalid."),
                              {"tag": next(iter(err.fields.values()))}) from err


def _email_taken(partner_id: int, email: str, exclude_id: int | None = None) -> bool:
    query = select(Contact.id).where(Contact.partner_id == partner_id, Contact.email == email)
    if exclude_id is not None:
        query = query.where(Contact.id != exclude_id)
    return db.session.scalar(query.limit(1)) is not None


def create_contact(partner_id: int, *, email: str, first_name: str = "", last_name: str = "",
                   attributes: dict | None = None, consent: bool = False,
                   tags: list[str] | None = None, consent_note: str = "", source: str = "api",
                   user_id: int | None = None) -> Contact:
    """Create a contact for a partner (fields already cleaned); 409 if the address exists.

    Consent given at creation is recorded in its history: `source` (`form`, `api`) says how,
    `user_id` who, `consent_note` where it came from.
    """
    if _email_taken(partner_id, email):
        raise StateError("This partner already has a contact with that email.",
                         fields={"email": "already exists"}, code="duplicate")
    contact = Contact(partner_id=partner_id, email=email, first_name=first_name or "",
                      last_name=last_name or "", attributes=dict(attributes or {}),
                      consent=consent)
    db.session.add(contact)
    db.session.flush()
    if tags:
        _write_tags(contact, tags)
    if consent:
        record_consent(contact, True, source, detail=consent_note, user_id=user_id)
    db.session.commit()
    return contact


def update_contact(contact: Contact, *, source: str = "api", user_id: int | None = None,
                   **fields) -> Contact:
    """Change a contact's cleaned fields; 409 if the new address belongs to another contact.

    A change of consent is recorded in its history (`source`, `user_id`, `consent_note`);
    `tags` replaces the contact's tags.
    """
    if "email" in fields and fields["email"] != contact.email and _email_taken(
        contact.partner_id, fields["email"], exclude_id=contact.id
    ):
        raise StateError("This partner already has a contact with that email.",
                         fields={"email": "already exists"}, code="duplicate")
    note = fields.pop("consent_note", "")
    tags = fields.pop("tags", None)
    if "consent" in fields and fields["consent"] != contact.consent:
        record_consent(contact, fields["consent"], source, detail=note, user_id=user_id)
    for key, value in fields.items():
        setattr(contact, key, value)
    if tags is not None:
        _write_tags(contact, tags)
    contact.updated_at = clock.now()
    db.session.commit()
    return contact


def _write_tags(contact: Contact, tags: list[str]) -> None:
    db.session.execute(delete(ContactTag).where(ContactTag.contact_id == contact.id))
    if tags:
        db.session.execute(insert(ContactTag), [
            {"contact_id": contact.id, "tag": tag, "partner_id": contact.partner_id}
            for tag in tags])


def get_contact(contact_id: int) -> Contact | None:
    """Return a contact by id (callers pass it through `visible()`); None past the id range."""
    if not 0 < contact_id < 2**63:
        return None
    return db.session.get(Contact, contact_id)


def status_column():  # noqa: ANN201 - a SQL expression
    """The contact status as SQL, for a query joined with `with_status` (filter or select)."""
    return case(
        (Suppression.reason == "unsubscribed", "unsubscribed"),
        (Suppression.reason == "bounced", "bounced"),
        (Suppression.reason == "complained", "complained"),
        (Suppression.reason.is_not(None), "suppressed"),
        (Contact.consent.is_(False), "no_consent"),
        else_="mailable",
    )


# The statuses a suppression gives, by its reason (any other reason: "suppressed").
SUPPRESSION_STATUSES = ("unsubscribed", "bounced", "complained")


def status_in(statuses: Iterable[str]):  # noqa: ANN201 - a SQL expression
    """SQL: the contact's status is one of `statuses`, for a query joined with `with_status`.

    The same as `status_column().in_(statuses)`, written as conditions on the two tables so
    PostgreSQL plans a join instead of computing every contact's status first: a suppression
    status starts from the (few) suppressions, `mailable` and `no_consent` are an anti-join
    (a suppression's `email_hash` is NULL only where the outer join found none).
    """
    unsuppressed = Suppression.email_hash.is_(None)
    conditions = []
    for status in statuses:
        if status in SUPPRESSION_STATUSES:
            conditions.append(Suppression.reason == status)
        elif status == "suppressed":
            conditions.append(and_(Suppression.email_hash.is_not(None),
                                   Suppression.reason.not_in(SUPPRESSION_STATUSES)))
        elif status == "no_consent":
            conditions.append(and_(unsuppressed, Contact.consent.is_(False)))
        elif status == "mailable":
            conditions.append(and_(unsuppressed, Contact.consent.is_not(False)))
    return or_(*conditions) if conditions else false()  # no known status: nothing matches


def with_status(query: Select) -> Select:
    """Outer-join a query over contacts with the suppression of each one's address.

    Both sides carry the hash of the address (`contacts.email_hash` is generated by the
    database), so this is a plain equi-join, however the status is then used.

    Suppressions are unique per hash, so no contact row is repeated; `status_column()` can
    then be selected or filtered on (saved segments can build on the same two functions).
    """
    return query.join_from(Contact, Suppression, Suppression.email_hash == Contact.email_hash,
                           isouter=True)


def search_contacts(partner_id: int, q: str = "", *, tags: Iterable[str] = (),
                    status: str | None = None, page: int = 1, per_page: int = 50
                    ) -> tuple[list[tuple[Contact, str]], int]:
    """Return one page of a partner's contacts with their status, and the total.

    `q` matches email or names (case-insensitive, literally); each of `tags` must be one of
    the contact's tags; `status` keeps only contacts with that status. One query for the page
    (status included) and one for the total.
    """
    status_of = status_column()
    where = [Contact.partner_id == partner_id]
    q = (q or "").strip()
    if unstorable_text(q) or len(q) > 320:
        raise ValidationError(_("The search text is invalid."), {
            "q": _("must be at most 320 characters, without NUL characters or broken "
                   "Unicode")})
    if q:
        pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append(or_(
            Contact.email.ilike(pattern, escape="\\"),
            Contact.first_name.ilike(pattern, escape="\\"),
            Contact.last_name.ilike(pattern, escape="\\"),
        ))
    for tag in tags:
        where.append(exists().where(ContactTag.contact_id == Contact.id,
                                    ContactTag.partner_id == partner_id, ContactTag.tag == tag))
    counted = select(func.count()).select_from(Contact).where(*where)
    if status is not None:
        where.append(status_in([status]))
        counted = with_status(counted).where(status_in([status]))
    total = db.session.scalar(counted) or 0
    rows = db.session.execute(
        with_status(select(Contact, status_of.label("status"))).where(*where)
        .order_by(Contact.id).limit(per_page).offset((page - 1) * per_page)
    ).all()
    return [(contact, row_status) for contact, row_status in rows], total


def list_contacts(partner_id: int, q: str = "", page: int = 1,
                  per_page: int = 50) -> tuple[list[Contact], int]:
    """Return one page of a partner's contacts matching `q` (email or names) and the total."""
    rows, total = search_contacts(partner_id, q, page=page, per_page=per_page)
    return [contact for contact, _status in rows], total


def contact_status(contact: Contact) -> str:
    """Return one contact's status (one query)."""
    return db.session.scalar(
        with_status(select(status_column())).where(Contact.id == contact.id)) or "mailable"


def statuses_of(contact_ids: Iterable[int]) -> dict[int, str]:
    """Return {contact id: status} for these contacts (one query)."""
    ids = list(contact_ids)
    if not ids:
        return {}
    return dict(db.session.execute(
        with_status(select(Contact.id, status_column())).where(Contact.id.in_(ids))).all())


def tags_of(contact_ids: Iterable[int]) -> dict[int, list[str]]:
    """Return {contact id: sorted tags} for these contacts (one query)."""
    ids = list(contact_ids)
    out: dict[int, list[str]] = {i: [] for i in ids}
    if ids:
        for contact_id, tag in db.session.execute(
            select(ContactTag.contact_id, ContactTag.tag)
            .where(ContactTag.contact_id.in_(ids)).order_by(ContactTag.tag)
        ).all():
            out[contact_id].append(tag)
    return out


def partner_tags(partner_id: int, limit: int = 200) -> list[tuple[str, int]]:
    """Return a partner's tags with how many contacts carry each, most used first."""
    return [(tag, n) for tag, n in db.session.execute(
        select(ContactTag.tag, func.count()).where(ContactTag.partner_id == partner_id)
        .group_by(ContactTag.tag).order_by(func.count().desc(), ContactTag.tag).limit(limit)
    ).all()]


def contact_json(contact: Contact, status: str | None = None,
                 tags: list[str] | None = None) -> dict:
    """Serialize a contact for the API (status and tags are read if not given)."""
    status = status or contact_status(contact)
    if tags is None:
        tags = tags_of([contact.id])[contact.id]
    return {"id": contact.id, "email": contact.email, "first_name": contact.first_name,
            "last_name": contact.last_name, "attributes": contact.attributes or {},
            "consent": contact.consent, "status": status,
            "status_label": str(STATUS_LABELS[status]), "tags": tags,
            "partner_id": contact.partner_id,
            "created_at": contact.created_at.isoformat(),
            "updated_at": contact.updated_at.isoformat()}


def contacts_json(rows: list[tuple[Contact, str]]) -> list[dict]:
    """Serialize a page of (contact, status) rows (one query for all their tags)."""
    tags = tags_of(c.id for c, _status in rows)
    return [contact_json(c, status, tags[c.id]) for c, status in rows]
