"""Analytics pages: journey dashboards and the partner scorecard (brand), campaign reports."""

from __future__ import annotations

from flask import Response, render_template

from accounts.auth import ANY, BRAND, PARTNER, require_roles, visible
from campaigns import lifecycle, sharing
from core.i18n import _
from journeys import services as journeys
from journeys import states as journey_states
from tracking import analytics
from web import labels
from web.base import bp

RECENT_EVENTS = 20


def _csv(body: str, name: str) -> Response:
    return Response(body, mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _axes(unit: str, stacked: bool = False) -> dict:
    axis = {"beginAtZero": True, "title": {"display": True, "text": unit}}
    return {"scales": {"x": {"stacked": stacked}, "y": {**axis, "stacked": stacked}}}


def _charts(report: dict) -> dict:
    """Build Chart.js configs (plain data, serialized into data attributes) from a report."""
    steps = report["by_step"]
    daily = report["daily"]
    return {
        "funnel": {"type": "bar", "data": {
            "labels": [str(_("Step %(n)s", n=s["step_index"] + 1)) for s in steps],
            "datasets": [
                {"label": str(_("Sent")), "data": [s["sent"] for s in steps],
                 "backgroundColor": "#9db4f0"},
                {"label": str(_("People who opened")), "data": [s["unique_opens"] for s in steps],
                 "backgroundColor": "#2454d6"},
                {"label": str(_("People who clicked")),
                 "data": [s["unique_clicks"] for s in steps], "backgroundColor": "#1e7b46"},
                {"label": str(_("Conversions")), "data": [s["conversions"] for s in steps],
                 "backgroundColor": "#8a4b08"},
                {"label": str(_("Skipped (condition not met)")),
                 "data": [s["skipped"] for s in steps], "backgroundColor": "#d9a441"},
                {"label": str(_("Not sent (cannot be emailed)")),
                 "data": [s["suppressed"] for s in steps], "backgroundColor": "#c3c8d1"},
            ]}, "options": _axes(str(_("messages / people")))},
        "trend": {"type": "line", "data": {
            "labels": [d["day"] for d in daily],
            "datasets": [
                {"label": str(_("Sent")), "data": [d["sent"] for d in daily],
                 "borderColor": "#9db4f0"},
                {"label": str(_("Opens by people")), "data": [d["opens"] for d in daily],
                 "borderColor": "#2454d6"},
                {"label": str(_("Clicks by people")), "data": [d["clicks"] for d in daily],
                 "borderColor": "#1e7b46"},
            ]}, "options": _axes(str(_("per day")))},
        "machines": {"type": "bar", "data": {
            "labels": [str(_("Opens")), str(_("Clicks"))],
            "datasets": [
                {"label": str(_("People")), "data": [report["opens"], report["clicks"]],
                 "backgroundColor": "#2454d6"},
                {"label": str(_("Machines (not counted)")),
                 "data": [report["machine_opens"], report["machine_clicks"]],
                 "backgroundColor": "#b0b7c3"},
            ]}, "options": _axes(str(_("opens / clicks")), stacked=True)},
    }


@bp.get("/brand/analytics")
@require_roles(*BRAND)
def analytics_home():
    rows, _ = journeys.list_journeys(None, 1, 200)
    scorecard = analytics.partner_scorecard()
    leaders = sorted(scorecard["items"], key=lambda r: (-r["sent"], -r["click_rate"]))
    # A journey still in the editor (draft) has never been sent: nothing to show yet.
    shown = [j for j in rows if not journey_states.allowed(j, "edit")]
    return render_template("web/analytics.html", journeys=shown,
                           scorecard=scorecard, leaders=leaders,
                           sharing=sharing.sharing_stats())


@bp.get("/brand/analytics/partners.csv")
@require_roles(*BRAND)
def scorecard_csv():
    return _csv(analytics.to_csv(analytics.partner_scorecard()["items"],
                                 analytics.SCORECARD_COLUMNS), "partners.csv")


@bp.get("/brand/analytics/journeys/<int:journey_id>")
@require_roles(*BRAND)
def journey_dashboard(journey_id: int):
    journey = journeys.get_journey(journey_id)
    report = analytics.journey_report(journey)
    leaders = sorted(report["by_partner"], key=lambda r: (-r["unique_clicks"],
                                                         -r["unique_opens"], -r["sent"]))
    return render_template("web/journey_dashboard.html", journey=journey, report=report,
                           charts=_charts(report), leaders=leaders)


@bp.get("/brand/analytics/journeys/<int:journey_id>.csv")
@require_roles(*BRAND)
def journey_csv(journey_id: int):
    report = analytics.journey_report(journeys.get_journey(journey_id))
    return _csv(analytics.report_csv(report), f"journey-{journey_id}.csv")


@bp.get("/partner/campaigns/<int:campaign_id>/report")
@require_roles(*ANY)
def campaign_report(campaign_id: int):
    campaign = visible(lifecycle.get_campaign(campaign_id), "Campaign")
    report = analytics.campaign_report(campaign)
    events = analytics.recent_events(campaign.id, RECENT_EVENTS)
    return render_template("web/campaign_report.html", campaign=campaign, report=report,
                           charts=_charts(report), events=events)


@bp.get("/partner/campaigns/<int:campaign_id>/report.csv")
@require_roles(*ANY)
def campaign_report_csv(campaign_id: int):
    campaign = visible(lifecycle.get_campaign(campaign_id), "Campaign")
    return _csv(analytics.report_csv(analytics.campaign_report(campaign)),
                f"campaign-{campaign_id}.csv")


@bp.get("/partner/campaigns/<int:campaign_id>/recipients.csv")
@require_roles(*PARTNER)
def campaign_recipients_csv(campaign_id: int):
    campaign = visible(lifecycle.get_campaign(campaign_id), "Campaign")
    rows = analytics.campaign_recipients(campaign, 1, 100_000)["items"]
    # The status as the page says it, in words; the codes stay for spreadsheets that filter.
    for row in rows:
        words = labels.message_status(row["status"])
        reason = labels.message_reason(row["status_reason"])
        row["status_in_words"] = f"{words} ({reason})" if reason else words
    columns = ["status_in_words" if c == "status_reason" else c
               for c in analytics.RECIPIENT_COLUMNS]
    return _csv(analytics.to_csv(rows, columns), f"campaign-{campaign_id}-recipients.csv")
