"""Tiers and regions are lists the brand manages: audiences and partners may only name them."""

from __future__ import annotations

import pytest

from tests.builders import make_partner, make_template, make_user


@pytest.fixture
def admin(app, make_api):
    _, token = make_user("brand_admin")
    return make_api(token)


def journey_body(template_id: int, tiers=(), regions=()) -> dict:
    return {"name": "Spring", "audience": {"tiers": list(tiers), "regions": list(regions)},
            "steps": [{"template_id": template_id}]}


def test_names_are_listed_once_in_any_case_and_stored_tidy(admin):
    first = admin.post("/api/tiers", json={"name": "  Gold   Plus "})
    assert first.status_code == 201 and first.json["name"] == "Gold Plus"
    again = admin.post("/api/tiers", json={"name": "gold plus"})
    assert again.status_code == 200 and again.json == {**first.json, "created": False}
    assert admin.post("/api/tiers", json={"name": ""}).status_code == 422
    assert admin.post("/api/tiers", json={"name": "x" * 51}).status_code == 422
    assert admin.post("/api/tiers", json={"name": "a\x00b"}).status_code == 422
    assert admin.post("/api/regions", json={"name": "West", "color": "red"}).status_code == 422
    assert [t["name"] for t in admin.get("/api/tiers").json["items"]] == ["Gold Plus"]
    assert admin.get("/api/regions").json["items"] == []


def test_partner_roles_cannot_read_or_edit_the_lists(app, make_api):
    _, token = make_user("partner_admin", make_partner())
    api = make_api(token)
    for path in ("/api/tiers", "/api/regions"):
        assert api.get(path).status_code == 403
        assert api.post(path, json={"name": "Gold"}).status_code == 403


def test_an_audience_naming_an_unknown_tier_or_region_is_a_422_naming_it(admin):
    template = make_template()
    admin.post("/api/tiers", json={"name": "Gold"})
    admin.post("/api/regions", json={"name": "West"})
    bad = admin.post("/api/journeys", json=journey_body(template.template_id,
                                                        ["gold", "platinum"], ["Mars"]))
    assert bad.status_code == 422
    fields = bad.json["error"]["fields"]
    assert "platinum" in fields["audience.tiers"] and "gold" not in fields["audience.tiers"]
    assert "Mars" in fields["audience.regions"]
    assert admin.get("/api/journeys").json["total"] == 0
    # Known names in any case are accepted and stored as the list spells them.
    good = admin.post("/api/journeys", json=journey_body(template.template_id,
                                                         ["GOLD", "gold"], ["west"]))
    assert good.status_code == 201
    assert good.json["audience"] == {"tiers": ["Gold"], "regions": ["West"]}
    # Editing a draft is checked the same way.
    jid = good.json["id"]
    edited = admin.put(f"/api/journeys/{jid}", json=journey_body(template.template_id,
                                                                ["silver"]))
    assert edited.status_code == 422 and "silver" in edited.json["error"]["fields"][
        "audience.tiers"]


def test_a_partner_with_an_unknown_tier_or_region_is_a_422(admin):
    admin.post("/api/tiers", json={"name": "Gold"})
    admin.post("/api/regions", json={"name": "West"})
    bad = admin.post("/api/partners", json={"name": "North", "tier": "platinum",
                                           "region": "Mars"})
    assert bad.status_code == 422
    assert set(bad.json["error"]["fields"]) == {"tier", "region"}
    assert "platinum" in bad.json["error"]["fields"]["tier"]
    assert admin.get("/api/partners").json["total"] == 0
    created = admin.post("/api/partners", json={"name": "North", "tier": "GOLD",
                                               "region": "west"})
    assert created.status_code == 201 and (created.json["tier"], created.json["region"]) == (
        "Gold", "West")
    patched = admin.patch(f"/api/partners/{created.json['id']}", json={"tier": "silver"})
    assert patched.status_code == 422 and "silver" in patched.json["error"]["fields"]["tier"]
    assert admin.get(f"/api/partners/{created.json['id']}").json["tier"] == "Gold"
    counts = {t["name"]: t["partners"] for t in admin.get("/api/tiers").json["items"]}
    assert counts == {"Gold": 1}


def test_publishing_answers_how_many_partners_the_audience_reaches(admin, make_api):
    template = make_template()
    make_partner(tier="gold", region="west")
    make_partner(tier="Gold", region="east")
    make_partner(tier="silver", region="west")
    admin.post("/api/tiers", json={"name": "Platinum"})

    def publish(tiers=(), regions=()):
        jid = admin.post("/api/journeys", json=journey_body(template.template_id, tiers,
                                                            regions)).json["id"]
        published = admin.post(f"/api/journeys/{jid}/publish")
        assert published.status_code == 200
        return jid, published.json["partners_reached"]

    to_gold, reached = publish(["GOLD"])
    assert reached == 2  # case does not matter: "GOLD" reaches the `gold` partners
    assert publish(["gold"], ["WEST"])[1] == 1
    assert publish()[1] == 3
    to_platinum, reached = publish(["platinum"])
    assert reached == 0
    # A partner in `gold` sees the journey published to "GOLD" in its catalog.
    _, token = make_user("partner_user", make_partner(tier="gold", region="east"))
    seen = {j["id"] for j in make_api(token).get("/api/catalog").json["items"]}
    assert to_gold in seen and to_platinum not in seen


def test_the_migration_seeds_the_lists_from_existing_values(tmp_path):
    """Upgrading a database with partners and journeys lists their tiers and regions once."""
    from sqlalchemy import create_engine, text

    from core import migrate

    url = f"sqlite:///{tmp_path / 'seed.db'}"
    migrate.upgrade(url, "0015_conversions")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for name, tier, region in (("A", "gold", "west"), ("B", "Gold", "East"),
                                       ("C", " silver ", "west")):
                conn.execute(text("INSERT INTO partners (name, tier, region, created_at) "
                                  "VALUES (:n, :t, :r, CURRENT_TIMESTAMP)"),
                             {"n": name, "t": tier, "r": region})
            conn.execute(text(
                "INSERT INTO journeys (name, description, category, audience_tiers, "
                "audience_regions, requires_approval, quick_send, status, created_at) VALUES "
                "('J', '', '', '[\"Platinum\"]', '[\"north\"]', 0, 0, 'draft', "
                "CURRENT_TIMESTAMP)"))
        migrate.upgrade(url)
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT kind, name, key FROM audience_names "
                                     "ORDER BY kind, key")).all()
    finally:
        engine.dispose()
    assert [tuple(r) for r in rows] == [
        ("region", "East", "east"), ("region", "north", "north"), ("region", "west", "west"),
        ("tier", "gold", "gold"), ("tier", "Platinum", "platinum"), ("tier", "silver", "silver"),
    ]


def test_the_lists_page_adds_names_and_the_editor_picks_from_them(client):
    from tests.test_web_pages import login, page_token

    user, _ = make_user("brand_admin", password="correct horse battery")
    make_partner(tier="gold", region="west")
    login(client, user.email)
    token = page_token(client, "/brand/audience-lists")
    added = client.post("/brand/audience-lists", data={"csrf_token": token, "kind": "tier",
                                                       "name": "Platinum"})
    assert added.status_code == 302
    bad = client.post("/brand/audience-lists", data={"csrf_token": token, "kind": "region",
                                                     "name": "   "})
    assert bad.status_code == 422 and 'role="alert"' in bad.get_data(as_text=True)
    page = client.get("/brand/audience-lists").get_data(as_text=True)
    assert "Platinum" in page and "1 partner" in page
    editor = client.get("/brand/journeys/new").get_data(as_text=True)
    assert 'name="tiers" value="Platinum"' in editor and 'name="regions" value="west"' in editor
