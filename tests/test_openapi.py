"""The OpenAPI document (web/openapi.yaml): valid 3.1, complete both ways, true to the code.

Completeness is checked against the Flask URL map, roles against what each view enforces,
and real responses are validated against the schemas the document gives for them, including
that they carry no field the document does not describe.
"""

from __future__ import annotations

import io
import re

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from accounts.models import PARTNER_ROLES, ROLES
from tests.builders import (
    DEFAULT_SLOTS,
    make_contact,
    make_journey,
    make_partner,
    make_sent_message,
    make_user,
    run_import_jobs,
    template_mjml,
)

METHODS = ("get", "post", "put", "patch", "delete")
PASSWORD = "correct horse battery"


@pytest.fixture
def spec(client) -> dict:
    """The document exactly as the app serves it, fetched without any credentials."""
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()


def operations(spec: dict, prefix: str = ""):
    for path, item in spec["paths"].items():
        if path.startswith(prefix):
            for method in METHODS:
                if method in item:
                    yield path, method, item[method]


def api_routes(app) -> dict[tuple[str, str], str]:
    """(OpenAPI path, method) -> endpoint for every registered /api/ route."""
    routes = {}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            routes[(path, method.lower())] = rule.endpoint
    return routes


# ---------------------------------------------------------------------------- the document


def test_served_document_is_valid_openapi_3_1(client, spec):
    assert spec["openapi"].startswith("3.1.")
    validate(spec, cls=OpenAPIV31SpecValidator)  # raises on any violation or dangling $ref
    conforms(spec, "/api/openapi.json", "get", client.get("/api/openapi.json"))


def test_every_ref_points_into_the_document(spec):
    refs: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)
    assert len(refs) > 100
    broken = []
    for ref in refs:
        assert ref.startswith("#/"), f"{ref} points outside the document"
        target = spec
        for part in ref[2:].split("/"):
            if not isinstance(target, dict) or part not in target:
                broken.append(ref)
                break
            target = target[part]
    assert not broken, f"unresolvable $refs: {sorted(set(broken))}"


def test_document_and_url_map_agree_both_ways(app, spec):
    routed = set(api_routes(app))
    documented = {(path, method) for path, method, _op in operations(spec, "/api/")}
    undocumented = sorted(routed - documented)
    unrouted = sorted(documented - routed)
    assert not undocumented and not unrouted, (
        f"registered but not documented: {undocumented}; "
        f"documented but not registered: {unrouted}"
    )
    assert len(routed) >= 46


def test_every_operation_has_success_security_and_its_errors(spec):
    problems = []
    operation_ids = set()
    for path, method, op in operations(spec):
        where = f"{method.upper()} {path}"
        operation_ids.add(op.get("operationId"))
        for key in ("summary", "description", "tags", "operationId"):
            if not op.get(key):
                problems.append(f"{where}: no {key}")
        statuses = set(op.get("responses", {}))
        if not any(s[0] in "23" for s in statuses):
            problems.append(f"{where}: no success response")
        if path.startswith("/api/") and not any(s.startswith("2") for s in statuses):
            problems.append(f"{where}: no 2xx response")
        if "security" not in op:
            problems.append(f"{where}: no explicit security requirement")
            continue
        if op["security"]:
            assert op["security"] == [{"bearerAuth": []}], where
            if "401" not in statuses:
                problems.append(f"{where}: bearer-authenticated but no 401")
        for status, response in op["responses"].items():
            if path.startswith("/api/") and status.startswith("4"):
                ref = response.get("$ref", "")
                if not ref.startswith("#/components/responses/"):
                    problems.append(f"{where}: {status} does not use a shared error response")
    assert len(operation_ids) == len(list(operations(spec))), "operationIds must be unique"
    assert not problems, "\n".join(problems)


def test_free_text_inputs_document_the_unstorable_text_422(spec):
    """core/validate.py refuses NUL or broken Unicode in any query argument, form field or JSON
    text with 422 naming it: every operation taking a free-text (not integer, not enum) query
    argument or a request body documents that 422."""
    missing = []
    for path, method, op in operations(spec):
        params = [_deref(spec, p) for p in op.get("parameters", [])
                  + spec["paths"][path].get("parameters", [])]
        free = [p["name"] for p in params if p["in"] == "query"
                and _deref(spec, p["schema"]).get("type") not in ("integer", "number")
                and "enum" not in p["schema"]]
        if "requestBody" in op:
            free.append("request body")
        if free and "422" not in op["responses"]:
            missing.append(f"{method.upper()} {path} ({', '.join(free)})")
    assert not missing, "no 422 documented for: " + "; ".join(missing)


def test_shared_error_responses_all_have_the_error_shape(spec):
    error = spec["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    assert error["properties"]["error"]["required"] == ["code", "message", "fields"]
    for name, response in spec["components"]["responses"].items():
        content = response["content"]["application/json"]
        assert content["schema"] == {"$ref": "#/components/schemas/Error"}, name
        _validator(spec, content["schema"]).validate(content["example"])


def _enforced_roles(view) -> tuple[str, ...] | None:
    """Return the roles a view's @require_roles admits, or None for a public view."""
    free = dict(zip(view.__code__.co_freevars, view.__closure__ or (), strict=True))
    return free["roles"].cell_contents if "roles" in free else None


def test_documented_roles_are_the_enforced_roles(app, spec):
    routes = api_routes(app)
    problems = []
    for path, method, op in operations(spec, "/api/"):
        roles = _enforced_roles(app.view_functions[routes[(path, method)]])
        where = f"{method.upper()} {path}"
        if roles is None:
            if op["security"] != [] or op["x-roles"] != []:
                problems.append(f"{where}: public in the code, not in the document")
            continue
        if set(op["x-roles"]) != set(roles):
            problems.append(f"{where}: documents {op['x-roles']}, enforces {list(roles)}")
        if ("403" in op["responses"]) != (set(roles) != set(ROLES)):
            problems.append(f"{where}: 403 documented iff some role is refused")
    assert not problems, "\n".join(problems)


# ----------------------------------------------------------------- real responses vs schemas


def _validator(spec: dict, schema: dict) -> Draft202012Validator:
    """A 2020-12 validator for a document schema; its `#/components/...` refs resolve."""
    return Draft202012Validator({"allOf": [schema], "components": spec["components"]},
                                format_checker=Draft202012Validator.FORMAT_CHECKER)


def _deref(spec: dict, node: dict) -> dict:
    while "$ref" in node:
        target = spec
        for part in node["$ref"][2:].split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def undocumented_fields(spec: dict, schema: dict, value, where: str = "$") -> list[str]:
    """Return the paths of keys in `value` that `schema` does not describe."""
    schema = _deref(spec, schema)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            for option in schema[key]:
                if _validator(spec, option).is_valid(value):
                    return undocumented_fields(spec, option, value, where)
            return [f"{where} (matches no {key} option)"]
    properties: dict = {}
    extra = None
    items = schema.get("items")
    for part in [schema, *(_deref(spec, p) for p in schema.get("allOf", []))]:
        properties.update(part.get("properties", {}))
        extra = part.get("additionalProperties", extra)
        items = part.get("items", items)
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key in properties:
                found += undocumented_fields(spec, properties[key], item, f"{where}.{key}")
            elif isinstance(extra, dict):
                found += undocumented_fields(spec, extra, item, f"{where}.{key}")
            elif extra is not True:
                found.append(f"{where}.{key}")
    elif isinstance(value, list) and isinstance(items, dict):
        for i, item in enumerate(value):
            found += undocumented_fields(spec, items, item, f"{where}[{i}]")
    return found


def conforms(spec: dict, path: str, method: str, response) -> None:
    """Assert a real response is documented for its status and matches that schema exactly."""
    op = spec["paths"][path][method]
    status = str(response.status_code)
    assert status in op["responses"], f"{method.upper()} {path} answered undocumented {status}"
    documented = _deref(spec, op["responses"][status])
    if not documented.get("content"):
        assert not response.data, f"{method.upper()} {path} {status} should have no body"
        return
    assert response.mimetype in documented["content"], (
        f"{method.upper()} {path} {status} answered {response.mimetype}")
    if response.mimetype != "application/json":
        return
    schema = documented["content"]["application/json"]["schema"]
    body = response.get_json()
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in _validator(spec, schema).iter_errors(body)]
    assert not errors, f"{method.upper()} {path} {status}:\n" + "\n".join(errors)
    extra = undocumented_fields(spec, schema, body)
    assert not extra, f"{method.upper()} {path} {status} has undocumented fields: {extra}"


def test_identity_and_partner_responses_match_the_document(app, make_api, spec):
    partner = make_partner(website="https://partner.example")
    _, admin_token = make_user("brand_admin")
    _, partner_token = make_user("partner_user", partner)
    brand, own = make_api(admin_token), make_api(partner_token)

    conforms(spec, "/api/me", "get", brand.get("/api/me"))
    me = own.get("/api/me")
    conforms(spec, "/api/me", "get", me)
    assert me.get_json()["partner_id"] == partner.id
    conforms(spec, "/api/me", "get", make_api(None).get("/api/me"))  # 401, error shape

    conforms(spec, "/api/tiers", "post", brand.post("/api/tiers", json={"name": "Platinum"}))
    conforms(spec, "/api/tiers", "post", brand.post("/api/tiers", json={"name": "GOLD"}))
    conforms(spec, "/api/tiers", "get", brand.get("/api/tiers"))
    conforms(spec, "/api/regions", "post", brand.post("/api/regions", json={"name": "North"}))
    conforms(spec, "/api/regions", "post", brand.post("/api/regions", json={"name": ""}))
    conforms(spec, "/api/regions", "get", brand.get("/api/regions"))
    created = brand.post("/api/partners", json={"name": "North", "tier": "gold",
                                                "region": "north"})
    assert created.status_code == 201
    conforms(spec, "/api/partners", "post", created)
    listed = brand.get("/api/partners?page=1&per_page=1")
    conforms(spec, "/api/partners", "get", listed)
    assert listed.get_json()["total"] == 2 and len(listed.get_json()["items"]) == 1
    conforms(spec, "/api/partners/{partner_id}", "get", brand.get(f"/api/partners/{partner.id}"))
    conforms(spec, "/api/partners/{partner_id}", "patch",
             brand.patch(f"/api/partners/{partner.id}", json={"phone": "+47 123"}))
    conforms(spec, "/api/partners", "get", own.get("/api/partners"))  # 403
    conforms(spec, "/api/partners", "post", brand.post("/api/partners", json={"name": ""}))
    conforms(spec, "/api/partners/{partner_id}", "get", brand.get("/api/partners/99999"))


def test_template_and_journey_responses_match_the_document(app, make_api, spec):
    partner = make_partner(tier="gold")
    _, marketer_token = make_user("brand_marketer")
    _, partner_token = make_user("partner_admin", partner)
    brand, own = make_api(marketer_token), make_api(partner_token)

    body = {"name": "Welcome", "subject": "Hi {{ contact.first_name }}",
            "mjml": template_mjml(DEFAULT_SLOTS), "slots": DEFAULT_SLOTS}
    created = brand.post("/api/templates", json=body)
    assert created.status_code == 201, created.get_json()
    conforms(spec, "/api/templates", "post", created)
    template_id = created.get_json()["id"]
    published = brand.post(f"/api/templates/{template_id}/publish")
    conforms(spec, "/api/templates/{template_id}/publish", "post", published)
    conforms(spec, "/api/templates/{template_id}/publish", "post",
             brand.post(f"/api/templates/{template_id}/publish"))  # 409
    conforms(spec, "/api/templates/{template_id}", "put",
             brand.put(f"/api/templates/{template_id}", json=body))
    conforms(spec, "/api/templates", "get", brand.get("/api/templates"))
    conforms(spec, "/api/templates/{template_id}", "get",
             brand.get(f"/api/templates/{template_id}"))
    conforms(spec, "/api/templates/{template_id}", "get",
             brand.get(f"/api/templates/{template_id}?version=1"))
    conforms(spec, "/api/templates/{template_id}", "get",
             brand.get(f"/api/templates/{template_id}?version=x"))  # 400
    conforms(spec, "/api/templates/{template_id}/preview", "get",
             brand.get(f"/api/templates/{template_id}/preview?slot.headline=Hey"))

    journey = brand.post("/api/journeys", json={
        "name": "Onboarding", "audience": {"tiers": ["gold"]}, "quick_send": True,
        "steps": [{"template_id": template_id}]})
    assert journey.status_code == 201, journey.get_json()
    conforms(spec, "/api/journeys", "post", journey)
    journey_id = journey.get_json()["id"]
    conforms(spec, "/api/journeys/{journey_id}/publish", "post",
             brand.post(f"/api/journeys/{journey_id}/publish"))
    conforms(spec, "/api/journeys/{journey_id}", "put",
             brand.put(f"/api/journeys/{journey_id}", json={"name": "x", "steps": []}))  # 409
    conforms(spec, "/api/journeys", "get", brand.get("/api/journeys?status=published"))
    conforms(spec, "/api/journeys/{journey_id}", "get", brand.get(f"/api/journeys/{journey_id}"))
    catalog = own.get("/api/catalog")
    conforms(spec, "/api/catalog", "get", catalog)
    assert [j["id"] for j in catalog.get_json()["items"]] == [journey_id]
    conforms(spec, "/api/catalog/{journey_id}", "get", own.get(f"/api/catalog/{journey_id}"))
    new = brand.post(f"/api/journeys/{journey_id}/versions")
    conforms(spec, "/api/journeys/{journey_id}/versions", "post", new)
    conforms(spec, "/api/journeys/{journey_id}/versions", "post",
             brand.post(f"/api/journeys/{journey_id}/versions"))  # 409: one is open
    conforms(spec, "/api/journeys/{journey_id}/duplicate", "post",
             brand.post(f"/api/journeys/{journey_id}/duplicate"))
    conforms(spec, "/api/journeys/{journey_id}/publish", "post",
             brand.post(f"/api/journeys/{new.get_json()['id']}/publish",
                        json={"move_campaigns": "sideways"}))  # 422
    conforms(spec, "/api/journeys/{journey_id}/publish", "post",
             brand.post(f"/api/journeys/{new.get_json()['id']}/publish",
                        json={"move_campaigns": "drafts_and_scheduled", "mandatory": True}))
    conforms(spec, "/api/journeys/{journey_id}/archive", "post",
             brand.post(f"/api/journeys/{journey_id}/archive"))  # 409: the version replaced it
    made = brand.post("/api/compliance-rules", json={
        "kind": "phrase", "pattern": "guaranteed", "message": "No promises.",
        "journey_id": journey_id})
    conforms(spec, "/api/compliance-rules", "post", made)
    conforms(spec, "/api/compliance-rules", "post", brand.post(
        "/api/compliance-rules", json={"kind": "regex", "pattern": "(", "message": "m"}))
    conforms(spec, "/api/compliance-rules", "get", brand.get("/api/compliance-rules"))
    conforms(spec, "/api/compliance-rules/{rule_id}", "delete",
             brand.delete(f"/api/compliance-rules/{made.get_json()['id']}"))
    conforms(spec, "/api/compliance-rules/{rule_id}", "delete",
             brand.delete(f"/api/compliance-rules/{made.get_json()['id']}"))  # 404


def test_contact_campaign_and_analytics_responses_match_the_document(app, make_api, spec):
    from campaigns.models import Campaign
    from campaigns.states import apply
    from core.db import db

    partner = make_partner()
    _, brand_token = make_user("brand_admin")
    _, partner_token = make_user("partner_user", partner)
    brand, own = make_api(brand_token), make_api(partner_token)
    journey = make_journey(steps=2, quick_send=True)
    first, second = make_contact(partner), make_contact(partner)
    refused = make_contact(partner, consent=False)

    contact = own.post("/api/contacts", json={"email": "Ann@Example.com", "consent": True,
                                              "attributes": {"city": "Oslo"}})
    conforms(spec, "/api/contacts", "post", contact)
    conforms(spec, "/api/contacts", "post",
             own.post("/api/contacts", json={"email": "ann@example.com", "consent": True}))
    conforms(spec, "/api/contacts", "post", own.post("/api/contacts", json={"email": "nope"}))
    conforms(spec, "/api/contacts", "post", own.post("/api/contacts", data="{",
                                                     content_type="application/json"))
    contact_id = contact.get_json()["id"]
    conforms(spec, "/api/contacts", "get", own.get("/api/contacts?q=ann"))
    conforms(spec, "/api/contacts/{contact_id}", "get", own.get(f"/api/contacts/{contact_id}"))
    conforms(spec, "/api/contacts/{contact_id}", "patch",
             own.patch(f"/api/contacts/{contact_id}", json={"first_name": "Ann"}))
    csv = b"email,first_name,consent,plan\nbo@example.com,Bo,yes,pro\nnot-an-address,X,yes,\n"
    imported = own.post("/api/contacts/import",
                        data={"file": (io.BytesIO(csv), "contacts.csv")},
                        content_type="multipart/form-data")
    conforms(spec, "/api/contacts/import", "post", imported)
    assert imported.status_code == 202 and imported.get_json()["status"] == "queued"
    job_url = imported.headers["Location"]
    conforms(spec, "/api/imports/{import_id}", "get", own.get(job_url))
    run_import_jobs(app)
    done = own.get(job_url)
    conforms(spec, "/api/imports/{import_id}", "get", done)
    report = done.get_json()["result"]
    assert report["created"] == 1 and report["rejected_count"] == 1
    conforms(spec, "/api/contacts/{contact_id}", "delete",
             own.delete(f"/api/contacts/{contact_id}"))

    created = own.post("/api/campaigns", json={
        "journey_id": journey.id, "slot_values": {"headline": "Spring news"},
        "sender": {"name": "Pat", "reply_to": "pat@partner.example"}})
    conforms(spec, "/api/campaigns", "post", created)
    conforms(spec, "/api/campaigns", "post",
             own.post("/api/campaigns", json={"journey_id": journey.id, "mjml": "<mjml/>"}))
    campaign_id = created.get_json()["id"]
    members = own.post(f"/api/campaigns/{campaign_id}/members", json={
        "contact_ids": [first.id, second.id, refused.id, 987654],
        "overrides": {str(first.id): {"headline": "Just for you"}}})
    conforms(spec, "/api/campaigns/{campaign_id}/members", "post", members)
    reasons = {e["reason"] for e in members.get_json()["excluded"]}
    assert reasons == {"no_consent", "not_found"}
    conforms(spec, "/api/campaigns/{campaign_id}/members/{contact_id}", "delete",
             own.delete(f"/api/campaigns/{campaign_id}/members/{second.id}"))
    conforms(spec, "/api/campaigns/{campaign_id}", "patch",
             own.patch(f"/api/campaigns/{campaign_id}", json={"name": "Spring"}))
    conforms(spec, "/api/campaigns/{campaign_id}/preview", "get",
             own.get(f"/api/campaigns/{campaign_id}/preview?step=1&contact_id={first.id}"))
    conforms(spec, "/api/campaigns/{campaign_id}/preview", "get",
             brand.get(f"/api/campaigns/{campaign_id}/preview?contact_id={first.id}"))  # 404
    conforms(spec, "/api/campaigns/{campaign_id}/changes", "get",
             brand.get(f"/api/campaigns/{campaign_id}/changes"))
    conforms(spec, "/api/campaigns/{campaign_id}", "get",
             own.get(f"/api/campaigns/{campaign_id}"))
    conforms(spec, "/api/campaigns/{campaign_id}/approve", "post",
             brand.post(f"/api/campaigns/{campaign_id}/approve"))  # 409: it is a draft
    conforms(spec, "/api/campaigns/{campaign_id}/reject", "post",
             brand.post(f"/api/campaigns/{campaign_id}/reject", json={}))  # 422
    launched = own.post(f"/api/campaigns/{campaign_id}/launch")
    assert launched.status_code == 202
    conforms(spec, "/api/campaigns/{campaign_id}/launch", "post", launched)
    conforms(spec, "/api/campaigns/{campaign_id}/pause", "post",
             own.post(f"/api/campaigns/{campaign_id}/pause"))  # 409: not running yet
    conforms(spec, "/api/campaigns", "get", brand.get("/api/campaigns?status=scheduled"))
    conforms(spec, "/api/campaigns", "get", own.get("/api/campaigns?status=nonsense"))  # 422
    apply(db.session.get(Campaign, campaign_id), "start")  # what the scheduler's tick does
    db.session.commit()
    paused = own.post(f"/api/campaigns/{campaign_id}/pause")
    conforms(spec, "/api/campaigns/{campaign_id}/pause", "post", paused)
    assert paused.get_json()["status"] == "paused"
    conforms(spec, "/api/campaigns/{campaign_id}/resume", "post",
             brand.post(f"/api/campaigns/{campaign_id}/resume"))
    conforms(spec, "/api/campaigns/{campaign_id}/cancel", "post",
             own.post(f"/api/campaigns/{campaign_id}/cancel"))
    conforms(spec, "/api/campaigns/{campaign_id}/resume", "post",
             own.post(f"/api/campaigns/{campaign_id}/resume"))  # 409: cancelled
    quick = own.post("/api/quick-sends", json={"journey_id": journey.id,
                                               "contact_ids": [second.id, refused.id]})
    assert quick.status_code == 202, quick.get_json()
    conforms(spec, "/api/quick-sends", "post", quick)

    conforms(spec, "/api/analytics/journeys/{journey_id}", "get",
             brand.get(f"/api/analytics/journeys/{journey.id}"))
    conforms(spec, "/api/analytics/journeys/{journey_id}", "get",
             brand.get(f"/api/analytics/journeys/{journey.id}?format=csv"))
    conforms(spec, "/api/analytics/partners", "get", brand.get("/api/analytics/partners"))


def test_message_and_recipient_responses_match_the_document(app, make_api, spec):
    from accounts.models import Partner
    from campaigns.models import Campaign
    from core.db import db

    message = make_sent_message()
    campaign = db.session.get(Campaign, message.campaign_id)
    _, token = make_user(PARTNER_ROLES[0], db.session.get(Partner, campaign.partner_id))
    own = make_api(token)
    _, brand_token = make_user("brand_marketer")

    got = own.get(f"/api/messages/{message.id}")
    conforms(spec, "/api/messages/{message_id}", "get", got)
    assert got.get_json()["status"] == "sent"
    conforms(spec, "/api/messages/{message_id}", "get",
             make_api(brand_token).get(f"/api/messages/{message.id}"))  # 403
    conforms(spec, "/api/analytics/campaigns/{campaign_id}", "get",
             own.get(f"/api/analytics/campaigns/{campaign.id}"))
    recipients = own.get(f"/api/analytics/campaigns/{campaign.id}/recipients")
    conforms(spec, "/api/analytics/campaigns/{campaign_id}/recipients", "get", recipients)
    assert recipients.get_json()["items"][0]["status"] == "sent"
    conforms(spec, "/api/analytics/campaigns/{campaign_id}/recipients", "get",
             own.get(f"/api/analytics/campaigns/{campaign.id}/recipients?format=csv"))


# ----------------------------------------------------------------------- the reference page


def test_reference_page_lists_every_operation(client, spec):
    response = client.get("/api-docs")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    html = response.get_data(as_text=True)
    missing = []
    for path, method, op in operations(spec):
        anchor = op["operationId"]
        if f'id="{anchor}"' not in html or f'href="#{anchor}"' not in html:
            missing.append(f"{method.upper()} {path} (#{anchor})")
        elif f"<code class=\"api-path\">{path}</code>" not in html:
            missing.append(f"{method.upper()} {path} (path)")
    assert not missing, f"operations missing from /api-docs: {missing}"
    for schema in spec["components"]["schemas"]:
        assert f'id="schema-{schema}"' in html, schema
    # The page obeys the strict CSP: no inline script or style.
    assert " style=" not in html and "<style" not in html
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    # Roles and the error shape are on the page.
    assert "partner_admin" in html and "state_conflict" in html


def test_signed_in_pages_link_to_the_reference(app, client):
    user, _ = make_user("brand_marketer", password=PASSWORD)
    login_page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', login_page).group(1)
    client.post("/login", data={"email": user.email, "password": PASSWORD,
                                "csrf_token": token})
    assert 'href="/api-docs"' in client.get("/brand").get_data(as_text=True)


def test_segment_sharing_and_members_responses_match_the_document(app, make_api, spec):
    from tests.builders import make_campaign

    partner = make_partner()
    user, token = make_user("partner_admin", partner)
    _, admin_token = make_user("brand_admin")
    own, admin = make_api(token), make_api(admin_token)
    make_contact(partner, "ann@example.com", tags=["vip"], attributes={"age": "41"})
    audience = {"tags": ["vip"], "attributes": {"age": {"gt": 40}}}
    created = own.post("/api/segments", json={"name": "VIPs", "filter": audience})
    conforms(spec, "/api/segments", "post", created)
    conforms(spec, "/api/segments", "post", own.post("/api/segments", json={
        "name": "VIPs", "filter": {}}))
    conforms(spec, "/api/segments", "post", own.post("/api/segments", json={
        "name": "Bad", "filter": {"attributes": {"age": {"gt": "x"}}}}))
    conforms(spec, "/api/segments", "get", own.get("/api/segments"))
    path = f"/api/segments/{created.json['id']}"
    conforms(spec, "/api/segments/{segment_id}", "get", own.get(path))
    conforms(spec, "/api/segments/{segment_id}", "patch", own.patch(path, json={"name": "V"}))
    conforms(spec, "/api/contacts", "get", own.get("/api/contacts", query_string={
        "segment_id": created.json["id"]}))
    campaign = make_campaign(partner, user, make_journey())
    conforms(spec, "/api/campaigns/{campaign_id}/members", "post",
             own.post(f"/api/campaigns/{campaign.id}/members",
                      json={"segment_id": created.json["id"]}))
    conforms(spec, "/api/campaigns/{campaign_id}/members", "post",
             own.post(f"/api/campaigns/{campaign.id}/members", json={"filter": {}}))
    conforms(spec, "/api/segments/{segment_id}", "delete", own.delete(path))
    conforms(spec, "/api/brand/sharing-rules", "get", admin.get("/api/brand/sharing-rules"))
    conforms(spec, "/api/brand/sharing-rules", "put", admin.put(
        "/api/brand/sharing-rules", json={"frequency_cap": {"max_sends": 2, "days": 7},
                                          "same_journey_days": None}))
    conforms(spec, "/api/brand/sharing-rules", "put", admin.put(
        "/api/brand/sharing-rules", json={"frequency_cap": {"max_sends": 0, "days": 7}}))
    conforms(spec, "/api/analytics/sharing", "get", admin.get("/api/analytics/sharing"))
