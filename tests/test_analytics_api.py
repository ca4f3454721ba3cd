"""Analytics API: roles and tenancy, exact counts equal to a raw recount, CSV safety."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from accounts.models import Partner
from core import clock
from core.db import db
from tests.builders import make_partner, make_sent_message, make_tracked_campaign, make_user
from tracking import analytics, ingest, services
from tracking.ingest import Hit, apply_hits
from tracking.models import Event

HUMAN = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/124.0"
MPP = "Mozilla/5.0"  # Apple Mail Privacy Protection's bare agent: a prefetch, not a person
T0 = datetime(2030, 3, 1, 9)


@pytest.fixture(autouse=True)
def _fresh_caches():
    services._LOCAL.clear()
    ingest._LINK_COUNTS.clear()


def hit(kind: str, send, at: datetime, link: int | None = None, ua: str = HUMAN) -> Hit:
    return Hit(kind, send.id, at, link, ua, "203.0.113.9")


@pytest.fixture
def world(app):
    """Two partners running the same two-step journey, with known engagement."""
    clock.freeze(T0)
    p1, p2 = make_partner(name="North"), make_partner(name="=HYPERLINK(\"http://x\")")
    c1 = make_tracked_campaign(partner=p1, steps=2)
    journey_id = c1.journey_id
    from journeys.models import Journey

    c2 = make_tracked_campaign(partner=p2, journey=db.session.get(Journey, journey_id))
    s1 = [make_sent_message(c1, sent_at=T0 - timedelta(hours=2)) for _ in range(4)]
    s1b = make_sent_message(c1, step_index=1, sent_at=T0 - timedelta(hours=1),
                            email=s1[0].email)
    s2 = [make_sent_message(c2, sent_at=T0 - timedelta(hours=2)) for _ in range(3)]
    make_sent_message(c2, status="failed")
    hits = [
        hit("open", s1[0], T0), hit("open", s1[0], T0 + timedelta(minutes=5)),
        hit("open", s1[1], T0), hit("open", s1[2], T0, ua=MPP),
        hit("click", s1[0], T0 + timedelta(minutes=1), link=1),
        hit("click", s1[0], T0 + timedelta(days=1), link=1),
        hit("click", s1[1], T0 + timedelta(minutes=2), link=0),
        hit("open", s1b, T0 + timedelta(days=1)),
        hit("click", s1b, T0 + timedelta(days=1, minutes=1), link=2),
        hit("open", s2[0], T0), hit("click", s2[0], T0, link=0),
        hit("open", s2[1], T0 + timedelta(days=1), ua=MPP),
        hit("unsubscribe", s2[2], T0),
    ]
    apply_hits(hits)
    db.session.commit()
    brand_user, brand = make_user("brand_marketer")
    _, partner1 = make_user("partner_admin", p1)
    _, partner2 = make_user("partner_user", p2)
    return {"journey_id": journey_id, "c1": c1, "c2": c2, "brand": brand,
            "p1": partner1, "p2": partner2, "s1": s1, "s2": s2}


def test_journey_report_counts_exactly_and_equals_a_raw_recount(make_api, world):
    resp = make_api(world["brand"]).get(f"/api/analytics/journeys/{world['journey_id']}")
    assert resp.status_code == 200
    data = resp.json
    expected = {"sent": 8, "failed": 1, "bounced": 0, "delivered": 8, "opens": 5,
                "unique_opens": 4, "clicks": 5, "unique_clicks": 4, "unsubscribes": 1,
                "machine_opens": 2, "machine_clicks": 0}
    assert {k: data[k] for k in expected} == expected
    assert data["open_rate"] == 0.5 and data["click_rate"] == 0.5
    raw = analytics.recount_from_events(journey_id=world["journey_id"])
    for key in ("opens", "unique_opens", "clicks", "unique_clicks", "machine_opens",
                "machine_clicks", "unsubscribes"):
        assert data[key] == raw[key], key
    steps = {s["step_index"]: s for s in data["by_step"]}
    assert (steps[0]["sent"], steps[0]["unique_opens"], steps[1]["sent"],
            steps[1]["unique_clicks"]) == (7, 3, 1, 1)
    partners = {p["partner_name"]: p for p in data["by_partner"]}
    assert partners["North"]["opens"] == 4 and partners["North"]["machine_opens"] == 1
    assert partners['=HYPERLINK("http://x")']["failed"] == 1
    daily = {d["day"]: d for d in data["daily"]}
    assert daily["2030-03-01"]["opens"] == 4 and daily["2030-03-02"]["clicks"] == 2
    top = {(t["step_index"], t["link_index"]): (t["url"], t["clicks"]) for t in data["top_links"]}
    assert top == {(0, 0): ("https://brand.example/offer", 2),
                   (0, 1): ("{{ slots.cta_url }}", 2),
                   (1, 2): ("https://brand.example/p?who={{ contact.first_name | urlencode }}", 1)}
    labels = {t["link_index"]: t["label"] for t in data["top_links"]}
    assert labels[0] == "https://brand.example/offer"
    assert labels[1] == "cta url (each campaign's)"


def test_journey_analytics_is_brand_only(make_api, world):
    assert make_api(world["p1"]).get(
        f"/api/analytics/journeys/{world['journey_id']}").status_code == 403
    assert make_api(world["brand"]).get("/api/analytics/journeys/99999").status_code == 404
    assert make_api(None).get(f"/api/analytics/journeys/{world['journey_id']}").status_code == 401


def test_campaign_report_for_owner_and_brand_404_for_another_partner(make_api, world):
    url = f"/api/analytics/campaigns/{world['c1'].id}"
    mine = make_api(world["p1"]).get(url)
    assert mine.status_code == 200
    assert (mine.json["sent"], mine.json["opens"], mine.json["machine_opens"]) == (5, 4, 1)
    assert make_api(world["brand"]).get(url).json == mine.json
    foreign = make_api(world["p2"]).get(url)
    missing = make_api(world["p2"]).get("/api/analytics/campaigns/99999")
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json["error"]["code"] == missing.json["error"]["code"] == "not_found"


def test_recipients_owner_only_paginated(make_api, world):
    url = f"/api/analytics/campaigns/{world['c1'].id}/recipients"
    assert make_api(world["brand"]).get(url).status_code == 403
    assert make_api(world["p2"]).get(url).status_code == 404
    page1 = make_api(world["p1"]).get(url + "?per_page=2").json
    page2 = make_api(world["p1"]).get(url + "?per_page=2&page=2").json
    assert page1["total"] == 4 and len(page1["items"]) == 2 and len(page2["items"]) == 2
    first = page1["items"][0]
    assert first["email"] == world["s1"][0].email
    assert (first["status"], first["opens"], first["clicks"], first["steps_sent"]) == (
        "sent", 3, 3, 2)
    assert first["last_activity_at"] == (T0 + timedelta(days=1, minutes=1)).isoformat()
    unsub = make_api(world["p2"]).get(
        f"/api/analytics/campaigns/{world['c2'].id}/recipients").json["items"]
    assert {r["email"]: r["status"] for r in unsub}[world["s2"][2].email] == "unsubscribed"


def test_partner_scorecard_rows_and_network_medians(make_api, world):
    resp = make_api(world["brand"]).get("/api/analytics/partners")
    assert resp.status_code == 200
    rows = {r["partner_name"]: r for r in resp.json["items"]}
    north = rows["North"]
    assert (north["campaigns_launched"], north["contacts_reached"], north["sent"]) == (1, 4, 5)
    assert north["active"] is True and north["time_to_first_send_hours"] is not None
    assert north["open_rate"] == 0.6  # 3 unique human opens / 5 delivered
    medians = resp.json["network"]["medians"]
    assert north["open_rate_network_median"] == medians["open_rate"]
    assert resp.json["network"]["partners_active"] == 2
    assert make_api(world["p1"]).get("/api/analytics/partners").status_code == 403


def test_personalized_share_counts_slots_changed_from_defaults(make_api, world):
    c1 = world["c1"]
    c1.slot_values = {"0": {"cta_url": "https://brand.example/mine"},
                      "1": {"cta_url": "https://brand.example/book"}}
    db.session.commit()
    rows = {r["partner_id"]: r for r in make_api(world["brand"]).get(
        "/api/analytics/partners").json["items"]}
    assert rows[c1.partner_id]["personalized_share"] == 0.5


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_csv_exports_are_formula_safe(make_api, world):
    api = make_api(world["brand"])
    contact_email = world["s1"][0].email
    for url in (f"/api/analytics/journeys/{world['journey_id']}?format=csv",
                "/api/analytics/partners?format=csv",
                f"/api/analytics/campaigns/{world['c2'].id}?format=csv"):
        resp = api.get(url)
        assert resp.status_code == 200 and resp.mimetype == "text/csv"
        cells = [c for row in csv.reader(io.StringIO(resp.get_data(as_text=True))) for c in row]
        assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")
                    and not _number(c)]
        assert "'=HYPERLINK(\"http://x\")" in cells
    recipients = make_api(world["p1"]).get(
        f"/api/analytics/campaigns/{world['c1'].id}/recipients?format=csv")
    rows = list(csv.DictReader(io.StringIO(recipients.get_data(as_text=True))))
    assert len(rows) == 4 and rows[0]["email"] == contact_email
    for value in ("=1+1", "+cmd", "-2", "@SUM(A1)", "\tx", "\rx", "ok", 3):
        safe = analytics.safe_cell(value)
        assert not str(safe).startswith(("=", "+", "-", "@", "\t", "\r"))


def test_machine_opens_never_count_as_human_and_events_keep_them(world):
    machine = db.session.scalars(select(Event).where(Event.machine.is_(True))).all()
    assert {(e.kind, e.machine_reason) for e in machine} == {("open", "apple_mail_privacy")}
    names = {p.name for p in db.session.scalars(select(Partner))}
    assert "North" in names
