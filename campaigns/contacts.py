"""Contacts: one partner's recipients, created one by one or imported from a CSV stream.

Addresses are normalized once, here, so the per-partner unique constraint and the brand-wide
suppression list compare like with like. The whole address is lower-cased: RFC 5321 lets a
mailbox's local part be case-sensitive, but no mainstream mailbox provider treats it so, and
an unsubscribe recorded for "Ann@x.com" must also stop mail to "ann@x.com".
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy import text as sql

from campaigns.models import CampaignMember, Contact, Send
from core import clock
from core.db import db
from core.errors import StateError, TooLarge, ValidationError

MAX_IMPORT_BYTES = 50 * 1024 * 1024
IMPORT_CHUNK = 1000
MAX_REPORTED_REJECTS = 1000
MAX_ATTRIBUTES = 50
MAX_ATTRIBUTE_VALUE = 1000
NAME_MAX = 200
ATTRIBUTE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
TRUE_WORDS = frozenset({"1", "true", "yes", "y", "on", "t", "x"})
FALSE_WORDS = frozenset({"0", "false", "no", "n", "off", "f"})
KNOWN_COLUMNS = ("email", "first_name", "last_name", "consent")


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


# ---------------------------------------------------------------------------------- CSV import


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    rejected: list[dict] = field(default_factory=list)
    rejected_count: int = 0

    def reject(self, row: int, reason: str) -> None:
        self.rejected_count += 1
        if len(self.rejected) < MAX_REPORTED_REJECTS:
            self.rejected.append({"row": row, "reason": reason})

    def to_json(self) -> dict:
        return {"created": self.created, "updated": self.updated, "rejected": self.rejected,
                "rejected_count": self.rejected_count,
                "rejected_truncated": self.rejected_count > len(self.rejected)}


def check_import_file(stream: IO[bytes]) -> None:
    """Stream through an uploaded file once: 413 over 50 MB, 422 unless it is UTF-8 text.

    Runs before anything is written, so a too-large or wrongly encoded file changes nothing.
    The stream is rewound afterwards.
    """
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    size = 0
    line = 1
    while True:
        block = stream.read(64 * 1024)
        if not block:
            break
        size += len(block)
        if size > MAX_IMPORT_BYTES:
            raise TooLarge(f"The file is larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MB; "
                           "split it into smaller files.")
        try:
            decoder.decode(block)
        except UnicodeDecodeError as exc:
            bad_line = line + block[: exc.start].count(b"\n")
            raise ValidationError(
                f"The file is not UTF-8 text (byte 0x{block[exc.start]:02x} on line {bad_line}). "
                "Export it as 'CSV UTF-8' and upload it again; nothing was imported.",
                fields={"file": "must be UTF-8 encoded"}, code="bad_encoding",
            ) from exc
        line += block.count(b"\n")
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise ValidationError(
            f"The file is not UTF-8 text (it ends inside a character on line {line}). "
            "Export it as 'CSV UTF-8' and upload it again; nothing was imported.",
            fields={"file": "must be UTF-8 encoded"}, code="bad_encoding",
        ) from exc
    if size == 0:
        raise ValidationError("The file is empty.", fields={"file": "is empty"})
    stream.seek(0)


def _header_key(name: str) -> str:
    key = re.sub(r"[^a-z0-9_]+", "_", name.strip().lower()).strip("_")
    aliases = {"e_mail": "email", "email_address": "email", "firstname": "first_name",
               "lastname": "last_name", "first": "first_name", "last": "last_name"}
    return aliases.get(key, key)


def _parse_header(header: list[str]) -> list[str]:
    keys = [_header_key(h) for h in header]
    problems: dict[str, str] = {}
    if "email" not in keys:
        problems["email"] = "the header row has no email column"
    seen: set[str] = set()
    for raw, key in zip(header, keys, strict=True):
        if not key:
            if raw.strip():
                problems[raw[:64]] = "column name has no letters or digits"
            continue
        if key in seen:
            problems[key] = "column appears twice"
        seen.add(key)
        if key not in KNOWN_COLUMNS and not ATTRIBUTE_KEY.match(key):
            problems[raw[:64]] = "column name must be letters, digits and _ (max 64)"
    if len([k for k in keys if k and k not in KNOWN_COLUMNS]) > MAX_ATTRIBUTES:
        problems["header"] = f"at most {MAX_ATTRIBUTES} attribute columns"
    if problems:
        raise ValidationError("The CSV header row is not usable; nothing was imported.",
                              fields=problems, code="bad_header")
    return keys


def _rows(text: IO[str], report: ImportReport) -> Iterator[tuple[int, list[str]]]:
    """Yield (line number, fields) per record; an unparseable record becomes a reject."""
    reader = csv.reader(text)
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            report.reject(reader.line_num, f"unreadable CSV: {exc}")
            continue
        yield reader.line_num, fields


def _parse_row(keys: list[str], fields: list[str]) -> tuple[dict | None, str | None]:
    """Return (row dict, None) or (None, reason)."""
    if len(fields) > len(keys):
        return None, f"has {len(fields)} fields but the header has {len(keys)}"
    row: dict = {"attributes": {}}
    for key, value in zip(keys, fields, strict=False):
        if not key:
            continue
        if "\x00" in value:
            return None, f"{key} contains a NUL character"
        value = value.strip()
        if key == "email":
            try:
                row["email"] = normalize_email(value)
            except InvalidEmail as exc:
                return None, f"invalid email: {exc}" if value else "email is missing"
        elif key == "consent":
            word = value.lower()
            if word in TRUE_WORDS:
                row["consent"] = True
            elif word in FALSE_WORDS:
                row["consent"] = False
            elif word:
                return None, f"consent must be yes or no, not {value[:40]!r}"
        elif key in ("first_name", "last_name"):
            if len(value) > NAME_MAX:
                return None, f"{key} is longer than {NAME_MAX} characters"
            if CONTROL.search(value) or "\n" in value or "\r" in value:
                return None, f"{key} must be a single line of text"
            if value:
                row[key] = value
        elif value:
            if len(value) > MAX_ATTRIBUTE_VALUE:
                return None, f"{key} is longer than {MAX_ATTRIBUTE_VALUE} characters"
            row["attributes"][key] = value
    if "email" not in row:
        return None, "email is missing"
    return row, None


def _merge(into: dict, row: dict) -> None:
    """Merge a later row for the same address: non-empty values win, attributes combine."""
    for key in ("first_name", "last_name", "consent"):
        if key in row:
            into[key] = row[key]
    into["attributes"] = {**into.get("attributes", {}), **row["attributes"]}


def _flush_chunk(partner_id: int, chunk: dict[str, dict], report: ImportReport) -> None:
    """Write one chunk: update existing contacts, insert the new ones (executemany each)."""
    if not chunk:
        return
    existing = {
        c.email: c
        for c in db.session.execute(
            select(Contact.id, Contact.email, Contact.first_name, Contact.last_name,
                   Contact.attributes, Contact.consent)
            .where(Contact.partner_id == partner_id, Contact.email.in_(list(chunk)))
        )
    }
    now = clock.now()
    inserts: list[dict] = []
    updates: list[dict] = []
    for email, row in chunk.items():
        old = existing.get(email)
        if old is None:
            inserts.append({
                "partner_id": partner_id, "email": email,
                "first_name": row.get("first_name", ""), "last_name": row.get("last_name", ""),
                "attributes": row["attributes"], "consent": row.get("consent", False),
                "created_at": now, "updated_at": now,
            })
            report.created += 1
            report.updated += row["_rows"] - 1
        else:
            updates.append({
                "id": old.id,
                "first_name": row.get("first_name", old.first_name),
                "last_name": row.get("last_name", old.last_name),
                "attributes": {**(old.attributes or {}), **row["attributes"]},
                "consent": row.get("consent", old.consent),
                "updated_at": now,
            })
            report.updated += row["_rows"]
    if inserts:
        db.session.execute(insert(Contact), inserts)
    if updates:
        db.session.execute(update(Contact), updates)


def import_contacts(partner_id: int, stream: IO[bytes]) -> ImportReport:
    """Import a CSV upload for a partner: create new addresses, merge known ones, report rejects.

    The file is checked whole first (size, encoding), then parsed row by row and written in
    chunks of IMPORT_CHUNK rows inside one transaction, so memory stays flat and a failure
    anywhere leaves nothing half-imported.
    """
    check_import_file(stream)
    report = ImportReport()
    # newline="" lets the csv module see raw line endings inside quoted fields.
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")  # type: ignore[arg-type]
    try:
        return _import_rows(partner_id, text, report)
    finally:
        text.detach()


def _import_rows(partner_id: int, text: IO[str], report: ImportReport) -> ImportReport:
    rows = _rows(text, report)
    header: list[str] | None = None
    for _line, fields in rows:
        if any(f.strip() for f in fields):
            header = fields
            break
    if header is None:
        raise ValidationError("The file has no header row.", fields={"file": "has no header row"})
    keys = _parse_header(header)
    chunk: dict[str, dict] = {}
    # Within this one long transaction PostgreSQL's statistics still describe the table as it
    # was before the import, so a cached generic plan for the chunk lookup degrades to a scan
    # (100k rows took 112 s). Planning each chunk's lookup afresh keeps it an index scan.
    if db.engine.dialect.name == "postgresql":
        db.session.execute(sql("SET LOCAL plan_cache_mode = force_custom_plan"))
    try:
        for line, fields in rows:
            if not fields or not any(f.strip() for f in fields):
                continue
            row, reason = _parse_row(keys, fields)
            if row is None:
                report.reject(line, reason or "invalid row")
                continue
            email = row.pop("email")
            if email in chunk:
                _merge(chunk[email], row)
                chunk[email]["_rows"] += 1
            else:
                row["_rows"] = 1
                chunk[email] = row
            if len(chunk) >= IMPORT_CHUNK:
                _flush_chunk(partner_id, chunk, report)
                chunk = {}
        _flush_chunk(partner_id, chunk, report)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return report
