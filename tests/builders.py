"""Builders for test data: make_partner, make_user, ... (call inside an app context)."""

from __future__ import annotations

import itertools

from accounts import services as accounts

_seq = itertools.count(1)


def listed(tiers=(), regions=()):
    """Add tiers and regions to the brand's lists (a partner or audience may only name them)."""
    from accounts import lists

    for name in tiers:
        lists.add_name("tier", name)
    for name in regions:
        lists.add_name("region", name)


def make_partner(name: str | None = None, tier: str = "gold", region: str = "west", **extra):
    """Create a partner (its tier and region are added to the brand's lists first)."""
    n = next(_seq)
    listed([tier], [region])
    return accounts.create_partner(name=name or f"Partner {n}", tier=tier, region=region, **extra)


def make_user(role: str, partner=None, email: str | None = None, password: str | None = None):
    """Create a user; return (user, api_token)."""
    n = next(_seq)
    return accounts.create_user(
        email or f"{role}{n}@example.com",
        role,
        partner.id if partner is not None else None,
        password=password,
    )


# ----------------------------------------------------- campaigns helper: templates .. campaigns

DEFAULT_SLOTS = [
    {"name": "headline", "type": "text", "label": "Headline", "default": "Hello from us",
     "max_length": 80},
    {"name": "body", "type": "richtext", "label": "Body", "default": "<p>We are here.</p>",
     "max_length": 2000},
    {"name": "cta_url", "type": "url", "label": "Button link",
     "default": "https://brand.example/book", "allowed_domains": ["brand.example"]},
]
_SLOT_MARKUP = {
    "text": '<mj-text css-class="slot-{name}">{{{{ slots.{name} }}}}</mj-text>',
    "richtext": '<mj-text css-class="slot-{name}">{{{{ slots.{name} }}}}</mj-text>',
    "choice": '<mj-text css-class="slot-{name}">{{{{ slots.{name} }}}}</mj-text>',
    "url": '<mj-button href="{{{{ slots.{name} }}}}">Open {name}</mj-button>',
    "image": '<mj-image src="{{{{ slots.{name} }}}}" alt="{name}" />',
}


def template_mjml(slots: list[dict]) -> str:
    """Return a small valid MJML document using every slot once, plus brand-locked content."""
    parts = "\n".join(_SLOT_MARKUP[s.get("type", "text")].format(name=s["name"]) for s in slots)
    return f"""<mjml>
  <mj-body>
    <mj-section>
      <mj-column>
        <mj-text font-size="20px">{{{{ brand.name }}}} with {{{{ partner.name }}}}</mj-text>
        <mj-text>Dear {{{{ contact.first_name }}}},</mj-text>
        {parts}
        <mj-text>Brand-locked legal text. <a href="https://brand.example/legal">Legal</a>
          <a href="{{{{ unsubscribe_url }}}}">Unsubscribe</a></mj-text>
      </mj-column>
    </mj-section>
  </mj-body>
</mjml>"""


def make_template(slots: list[dict] | None = None, mjml: str | None = None,
                  subject: str = "{{ slots.headline }}, {{ contact.first_name }}",
                  name: str | None = None):
    """Create and publish a template; return its published TemplateVersion."""
    from journeys import services as journeys

    slots = DEFAULT_SLOTS if slots is None else slots
    if slots is not DEFAULT_SLOTS and "{{ slots.headline }}" in subject and not any(
        s["name"] == "headline" for s in slots
    ):
        subject = "News for {{ contact.first_name }}"
    version = journeys.create_template(name or f"Template {next(_seq)}", subject, "",
                                       mjml or template_mjml(slots), slots)
    return journeys.publish_template(version.template_id)


def make_journey(steps: int = 1, requires_approval: bool = False, quick_send: bool = False,
                 tiers: list[str] | None = None, regions: list[str] | None = None,
                 delays: list[float] | None = None, conditions: list[str] | None = None,
                 templates: list | None = None, name: str | None = None):
    """Create and publish a journey of `steps` steps (a fresh default template each)."""
    from journeys import services as journeys

    templates = templates or [make_template() for _ in range(steps)]
    listed(tiers or [], regions or [])
    delays = delays or [0] + [24] * (steps - 1)
    conditions = conditions or ["always"] * steps
    journey = journeys.create_journey(
        name=name or f"Journey {next(_seq)}", description="", category="test",
        tiers=tiers or [], regions=regions or [], requires_approval=requires_approval,
        quick_send=quick_send,
        steps=[{"template_id": t.template_id, "delay_hours": delays[i], "when": conditions[i]}
               for i, t in enumerate(templates)],
    )
    return journeys.publish_journey(journey.id)


def make_contact(partner, email: str | None = None, consent: bool = True, **kw):
    """Create a contact for a partner."""
    from campaigns import contacts

    n = next(_seq)
    return contacts.create_contact(
        partner.id, email=contacts.normalize_email(email or f"contact{n}@example.com"),
        first_name=kw.pop("first_name", f"First{n}"), last_name=kw.pop("last_name", f"Last{n}"),
        attributes=kw.pop("attributes", {}), consent=consent, **kw,
    )


def make_campaign(partner, user, journey, contacts: list | None = None,
                  slot_values: dict | None = None, sender: dict | None = None,
                  name: str | None = None):
    """Create a draft campaign with members (excluded contacts are simply not added)."""
    from campaigns import lifecycle, members

    data: dict = {"journey_id": journey.id, "slot_values": slot_values or {},
                  "sender": sender or {"name": "Pat Partner", "reply_to": "pat@partner.example"}}
    if name:
        data["name"] = name
    campaign = lifecycle.create_campaign(partner, user, data)
    if contacts:
        members.add_members(campaign, [c.id for c in contacts])
    return campaign


# ----------------------------------------------------- tracking helper: sent messages, directly

TRACKED_SLOTS = [
    {"name": "cta_url", "type": "url", "label": "Button link",
     "default": "https://brand.example/book", "allowed_domains": ["brand.example"]},
]
TRACKED_LINKS = ["https://brand.example/offer", "{{ slots.cta_url }}",
                 "https://brand.example/p?who={{ contact.first_name | urlencode }}"]


def _tracked_html(links: list[str]) -> str:
    anchors = "\n".join(f'<a href="{{{{ link({i}) }}}}">Link {i}</a>' for i in range(len(links)))
    return f"<html><body><p>Hi {{{{ contact.first_name }}}}</p>\n{anchors}\n" \
           f'<a href="{{{{ unsubscribe_url }}}}">Unsubscribe</a>{{{{ open_pixel }}}}</body></html>'


def make_tracked_campaign(partner=None, links: list[str] | None = None,
                          slots: list[dict] | None = None, slot_values: dict | None = None,
                          steps: int = 1, journey=None, status: str = "running"):
    """Insert (through the models) a published version, journey and running campaign."""
    from campaigns.models import Campaign
    from core import clock
    from core.db import db
    from journeys.models import Journey, JourneyStep, Template, TemplateVersion

    partner = partner or make_partner()
    links = TRACKED_LINKS if links is None else links
    slots = TRACKED_SLOTS if slots is None else slots
    brand_user, _ = make_user("brand_marketer")
    if journey is None:
        journey = Journey(name=f"Tracked journey {next(_seq)}", status="published",
                          audience_tiers=[], audience_regions=[], created_by=brand_user.id,
                          published_at=clock.now())
        db.session.add(journey)
        db.session.flush()
        for position in range(steps):
            template = Template(name=f"Tracked template {next(_seq)}", created_by=brand_user.id)
            db.session.add(template)
            db.session.flush()
            version = TemplateVersion(
                template_id=template.id, version=1, status="published", name=template.name,
                subject="Hello {{ contact.first_name }}", preheader="", mjml="<mjml/>",
                slots=slots, compiled_html=_tracked_html(links), compiled_text="Hi",
                links=links, created_by=brand_user.id, published_at=clock.now())
            db.session.add(version)
            db.session.flush()
            db.session.add(JourneyStep(journey_id=journey.id, position=position,
                                       template_id=template.id,
                                       template_version_id=version.id,
                                       delay_hours=0 if position == 0 else 24))
    campaign = Campaign(partner_id=partner.id, journey_id=journey.id, created_by=brand_user.id,
                        name=f"Tracked campaign {next(_seq)}", status=status,
                        slot_values=slot_values or {}, sender_name="Pat Partner",
                        sender_reply_to="pat@partner.example", launched_at=clock.now())
    db.session.add(campaign)
    db.session.commit()
    return campaign


def make_sent_message(campaign=None, *, email: str | None = None, step_index: int = 0,
                      overrides: dict | None = None, sent_at=None, status: str = "sent",
                      first_name: str | None = None, **campaign_kw):
    """Insert a contact, its membership and a sent Send row of `campaign`; return the Send."""
    from datetime import timedelta

    from campaigns.models import CampaignMember, Contact, Send
    from core import clock
    from core.db import db
    from journeys.models import JourneyStep

    campaign = campaign or make_tracked_campaign(**campaign_kw)
    n = next(_seq)
    contact = db.session.query(Contact).filter_by(
        partner_id=campaign.partner_id, email=email or f"reader{n}@example.com").first()
    if contact is None:
        contact = Contact(partner_id=campaign.partner_id, email=email or f"reader{n}@example.com",
                          first_name=first_name or f"Reader{n}", last_name="Test",
                          attributes={}, consent=True)
        db.session.add(contact)
        db.session.flush()
        db.session.add(CampaignMember(campaign_id=campaign.id, contact_id=contact.id,
                                      overrides=overrides or {}))
    step = db.session.query(JourneyStep).filter_by(journey_id=campaign.journey_id,
                                                   position=step_index).one()
    sent_at = sent_at or (clock.now() - timedelta(hours=1))
    send = Send(campaign_id=campaign.id, step_index=step_index, contact_id=contact.id,
                partner_id=campaign.partner_id, journey_id=campaign.journey_id,
                template_version_id=step.template_version_id, email=contact.email,
                status=status, due_at=sent_at, sent_at=sent_at if status == "sent" else None,
                attempts=1)
    db.session.add(send)
    db.session.commit()
    return send


def run_import_jobs(app) -> None:
    """Run every queued contact import (the RQ `imports` queue) as a worker would."""
    from campaigns.worker import make_worker

    make_worker(app).work(burst=True, logging_level="WARNING")
