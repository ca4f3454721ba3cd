"""HTTP routes: unsubscribe (/u), the SES webhook and the analytics API.

Opens and clicks (/t/o, /t/c) never reach Flask: create_app mounts tracking.wsgi's fast path
in front of it, which answers them with one Redis round trip.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, render_template, request

from accounts.auth import ANY as ANY_ROLE
from accounts.auth import BRAND, PARTNER, current_user, require_roles, visible
from campaigns import contacts
from campaigns.models import Campaign
from core.db import db
from core.errors import NotFound
from core.validate import json_body, page_args
from journeys.models import Journey
from tracking import analytics, conversions, services, sns
from tracking.wsgi import NO_CACHE, PIXEL, PIXEL_HEADERS

bp = Blueprint("tracking", __name__)


def _client() -> tuple[str, str]:
    return request.headers.get("User-Agent", ""), request.remote_addr or ""



def _unsubscribe_send(token: str):  # noqa: ANN202
    send = services.send_for_unsubscribe(token)
    if send is None:
        raise NotFound("This unsubscribe link is not valid.")
    return send


@bp.get("/u/<token>", merge_slashes=False)
def unsubscribe_page(token: str):
    send = _unsubscribe_send(token)
    html = render_template("tracking/unsubscribe.html", token=token,
                           email=services.masked_email(send.email),
                           brand=current_app.config.get("BRAND_NAME", ""))
    return Response(html, headers=NO_CACHE, mimetype="text/html")


@bp.post("/u/<token>", merge_slashes=False)
def unsubscribe(token: str):
    send = _unsubscribe_send(token)
    ua, ip = _client()
    services.unsubscribe(send, ua, ip)
    html = render_template("tracking/unsubscribed.html", email=services.masked_email(send.email),
                           brand=current_app.config.get("BRAND_NAME", ""))
    return Response(html, headers=NO_CACHE, mimetype="text/html")


@bp.post("/webhooks/ses")
def ses_webhook():
    topics = [t.strip() for t in (current_app.config.get("SNS_TOPIC_ARNS") or "").split(",")
              if t.strip()]
    return jsonify(sns.handle(request.get_data(cache=False), topics))


# --- analytics -------------------------------------------------------------------------------

def _csv(text: str, name: str) -> Response:
    return Response(text, mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})


def _wants_csv() -> bool:
    return request.args.get("format") == "csv"


def _report(report: dict, name: str) -> Response:
    """Answer a report as JSON, or as CSV with `?format=csv`."""
    if _wants_csv():
        return _csv(analytics.report_csv(report), name)
    return jsonify(report)


@bp.get("/api/analytics/journeys/<int:journey_id>")
@require_roles(*BRAND)
def journey_analytics(journey_id: int):
    journey = db.session.get(Journey, journey_id)
    if journey is None:
        raise NotFound("Journey not found.")
    return _report(analytics.journey_report(journey), f"journey-{journey_id}")


@bp.get("/api/analytics/campaigns/<int:campaign_id>")
@require_roles(*ANY_ROLE)
def campaign_analytics(campaign_id: int):
    campaign = visible(db.session.get(Campaign, campaign_id), "Campaign")
    return _report(analytics.campaign_report(campaign), f"campaign-{campaign_id}")


@bp.get("/api/analytics/campaigns/<int:campaign_id>/recipients")
@require_roles(*PARTNER)
def campaign_recipients(campaign_id: int):
    campaign = visible(db.session.get(Campaign, campaign_id), "Campaign")
    page, per_page = page_args()
    if _wants_csv():
        page, per_page = 1, 1_000_000
    data = analytics.campaign_recipients(campaign, page, per_page)
    if _wants_csv():
        return _csv(analytics.to_csv(data["items"], analytics.RECIPIENT_COLUMNS),
                    f"campaign-{campaign_id}-recipients")
    return jsonify(data)


@bp.get("/api/contacts/<int:contact_id>/timeline")
@require_roles(*PARTNER)  # per-recipient data: the owning partner's only (brand roles: 403)
def contact_timeline(contact_id: int):
    contact = visible(contacts.get_contact(contact_id), "Contact")
    page, per_page = page_args()
    return jsonify(analytics.contact_timeline(contact.id, page, per_page))


@bp.get("/api/analytics/partners")
@require_roles(*BRAND)
def partner_analytics():
    data = analytics.partner_scorecard()
    if _wants_csv():
        return _csv(analytics.to_csv(data["items"], analytics.SCORECARD_COLUMNS),
                    "partner-scorecard")
    return jsonify(data)


# --- conversions -------------------------------------------------------------------------------

@bp.post("/api/integration-keys")
@require_roles("brand_admin")
def create_integration_key():
    data = json_body()
    row, key = conversions.create_integration_key(current_user(), data.get("name") or "")
    return jsonify({**conversions.key_json(row), "key": key}), 201


@bp.get("/api/integration-keys")
@require_roles("brand_admin")
def list_integration_keys():
    page, per_page = page_args()
    return jsonify(conversions.list_integration_keys(page, per_page))


@bp.delete("/api/integration-keys/<int:key_id>")
@require_roles("brand_admin")
def revoke_integration_key(key_id: int):
    conversions.revoke_integration_key(key_id)
    return "", 204


@bp.post("/api/conversions")
def record_conversion():
    # Authenticated by a brand integration key (not a user's token) as the bearer token.
    key = conversions.key_for_bearer(request.headers.get("Authorization", ""))
    recorded = conversions.record_conversion(key, json_body())
    return (jsonify(conversions.conversion_json(recorded.conversion, recorded.created)),
            201 if recorded.created else 200)


@bp.get("/c.gif")
def conversion_pixel():
    conversions.record_pixel_conversion(request.args.to_dict())
    return Response(PIXEL, headers=PIXEL_HEADERS[1:], mimetype="image/gif")
