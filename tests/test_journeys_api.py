"""Templates, journeys and the catalog through HTTP (API: Templates, Journeys, Catalog)."""

from __future__ import annotations

import html

import pytest

from tests.builders import make_partner, make_user

MJML = """<mjml>
  <mj-body>
    <mj-section>
      <mj-column>
        <mj-text font-size="20px">{{ brand.name }} for {{ partner.name }}</mj-text>
        <mj-text>Hello {{ contact.first_name }}, {{ slots.intro }}</mj-text>
        <mj-button href="{{ slots.cta_url }}">Book a call</mj-button>
        <mj-text><a href="https://brand.example/legal">Legal</a>
          <a href="{{ unsubscribe_url }}">Unsubscribe</a></mj-text>
      </mj-column>
    </mj-section>
  </mj-body>
</mjml>"""

SLOTS = [
    {
        "name": "intro",
        "type": "text",
        "label": "Intro",
        "default": "we are here to help.",
        "max_length": 60,
    },
    {
        "name": "cta_url",
        "type": "url",
        "label": "Booking link",
        "default": "https://brand.example/book",
        "allowed_domains": ["brand.example"],
    },
]


def template_body(**changes) -> dict:
    body = {
        "name": "Welcome",
        "subject": "Hi {{ contact.first_name }}",
        "mjml": MJML,
        "slots": SLOTS,
    }
    body.update(changes)
    return body


@pytest.fixture
def marketer(app, make_api):
    _, token = make_user("brand_marketer")
    api = make_api(token)
    # The audiences below name these; the brand lists them first (accounts.lists).
    assert api.post("/api/tiers", json={"name": "Gold"}).status_code == 201
    assert api.post("/api/regions", json={"name": "West"}).status_code == 201
    return api


@pytest.fixture
def published_template(marketer):
    created = marketer.post("/api/templates", json=template_body())
    assert created.status_code == 201, created.json
    tid = created.json["id"]
    assert marketer.post(f"/api/templates/{tid}/publish").status_code == 200
    return tid


def test_template_lifecycle_keeps_published_versions_immutable(marketer):
    created = marketer.post("/api/templates", json=template_body())
    assert created.status_code == 201, created.json
    assert (created.json["version"], created.json["status"]) == (1, "draft")
    tid = created.json["id"]
    published = marketer.post(f"/api/templates/{tid}/publish")
    assert published.json == {
        "id": tid,
        "version": 1,
        "status": "published",
        "links": published.json["links"],
    }
    assert (
        len(published.json["links"]) == 2
    )  # the CTA and the legal link; unsubscribe is not tracked
    assert marketer.post(f"/api/templates/{tid}/publish").status_code == 409

    changed = template_body(subject="Changed {{ contact.first_name }}")
    second = marketer.put(f"/api/templates/{tid}", json=changed)
    assert (second.json["version"], second.json["status"]) == (2, "draft")
    v1 = marketer.get(f"/api/templates/{tid}?version=1").json
    assert v1["subject"] == "Hi {{ contact.first_name }}" and v1["status"] == "published"
    current = marketer.get(f"/api/templates/{tid}").json
    assert current["published_version"] == 1
    assert [v["version"] for v in current["versions"]] == [1, 2]


BAD_TEMPLATES = {
    "mjml_does_not_compile": (template_body(mjml=MJML.replace("mj-text", "mj-bogus")), "mjml"),
    "slot_used_not_declared": (
        template_body(mjml=MJML.replace("slots.intro", "slots.nope")),
        "slots.nope",
    ),
    "slot_declared_not_used": (
        template_body(
            slots=SLOTS + [{"name": "extra", "type": "text", "label": "Extra", "default": "x"}]
        ),
        "slots.extra",
    ),
    "default_breaks_max_length": (
        template_body(slots=[dict(SLOTS[0], default="x" * 61), SLOTS[1]]),
        "slots.intro",
    ),
    "default_outside_allowed_domains": (
        template_body(slots=[SLOTS[0], dict(SLOTS[1], default="https://evil.example/")]),
        "slots.cta_url",
    ),
    "name_not_allowed": (template_body(subject="{{ config.SECRET_KEY }}"), None),
    "mro_escape": (
        template_body(mjml=MJML.replace("{{ brand.name }}", "{{ ''.__class__.__mro__ }}")),
        None,
    ),
    "attr_filter": (
        template_body(mjml=MJML.replace("{{ brand.name }}", "{{ brand|attr('format') }}")),
        None,
    ),
    "cycler_globals": (
        template_body(mjml=MJML.replace("{{ brand.name }}", "{{ cycler.__init__.__globals__ }}")),
        None,
    ),
    "javascript_link": (
        template_body(mjml=MJML.replace("https://brand.example/legal", "javascript:alert(1)")),
        None,
    ),
    "data_link": (
        template_body(
            mjml=MJML.replace("https://brand.example/legal", "data:text/html,<script>x</script>")
        ),
        None,
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_TEMPLATES))
def test_invalid_templates_answer_422_and_create_nothing(marketer, case):
    body, field = BAD_TEMPLATES[case]
    response = marketer.post("/api/templates", json=body)
    assert response.status_code == 422, response.json
    fields = response.json["error"]["fields"]
    assert fields, "a 422 must say what is wrong"
    if field:
        assert any(k == field or k.startswith(field) for k in fields), fields
    assert marketer.get("/api/templates").json["total"] == 0


def test_every_problem_is_listed_at_once(marketer):
    body = template_body(subject="", mjml=MJML.replace("slots.intro", "slots.nope"))
    fields = marketer.post("/api/templates", json=body).json["error"]["fields"]
    assert "subject" in fields


def test_mjml_error_names_the_compiler_problem(marketer):
    body = template_body(mjml=MJML.replace("<mj-button", "<mj-bogus").replace(
        "</mj-button>", "</mj-bogus>"))
    response = marketer.post("/api/templates", json=body)
    assert response.status_code == 422
    assert "mj-bogus" in response.json["error"]["fields"]["mjml"]


def test_preview_escapes_values_and_reports_lock(marketer, published_template):
    hostile = "<script>alert(1)</script>{{ 7*7 }}"
    response = marketer.get(
        f"/api/templates/{published_template}/preview",
        query_string={"slot.intro": hostile, "contact.first_name": "Zoë"},
    )
    assert response.status_code == 200 and response.mimetype == "text/html"
    body = response.get_data(as_text=True)
    assert "<script>alert(1)</script>" not in body
    assert html.escape(hostile, quote=False) in body or html.escape(hostile) in body
    assert "Zoë" in body
    assert response.headers["X-Lastmile-Locked-Regions-Intact"] == "true"
    assert "sandbox" in response.headers["Content-Security-Policy"]


def test_version_argument_must_be_a_number(marketer, published_template):
    for path in (f"/api/templates/{published_template}?version=abc",
                 f"/api/templates/{published_template}/preview?version=abc"):
        response = marketer.get(path)
        assert response.status_code == 400, path
        assert response.json["error"]["code"] == "bad_request"
    assert marketer.get(f"/api/templates/{published_template}?version=9").status_code == 404


def test_preview_rejects_values_breaking_constraints(marketer, published_template):
    response = marketer.get(
        f"/api/templates/{published_template}/preview",
        query_string={"slot.intro": "x" * 61, "slot.cta_url": "https://evil.example/"},
    )
    assert response.status_code == 422
    assert {"intro", "cta_url"} <= set(response.json["error"]["fields"])


def test_no_secret_reaches_output(app, marketer, published_template, monkeypatch):
    monkeypatch.setenv("LASTMILE_CANARY", "canary-value-93817")
    probe = "{{ config }}{{ self }}{{ request.environ }}{{ lipsum.__globals__ }}"
    response = marketer.get(
        f"/api/templates/{published_template}/preview", query_string={"slot.intro": probe[:60]}
    )
    # The probe was rendered (as inert text), so the absence of secrets below means something.
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "{{ config }}{{ self }}" in body
    assert app.config["SECRET_KEY"] not in body and "canary-value-93817" not in body


def journey_body(template_id: int, **changes) -> dict:
    body = {
        "name": "Welcome series",
        "description": "Greets new clients",
        "category": "Onboarding",
        "audience": {"tiers": ["gold"], "regions": ["west"]},
        "requires_approval": True,
        "quick_send": False,
        "steps": [
            {"template_id": template_id, "delay_hours": 0},
            {"template_id": template_id, "delay_hours": 48, "when": "not_opened"},
        ],
    }
    body.update(changes)
    return body


def test_journey_publish_pins_versions_and_archive_hides(
    app, marketer, published_template, make_api
):
    created = marketer.post("/api/journeys", json=journey_body(published_template))
    assert created.status_code == 201, created.json
    jid = created.json["id"]
    assert created.json["status"] == "draft"
    published = marketer.post(f"/api/journeys/{jid}/publish")
    assert published.status_code == 200
    assert [s["template_version"] for s in published.json["steps"]] == [1, 1]

    # A newer published template version does not change what the journey sends.
    marketer.put(
        f"/api/templates/{published_template}",
        json=template_body(subject="v2 {{ contact.first_name }}"),
    )
    marketer.post(f"/api/templates/{published_template}/publish")
    pinned = marketer.get(f"/api/journeys/{jid}").json
    assert [s["template_version"] for s in pinned["steps"]] == [1, 1]

    gold_west = make_partner(tier="gold", region="west")
    _, token = make_user("partner_user", gold_west)
    partner_api = make_api(token)
    assert [j["id"] for j in partner_api.get("/api/catalog").json["items"]] == [jid]
    assert marketer.post(f"/api/journeys/{jid}/archive").status_code == 200
    assert partner_api.get("/api/catalog").json["items"] == []
    assert partner_api.get(f"/api/catalog/{jid}").status_code == 404


def test_catalog_matches_tier_and_region(app, marketer, published_template, make_api):
    jid = marketer.post("/api/journeys", json=journey_body(published_template)).json["id"]
    marketer.post(f"/api/journeys/{jid}/publish")
    open_to_all = marketer.post(
        "/api/journeys", json=journey_body(published_template, name="For everyone", audience={})
    ).json["id"]
    marketer.post(f"/api/journeys/{open_to_all}/publish")
    draft = marketer.post("/api/journeys", json=journey_body(published_template, name="Draft"))
    assert draft.status_code == 201

    seen = {}
    for tier, region in (("gold", "west"), ("silver", "west"), ("gold", "east")):
        _, token = make_user("partner_user", make_partner(tier=tier, region=region))
        seen[(tier, region)] = {j["id"] for j in make_api(token).get("/api/catalog").json["items"]}
    assert seen[("gold", "west")] == {jid, open_to_all}
    assert seen[("silver", "west")] == {open_to_all}
    assert seen[("gold", "east")] == {open_to_all}


def test_journey_validation(marketer, published_template):
    bad = marketer.post(
        "/api/journeys",
        json=journey_body(
            published_template,
            steps=[
                {"template_id": published_template, "delay_hours": 5, "when": "opened"},
                {"template_id": 99999, "delay_hours": -1, "when": "sometimes"},
            ],
        ),
    )
    assert bad.status_code == 422
    fields = bad.json["error"]["fields"]
    assert {
        "steps.0.delay_hours",
        "steps.0.when",
        "steps.1.template_id",
        "steps.1.delay_hours",
        "steps.1.when",
    } <= set(fields)
    assert (
        marketer.post("/api/journeys", json=journey_body(published_template, steps=[])).status_code
        == 422
    )
    assert marketer.get("/api/journeys").json["total"] == 0


def test_publishing_journey_with_unpublished_template_is_409(marketer):
    tid = marketer.post("/api/templates", json=template_body()).json["id"]
    jid = marketer.post("/api/journeys", json=journey_body(tid)).json["id"]
    response = marketer.post(f"/api/journeys/{jid}/publish")
    assert response.status_code == 409
    assert marketer.get(f"/api/journeys/{jid}").json["status"] == "draft"


def test_partner_roles_are_forbidden_on_brand_endpoints(app, make_api, published_template):
    partner = make_partner()
    for role in ("partner_admin", "partner_user"):
        _, token = make_user(role, partner)
        api = make_api(token)
        assert api.post("/api/templates", json=template_body()).status_code == 403
        assert api.get(f"/api/templates/{published_template}").status_code == 403
        assert (
            api.put(f"/api/templates/{published_template}", json=template_body()).status_code == 403
        )
        assert api.post(f"/api/templates/{published_template}/publish").status_code == 403
        assert api.get(f"/api/templates/{published_template}/preview").status_code == 403
        assert api.post("/api/journeys", json={}).status_code == 403
        assert api.get("/api/journeys").status_code == 403
        assert api.post("/api/journeys/1/publish").status_code == 403
        assert api.post("/api/journeys/1/archive").status_code == 403


def test_brand_roles_have_no_catalog(marketer):
    assert marketer.get("/api/catalog").status_code == 403
