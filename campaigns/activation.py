"""Partner activation: how far each partner got, and when, from what the data already says.

Stages, in order: invited (an invitation to the partner was sent) -> joined (one of its
people has an account) -> profile complete (the fields a sender signature needs are
approved) -> first campaign (one was created) -> first send (a message left). A partner with
none of these is "new". A partner "stuck" has stayed at a stage before the last for more than
STUCK_DAYS; `remind` emails its administrators (or resends the admin's invitation).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select

from accounts.models import Invitation, Partner, User
from campaigns.models import Campaign, Send
from core import clock
from core.db import db

STAGES = ("new", "invited", "joined", "profile_complete", "first_campaign", "first_send")
STUCK_DAYS = 14
# What a partner's signature needs before its emails look like its own.
PROFILE_FIELDS = ("advisor_name", "address", "phone")


@dataclass
class Activation:
    partner_id: int
    stage: str = "new"
    dates: dict[str, datetime | None] = field(default_factory=dict)

    @property
    def since(self) -> datetime | None:
        """When the partner reached its current stage (None: unknown)."""
        return self.dates.get(self.stage)

    def stuck(self, now: datetime) -> bool:
        if self.stage in ("new", "first_send") or self.since is None:
            return False
        return now - self.since > timedelta(days=STUCK_DAYS)


def _firsts(query) -> dict[int, datetime]:
    return {pid: when for pid, when in db.session.execute(query).all() if when is not None}


def activations(partner_ids: list[int] | None = None) -> dict[int, Activation]:
    """Return every (or the given) partner's activation, by partner id."""
    partners = select(Partner)
    if partner_ids is not None:
        partners = partners.where(Partner.id.in_(partner_ids))
    rows = list(db.session.scalars(partners))
    ids = [p.id for p in rows]
    if not ids:
        return {}
    invited = _firsts(select(Invitation.partner_id, func.min(Invitation.created_at))
                      .where(Invitation.partner_id.in_(ids)).group_by(Invitation.partner_id))
    joined = _firsts(select(User.partner_id, func.min(User.created_at))
                     .where(User.partner_id.in_(ids), User.password_hash.is_not(None))
                     .group_by(User.partner_id))
    campaign = _firsts(select(Campaign.partner_id, func.min(Campaign.created_at))
                       .where(Campaign.partner_id.in_(ids)).group_by(Campaign.partner_id))
    sent = _firsts(select(Send.partner_id, func.min(Send.sent_at))
                   .where(Send.partner_id.in_(ids), Send.sent_at.is_not(None))
                   .group_by(Send.partner_id))
    out = {}
    for partner in rows:
        complete = all(getattr(partner, name) for name in PROFILE_FIELDS)
        dates: dict[str, datetime | None] = {
            "invited": invited.get(partner.id),
            "joined": joined.get(partner.id),
            # No change history of its own: reached no earlier than joining.
            "profile_complete": joined.get(partner.id) if complete else None,
            "first_campaign": campaign.get(partner.id),
            "first_send": sent.get(partner.id),
        }
        stage = "new"
        for name in STAGES[1:]:
            if dates[name] is not None or (name == "profile_complete" and complete):
                stage = name
        out[partner.id] = Activation(partner.id, stage, dates)
    return out


def funnel() -> dict[str, object]:
    """Return how many partners reached each stage (or got further) and how many are stuck."""
    now = clock.now()
    found = activations()
    reached = {name: 0 for name in STAGES[1:]}
    for activation in found.values():
        for name in STAGES[1:STAGES.index(activation.stage) + 1]:
            reached[name] += 1
    return {"partners": len(found), "reached": reached,
            "stuck": sorted(a.partner_id for a in found.values() if a.stuck(now))}
