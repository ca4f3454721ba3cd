"""Property-based fuzz of every documented operation (schemathesis, in-process over WSGI).

The OpenAPI document served at /api/openapi.json drives generation; each operation is called
as each role (a fresh seeded database per role), its path ids drawn either from the seeded rows
or generated, and every answer must be: no 5xx, a documented status code, the documented content
type and a body matching its schema. Bounded and deterministic: EXAMPLES derandomized examples
per operation and role, no example database, so a given document always sends the same requests
(a change to the document changes what is generated: a new finding then is a real one).
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.builders import (
    make_campaign,
    make_contact,
    make_journey,
    make_partner,
    make_sent_message,
    make_user,
)

EXAMPLES = 6
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
ROLES = ["brand_admin", "brand_marketer", "partner_admin", "partner_user"]


def _seed() -> dict:
    """A small network with one row of each kind a path id can name; return role tokens + ids."""
    from accounts.invitations import create_invitation
    from campaigns.audiences import create_segment
    from core.db import db
    from tracking.conversions import create_integration_key

    partner = make_partner(tier="gold", region="west")
    tokens = {}
    users = {}
    for role in ROLES:
        user, token = make_user(role, partner=partner if role.startswith("partner") else None)
        tokens[role], users[role] = token, user
    journey = make_journey()
    contacts = [make_contact(partner), make_contact(partner)]
    campaign = make_campaign(partner, users["partner_admin"], journey, contacts=contacts)
    send = make_sent_message(campaign)
    key, _secret = create_integration_key(users["brand_admin"], "Fuzz key")
    segment = create_segment(partner.id, users["partner_admin"].id, name="Fuzz segment",
                             filter={})
    invitation, _token = create_invitation(users["brand_admin"], "invitee@example.com",
                                           "partner_user", partner.id, "secret")
    db.session.commit()
    step = journey.steps[0]
    ids = {"user_id": users["partner_user"].id, "partner_id": partner.id,
           "template_id": step.template_id, "journey_id": journey.id,
           "contact_id": contacts[0].id, "campaign_id": campaign.id, "message_id": send.id,
           "key_id": key.id, "segment_id": segment.id, "invitation_id": invitation.id}
    return {"tokens": tokens, "ids": ids}


def _operations(schema):
    """Every documented operation, deletions last so the others still find the seeded rows."""
    operations = [result.ok() for result in schema.get_all_operations()]
    return sorted(operations, key=lambda operation: operation.method.upper() == "DELETE")


@pytest.mark.parametrize("role", ROLES)
def test_every_operation_answers_as_documented(app, client, role):
    with app.app_context():
        seeded = _seed()
    document = client.get("/api/openapi.json").json
    schema = schemathesis.openapi.from_dict(document)
    headers = {"Authorization": f"Bearer {seeded['tokens'][role]}"}
    failures = []
    for operation in _operations(schema):
        names = sorted(p.name for p in operation.path_parameters)
        real = {name: seeded["ids"][name] for name in names if name in seeded["ids"]}
        strategy = operation.as_strategy()
        if real:
            strategy = st.one_of(operation.as_strategy(path_parameters=real), strategy)

        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck), print_blob=False)
        @given(case=strategy)
        def run(case):
            response = case.call(app=app, headers=headers)
            case.validate_response(response, checks=CHECKS, headers=headers)

        try:
            run()
        except BaseException as exc:  # noqa: BLE001 - gather each operation's finding, then fail
            if isinstance(exc, KeyboardInterrupt):
                raise
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
