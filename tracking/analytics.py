"""Engagement analytics read from rollups (never from raw events) and the sends ledger.

Engagement counters come from `engagement_rollups` (per day, campaign, step and link) and
`send_engagements` (per send). Sent / failed counts come from `sends` grouped by status for
the campaigns concerned (the ledger's unique index leads with campaign_id). Bounced means
permanently bounced; delivered = sent - bounced. Rates are over delivered messages, and
"unique" and the rates count humans only; machine opens and clicks are shown beside them.
"""

from __future__ import annotations

import csv
import io
import re
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import timedelta

from sqlalchemy import and_, case, distinct, func, or_, select

from accounts.models import Partner
from campaigns.messages import MESSAGE_API_STATUS, status_words
from campaigns.models import Campaign, CampaignMember, Contact, Send
from core import clock
from core.db import db
from core.i18n import _
from core.tokens import HONEYPOT_LINK
from journeys.models import Journey, JourneyStep, TemplateVersion
from tracking.models import (
    NO_LINK,
    ROLLUP_COUNTERS,
    Conversion,
    EngagementRollup,
    Event,
    SendEngagement,
)

ENGAGEMENT = ("opens", "unique_opens", "clicks", "unique_clicks", "unsubscribes",
              "machine_opens", "machine_clicks", "proxied_opens", "complaints", "soft_bounces",
              "conversions")
METRICS = ("sent", "delivered", "bounced", "failed", "suppressed", "skipped", "opens",
           "unique_opens",
           "clicks", "unique_clicks", "unsubscribes", "complaints", "open_rate", "click_rate",
           "machine_opens", "machine_clicks", "raw_opens", "raw_clicks", "proxied_opens",
           "conversions", "conversion_value")
TOP_LINKS = 10
ACTIVE_DAYS = 90


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def _finish(c: dict) -> dict:
    """Turn raw counters into the API's metric dict (delivered, rates)."""
    out = {k: int(c.get(k, 0)) for k in ("sent", "failed", "suppressed", "skipped",
                                         *ENGAGEMENT)}
    out["bounced"] = int(c.get("bounces", 0))
    # Raw counts: every recorded fetch, person or machine; the rest count people only.
    out["raw_opens"] = out["opens"] + out["machine_opens"]
    out["raw_clicks"] = out["clicks"] + out["machine_clicks"]
    out["conversion_value"] = _money(c.get("conversion_value_cents", 0))
    out["delivered"] = max(out["sent"] - out["bounced"], 0)
    out["open_rate"] = _rate(out["unique_opens"], out["delivered"])
    out["click_rate"] = _rate(out["unique_clicks"], out["delivered"])
    return out


def _money(cents: int | None) -> float:
    return round(int(cents or 0) / 100, 2)


def _add(into: dict, values: dict) -> None:
    for k, v in values.items():
        into[k] = into.get(k, 0) + (v or 0)


def _send_counts(campaign_ids: list[int]) -> list[tuple]:
    """Return (campaign_id, step_index, status, day_sent, count) for these campaigns."""
    if not campaign_ids:
        return []
    day = func.date(Send.sent_at)
    return db.session.execute(
        select(Send.campaign_id, Send.step_index, Send.status, day, func.count())
        .where(Send.campaign_id.in_(campaign_ids))
        .group_by(Send.campaign_id, Send.step_index, Send.status, day)
    ).all()


def _rollup_rows(where) -> list:  # noqa: ANN001 - a SQLAlchemy criterion
    t = EngagementRollup
    sums = [func.sum(getattr(t, c)).label(c) for c in ROLLUP_COUNTERS]
    return db.session.execute(
        select(t.campaign_id, t.partner_id, t.step_index, t.day, t.link_index, *sums)
        .where(where)
        .group_by(t.campaign_id, t.partner_id, t.step_index, t.day, t.link_index)
    ).mappings().all()


def _link_urls(journey_id: int) -> dict[tuple[int, int], str]:
    """Map (step_index, link_index) to the original href in the step's pinned version."""
    rows = db.session.execute(
        select(JourneyStep.position, TemplateVersion.links)
        .join(TemplateVersion, TemplateVersion.id == JourneyStep.template_version_id)
        .where(JourneyStep.journey_id == journey_id)
    ).all()
    return {(position, i): link for position, links in rows for i, link in enumerate(links or [])}


def _report(journey_id: int, campaigns: dict[int, int], rollup_where) -> dict:  # noqa: ANN001
    """Build the journey/campaign report shape; `campaigns` maps campaign id -> partner id."""
    total: dict = {}
    by_step: dict[int, dict] = defaultdict(dict)
    by_partner: dict[int, dict] = defaultdict(dict)
    daily: dict[str, dict] = defaultdict(dict)
    links: dict[tuple[int, int], dict] = defaultdict(dict)
    # Every step of the journey has a row, even one nobody reached or everybody skipped.
    for (position,) in db.session.execute(
            select(JourneyStep.position).where(JourneyStep.journey_id == journey_id)).all():
        by_step.setdefault(position, {})
    for campaign_id, step, status, day, count in _send_counts(list(campaigns)):
        if status not in ("sent", "failed", "suppressed", "skipped"):
            continue
        values = {status: count}
        _add(total, values)
        _add(by_step[step], values)
        _add(by_partner[campaigns[campaign_id]], values)
        if status == "sent" and day is not None:
            _add(daily[str(day)], values)
    for row in _rollup_rows(rollup_where):
        values = {c: row[c] for c in ROLLUP_COUNTERS}
        _add(total, values)
        _add(by_step[row["step_index"]], values)
        _add(by_partner[row["partner_id"]], values)
        _add(daily[row["day"].isoformat()], values)
        if row["link_index"] != NO_LINK:
            _add(links[(row["step_index"], row["link_index"])], values)
    names = dict(db.session.execute(
        select(Partner.id, Partner.name).where(Partner.id.in_(list(by_partner)))).all()
    ) if by_partner else {}
    urls = _link_urls(journey_id)
    report = _finish(total)
    report["by_step"] = [{"step_index": s, **_finish(c)} for s, c in sorted(by_step.items())]
    report["by_partner"] = [
        {"partner_id": p, "partner_name": names.get(p, ""), **_finish(c)}
        for p, c in sorted(by_partner.items())
    ]
    report["daily"] = [
        {"day": d, "sent": int(c.get("sent", 0)), "bounced": int(c.get("bounces", 0)),
         **{k: int(c.get(k, 0)) for k in ENGAGEMENT},
         "conversion_value": _money(c.get("conversion_value_cents", 0))}
        for d, c in sorted(daily.items())
    ]
    top = sorted(links.items(), key=lambda kv: (-kv[1].get("clicks", 0),
                                                -kv[1].get("machine_clicks", 0), kv[0]))
    report["top_links"] = [
        {"step_index": s, "link_index": i,
         "url": "(hidden honeypot link)" if i == HONEYPOT_LINK else urls.get((s, i), ""),
         "label": "(hidden honeypot link)" if i == HONEYPOT_LINK
         else link_label(urls.get((s, i), "")),
         "clicks": int(c.get("clicks", 0)), "unique_clicks": int(c.get("unique_clicks", 0)),
         "machine_clicks": int(c.get("machine_clicks", 0))}
        for (s, i), c in top[:TOP_LINKS]
    ]
    return report


_FIELD_LINK = re.compile(r"\{\{\s*(slots|partner|contact|sender|brand)\.(\w+)\s*\}\}")
_OWNERS = {"slots": "each campaign's", "partner": "each partner's",
           "contact": "each recipient's", "sender": "each sender's", "brand": "the brand's"}


def link_label(url: str) -> str:
    """Describe a published link for people: a fixed URL as is, a merge-field link by name."""
    match = _FIELD_LINK.fullmatch(url.strip())
    if match is None:
        return url
    owner, name = match.groups()
    return f"{name.replace('_', ' ')} ({_OWNERS[owner]})"


def journey_report(journey: Journey) -> dict:
    """Return a journey's analytics across every partner's campaigns."""
    campaigns = dict(db.session.execute(
        select(Campaign.id, Campaign.partner_id).where(Campaign.journey_id == journey.id)).all())
    report = {"journey_id": journey.id, "name": journey.name}
    report.update(_report(journey.id, campaigns, EngagementRollup.journey_id == journey.id))
    return report


def campaign_report(campaign: Campaign) -> dict:
    """Return one campaign's analytics (same shape as a journey's)."""
    report = {"campaign_id": campaign.id, "journey_id": campaign.journey_id,
              "name": campaign.name}
    report.update(_report(campaign.journey_id, {campaign.id: campaign.partner_id},
                          EngagementRollup.campaign_id == campaign.id))
    return report


def campaign_recipients(campaign: Campaign, page: int, per_page: int) -> dict:
    """Return one page of a campaign's recipients with status, opens, clicks, last activity."""
    total = db.session.scalar(select(func.count()).select_from(CampaignMember).where(
        CampaignMember.campaign_id == campaign.id)) or 0
    members = db.session.execute(
        select(Contact.id, Contact.email, Contact.first_name, Contact.last_name)
        .join(CampaignMember, CampaignMember.contact_id == Contact.id)
        .where(CampaignMember.campaign_id == campaign.id)
        .order_by(Contact.id).limit(per_page).offset((page - 1) * per_page)
    ).all()
    ids = [m.id for m in members]
    sends: dict[int, list] = defaultdict(list)
    if ids:
        rows = db.session.execute(
            select(Send.contact_id, Send.step_index, Send.status, Send.status_reason,
                   Send.sent_at, SendEngagement.opens, SendEngagement.clicks,
                   SendEngagement.machine_opens, SendEngagement.machine_clicks,
                   SendEngagement.last_activity_at, SendEngagement.unsubscribed_at,
                   SendEngagement.bounced_at, SendEngagement.complained_at)
            .outerjoin(SendEngagement, SendEngagement.send_id == Send.id)
            .where(Send.campaign_id == campaign.id, Send.contact_id.in_(ids))
            .order_by(Send.step_index)
        ).all()
        for row in rows:
            sends[row.contact_id].append(row)
    items = []
    for m in members:
        rows = sends.get(m.id, [])
        latest = rows[-1] if rows else None
        status = latest.status if latest else "pending"
        if any(r.complained_at for r in rows):
            status = "complained"
        elif any(r.bounced_at for r in rows):
            status = "bounced"
        elif any(r.unsubscribed_at for r in rows):
            status = "unsubscribed"
        activity = [t for r in rows for t in (r.sent_at, r.last_activity_at) if t]
        items.append({
            "contact_id": m.id, "email": m.email, "first_name": m.first_name,
            "last_name": m.last_name, "status": status,
            "status_reason": latest.status_reason if latest else "",
            "steps_sent": sum(1 for r in rows if r.status == "sent"),
            "opens": sum(r.opens or 0 for r in rows),
            "clicks": sum(r.clicks or 0 for r in rows),
            "machine_opens": sum(r.machine_opens or 0 for r in rows),
            "machine_clicks": sum(r.machine_clicks or 0 for r in rows),
            "last_activity_at": max(activity).isoformat() if activity else None,
        })
    return {"items": items, "page": page, "per_page": per_page, "total": total}


# --- one contact's engagement timeline -------------------------------------------------------

def contact_timeline(contact_id: int, page: int, per_page: int) -> dict:
    """Return one page of the messages a contact was sent (or is due), newest first.

    Each with its journey and campaign, step, status in words, sent time, human and machine
    opens and clicks (from `send_engagements`) and when it was unsubscribed from, bounced or
    complained about. Two queries: the total and the page (sends joined with campaigns,
    journeys and engagement; the ledger's contact_id index finds the rows).
    """
    total = db.session.scalar(select(func.count()).select_from(Send)
                              .where(Send.contact_id == contact_id)) or 0
    when = func.coalesce(Send.sent_at, Send.due_at)
    e = SendEngagement
    rows = db.session.execute(
        select(Send.id, Send.campaign_id, Campaign.name.label("campaign_name"),
               Campaign.kind, Send.journey_id, Journey.name.label("journey_name"),
               Send.step_index, Send.status, Send.status_reason, Send.sent_at, Send.due_at,
               e.opens, e.clicks, e.machine_opens, e.machine_clicks, e.first_open_at,
               e.first_click_at, e.unsubscribed_at, e.bounced_at, e.complained_at,
               e.last_activity_at)
        .join(Campaign, Campaign.id == Send.campaign_id)
        .join(Journey, Journey.id == Send.journey_id)
        .outerjoin(e, e.send_id == Send.id)
        .where(Send.contact_id == contact_id)
        .order_by(when.desc(), Send.id.desc())
        .limit(per_page).offset((page - 1) * per_page)
    ).all()

    def iso(value):  # noqa: ANN001, ANN202
        return value.isoformat() if value else None

    converted: dict[int, list[dict]] = defaultdict(list)
    if rows:
        for c in db.session.scalars(
            select(Conversion).where(Conversion.send_id.in_([r.id for r in rows]))
            .order_by(Conversion.occurred_at, Conversion.id)
        ):
            converted[c.send_id].append({
                "name": c.name, "value": None if c.value_cents is None else _money(c.value_cents),
                "currency": c.currency, "occurred_at": c.occurred_at.isoformat()})
    items = []
    for r in rows:
        label = status_words(r.status, r.status_reason)
        if r.complained_at:
            label = str(_("Sent; marked as spam"))
        elif r.bounced_at:
            label = str(_("Sent, but it bounced: the address does not accept mail"))
        items.append({
            "message_id": r.id, "campaign_id": r.campaign_id, "campaign_name": r.campaign_name,
            "quick_send": r.kind == "quick_send", "journey_id": r.journey_id,
            "journey_name": r.journey_name, "step": r.step_index,
            "status": MESSAGE_API_STATUS.get(r.status, r.status),
            "status_reason": r.status_reason, "status_label": label,
            "sent_at": iso(r.sent_at), "due_at": iso(r.due_at),
            "opens": r.opens or 0, "clicks": r.clicks or 0,
            "machine_opens": r.machine_opens or 0, "machine_clicks": r.machine_clicks or 0,
            "first_open_at": iso(r.first_open_at), "first_click_at": iso(r.first_click_at),
            "unsubscribed_at": iso(r.unsubscribed_at), "bounced_at": iso(r.bounced_at),
            "complained_at": iso(r.complained_at), "last_activity_at": iso(r.last_activity_at),
            "conversions": converted.get(r.id, []),
        })
    return {"items": items, "page": page, "per_page": per_page, "total": total}


# --- partner scorecard -----------------------------------------------------------------------

LAGGING = ("delivery_rate", "open_rate", "click_rate", "unsubscribe_rate", "bounce_rate",
           "conversions", "conversion_value")


def _personalized_share(campaigns: Iterable[Campaign]) -> dict[int, tuple[int, int]]:
    """Return partner id -> (slots changed from their default, slots offered)."""
    campaigns = list(campaigns)
    journey_ids = {c.journey_id for c in campaigns}
    slots_by_step: dict[tuple[int, int], list] = {}
    if journey_ids:
        for jid, position, slots in db.session.execute(
            select(JourneyStep.journey_id, JourneyStep.position, TemplateVersion.slots)
            .join(TemplateVersion, TemplateVersion.id == JourneyStep.template_version_id)
            .where(JourneyStep.journey_id.in_(journey_ids))
        ).all():
            slots_by_step[(jid, position)] = slots or []
    out: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for c in campaigns:
        for (jid, position), slots in slots_by_step.items():
            if jid != c.journey_id:
                continue
            values = (c.slot_values or {}).get(str(position)) or {}
            for slot in slots:
                name = slot.get("name")
                out[c.partner_id][1] += 1
                if name in values and values[name] != slot.get("default", ""):
                    out[c.partner_id][0] += 1
    return {k: (v[0], v[1]) for k, v in out.items()}


def partner_scorecard() -> dict:
    """Return one scorecard row per partner, leading and lagging indicators with medians."""
    now = clock.now()
    partners = db.session.scalars(select(Partner).order_by(Partner.id)).all()
    launched = db.session.scalars(
        select(Campaign).where(Campaign.launched_at.is_not(None))).all()
    per_partner_campaigns: dict[int, list[Campaign]] = defaultdict(list)
    for c in launched:
        per_partner_campaigns[c.partner_id].append(c)
    ledger: dict[int, dict] = defaultdict(dict)
    for pid, status, count, reached, first in db.session.execute(
        select(Send.partner_id, Send.status, func.count(), func.count(Send.contact_id.distinct()),
               func.min(Send.sent_at)).group_by(Send.partner_id, Send.status)
    ).all():
        ledger[pid][status] = count
        if status == "sent":
            ledger[pid]["reached"] = reached
            ledger[pid]["first_sent_at"] = first
    t = EngagementRollup
    engagement = {
        row["partner_id"]: dict(row)
        for row in db.session.execute(
            select(t.partner_id, *[func.sum(getattr(t, c)).label(c) for c in ROLLUP_COUNTERS])
            .group_by(t.partner_id)).mappings().all()
    }
    shares = _personalized_share(launched)
    rows = []
    for p in partners:
        counts = {"sent": ledger[p.id].get("sent", 0), "failed": ledger[p.id].get("failed", 0)}
        counts.update({k: v or 0 for k, v in engagement.get(p.id, {}).items()
                       if k != "partner_id"})
        m = _finish(counts)
        mine = per_partner_campaigns.get(p.id, [])
        changed, offered = shares.get(p.id, (0, 0))
        first = ledger[p.id].get("first_sent_at")
        rows.append({
            "partner_id": p.id, "partner_name": p.name, "tier": p.tier, "region": p.region,
            "active": any(c.launched_at >= now - timedelta(days=ACTIVE_DAYS) for c in mine),
            "campaigns_launched": len(mine),
            "contacts_reached": ledger[p.id].get("reached", 0),
            "personalized_share": _rate(changed, offered),
            "time_to_first_send_hours": (
                round((first - p.created_at).total_seconds() / 3600, 1) if first else None),
            "sent": m["sent"], "delivered": m["delivered"], "bounced": m["bounced"],
            "delivery_rate": _rate(m["delivered"], m["sent"]),
            "open_rate": m["open_rate"], "click_rate": m["click_rate"],
            "unsubscribe_rate": _rate(m["unsubscribes"], m["delivered"]),
            "bounce_rate": _rate(m["bounced"], m["sent"]),
            "conversions": m["conversions"], "conversion_value": m["conversion_value"],
        })
    medians = {}
    for key in LAGGING:
        values = [r[key] for r in rows if r["sent"]]
        medians[key] = round(statistics.median(values), 4) if values else 0.0
    for r in rows:
        for key in LAGGING:
            r[f"{key}_network_median"] = medians[key]
    return {
        "network": {"partners_total": len(rows),
                    "partners_active": sum(1 for r in rows if r["active"]),
                    "campaigns_launched": len(launched), "medians": medians},
        "items": rows,
    }


# --- CSV --------------------------------------------------------------------------------------

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> object:
    """Neutralize a spreadsheet formula: text starting with = + - @ tab or CR gets a quote."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return "" if value is None else value


def to_csv(rows: Iterable[dict], columns: list[str]) -> str:
    """Render rows as CSV with a header, every text cell made formula-safe."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([safe_cell(row.get(c)) for c in columns])
    return buf.getvalue()


REPORT_COLUMNS = ["section", "key", "label", *METRICS]


def report_csv(report: dict) -> str:
    """Flatten a journey/campaign report into one CSV table: total, steps, partners, days, links."""
    rows = [{"section": "total", "key": "", "label": report.get("name", ""), **report}]
    # Steps are numbered from 1, as on every page.
    rows += [{"section": "step", "key": r["step_index"] + 1,
              "label": str(_("Step %(n)s", n=r["step_index"] + 1)), **r}
             for r in report["by_step"]]
    rows += [{"section": "partner", "key": r["partner_id"], "label": r["partner_name"], **r}
             for r in report["by_partner"]]
    rows += [{"section": "day", "key": r["day"], "label": r["day"], **r} for r in report["daily"]]
    rows += [{"section": "link", "key": f"{r['step_index'] + 1}:{r['link_index']}",
              "label": r["url"], **r} for r in report["top_links"]]
    return to_csv(rows, REPORT_COLUMNS)


RECIPIENT_COLUMNS = ["contact_id", "email", "first_name", "last_name", "status", "status_reason",
                     "steps_sent", "opens", "clicks", "machine_opens", "machine_clicks",
                     "last_activity_at"]
SCORECARD_COLUMNS = [
    "partner_id", "partner_name", "tier", "region", "active", "campaigns_launched",
    "contacts_reached", "personalized_share", "time_to_first_send_hours", "sent", "delivered",
    "bounced", *[c for k in LAGGING for c in (k, f"{k}_network_median")],
]


def recount_from_events(*, journey_id: int | None = None, campaign_id: int | None = None) -> dict:
    """Recompute engagement counters from raw events (checks rollups; the API never calls it)."""


    def human(kind: str):  # noqa: ANN202
        return func.sum(case((Event.kind == kind, case((Event.machine.is_(False), 1), else_=0)),
                             else_=0))

    def machine(kind: str):  # noqa: ANN202
        return func.sum(case((Event.kind == kind, case((Event.machine.is_(True), 1), else_=0)),
                             else_=0))

    def unique(kind: str):  # noqa: ANN202
        return func.count(distinct(case(
            ((Event.kind == kind) & Event.machine.is_(False), Event.send_id), else_=None)))

    where = Event.journey_id == journey_id if journey_id is not None else (
        Event.campaign_id == campaign_id)
    row = db.session.execute(select(
        human("open").label("opens"), unique("open").label("unique_opens"),
        human("click").label("clicks"), unique("click").label("unique_clicks"),
        machine("open").label("machine_opens"), machine("click").label("machine_clicks"),
        func.sum(case((Event.kind == "unsubscribe", 1), else_=0)).label("unsubscribes"),
        func.sum(case((Event.kind == "bounce", 1), else_=0)).label("bounced"),
        func.sum(case((Event.kind == "complaint", 1), else_=0)).label("complaints"),
    ).where(where)).mappings().one()
    return {k: int(v or 0) for k, v in row.items()}


def recent_events(campaign_id: int, limit: int = 20) -> list[Event]:
    """Return a campaign's latest engagement events, newest first."""
    return list(db.session.scalars(
        select(Event).where(Event.campaign_id == campaign_id)
        .order_by(Event.occurred_at.desc(), Event.id.desc()).limit(limit)))


def human_engagement(sends: Sequence[tuple[int, int, int]]
                     ) -> dict[tuple[int, int, int], set[str]]:
    """Return the human engagement kinds ("open", "click") seen by each
    (campaign_id, step_index, contact_id) send; journey conditions read this."""
    if not sends:
        return {}
    rows = db.session.execute(
        select(Send.campaign_id, Send.step_index, Send.contact_id, Event.kind)
        .join(Event, Event.send_id == Send.id)
        .where(
            or_(*[and_(Send.campaign_id == campaign_id, Send.step_index == step_index,
                       Send.contact_id == contact_id)
                  for campaign_id, step_index, contact_id in sends]),
            Event.machine.is_(False),
            Event.kind.in_(("open", "click")),
        )
    ).all()
    seen: dict[tuple[int, int, int], set[str]] = {}
    for campaign_id, step_index, contact_id, kind in rows:
        seen.setdefault((campaign_id, step_index, contact_id), set()).add(kind)
    return seen
