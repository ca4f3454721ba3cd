"""Shared contacts: the brand's rules for one person that several partners may mail.

Partners of one brand often share a client (two dealers, an advisor and a branch). The brand
sets, for the whole network (kept in `brand_settings` under `sharing_rules`):

- a **frequency cap**: at most `max_sends` marketing messages to one address within `days`
  days, whichever partners send them (every message of the sends ledger counts: journeys
  and quick sends);
- a **same journey window**: once a partner has sent a journey to an address, no other
  partner starts that same journey for it within `same_journey_days` days.

Addresses match across partners by their normalized form (contacts store it normalized;
the ledger copies it). The rules apply twice: when a partner adds people to a campaign
(`audience_exclusions`, a person at the cap is left out with the reason) and when a worker
claims a message (`hold_back`), where they are final. A message held back there ends as
`suppressed` with the reason `frequency_cap` or `recently_sent_by_another_partner`; the
partner sees the reason in words, never which other partner mailed the person.

Concurrency: on PostgreSQL the claim takes a transaction-scoped advisory lock per address
(in one sorted order, so two workers cannot deadlock) before it counts that address's mail,
and counts messages being sent right now (`claimed`) as well as sent ones. Two workers
claiming mail for one address therefore take turns, and the second sees the first's claim:
the cap cannot be passed by a race. SQLite runs one writer at a time anyway.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import and_, bindparam, exists, func, or_, select, text

from accounts.models import BrandSetting, User
from campaigns.models import Contact, Send
from core import clock
from core.db import db
from core.errors import ValidationError
from core.i18n import _, lazy_gettext

RULES_KEY = "sharing_rules"
MAX_CAP = 100
MAX_DAYS = 365
# The first key of the two-key advisory locks this module takes (the second is the address).
LOCK_NAMESPACE = 0x4C4D  # "LM"

REASONS = ("frequency_cap", "recently_sent_by_another_partner")
REASON_LABELS = {
    "frequency_cap": lazy_gettext("Emailed often enough lately: the brand limits how many "
                                  "emails one person gets"),
    "recently_sent_by_another_partner": lazy_gettext("Recently got this journey from another "
                                                     "partner of the brand"),
}


@dataclass(frozen=True)
class SharingRules:
    """The brand's rules; None switches a rule off."""

    max_sends: int | None = None
    days: int | None = None
    same_journey_days: int | None = None

    @property
    def active(self) -> bool:
        return self.max_sends is not None or self.same_journey_days is not None

    def to_json(self) -> dict:
        cap = ({"max_sends": self.max_sends, "days": self.days}
               if self.max_sends is not None else None)
        return {"frequency_cap": cap, "same_journey_days": self.same_journey_days}


def sharing_rules() -> SharingRules:
    """Return the brand's current sharing rules (off until the brand sets them)."""
    row = db.session.get(BrandSetting, RULES_KEY)
    value = (row.value or {}) if row is not None else {}
    cap = value.get("frequency_cap") or {}
    return SharingRules(max_sends=cap.get("max_sends"), days=cap.get("days"),
                        same_journey_days=value.get("same_journey_days"))


def rules_json() -> dict:
    """Serialize the rules with when and by whom they were last changed."""
    row = db.session.get(BrandSetting, RULES_KEY)
    return {**sharing_rules().to_json(),
            "updated_at": row.updated_at.isoformat() if row is not None else None}


def _whole(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def clean_rules(data: Any) -> SharingRules:
    """Check a rules body ({frequency_cap: {max_sends, days} | null, same_journey_days})."""
    if not isinstance(data, dict):
        raise ValidationError(_("The sharing rules are invalid."),
                              {"body": _("must be an object")})
    problems: dict[str, str] = {}
    for key in set(data) - {"frequency_cap", "same_journey_days"}:
        problems[str(key)[:50]] = _("is not a sharing rule")
    max_sends = days = same = None
    cap = data.get("frequency_cap")
    if cap is not None:
        if not isinstance(cap, dict):
            problems["frequency_cap"] = _("must be an object {max_sends, days} or null")
        else:
            for key in set(cap) - {"max_sends", "days"}:
                problems[f"frequency_cap.{str(key)[:50]}"] = _("is not part of the cap")
            if not _whole(cap.get("max_sends"), 1, MAX_CAP):
                problems["frequency_cap.max_sends"] = _(
                    "must be a whole number from 1 to %(n)s", n=MAX_CAP)
            else:
                max_sends = cap["max_sends"]
            if not _whole(cap.get("days"), 1, MAX_DAYS):
                problems["frequency_cap.days"] = _("must be a whole number from 1 to %(n)s",
                                                   n=MAX_DAYS)
            else:
                days = cap["days"]
    same_raw = data.get("same_journey_days")
    if same_raw is not None:
        if not _whole(same_raw, 1, MAX_DAYS):
            problems["same_journey_days"] = _("must be a whole number from 1 to %(n)s, or null",
                                              n=MAX_DAYS)
        else:
            same = same_raw
    if problems:
        raise ValidationError(_("The sharing rules are invalid."), problems)
    return SharingRules(max_sends=max_sends, days=days, same_journey_days=same)


def set_sharing_rules(rules: SharingRules, user: User) -> SharingRules:
    """Store the brand's sharing rules (they apply from the next claim on)."""
    row = db.session.get(BrandSetting, RULES_KEY, with_for_update=True)
    if row is None:
        row = BrandSetting(key=RULES_KEY, value={})
        db.session.add(row)
    row.value = rules.to_json()
    row.updated_at = clock.now()
    row.updated_by = user.id
    db.session.commit()
    return rules


# ------------------------------------------------------------------------------ counting


def _counted(now: datetime, days: int) -> object:
    """Messages that count against an address: sent within `days`, or being sent now."""
    return or_(and_(Send.status == "sent", Send.sent_at >= now - timedelta(days=days)),
               Send.status == "claimed")


def audience_exclusions(journey_id: int, partner_id: int, now: datetime | None = None
                        ) -> list[tuple[object, str]]:
    """Return [(SQL condition on contacts, reason)] the rules exclude at the audience step.

    A contact is left out when its address already reached the cap (across all partners),
    or when another partner sent it this journey within the window. Empty when no rule is on.
    """
    rules = sharing_rules()
    now = now or clock.now()
    out: list[tuple[object, str]] = []
    if rules.same_journey_days is not None:
        out.append((exists().where(
            Send.email == Contact.email, Send.journey_id == journey_id,
            Send.partner_id != partner_id, _counted(now, rules.same_journey_days)),
            "recently_sent_by_another_partner"))
    if rules.max_sends is not None and rules.days is not None:
        recent = (select(func.count()).select_from(Send)
                  .where(Send.email == Contact.email, _counted(now, rules.days))
                  .scalar_subquery())
        out.append((recent >= rules.max_sends, "frequency_cap"))
    return out


class ClaimedRow(Protocol):
    id: int
    step_index: int
    partner_id: int
    email: str


def _lock_key(email: str) -> int:
    return int.from_bytes(hashlib.sha256(email.encode("utf-8")).digest()[:4], "big",
                          signed=True)


def lock_addresses(emails: Iterable[str]) -> None:
    """Take the per-address advisory locks (PostgreSQL), in one order; held until commit."""
    if db.engine.dialect.name != "postgresql":
        return
    keys = sorted({_lock_key(e) for e in emails})
    if keys:
        # unnest keeps the array's order, so every worker locks in ascending key order.
        db.session.execute(
            text("SELECT pg_advisory_xact_lock(:ns, k) FROM unnest(CAST(:keys AS integer[])) "
                 "AS k").bindparams(bindparam("keys", keys), ns=LOCK_NAMESPACE)).all()


def hold_back(rows: Sequence[ClaimedRow], now: datetime) -> dict[int, str]:
    """Decide which freshly claimed rows the rules hold back; return {send id: reason}.

    Called inside the claiming transaction (campaigns.ledger.claim_batch), which writes the
    outcome: locks each address, then counts the mail that other transactions committed
    (sent within the window, or claimed) plus the rows of this batch it lets through.
    """
    rules = sharing_rules()
    rows = [r for r in rows if r.email]
    if not rules.active or not rows:
        return {}
    emails = sorted({r.email for r in rows})
    lock_addresses(emails)
    own = [r.id for r in rows]
    held: dict[int, str] = {}
    journey_of = dict(db.session.execute(
        select(Send.id, Send.journey_id).where(Send.id.in_(own))).all())
    recent_journeys: set[tuple[str, int, int]] = set()
    if rules.same_journey_days is not None:
        recent_journeys = {tuple(r) for r in db.session.execute(
            select(Send.email, Send.journey_id, Send.partner_id).distinct().where(
                Send.email.in_(emails), Send.id.not_in(own),
                Send.journey_id.in_(set(journey_of.values())),
                _counted(now, rules.same_journey_days))).all()}
    sent_count: dict[str, int] = defaultdict(int)
    if rules.max_sends is not None and rules.days is not None:
        sent_count.update(dict(db.session.execute(
            select(Send.email, func.count()).where(
                Send.email.in_(emails), Send.id.not_in(own), _counted(now, rules.days))
            .group_by(Send.email)).all()))
    for row in sorted(rows, key=lambda r: r.id):
        journey_id = journey_of.get(row.id)
        if row.step_index == 0 and any(
            email == row.email and journey == journey_id and partner != row.partner_id
            for email, journey, partner in recent_journeys
        ):
            held[row.id] = "recently_sent_by_another_partner"
            continue
        if rules.max_sends is not None:
            if sent_count[row.email] >= rules.max_sends:
                held[row.id] = "frequency_cap"
                continue
            sent_count[row.email] += 1
        recent_journeys.add((row.email, journey_id, row.partner_id))
    return held


# ------------------------------------------------------------------------------ analytics


def sharing_stats() -> dict:
    """Brand analytics: addresses shared by two or more partners, mail the rules held back."""
    shared = (select(Contact.email_hash).where(Contact.email_hash.is_not(None))
              .group_by(Contact.email_hash)
              .having(func.count(func.distinct(Contact.partner_id)) >= 2).subquery())
    shared_addresses = db.session.scalar(select(func.count()).select_from(shared)) or 0
    held = dict(db.session.execute(
        select(Send.status_reason, func.count()).where(
            Send.status == "suppressed", Send.status_reason.in_(REASONS))
        .group_by(Send.status_reason)).all())
    by_reason = {reason: held.get(reason, 0) for reason in REASONS}
    return {"shared_addresses": shared_addresses, "held_back": sum(by_reason.values()),
            "held_back_by_reason": by_reason, "rules": sharing_rules().to_json()}
