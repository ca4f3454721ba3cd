"""The partner profile: who signs a partner's emails, and the brand's approval of chosen fields.

A partner (its partner_admin; brand_admin for any partner) sets the fields in PROFILE_FIELDS:
the advisor's name, title and photo, the business's display name, logo, phone, address and
website, a sign-off and the disclosures. Templates read the approved values as `partner.*`
(`Partner.template_context`).

The brand chooses which fields it approves before use (`approval_fields`, stored in
brand_settings). A partner's change to such a field is stored as a pending ProfileChange;
emails and previews keep the last approved value until a brand user approves it (the value is
then copied into the partner row) or rejects it with a reason the partner reads. Sending the
approved value again withdraws a pending change; a brand_admin's own edits apply at once.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from flask_babel import LazyString
from sqlalchemy import func, select

from accounts import media
from accounts import states as change_states
from accounts.models import BrandSetting, Partner, ProfileChange, User
from core import clock
from core.db import db
from core.errors import NotFound, StateError, TooLarge, ValidationError
from core.i18n import _
from core.i18n import lazy_gettext as _l
from core.validate import sender_name_problem

RULES_KEY = "profile_rules"
MAX_REASON = 1000


@dataclass(frozen=True)
class FieldSpec:
    """One profile field: how it is checked and how a partner is told about it."""

    name: str
    kind: str  # "line" (one line of text), "text" (lines), "image" or "website" (URLs)
    max_length: int
    label: LazyString  # as the partner reads it ("Your name")
    help: LazyString
    brand_label: LazyString  # as the brand reads it ("Advisor's name")
    max_lines: int = 1
    # Lines longer than this would be folded (a visible break) by the renderer's SMTP-safe
    # line wrapping, so a field shown line by line (the sign-off) keeps them short.
    max_line_length: int = 0


PROFILE_FIELDS: dict[str, FieldSpec] = {spec.name: spec for spec in (
    FieldSpec("display_name", "line", 200, _l("Business name in emails"),
              _l("How your business is named in your emails. Leave it empty to use your "
                 "account name."),
              _l("Business name in emails")),
    FieldSpec("advisor_name", "line", 100, _l("Your name"),
              _l("As your clients know you, e.g. “Jane Doe, CFP”. It signs your emails."),
              _l("Advisor's name")),
    FieldSpec("title", "line", 100, _l("Your job title"),
              _l("Shown under your name, e.g. “Senior Financial Advisor”. Optional."),
              _l("Job title")),
    FieldSpec("photo_url", "image", 2000, _l("Your photo"),
              _l("A friendly head-and-shoulders photo, shown as a small circle next to your "
                 "name. PNG, JPEG, WebP or GIF, up to 5 MB."),
              _l("Advisor's photo")),
    FieldSpec("logo_url", "image", 2000, _l("Business logo"),
              _l("Shown under your signature. A PNG with a transparent background works best; "
                 "up to 5 MB."),
              _l("Logo")),
    FieldSpec("signature", "text", 500, _l("Sign-off"),
              _l("A few short lines under your details, e.g. “Warm regards, Jane”. Plain "
                 "text; press Enter for a new line."),
              _l("Sign-off"), max_lines=6, max_line_length=100),
    FieldSpec("phone", "line", 50, _l("Phone"),
              _l("The number your clients should call, e.g. +1 555 0100."),
              _l("Phone")),
    FieldSpec("address", "line", 500, _l("Office address"),
              _l("One line, shown in the small print at the bottom of every email."),
              _l("Office address")),
    FieldSpec("website", "website", 2000, _l("Website"),
              _l("Your own website, starting with https://"),
              _l("Website")),
    FieldSpec("disclosures", "text", 4000, _l("Disclosures"),
              _l("The legal text your clients must see, shown in the small print at the "
                 "bottom of every email. Plain text."),
              _l("Disclosures"), max_lines=40),
)}

# Markup in a plain-text field would show as typed (it is escaped): say so instead.
_MARKUP = re.compile(r"<\s*/?\s*[A-Za-z!?][^>]*>|\{\{|\{%")
# Characters that reorder or hide text, and Unicode's own line and paragraph separators.
# Fields a campaign's sender name defaults to (Partner.default_sender_name).
SENDER_NAME_FIELDS = ("display_name", "advisor_name")
_INVISIBLE = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u2028\u2029")


@dataclass
class ProfileUpdate:
    """What an update did: fields changed now, and fields waiting for brand approval."""

    applied: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ProfileState:
    """A partner's profile as its owner and the brand read it."""

    partner: Partner
    approval_required: list[str]
    changes: dict[str, ProfileChange]  # per field: the latest change, if pending or rejected

    @property
    def fields(self) -> dict[str, str | None]:
        return {name: getattr(self.partner, name) for name in PROFILE_FIELDS}


# ------------------------------------------------------------------------------ validation

def _bad_char(value: str, allowed: str = "") -> bool:
    return any((unicodedata.category(ch) in ("Cc", "Cs") and ch not in allowed)
               or ch in _INVISIBLE for ch in value)


def allowed_image_domains(config: Mapping) -> list[str]:
    """Return BRAND_IMAGE_DOMAINS as a list of lower-case domains."""
    raw = str(config.get("BRAND_IMAGE_DOMAINS") or "")
    return [d.strip().lower().strip(".") for d in raw.split(",") if d.strip().strip(".")]


def _host_allowed(host: str, domains: list[str]) -> bool:
    host = host.lower().rstrip(".")
    return any(host == d or host.endswith("." + d) for d in domains)


def _url_problem(value: str, schemes: tuple[str, ...]) -> tuple[str | None, str]:
    """Return (problem or None, host) for an absolute URL with one of `schemes`."""
    if any(ch.isspace() for ch in value) or _bad_char(value):
        return _("must be a web address without spaces"), ""
    try:
        parts = urlsplit(value)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return _("must be a valid web address"), ""
    if parts.scheme.lower() not in schemes or not host:
        if schemes == ("https",):
            return _("must start with https://"), host
        return _("must start with https:// or http://"), host
    if parts.username is not None or parts.password is not None:
        return _("must not contain a user name or password"), host
    return None, host


def _value_problem(spec: FieldSpec, value: str, config: Mapping) -> str | None:
    if len(value) > spec.max_length:
        return _("must be at most %(n)d characters (it has %(has)d)", n=spec.max_length,
                 has=len(value))
    if spec.kind == "text":
        if _bad_char(value, allowed="\n"):
            return _("must not contain control characters")
        if value.count("\n") + 1 > spec.max_lines:
            return _("must be at most %(n)d lines", n=spec.max_lines)
        if spec.max_line_length and any(len(line) > spec.max_line_length
                                        for line in value.split("\n")):
            return _("can have at most %(n)d characters on a line; press Enter to start a new "
                     "line", n=spec.max_line_length)
    elif "\r" in value or "\n" in value:
        return _("must be a single line (no line breaks)")
    elif _bad_char(value):
        return _("must not contain control characters")
    if spec.name in SENDER_NAME_FIELDS and sender_name_problem(value):
        return sender_name_problem(value)
    if spec.kind in ("line", "text"):
        if _MARKUP.search(value):
            return _("must be plain text: HTML and template tags are not allowed (formatting "
                     "is not kept)")
        return None
    if spec.kind == "website":
        return _url_problem(value, ("https", "http"))[0]
    # An image: uploaded here, or https on one of the brand's image domains.
    if media.is_uploaded_url(value, config):
        return None
    problem, host = _url_problem(value, ("https",))
    if problem:
        return problem
    domains = allowed_image_domains(config)
    if not domains:
        return _("must be an image uploaded here (links to other sites are not allowed)")
    if not _host_allowed(host, domains):
        return _("must be uploaded here or link to an image on %(domains)s",
                 domains=", ".join(domains))
    return None


def clean_profile(data: Any, config: Mapping,
                  unchanged: Mapping[str, str | None] | None = None) -> dict[str, str | None]:
    """Validate profile fields (any subset); return {field: value or None}. Raises 422.

    A value equal to the one in `unchanged` (the stored profile) is kept as it is, so sending
    a profile back unchanged never fails on a value set before today's rules (e.g. a logo the
    brand linked from a domain no longer listed in BRAND_IMAGE_DOMAINS).
    """
    if not isinstance(data, dict):
        raise ValidationError(_("The profile must be an object of fields."),
                              {"profile": _("must be an object")})
    problems: dict[str, str] = {}
    out: dict[str, str | None] = {}
    for key, raw in data.items():
        spec = PROFILE_FIELDS.get(key) if isinstance(key, str) else None
        if spec is None:
            problems[str(key)[:100]] = _("is not a profile field")
            continue
        if raw is None:
            out[key] = None
            continue
        if not isinstance(raw, str):
            problems[key] = _("must be text")
            continue
        value = raw
        if spec.kind == "text":
            value = value.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
            value = "\n".join(line.rstrip() for line in value.split("\n"))
        value = value.strip()
        if not value:
            out[key] = None
            continue
        if unchanged is not None and value == unchanged.get(key):
            out[key] = value
            continue
        problem = _value_problem(spec, value, config)
        if problem:
            problems[key] = problem
        else:
            out[key] = value
    if problems:
        raise ValidationError(_("Some profile fields need fixing."), problems)
    return out


# ------------------------------------------------------------------------------ brand rules

def approval_fields() -> list[str]:
    """Return the profile fields whose changes the brand approves first (in form order)."""
    row = db.session.get(BrandSetting, RULES_KEY)
    chosen = set((row.value or {}).get("approval_required", [])) if row is not None else set()
    return [name for name in PROFILE_FIELDS if name in chosen]


def set_approval_fields(fields: Any, user: User) -> list[str]:
    """Choose the profile fields the brand approves before use. Pending changes stay pending."""
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise ValidationError(_("Profile rules are invalid."),
                              {"approval_required": _("must be a list of profile field names")})
    unknown = sorted({f for f in fields if f not in PROFILE_FIELDS})
    if unknown:
        raise ValidationError(_("Profile rules are invalid."), {
            "approval_required": _("not profile fields: %(names)s",
                                   names=", ".join(n[:50] for n in unknown[:10]))})
    chosen = [name for name in PROFILE_FIELDS if name in set(fields)]
    row = db.session.get(BrandSetting, RULES_KEY, with_for_update=True)
    if row is None:
        row = BrandSetting(key=RULES_KEY, value={})
        db.session.add(row)
    row.value = {"approval_required": chosen}
    row.updated_at = clock.now()
    row.updated_by = user.id
    db.session.commit()
    return chosen


# ------------------------------------------------------------------------------ reading

def _partner(partner_id: int, *, lock: bool = False) -> Partner:
    partner = db.session.get(Partner, partner_id, with_for_update=lock or None,
                             populate_existing=lock)
    if partner is None:
        raise NotFound(_("Partner not found."))
    return partner


def _pending(partner_id: int) -> dict[str, ProfileChange]:
    rows = db.session.scalars(select(ProfileChange).where(
        ProfileChange.partner_id == partner_id, ProfileChange.status == "pending",
    ).order_by(ProfileChange.id)).all()
    return {row.field: row for row in rows}


def open_changes(partner_id: int) -> dict[str, ProfileChange]:
    """Return, per field, the partner's latest change when it is pending or was rejected."""
    latest = (select(func.max(ProfileChange.id)).where(ProfileChange.partner_id == partner_id)
              .group_by(ProfileChange.field))
    rows = db.session.scalars(select(ProfileChange).where(
        ProfileChange.id.in_(latest), ProfileChange.status.in_(("pending", "rejected")))).all()
    return {row.field: row for row in sorted(rows, key=lambda r: r.id)}


def get_profile(partner_id: int) -> ProfileState:
    """Return a partner's profile, the brand's approval rules and its open changes."""
    partner = _partner(partner_id)
    return ProfileState(partner, approval_fields(), open_changes(partner.id))


def list_pending_changes(page: int = 1, per_page: int = 50
                         ) -> tuple[list[tuple[ProfileChange, Partner]], int]:
    """Return one page of changes waiting for brand approval (oldest first) and the total."""
    total = db.session.scalar(select(func.count()).select_from(ProfileChange).where(
        ProfileChange.status == "pending")) or 0
    rows = db.session.execute(
        select(ProfileChange, Partner).join(Partner, Partner.id == ProfileChange.partner_id)
        .where(ProfileChange.status == "pending")
        .order_by(ProfileChange.requested_at, ProfileChange.id)
        .limit(per_page).offset((page - 1) * per_page)
    ).all()
    return [(change, partner) for change, partner in rows], total


# ------------------------------------------------------------------------------ writing

def update_profile(partner_id: int, data: Any, user: User, config: Mapping,
                   images: Mapping[str, bytes] | None = None) -> ProfileUpdate:
    """Change profile fields (any subset; a missing key keeps its value; null clears it).

    `images` maps "photo"/"logo" to uploaded bytes (the web form saves text and pictures in
    one go). Everything is checked first: one error lists every problem (413 when the only
    one is an image's size) and nothing is saved or stored. A field the brand approves first
    becomes a pending change when a partner user changes it; everything else is saved at once.
    """
    problems: dict[str, str] = {}
    too_large = False
    stored = _partner(partner_id)  # a missing partner answers 404 before anything is checked
    try:
        cleaned = clean_profile(data, config, {n: getattr(stored, n) for n in PROFILE_FIELDS})
    except ValidationError as err:
        problems.update(err.fields)
        cleaned = {}
    processed = []
    for kind, raw in (images or {}).items():
        try:
            processed.append((kind, media.process_image(raw, kind)))
        except (ValidationError, TooLarge) as err:
            too_large = too_large or isinstance(err, TooLarge)
            problems[f"{kind}_url"] = err.fields.get("file", err.message)
    if problems:
        error = TooLarge if too_large and len(problems) == 1 else ValidationError
        raise error(_("Some profile fields need fixing."), problems)
    for kind, image in processed:
        cleaned[f"{kind}_url"] = media.store_image(image, config).url
    partner = _partner(partner_id, lock=True)  # one writer per partner: one pending per field
    gated = set() if user.is_brand else set(approval_fields())
    pending = _pending(partner.id)
    now = clock.now()
    result = ProfileUpdate()
    for key, value in cleaned.items():
        current = getattr(partner, key)
        waiting = pending.get(key)
        if key in gated and value != current:
            result.pending.append(key)
            if waiting is not None and waiting.value == value:
                continue
            if waiting is not None:
                change_states.apply(waiting, "supersede", by=user.id, at=now)
            db.session.add(ProfileChange(partner_id=partner.id, field=key, value=value,
                                         status="pending", reason="", requested_by=user.id,
                                         requested_at=now))
            continue
        if waiting is not None:  # the approved value again, or the brand's own edit
            change_states.apply(waiting, "supersede", by=user.id, at=now)
        if value != current:
            setattr(partner, key, value)
            result.applied.append(key)
    db.session.commit()
    return result


def set_profile_image(partner_id: int, kind: str, data: bytes, user: User,
                      config: Mapping) -> tuple[ProfileUpdate, str]:
    """Check, resize, re-encode and store an uploaded photo or logo, then set it.

    Returns the update and the image's URL. Nothing is stored when the upload is refused
    (TooLarge 413 or ValidationError 422, both naming the form field `file`).
    """
    _partner(partner_id)  # a missing partner answers 404 before any work
    image = media.store_image(media.process_image(data, kind), config)
    return update_profile(partner_id, {f"{kind}_url": image.url}, user, config), image.url


def _chosen(pending: dict[str, ProfileChange], fields: Any) -> list[ProfileChange]:
    if fields is None:
        if not pending:
            raise StateError(_("Nothing in this profile is waiting for approval."))
        return list(pending.values())
    if not isinstance(fields, list) or not fields or not all(isinstance(f, str) for f in fields):
        raise ValidationError(_("Choose the fields to decide on."),
                              {"fields": _("must be a non-empty list of profile field names")})
    missing = [f for f in fields if f not in pending]
    if missing:
        raise StateError(_("Nothing is waiting for approval in: %(names)s",
                           names=", ".join(m[:50] for m in missing[:10])),
                         fields={m[:50]: _("no pending change") for m in missing[:10]})
    return [pending[f] for f in dict.fromkeys(fields)]


def approve_changes(partner_id: int, fields: Any, user: User) -> list[str]:
    """Approve pending changes (all, or those of `fields`): emails use them from now on."""
    partner = _partner(partner_id, lock=True)
    chosen = _chosen(_pending(partner.id), fields)
    now = clock.now()
    for change in chosen:
        change_states.apply(change, "approve", by=user.id, at=now)
        setattr(partner, change.field, change.value)
    db.session.commit()
    return [c.field for c in chosen]


def reject_changes(partner_id: int, fields: Any, reason: Any, user: User) -> list[str]:
    """Reject pending changes with a reason the partner reads; the approved values stay."""
    problem = None
    if not isinstance(reason, str) or not reason.strip():
        problem = _("is required: tell the partner what to change")
    elif len(reason.strip()) > MAX_REASON:
        problem = _("must be at most %(n)d characters", n=MAX_REASON)
    elif _bad_char(reason, allowed="\n\r\t"):
        problem = _("must not contain control characters")
    if problem:
        raise ValidationError(_("A reason is required to reject a change."), {"reason": problem})
    assert isinstance(reason, str)
    partner = _partner(partner_id, lock=True)
    chosen = _chosen(_pending(partner.id), fields)
    now = clock.now()
    for change in chosen:
        change_states.apply(change, "reject", by=user.id, at=now, reason=reason.strip())
    db.session.commit()
    return [c.field for c in chosen]
