"""Conversions: what happened after the click, reported by the brand's site or CRM.

A click's redirect carries a click id (`CLICK_ID_PARAM`, default `lm_click`): a signed token
naming the send and the link, so it cannot be forged or guessed. The brand's site reports a
conversion with it (`POST /api/conversions`, authenticated by a brand integration key, or the
signed `/c.gif` pixel for sites that cannot call an API). A conversion is attributed to the
send and so to its contact, partner, campaign, journey and step; it is idempotent on the
brand's `external_id`, and counted in the rollups reports read, in the same transaction.

Integration keys are never stored: the key is derived from SECRET_KEY and the row's random
salt, and only its SHA-256 is kept (to find the row). A pixel is signed with the key itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from urllib.parse import quote

from flask import current_app
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from accounts.models import User
from campaigns.models import Send
from core import clock, tokens
from core.db import db
from core.errors import NotFound, Unauthorized, ValidationError
from core.i18n import _
from core.validate import unstorable_text
from tracking.models import NO_LINK, Conversion, EngagementRollup, IntegrationKey

KEY_PREFIX = "lmk_"
ROLLUP_KEY = ("day", "campaign_id", "step_index", "link_index", "journey_id", "partner_id")
MAX_VALUE = Decimal("1000000000")  # a single conversion worth more is a typo
OFF = "off"
_CURRENCY = re.compile(r"^[A-Z]{3}$")


def _insert(table):  # noqa: ANN001, ANN202 - dialect-specific INSERT with ON CONFLICT
    return (postgresql.insert if db.engine.dialect.name == "postgresql" else sqlite.insert)(table)


# --- integration keys ------------------------------------------------------------------------

def _derive_key(salt: str) -> str:
    secret = current_app.config["SECRET_KEY"].encode()
    raw = hmac.new(secret, b"lastmile/integration-key/" + salt.encode(), hashlib.sha256).digest()
    return KEY_PREFIX + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_integration_key(user: User, name: str) -> tuple[IntegrationKey, str]:
    """Create a brand integration key; return the row and the key (shown this once only)."""
    name = (name or "").strip()
    if len(name) > 100 or unstorable_text(name) or "\n" in name:
        raise ValidationError(_("Some fields are invalid."),
                              {"name": str(_("must be one line of at most 100 characters"))})
    salt = secrets.token_hex(16)
    key = _derive_key(salt)
    row = IntegrationKey(name=name, salt=salt, key_hash=_hash(key), hint=key[-4:],
                         created_by=user.id, created_at=clock.now())
    db.session.add(row)
    db.session.commit()
    return row, key


def list_integration_keys(page: int, per_page: int) -> dict:
    """Return one page of integration keys, newest first (never the keys themselves)."""
    total = db.session.scalar(select(db.func.count()).select_from(IntegrationKey)) or 0
    rows = db.session.scalars(select(IntegrationKey).order_by(IntegrationKey.id.desc())
                              .limit(per_page).offset((page - 1) * per_page)).all()
    return {"items": [key_json(r) for r in rows], "page": page, "per_page": per_page,
            "total": total}


def revoke_integration_key(key_id: int) -> None:
    """Revoke a key: from now on it authenticates nothing (idempotent; 404 if unknown)."""
    row = db.session.get(IntegrationKey, key_id)
    if row is None:
        raise NotFound(_("Integration key not found."))
    if row.revoked_at is None:
        row.revoked_at = clock.now()
        db.session.commit()


def key_json(row: IntegrationKey) -> dict:
    """Serialize a key's row (without the key)."""
    iso = lambda v: v.isoformat() if v else None  # noqa: E731
    return {"id": row.id, "name": row.name, "hint": row.hint, "created_at": iso(row.created_at),
            "last_used_at": iso(row.last_used_at), "revoked_at": iso(row.revoked_at)}


def key_for_bearer(header: str) -> IntegrationKey:
    """Return the live integration key an Authorization header carries; 401 otherwise."""
    key = header[7:].strip() if header.startswith("Bearer ") else ""
    row = None
    if key.startswith(KEY_PREFIX) and len(key) < 100:
        row = db.session.scalar(select(IntegrationKey).where(
            IntegrationKey.key_hash == _hash(key)))
    if row is None or row.revoked_at is not None:
        raise Unauthorized(_("A valid integration key is required as the bearer token."))
    return row


# --- click ids on redirects (the tracking hot path) ------------------------------------------

def click_id(secret: str, send_id: int, link_index: int) -> str:
    """Return the click id for one link of one send."""
    return tokens.make_token(secret, "clickid", send_id, link_index)


def with_click_id(url: str, param: str, value: str) -> str:
    """Append `param=value` to `url` (before any fragment), or strip a `param=off` marker.

    A link whose URL carries `<param>=off` stays clean: the marker is removed and nothing is
    added. `param` empty or "off" means the brand wants clean URLs everywhere.
    """
    if not param or param == OFF:
        return url
    base, hash_mark, fragment = url.partition("#")
    marker = f"{param}={OFF}"
    if marker in base:
        path, _q, query = base.partition("?")
        kept = [p for p in query.split("&") if p and p != marker]
        base = path + ("?" + "&".join(kept) if kept else "")
        return base + hash_mark + fragment
    sep = "&" if "?" in base else "?"
    if base.endswith(("?", "&")):
        sep = ""
    return f"{base}{sep}{param}={value}{hash_mark}{fragment}"


# --- recording conversions -------------------------------------------------------------------

@dataclass
class Recorded:
    conversion: Conversion
    created: bool


def _parse_value(raw: object, problems: dict) -> int | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        problems["value"] = str(_("must be a number"))
        return None
    if isinstance(raw, float) and not math.isfinite(raw):
        problems["value"] = str(_("must be a number"))
        return None
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        problems["value"] = str(_("must be a number"))
        return None
    if not value.is_finite() or value < 0 or value > MAX_VALUE:
        problems["value"] = str(_("must be between 0 and %(max)s", max=MAX_VALUE))
        return None
    return int((value * 100).to_integral_value())


def _parse_time(raw: object, problems: dict) -> datetime:
    now = clock.now()
    if raw is None:
        return now
    if not isinstance(raw, str) or len(raw) > 40:
        problems["occurred_at"] = str(_("must be an ISO 8601 time with its UTC offset"))
        return now
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        problems["occurred_at"] = str(_("must be an ISO 8601 time with its UTC offset"))
        return now
    value = parsed.astimezone(UTC).replace(tzinfo=None)
    if value > now + timedelta(days=1) or value.year < 2000:
        problems["occurred_at"] = str(_("must not be in the future"))
    return value


def _text(data: dict, name: str, max_length: int, problems: dict) -> str:
    raw = data.get(name)
    if not isinstance(raw, str) or not raw.strip():
        problems[name] = str(_("is required"))
        return ""
    raw = raw.strip()
    if len(raw) > max_length or unstorable_text(raw) or "\n" in raw or "\r" in raw:
        problems[name] = str(_("must be one line of at most %(n)s characters", n=max_length))
    return raw


def _send_for(data: dict, problems: dict) -> tuple[int, int | None] | None:
    """Return (send_id, link_index) from click_id or send_token; None if neither verifies."""
    secret = current_app.config["SECRET_KEY"]
    has_click, has_send = data.get("click_id") is not None, data.get("send_token") is not None
    if has_click == has_send:
        problems["click_id"] = str(_("give either click_id or send_token"))
        return None
    raw = data.get("click_id") if has_click else data.get("send_token")
    if not isinstance(raw, str):
        problems["click_id" if has_click else "send_token"] = str(_("must be a string"))
        return None
    parsed = tokens.read_token(secret, "clickid" if has_click else "send", raw)
    return parsed


def record_conversion(key: IntegrationKey | None, data: dict, *, source: str = "api") -> Recorded:
    """Record a conversion once per external_id and count it in the rollups.

    422 for invalid fields, 404 (nothing recorded) for a click id or send token that does not
    verify or names no message. A replay of an external_id answers the first conversion.
    """
    problems: dict[str, str] = {}
    target = _send_for(data, problems)
    name = _text(data, "name", 100, problems)
    external_id = _text(data, "external_id", 200, problems)
    value_cents = _parse_value(data.get("value"), problems)
    occurred_at = _parse_time(data.get("occurred_at"), problems)
    brand_currency = current_app.config.get("CONVERSION_CURRENCY") or "USD"
    currency = data.get("currency")
    if currency is None:
        currency = brand_currency
    elif not isinstance(currency, str) or currency.upper() != brand_currency:
        problems["currency"] = str(_("conversions are reported in %(currency)s",
                                     currency=brand_currency))
    else:
        currency = currency.upper()
    if problems:
        raise ValidationError(_("Some fields are invalid."), problems)
    send = db.session.get(Send, target[0]) if target else None
    if send is None or send.sent_at is None:
        raise NotFound(_("No message matches this click id."))
    existing = db.session.scalar(select(Conversion).where(Conversion.external_id == external_id))
    if existing is not None:
        return Recorded(existing, False)
    link_index = target[1]
    row = {"external_id": external_id, "integration_key_id": key.id if key else None,
           "source": source, "send_id": send.id, "link_index": link_index,
           "contact_id": send.contact_id, "campaign_id": send.campaign_id,
           "journey_id": send.journey_id, "partner_id": send.partner_id,
           "step_index": send.step_index, "name": name, "value_cents": value_cents,
           "currency": currency, "occurred_at": occurred_at, "recorded_at": clock.now()}
    # ON CONFLICT: two concurrent replays of one external_id insert once.
    inserted = db.session.execute(
        _insert(Conversion.__table__).on_conflict_do_nothing(index_elements=["external_id"])
        .returning(Conversion.__table__.c.id), row).first()
    if inserted is None:
        db.session.rollback()
        existing = db.session.scalar(select(Conversion).where(
            Conversion.external_id == external_id))
        return Recorded(existing, False)
    _count(send, link_index, occurred_at, value_cents or 0)
    if key is not None:
        key.last_used_at = clock.now()
    db.session.commit()
    return Recorded(db.session.get(Conversion, inserted[0]), True)


def _count(send: Send, link_index: int | None, at: datetime, value_cents: int) -> None:
    table = EngagementRollup.__table__
    link = NO_LINK if link_index is None or link_index == tokens.HONEYPOT_LINK else link_index
    row = {c.name: 0 for c in table.c if c.name not in ROLLUP_KEY}
    row.update(day=at.date(), campaign_id=send.campaign_id, step_index=send.step_index,
               link_index=link, journey_id=send.journey_id, partner_id=send.partner_id,
               conversions=1, conversion_value_cents=value_cents)
    stmt = _insert(table).values(row)
    stmt = stmt.on_conflict_do_update(
        index_elements=["day", "campaign_id", "step_index", "link_index"],
        set_={"conversions": table.c.conversions + 1,
              "conversion_value_cents": table.c.conversion_value_cents + value_cents})
    db.session.execute(stmt)


def conversion_json(row: Conversion, created: bool) -> dict:
    """Serialize a recorded conversion with what it was attributed to."""
    return {
        "id": row.id, "external_id": row.external_id, "duplicate": not created,
        "name": row.name,
        "value": None if row.value_cents is None else row.value_cents / 100,
        "currency": row.currency, "occurred_at": row.occurred_at.isoformat(),
        "attributed_to": {"message_id": row.send_id, "contact_id": row.contact_id,
                          "partner_id": row.partner_id, "campaign_id": row.campaign_id,
                          "journey_id": row.journey_id, "step_index": row.step_index,
                          "link_index": row.link_index},
    }


# --- the pixel -------------------------------------------------------------------------------

PIXEL_FIELDS = ("key_id", "click_id", "send_token", "name", "value", "currency",
                "occurred_at", "external_id")


def pixel_signature(key: str, params: dict[str, str]) -> str:
    """Return the hex HMAC-SHA256 a pixel URL is signed with: over `k=v` pairs, sorted by
    name, percent-encoded and joined by '&', every field but `sig`."""
    message = "&".join(f"{k}={quote(str(params[k]), safe='')}" for k in sorted(params)
                       if k != "sig" and params[k] not in (None, ""))
    return hmac.new(key.encode(), message.encode(), hashlib.sha256).hexdigest()


def record_pixel_conversion(args: dict[str, str]) -> Recorded:
    """Record a conversion from a signed pixel URL (401 unsigned or badly signed)."""
    params = {k: args[k] for k in PIXEL_FIELDS if args.get(k)}
    try:
        key_id = int(params.get("key_id", ""))
    except ValueError:
        key_id = 0
    row = db.session.get(IntegrationKey, key_id) if 0 < key_id < 2**31 else None
    sig = args.get("sig", "")
    if (row is None or row.revoked_at is not None or not sig or not hmac.compare_digest(
            sig.encode(), pixel_signature(_derive_key(row.salt), params).encode())):
        raise Unauthorized(_("The conversion pixel is not signed with a valid integration key."))
    data: dict[str, object] = {k: v for k, v in params.items() if k != "key_id"}
    return record_conversion(row, data, source="pixel")
