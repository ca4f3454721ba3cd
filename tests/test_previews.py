"""The one preview service (personalization.preview), its campaign adapter, the recipient
tenancy rule, and the pages and API routes that all go through them."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest
from flask import g

from accounts.auth import visible_recipient
from campaigns import members
from campaigns.sending import compose_message, preview_campaign
from core.errors import NotFound, SlotError, TemplateError
from journeys import services as journeys
from personalization import preview as service
from personalization.compile import compile_template
from personalization.context import SAMPLE_CONTACT, SAMPLE_PARTNER
from personalization.preview import Preview, preview_source, preview_version, sample_inputs
from personalization.render import Rendered, render_message
from tests.builders import make_campaign, make_contact, make_journey, make_partner, make_user
from tests.test_web_pages import PASSWORD, login, page_token

MJML = """<mjml><mj-body><mj-section><mj-column>
<mj-text><h1>{{ slots.title }}</h1>Hi {{ contact.first_name }} from {{ partner.name }}.</mj-text>
<mj-text>Brand-locked legal text. <a href="{{ unsubscribe_url }}">Unsubscribe</a></mj-text>
</mj-column></mj-section></mj-body></mjml>"""
SLOTS = [{"name": "title", "type": "text", "label": "Title", "default": "News",
          "max_length": 20}]
SUBJECT = "{{ slots.title }} for {{ contact.first_name }}"
CONTACT = {"email": "ann@example.org", "first_name": "Ann", "last_name": "Lee", "attributes": {}}
PARTNER = {"name": "Smith & Co"}
SENDER = {"name": "Jane", "reply_to": "jane@smith.example"}
BRAND = {"name": "Acme", "from_email": "news@acme.example"}
INPUTS = (CONTACT, PARTNER, SENDER, BRAND)
_ids = itertools.count(900_000)


def _draft() -> SimpleNamespace:
    return SimpleNamespace(id=next(_ids), status="draft", mjml=MJML, subject=SUBJECT,
                           preheader="", slots=SLOTS, compiled_html=None)


def _published() -> SimpleNamespace:
    compiled = compile_template(MJML, SUBJECT, "", SLOTS)
    return SimpleNamespace(id=next(_ids), status="published", mjml=MJML, subject=SUBJECT,
                           preheader="", slots=SLOTS, compiled_html=compiled.html,
                           compiled_text=compiled.text, links=list(compiled.links))


# --------------------------------------------------------------------------- the service


def test_a_draft_version_is_compiled_on_the_fly():
    shown = preview_version(_draft(), {"title": "Draft"}, *INPUTS)
    assert isinstance(shown, Preview)
    assert shown.subject == "Draft for Ann"
    assert "<h1>Draft</h1>" in shown.html and "Smith &amp; Co" in shown.html
    assert "Draft" in shown.text
    assert shown.locked_regions_intact and shown.locked_region_problems == ()
    # A stored draft and the same unsaved editor source preview identically.
    assert preview_source(MJML, SUBJECT, "", SLOTS, {"title": "Draft"}, *INPUTS) == shown


def test_a_published_version_renders_its_frozen_template_and_proves_the_lock():
    version = _published()
    shown = preview_version(version, {"title": "<b>Hi</b>"}, *INPUTS)
    assert shown.subject == "<b>Hi</b> for Ann"
    assert "&lt;b&gt;Hi&lt;/b&gt;" in shown.html and "<b>Hi</b>" not in shown.html
    assert shown.locked_regions_intact
    # Same message as a draft of the same source: the frozen template is what was compiled.
    assert shown.html == preview_version(_draft(), {"title": "<b>Hi</b>"}, *INPUTS).html


def test_published_values_are_validated_unless_already_validated():
    version = _published()
    with pytest.raises(SlotError) as err:
        preview_version(version, {"title": "x" * 21, "nope": "1"}, *INPUTS)
    assert set(err.value.fields) == {"title", "nope"}
    # A campaign's stored values render exactly as the sender renders them.
    values = {"title": "As sent", "stale": "ignored"}
    shown = preview_version(version, values, *INPUTS, validate=False)
    assert shown.html == render_message(version, values, *INPUTS).html


def test_the_lock_proof_reports_a_tampered_render(monkeypatch):
    version = _published()
    honest = service.render_preview

    def tampered(*args, **kwargs) -> Rendered:
        rendered = honest(*args, **kwargs)
        return rendered._replace(html=rendered.html.replace("Brand-locked legal", "Our own"))

    monkeypatch.setattr(service, "render_preview", tampered)
    shown = preview_version(version, {}, *INPUTS)
    assert "Our own" in shown.html
    assert not shown.locked_regions_intact
    assert shown.locked_region_problems and "changed" in shown.locked_region_problems[0]


def test_a_broken_source_raises_a_domain_error():
    with pytest.raises(TemplateError):
        preview_source(MJML.replace("slots.title", "config"), SUBJECT, "", SLOTS, {}, *INPUTS)


def test_sample_inputs_are_one_set_for_every_preview():
    config = {"BRAND_NAME": "Acme", "BRAND_FROM_EMAIL": "news@acme.example"}
    brand_user = SimpleNamespace(name=None, email="bea@brand.example")
    inputs = sample_inputs(brand_user, config)
    assert inputs.contact == SAMPLE_CONTACT and inputs.partner == SAMPLE_PARTNER
    assert inputs.sender == {"name": "Your Name", "reply_to": "bea@brand.example"}
    assert inputs.brand == BRAND
    inputs.contact["attributes"]["city"] = "Lyon"  # callers may personalize their copy
    assert sample_inputs(brand_user, config).contact["attributes"] == {}
    # A partner previewing its showroom sees itself as the partner, and as the sender's name.
    own = sample_inputs(brand_user, config, {"name": "Smith & Co"})
    assert own.partner == {"name": "Smith & Co"} and own.sender["name"] == "Smith & Co"
    named = SimpleNamespace(name="Pat", email="pat@smith.example")
    assert sample_inputs(named, config, {"name": "Smith & Co"}).sender["name"] == "Pat"


# --------------------------------------------------------------------------- campaigns


def test_a_campaign_preview_is_the_message_sent_untracked(app):
    partner = make_partner()
    user, _ = make_user("partner_user", partner)
    contact = make_contact(partner, first_name="Ada")
    campaign = make_campaign(partner, user, make_journey(), contacts=[contact],
                             slot_values={"headline": "Spring"})
    shown = preview_campaign(campaign, 0, contact, partner, config=app.config)
    sent = compose_message(campaign, 0, contact, partner, send_id=None, config=app.config)
    assert (shown.subject, shown.html, shown.text) == (sent.subject, sent.html, sent.text)
    assert shown.subject == "Spring, Ada" and shown.locked_regions_intact
    tracked = compose_message(campaign, 0, contact, partner, send_id=7, config=app.config)
    assert tracked.subject == shown.subject
    # Without a contact the sample contact stands in; a missing step is a 404.
    assert preview_campaign(campaign, 0, None, partner, config=app.config).subject == (
        "Spring, Alex")
    with pytest.raises(NotFound):
        preview_campaign(campaign, 5, None, partner, config=app.config)


def test_a_campaign_preview_applies_the_members_overrides(app):
    partner = make_partner()
    user, _ = make_user("partner_user", partner)
    contact = make_contact(partner, first_name="Ada")
    campaign = make_campaign(partner, user, make_journey())
    members.add_members(campaign, [contact.id], {str(contact.id): {"headline": "Just Ada"}})
    assert preview_campaign(campaign, 0, contact, partner,
                            config=app.config).subject == "Just Ada, Ada"
    assert preview_campaign(campaign, 0, contact, partner, config=app.config,
                            overrides={}).subject == "Hello from us, Ada"


# --------------------------------------------------------------------------- tenancy


def _as(app, user):
    ctx = app.test_request_context("/api/campaigns/1/preview")
    ctx.push()
    g.user = user
    return ctx


def test_only_the_owning_partner_may_preview_as_a_recipient(app):
    owner = make_partner()
    owner_user, _ = make_user("partner_user", owner)
    other = make_partner()
    other_user, _ = make_user("partner_admin", other)
    brand_user, _ = make_user("brand_admin")
    mine, theirs = make_contact(owner), make_contact(other)
    for user, contact, campaign_partner, allowed in [
        (owner_user, mine, owner.id, True),
        (owner_user, theirs, owner.id, False),  # another partner's contact
        (owner_user, None, owner.id, False),  # no such contact
        (other_user, mine, owner.id, False),  # another partner's campaign
        (other_user, theirs, owner.id, False),
        (brand_user, mine, owner.id, False),  # brand roles: the sample contact only
    ]:
        ctx = _as(app, user)
        try:
            if allowed:
                assert visible_recipient(contact, campaign_partner) is contact
            else:
                with pytest.raises(NotFound):
                    visible_recipient(contact, campaign_partner)
        finally:
            ctx.pop()


# --------------------------------------------------------------------------- the call sites


def test_template_api_and_brand_page_preview_a_draft_with_the_same_sample(app, client,
                                                                         make_api):
    marketer, token = make_user("brand_marketer", password=PASSWORD)
    draft = journeys.create_template("Draft", SUBJECT, "", MJML, SLOTS)
    api = make_api(token).get(f"/api/templates/{draft.template_id}/preview")
    assert api.status_code == 200
    assert api.headers["X-Lastmile-Locked-Regions-Intact"] == "true"
    assert api.headers["X-Lastmile-Subject"] == "News for Alex"
    login(client, marketer.email)
    page = client.get(f"/brand/templates/{draft.template_id}/versions/1/preview")
    assert page.status_code == 200
    assert page.get_data(as_text=True) == api.get_data(as_text=True)
    assert "Sample Partner Co" in page.get_data(as_text=True)


def test_a_partner_thumbnail_shows_the_partner_itself(app, client):
    partner = make_partner(name="Smith Plumbing", tier="gold")
    user, _ = make_user("partner_user", partner, password=PASSWORD)
    journey = make_journey()
    login(client, user.email)
    response = client.get(f"/partner/journeys/{journey.id}/thumbnail")
    assert response.status_code == 200
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
    body = response.get_data(as_text=True)
    assert "Smith Plumbing" in body and "Dear Alex" in body


def test_the_editor_previews_unsaved_source_or_says_why_it_cannot(app, client):
    marketer, _ = make_user("brand_marketer", password=PASSWORD)
    login(client, marketer.email)
    token = page_token(client, "/brand/templates/new")
    form = {"csrf_token": token, "name": "T", "subject": SUBJECT, "preheader": "", "mjml": MJML,
            "slot-0-name": "title", "slot-0-label": "Title", "slot-0-default": "Fresh"}
    shown = client.post("/brand/templates/preview", data=form)
    assert shown.status_code == 200
    assert shown.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert "<h1>Fresh</h1>" in shown.get_data(as_text=True)
    broken = client.post("/brand/templates/preview",
                         data=dict(form, mjml=MJML.replace("slots.title", "slots.nope")))
    body = broken.get_data(as_text=True)
    assert broken.status_code == 200 and "<p>Cannot preview yet:</p><ul><li><b>" in body
    assert "nope" in body and "<h1>" not in body


def test_the_personalization_preview_lists_the_values_to_fix(app, client):
    partner = make_partner(tier="gold")
    user, _ = make_user("partner_user", partner, password=PASSWORD)
    journey = make_journey()
    login(client, user.email)
    token = page_token(client, f"/partner/journeys/{journey.id}")
    response = client.post(f"/partner/journeys/{journey.id}/preview", data={
        "csrf_token": token, "sender_name": "Pat", "sender_reply_to": "pat@partner.example",
        "v-0-headline": "<i>" + "x" * 90})
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<p>Fix these values to see the preview:</p>" in body
    assert "<li><b>Step 1 · Headline</b>: must be at most 80 characters</li>" in body
    assert "<i>" not in body
