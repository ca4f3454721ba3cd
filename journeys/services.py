"""Templates (versioned, published versions immutable), journeys and the partner catalog."""

from __future__ import annotations

import math

from sqlalchemy import func, select

from accounts import lists
from accounts.models import Partner
from core import clock
from core.db import db
from core.errors import NotFound, StateError, TemplateError, ValidationError
from core.i18n import _
from core.validate import is_db_id
from journeys import states
from journeys.models import STEP_CONDITIONS, Journey, JourneyStep, Template, TemplateVersion
from personalization import render as renderer
from personalization.slots import validate_slot_schema

MAX_STEPS = 20
MAX_MJML_BYTES = 512 * 1024


def _checked_source(name: str, subject: str, preheader: str, mjml: str, slots: list) -> list[dict]:
    """Validate a template's source and slot schema; raise one 422 listing every problem."""
    problems: dict[str, str] = {}
    if not isinstance(name, str) or not name.strip():
        problems["name"] = "is required"
    if not isinstance(subject, str) or not subject.strip():
        problems["subject"] = "is required"
    elif len(subject) > 500 or "\n" in subject or "\r" in subject:
        problems["subject"] = "must be one line of at most 500 characters"
    if not isinstance(preheader, str) or len(preheader) > 500:
        problems["preheader"] = "must be a string of at most 500 characters"
    if not isinstance(mjml, str) or not mjml.strip():
        problems["mjml"] = "is required"
    elif len(mjml.encode()) > MAX_MJML_BYTES:
        problems["mjml"] = f"must be at most {MAX_MJML_BYTES // 1024} kB"
    if not isinstance(slots, list):
        problems["slots"] = "must be a list of slot definitions"
        slots = []
    normalized, slot_problems = validate_slot_schema(slots)
    problems.update(slot_problems)
    if not problems:
        problems.update(renderer.check_source(mjml, subject, preheader, normalized))
    if problems:
        raise TemplateError("Template is invalid.", problems)
    return normalized


def create_template(name: str, subject: str, preheader: str, mjml: str, slots: list,
                    created_by: int | None = None) -> TemplateVersion:
    """Create a template and its first draft version."""
    normalized = _checked_source(name, subject, preheader, mjml, slots)
    template = Template(name=name.strip(), created_by=created_by)
    version = TemplateVersion(template=template, version=1, status="draft", name=name.strip(),
                              subject=subject.strip(), preheader=preheader or "", mjml=mjml,
                              slots=normalized, created_by=created_by)
    db.session.add_all([template, version])
    db.session.commit()
    return version


def update_template(template_id: int, name: str, subject: str, preheader: str, mjml: str,
                    slots: list, created_by: int | None = None) -> TemplateVersion:
    """Save a new draft version; published versions are never changed."""
    template = get_template(template_id)
    normalized = _checked_source(name, subject, preheader, mjml, slots)
    number = (db.session.scalar(
        select(func.max(TemplateVersion.version)).where(TemplateVersion.template_id == template.id)
    ) or 0) + 1
    template.name = name.strip()
    version = TemplateVersion(template_id=template.id, version=number, status="draft",
                              name=name.strip(), subject=subject.strip(), preheader=preheader or "",
                              mjml=mjml, slots=normalized, created_by=created_by)
    db.session.add(version)
    db.session.commit()
    return version


def publish_template(template_id: int) -> TemplateVersion:
    """Compile the latest draft once (MJML, HTML, inlined CSS, frozen template) and freeze it."""
    template = get_template(template_id)
    version = latest_version(template.id)
    states.require(version, "publish")  # refuse before any compile work
    compiled = renderer.compile_source(version.mjml, version.subject, version.preheader,
                                       version.slots)
    version.compiled_html = compiled.html
    version.compiled_text = compiled.text
    version.links = list(compiled.links)
    states.apply(version, "publish")
    version.published_at = clock.now()
    db.session.commit()
    return version


def get_template(template_id: int) -> Template:
    """Return a template or raise NotFound."""
    template = db.session.get(Template, template_id)
    if template is None:
        raise NotFound("Template not found.")
    return template


def get_version(template_id: int, number: int | None = None) -> TemplateVersion:
    """Return version `number` of a template (the latest when None)."""
    if number is None:
        return latest_version(template_id)
    version = db.session.scalar(select(TemplateVersion).where(
        TemplateVersion.template_id == template_id, TemplateVersion.version == number))
    if version is None:
        raise NotFound("Template version not found.")
    return version


def latest_version(template_id: int) -> TemplateVersion:
    """Return the newest version of a template, draft or published."""
    version = db.session.scalar(
        select(TemplateVersion).where(TemplateVersion.template_id == template_id)
        .order_by(TemplateVersion.version.desc()).limit(1))
    if version is None:
        raise NotFound("Template not found.")
    return version


def published_version(template_id: int) -> TemplateVersion | None:
    """Return the newest published version of a template, if any."""
    pinnable = states.statuses(TemplateVersion, "pin")
    return db.session.scalar(
        select(TemplateVersion).where(TemplateVersion.template_id == template_id,
                                      TemplateVersion.status.in_(pinnable))
        .order_by(TemplateVersion.version.desc()).limit(1))


def list_templates(page: int = 1, per_page: int = 50) -> tuple[list[Template], int]:
    """Return one page of templates (newest first) and the total."""
    total = db.session.scalar(select(func.count()).select_from(Template)) or 0
    rows = db.session.scalars(select(Template).order_by(Template.id.desc())
                              .limit(per_page).offset((page - 1) * per_page)).all()
    return list(rows), total


def _checked_steps(steps) -> list[dict]:
    problems: dict[str, str] = {}
    if not isinstance(steps, list) or not steps:
        raise ValidationError("Journey is invalid.", {"steps": "needs at least one step"})
    if len(steps) > MAX_STEPS:
        raise ValidationError("Journey is invalid.", {"steps": f"at most {MAX_STEPS} steps"})
    out = []
    for i, step in enumerate(steps):
        key = f"steps.{i}"
        if not isinstance(step, dict):
            problems[key] = "must be an object"
            continue
        template_id = step.get("template_id")
        if not is_db_id(template_id) or db.session.get(Template, template_id) is None:
            problems[f"{key}.template_id"] = "must name an existing template"
        delay = step.get("delay_hours", 0)
        numeric = isinstance(delay, int | float) and not isinstance(delay, bool)
        if not numeric or not math.isfinite(delay) or delay < 0 or delay > 24 * 365:
            problems[f"{key}.delay_hours"] = "must be a number of hours from 0 to 8760"
        elif i == 0 and delay != 0:
            problems[f"{key}.delay_hours"] = "the first step is sent at launch (delay 0)"
        when = step.get("when", "always")
        if when not in STEP_CONDITIONS:
            problems[f"{key}.when"] = f"must be one of {', '.join(STEP_CONDITIONS)}"
        elif i == 0 and when != "always":
            problems[f"{key}.when"] = "the first step has no previous step to test"
        unknown = set(step) - {"template_id", "delay_hours", "when"}
        if unknown:
            problems[f"{key}"] = f"unknown fields: {', '.join(sorted(unknown))}"
        out.append({"template_id": template_id, "delay_hours": delay, "when": when})
    if problems:
        raise ValidationError("Journey is invalid.", problems)
    return out


def _journey_fields(name, description, category, tiers, regions) -> tuple[list, list]:
    """Check a journey's fields; return its audience spelled as the brand's lists do."""
    problems = {}
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        problems["name"] = "is required (at most 200 characters)"
    if not isinstance(description, str) or len(description) > 5000:
        problems["description"] = "must be text of at most 5000 characters"
    if not isinstance(category, str) or len(category) > 100:
        problems["category"] = "must be text of at most 100 characters"
    for key, value in (("audience.tiers", tiers), ("audience.regions", regions)):
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            problems[key] = "must be a list of names"
    audience = {"tier": tiers, "region": regions}
    for kind, key in (("tier", "audience.tiers"), ("region", "audience.regions")):
        if key not in problems:
            try:
                audience[kind] = lists.canonical(kind, audience[kind], key)
            except ValidationError as err:
                problems.update(err.fields)
    if problems:
        raise ValidationError("Journey is invalid.", problems)
    return audience["tier"], audience["region"]


def create_journey(*, name: str, description: str = "", category: str = "",
                   tiers: list | None = None, regions: list | None = None,
                   requires_approval: bool = False, quick_send: bool = False,
                   steps: list, created_by: int | None = None) -> Journey:
    """Create a draft journey from ordered steps."""
    tiers, regions = _journey_fields(name, description, category, tiers or [], regions or [])
    checked = _checked_steps(steps)
    journey = Journey(name=name.strip(), description=description, category=category,
                      audience_tiers=tiers, audience_regions=regions,
                      requires_approval=bool(requires_approval), quick_send=bool(quick_send),
                      created_by=created_by)
    journey.steps = [JourneyStep(position=i, template_id=s["template_id"],
                                 delay_hours=s["delay_hours"], condition=s["when"])
                     for i, s in enumerate(checked)]
    db.session.add(journey)
    db.session.commit()
    return journey


def update_journey(journey_id: int, **fields) -> Journey:
    """Replace a draft journey's definition (published journeys are frozen)."""
    journey = get_journey(journey_id)
    states.require(journey, "edit")
    tiers, regions = _journey_fields(fields["name"], fields.get("description", ""),
                                     fields.get("category", ""), fields.get("tiers") or [],
                                     fields.get("regions") or [])
    checked = _checked_steps(fields["steps"])
    journey.name = fields["name"].strip()
    journey.description = fields.get("description", "")
    journey.category = fields.get("category", "")
    journey.audience_tiers, journey.audience_regions = tiers, regions
    journey.requires_approval = bool(fields.get("requires_approval", False))
    journey.quick_send = bool(fields.get("quick_send", False))
    journey.steps.clear()
    db.session.flush()
    journey.steps.extend(JourneyStep(position=i, template_id=s["template_id"],
                                     delay_hours=s["delay_hours"], condition=s["when"])
                         for i, s in enumerate(checked))
    db.session.commit()
    return journey


def _copy(journey: Journey, **changes) -> Journey:
    """Return a new draft journey with the same settings and steps (steps pin at publish)."""
    copy = Journey(name=journey.name, description=journey.description,
                   category=journey.category, audience_tiers=list(journey.audience_tiers or []),
                   audience_regions=list(journey.audience_regions or []),
                   requires_approval=journey.requires_approval, quick_send=journey.quick_send,
                   status="draft", **changes)
    copy.steps = [JourneyStep(position=s.position, template_id=s.template_id,
                              delay_hours=s.delay_hours, condition=s.condition)
                  for s in journey.steps]
    db.session.add(copy)
    db.session.commit()
    return copy


def draft_version_of(journey: Journey) -> Journey | None:
    """Return the draft new version of a journey, if one is being prepared."""
    return db.session.scalar(select(Journey).where(Journey.previous_id == journey.id,
                                                   Journey.status == "draft").limit(1))


def new_version(journey_id: int, created_by: int | None = None) -> Journey:
    """Open a draft copy (steps, settings) of a published journey as its next version.

    Publishing the copy replaces the journey (journeys.publish_journey archives it). One
    draft version at a time: a second request answers 409 naming the open draft.
    """
    journey = get_journey(journey_id)
    states.require(journey, "new_version")
    existing = draft_version_of(journey)
    if existing is not None:
        raise StateError(_("Version %(n)d is already being prepared; open it instead.",
                           n=existing.version), {"draft_id": str(existing.id)})
    return _copy(journey, previous_id=journey.id, version=journey.version + 1,
                 created_by=created_by)


def duplicate_journey(journey_id: int, created_by: int | None = None) -> Journey:
    """Copy any journey (steps, settings) as a new, separate draft journey."""
    journey = get_journey(journey_id)
    copy = _copy(journey, version=1, created_by=created_by)
    copy.name = _("Copy of %(name)s", name=journey.name)[:200]
    db.session.commit()
    return copy


def publish_journey(journey_id: int) -> Journey:
    """Publish a journey, pinning each step to its template's newest published version.

    A new version replaces the journey it was copied from: that one is archived (it leaves
    the catalog; campaigns on it continue unless moved, see campaigns.versions).
    """
    journey = get_journey(journey_id)
    states.require(journey, "publish")
    missing = {}
    for step in journey.steps:
        version = published_version(step.template_id)
        if version is None:
            missing[f"steps.{step.position}.template_id"] = "template has no published version"
        else:
            step.template_version = version
    if missing:
        db.session.rollback()
        raise StateError("Publish the journey's templates first.", missing)
    states.apply(journey, "publish")
    journey.published_at = clock.now()
    previous = db.session.get(Journey, journey.previous_id) if journey.previous_id else None
    if previous is not None and states.allowed(previous, "archive"):
        states.apply(previous, "archive")
    db.session.commit()
    return journey


def partners_reached(journey: Journey) -> int:
    """Count the partners the journey's audience reaches."""
    return lists.partners_reached(journey.audience_tiers or [], journey.audience_regions or [])


def archive_journey(journey_id: int) -> Journey:
    """Archive a journey: it leaves the catalog; running campaigns continue."""
    journey = get_journey(journey_id)
    states.apply(journey, "archive")
    db.session.commit()
    return journey


def get_journey(journey_id: int) -> Journey:
    """Return a journey or raise NotFound."""
    journey = db.session.get(Journey, journey_id)
    if journey is None:
        raise NotFound("Journey not found.")
    return journey


def list_journeys(status: str | None = None, page: int = 1,
                  per_page: int = 50) -> tuple[list[Journey], int]:
    """Return one page of journeys (newest first), optionally by status, and the total."""
    query = select(Journey)
    if status:
        query = query.where(Journey.status == status)
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = db.session.scalars(query.order_by(Journey.id.desc())
                              .limit(per_page).offset((page - 1) * per_page)).all()
    return list(rows), total


def journey_visible_to(journey: Journey, partner: Partner) -> bool:
    """Tell whether a partner may pick this journey (published and in its audience)."""
    return states.allowed(journey, "pick") and journey.matches(partner.tier, partner.region)


def catalog_for(partner: Partner) -> list[Journey]:
    """Return the published journeys whose audience includes the partner, newest first."""
    pickable = Journey.status.in_(states.statuses(Journey, "pick"))
    rows = db.session.scalars(select(Journey).where(pickable).order_by(Journey.id.desc())).all()
    return [j for j in rows if j.matches(partner.tier, partner.region)]


def catalog_journey(journey_id: int, partner: Partner) -> Journey:
    """Return a catalog journey for a partner; one outside its catalog answers 404."""
    journey = db.session.get(Journey, journey_id)
    if journey is None or not journey_visible_to(journey, partner):
        raise NotFound("Journey not found.")
    return journey
