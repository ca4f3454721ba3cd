"""The journey and template-version state tables (journeys/states.py) and who goes through them."""

from __future__ import annotations

import pytest

from core.db import db
from core.errors import StateError
from journeys import services as journeys
from journeys.models import Journey, TemplateVersion
from journeys.states import JOURNEY_ACTIONS, VERSION_ACTIONS, allowed, apply, statuses
from tests.builders import make_journey, make_partner, make_template, make_user
from tests.test_web_pages import PASSWORD, login

# Every status the database accepts (the models' CHECK constraints).
JOURNEY_STATUSES = ("draft", "published", "archived")
VERSION_STATUSES = ("draft", "published")

JOURNEY_MOVES = [(a, s, t) for a, moves in JOURNEY_ACTIONS.items() for s, t in moves.items()]
VERSION_MOVES = [(a, s, t) for a, moves in VERSION_ACTIONS.items() for s, t in moves.items()]
JOURNEY_REFUSED = [(a, s) for a in JOURNEY_ACTIONS for s in JOURNEY_STATUSES
                   if s not in JOURNEY_ACTIONS[a]]
VERSION_REFUSED = [(a, s) for a in VERSION_ACTIONS for s in VERSION_STATUSES
                   if s not in VERSION_ACTIONS[a]]


def _journey_in(status: str) -> Journey:
    journey = make_journey()
    journey.status = status
    db.session.commit()
    return journey


def _version_in(status: str) -> TemplateVersion:
    version = make_template()  # published
    if status == "draft":
        version = journeys.update_template(version.template_id, version.name, version.subject,
                                           version.preheader, version.mjml, version.slots)
    assert version.status == status
    return version


def test_tables_name_only_statuses_the_database_accepts():
    for table, known in ((JOURNEY_ACTIONS, JOURNEY_STATUSES), (VERSION_ACTIONS, VERSION_STATUSES)):
        for moves in table.values():
            assert set(moves) <= set(known) and set(moves.values()) <= set(known), moves


@pytest.mark.parametrize(("action", "start", "end"), JOURNEY_MOVES)
def test_every_legal_journey_move_applies(app, action, start, end):
    journey = _journey_in(start)
    assert allowed(journey, action)
    assert apply(journey, action) is journey
    db.session.commit()  # the database accepts the new status
    db.session.expire_all()
    assert db.session.get(Journey, journey.id).status == end


@pytest.mark.parametrize(("action", "start", "end"), VERSION_MOVES)
def test_every_legal_version_move_applies(app, action, start, end):
    version = _version_in(start)
    if end == "published":
        version.compiled_html = "<p>compiled</p>"  # the database wants a published row compiled
    assert allowed(version, action)
    apply(version, action)
    db.session.commit()
    db.session.expire_all()
    assert db.session.get(TemplateVersion, version.id).status == end


@pytest.mark.parametrize(("action", "status"), JOURNEY_REFUSED)
def test_an_illegal_journey_move_is_409_naming_the_status(app, action, status):
    journey = _journey_in(status)
    assert not allowed(journey, action)
    with pytest.raises(StateError) as refused:
        apply(journey, action)
    assert refused.value.status == 409
    assert refused.value.fields == {"status": status}
    assert journey.status == status


@pytest.mark.parametrize(("action", "status"), VERSION_REFUSED)
def test_an_illegal_version_move_is_409_naming_the_status(app, action, status):
    version = _version_in(status)
    assert not allowed(version, action)
    with pytest.raises(StateError) as refused:
        apply(version, action)
    assert refused.value.status == 409
    assert refused.value.fields == {"status": status}
    assert f"Version {version.version}" in refused.value.message
    assert version.status == status


def test_statuses_lists_where_an_action_may_start():
    assert statuses(Journey, "pick") == ["published"]
    assert statuses(Journey, "archive") == ["draft", "published"]
    assert statuses(TemplateVersion, "pin") == ["published"]


# --- the services go through the tables -------------------------------------------------------

def test_services_refuse_with_the_existing_messages(app):
    version = make_template()
    with pytest.raises(StateError, match=rf"^Version {version.version} is already published; "
                                         "save a new draft first\\.$") as refused:
        journeys.publish_template(version.template_id)
    assert refused.value.fields == {"status": "published"}

    journey = make_journey(templates=[version])
    with pytest.raises(StateError, match="^Only draft journeys can be edited"):
        journeys.update_journey(journey.id, name="New name",
                                steps=[{"template_id": version.template_id}])
    with pytest.raises(StateError, match="^Journey is published; only drafts can be published"):
        journeys.publish_journey(journey.id)
    journeys.archive_journey(journey.id)
    with pytest.raises(StateError, match="^Journey is already archived") as refused:
        journeys.archive_journey(journey.id)
    assert refused.value.fields == {"status": "archived"}
    assert db.session.get(Journey, journey.id).status == "archived"


def test_a_draft_journey_can_be_archived_and_leaves_no_catalog_trace(app):
    version = make_template()
    draft = journeys.create_journey(name="Draft", steps=[{"template_id": version.template_id}])
    published = make_journey(templates=[version])
    partner = make_partner()
    assert journeys.catalog_for(partner) == [published]
    assert not journeys.journey_visible_to(draft, partner)
    journeys.archive_journey(draft.id)
    journeys.archive_journey(published.id)
    assert journeys.catalog_for(partner) == []
    assert not journeys.journey_visible_to(published, partner)


def test_only_published_versions_are_pinned(app):
    version = make_template()
    draft = journeys.update_template(version.template_id, version.name, version.subject,
                                     version.preheader, version.mjml, version.slots)
    assert journeys.published_version(version.template_id).id == version.id != draft.id
    journey = make_journey(templates=[version])
    assert journey.steps[0].template_version_id == version.id


# --- pages offer exactly the actions the tables allow ------------------------------------------

def _buttons(html: str) -> list[str]:
    return [b for b in ("Publish", "Archive") if f">{b}</button>" in html]


def test_journey_pages_offer_the_allowed_action(client, app):
    user, _ = make_user("brand_marketer", password=PASSWORD)
    login(client, user.email)
    version = make_template()
    draft = journeys.create_journey(name="Draft", steps=[{"template_id": version.template_id}])
    published = make_journey(templates=[version])
    archived = make_journey(templates=[version])
    journeys.archive_journey(archived.id)

    expected = {draft.id: ["Publish"], published.id: ["Archive"], archived.id: []}
    for journey_id, buttons in expected.items():
        html = client.get(f"/brand/journeys/{journey_id}").get_data(as_text=True)
        assert _buttons(html) == buttons, journey_id
        # Only a draft's definition can be changed.
        assert ("<fieldset disabled" in html) == (journey_id != draft.id), journey_id

    listing = client.get("/brand/journeys").get_data(as_text=True)
    assert listing.count(">Publish</button>") == 1 and listing.count(">Archive</button>") == 1


def test_template_page_disables_publish_once_the_latest_version_is_published(client, app):
    user, _ = make_user("brand_marketer", password=PASSWORD)
    login(client, user.email)
    version = make_template()
    page = f"/brand/templates/{version.template_id}"
    assert 'title="Save a new draft first"' in client.get(page).get_data(as_text=True)
    journeys.update_template(version.template_id, version.name, version.subject,
                             version.preheader, version.mjml, version.slots)
    db.session.expire_all()  # the test shares the page's session (expire_on_commit is off)
    assert 'title="Save a new draft first"' not in client.get(page).get_data(as_text=True)
