"""The brand's managed lists of partner tiers and regions.

A partner's tier and region, and a journey's audience, name entries of these lists: a name
nobody listed ("platinum", a typo) is refused with a 422 that names it, instead of quietly
reaching no partner. Names are compared case-insensitively (and with spaces collapsed):
"gold", "Gold" and " GOLD " are one tier, stored as the list spells it.
"""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import CheckConstraint, String, UniqueConstraint, func, or_, select
from sqlalchemy.orm import Mapped, mapped_column

from accounts.models import Partner
from core import clock
from core.db import db
from core.errors import ValidationError
from core.i18n import _

KINDS = ("tier", "region")
MAX_NAME = 50  # partners.tier / partners.region are String(50)
_SPACES = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class AudienceName(db.Model):
    """One entry of the tier or region list."""

    __tablename__ = "audience_names"
    __table_args__ = (
        UniqueConstraint("kind", "key"),
        CheckConstraint("kind IN ('tier','region')", name="kind_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))
    name: Mapped[str] = mapped_column(String(MAX_NAME))  # as the brand spells it
    key: Mapped[str] = mapped_column(String(MAX_NAME))  # normalized: what comparisons use
    created_at: Mapped[datetime] = mapped_column(default=clock.now)


def tidy(name: str) -> str:
    """Return a name as stored: trimmed, inner runs of spaces collapsed to one."""
    return _SPACES.sub(" ", name).strip()


def key_of(name: str) -> str:
    """Return the comparison key of a name: tidied and lower-cased (as SQL lower() does)."""
    return tidy(name).lower()


def _label(kind: str) -> str:
    return _("tier") if kind == "tier" else _("region")


def names(kind: str) -> list[AudienceName]:
    """Return the list's entries in alphabetical order."""
    return list(db.session.scalars(
        select(AudienceName).where(AudienceName.kind == kind).order_by(AudienceName.key)))


def add_name(kind: str, name: object) -> tuple[AudienceName, bool]:
    """Add a name to the list; return (entry, created). An existing name is returned as is."""
    if not isinstance(name, str) or not tidy(name) or _CONTROL.search(name):
        raise ValidationError(_("The name is invalid."), {"name": _("is required (one line)")})
    if len(tidy(name)) > MAX_NAME:
        raise ValidationError(_("The name is invalid."),
                              {"name": _("at most %(n)d characters", n=MAX_NAME)})
    existing = db.session.scalar(select(AudienceName).where(
        AudienceName.kind == kind, AudienceName.key == key_of(name)))
    if existing is not None:
        return existing, False
    entry = AudienceName(kind=kind, name=tidy(name), key=key_of(name))
    db.session.add(entry)
    db.session.commit()
    return entry, True


def canonical(kind: str, values: list[str], field: str) -> list[str]:
    """Return `values` as the list spells them; a name not in the list is a 422 naming it.

    Duplicates (in any case) are dropped. Raises ValidationError with `fields[field]`.
    """
    known = {e.key: e.name for e in names(kind)}
    out: list[str] = []
    unknown: list[str] = []
    for value in values:
        spelled = known.get(key_of(value))
        if spelled is None:
            unknown.append(tidy(value)[:MAX_NAME])
        elif spelled not in out:
            out.append(spelled)
    if unknown:
        listed = ", ".join(f"“{u}”" for u in unknown)
        message = _("no such %(kind)s: %(names)s (add it on the Tiers and regions page first)",
                    kind=_label(kind), names=listed)
        raise ValidationError(_("Unknown %(kind)s: %(names)s.", kind=_label(kind), names=listed),
                              {field: message})
    return out


def partners_reached(tiers: list[str], regions: list[str]) -> int:
    """Count the partners an audience reaches (empty list = every tier / region)."""
    query = select(func.count()).select_from(Partner)
    if tiers:
        query = query.where(or_(*[func.lower(Partner.tier) == key_of(t) for t in tiers]))
    if regions:
        query = query.where(or_(*[func.lower(Partner.region) == key_of(r) for r in regions]))
    return db.session.scalar(query) or 0


def usage(kind: str) -> dict[str, int]:
    """Return {key: number of partners} for one list, for the page."""
    column = Partner.tier if kind == "tier" else Partner.region
    rows = db.session.execute(select(func.lower(column), func.count()).group_by(
        func.lower(column))).all()
    return {key: count for key, count in rows}
