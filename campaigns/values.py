"""What a partner may personalize: slot values per step, member overrides and the sender.

A partner never supplies template source: a campaign stores validated slot *values* per step
(`{"0": {slot: value}}`) and pins the journey, whose steps pin published template versions.
"""

from __future__ import annotations

import re
from typing import Any

from accounts.models import Partner, User
from campaigns import compliance
from campaigns.contacts import InvalidEmail, normalize_email
from campaigns.models import Campaign
from core.db import db
from core.errors import SlotError, StateError, ValidationError
from core.validate import is_db_id, sender_name_problem
from journeys.models import Journey, TemplateVersion
from journeys.services import catalog_journey
from personalization.slots import clean_slot_values

# Markup in a plain-text slot is an attempt to inject template content: refuse it loudly
# rather than let it render as escaped text the partner did not expect.
MARKUP = re.compile(r"<\s*/?\s*[A-Za-z!?][^>]*>|\{\{|\{%")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def catalog_journey_for(journey_id: Any, partner: Partner) -> Journey:
    """Return a published journey in the partner's catalog, or 404 like a missing one."""
    if not is_db_id(journey_id):
        raise ValidationError("Campaign is invalid.", {"journey_id": "must be a journey id"})
    return catalog_journey(journey_id, partner)


def journey_versions(journey: Journey) -> list[TemplateVersion]:
    """Return the pinned template version of each step, in step order."""
    versions = []
    for step in journey.steps:
        version = step.template_version
        if version is None:  # a published journey always pins; defend against bad data
            raise StateError(f"Journey step {step.position} has no published template.")
        versions.append(version)
    return versions


def campaign_versions(campaign: Campaign, journey: Journey | None = None) -> list[TemplateVersion]:
    """Return the template versions a campaign sends, in step order (quick send: first only)."""
    journey = journey or db.session.get(Journey, campaign.journey_id)
    versions = journey_versions(journey)
    return versions[:1] if campaign.kind == "quick_send" else versions


def _markup_problems(version: TemplateVersion, values: dict) -> dict[str, str]:
    kinds = {slot["name"]: slot["type"] for slot in version.slots}
    problems = {}
    for name, value in values.items():
        if kinds.get(name) not in (None, "richtext") and isinstance(value, str) \
                and MARKUP.search(value):
            problems[name] = "must be plain text (no HTML, MJML or template tags)"
    return problems


def _split_by_step(values: Any, versions: list[TemplateVersion], where: str,
                   problems: dict[str, str]) -> dict[int, dict]:
    """Turn the per-step or flat form into {step index: {slot: value}}; record key problems."""
    if values is None:
        return {}
    if not isinstance(values, dict):
        problems[where] = "must be an object"
        return {}
    per_step = bool(values) and all(
        isinstance(k, str) and k.isdigit() and isinstance(v, dict) for k, v in values.items()
    )
    if per_step:
        out = {}
        for key, step_values in values.items():
            index = int(key)
            if index >= len(versions):
                problems[f"{where}.{key}"] = f"the journey has no step {index}"
            else:
                out[index] = step_values
        return out
    declared = {slot["name"] for v in versions for slot in v.slots}
    out = {i: {} for i in range(len(versions))}
    for name, value in values.items():
        if name not in declared:
            problems[f"{where}.{str(name)[:100]}"] = "is not a slot of this journey"
            continue
        for i, version in enumerate(versions):
            if any(slot["name"] == name for slot in version.slots):
                out[i][name] = value
    return out


def clean_campaign_values(values: Any, versions: list[TemplateVersion],
                          journey_id: int | None = None) -> dict[str, dict[str, str]]:
    """Validate slot values for every step; return {"i": cleaned} or raise one SlotError.

    The brand's compliance rules (brand-wide, and `journey_id`'s own) are checked too.
    """
    problems: dict[str, str] = {}
    by_step = _split_by_step(values, versions, "slot_values", problems)
    cleaned: dict[str, dict[str, str]] = {}
    for i, version in enumerate(versions):
        step_values = by_step.get(i, {})
        for name, message in _markup_problems(version, step_values).items():
            problems[f"steps.{i}.{name}"] = message
        try:
            cleaned[str(i)] = clean_slot_values(version.slots, step_values)
        except SlotError as err:
            for name, message in err.fields.items():
                problems[f"steps.{i}.{name}"] = message
    if not problems:
        problems.update(compliance.step_problems(cleaned, versions,
                                                 compliance.rules_for(journey_id)))
    if problems:
        raise SlotError("Some slot values are invalid.", problems)
    return cleaned


def clean_overrides(campaign: Campaign, raw: Any, versions: list[TemplateVersion]
                     ) -> dict[int, dict[str, dict[str, str]]]:
    """Validate {contact_id: values} against the campaign's values; return stored overrides."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValidationError("Members are invalid.", {"overrides": "must be an object"})
    problems: dict[str, str] = {}
    out: dict[int, dict[str, dict[str, str]]] = {}
    rules = compliance.rules_for(campaign.journey_id)
    for key, values in raw.items():
        try:
            contact_id = int(key)
        except (TypeError, ValueError):
            contact_id = 0
        if not is_db_id(contact_id):
            problems[f"overrides.{str(key)[:40]}"] = "must be keyed by contact id"
            continue
        where = f"overrides.{contact_id}"
        split_problems: dict[str, str] = {}
        by_step = _split_by_step(values, versions, where, split_problems)
        problems.update(split_problems)
        stored: dict[str, dict[str, str]] = {}
        for i, version in enumerate(versions):
            own = by_step.get(i) or {}
            if not own:
                continue
            if not isinstance(own, dict):
                problems[f"{where}.steps.{i}"] = "must be an object"
                continue
            for name, message in _markup_problems(version, own).items():
                problems[f"{where}.steps.{i}.{name}"] = message
            merged = {**campaign.slot_values.get(str(i), {}), **own}
            try:
                cleaned = clean_slot_values(version.slots, merged)
            except SlotError as err:
                for name, message in err.fields.items():
                    problems[f"{where}.steps.{i}.{name}"] = message
                continue
            stored[str(i)] = {name: cleaned[name] for name in own if name in cleaned}
        problems.update(compliance.step_problems(stored, versions, rules,
                                                 f"{where}.steps"))
        out[contact_id] = stored
    if problems:
        raise SlotError("Some member overrides are invalid.", problems)
    return out


def clean_sender(sender: Any, partner: Partner, user: User) -> tuple[str, str]:
    """Validate {name, reply_to}; default to the profile's sender name and the user's address."""
    problems: dict[str, str] = {}
    if sender is None:
        sender = {}
    if not isinstance(sender, dict):
        raise ValidationError("Campaign is invalid.", {"sender": "must be an object"})
    for key in set(sender) - {"name", "reply_to"}:
        problems[f"sender.{key}"] = "is not a sender field"
    name = sender.get("name") or partner.default_sender_name
    if not isinstance(name, str):
        problems["sender.name"] = "must be a string"
    elif CONTROL.search(name):
        problems["sender.name"] = "must be one line without control characters"
    elif len(name.strip()) > 100 or not name.strip():
        problems["sender.name"] = "must be 1 to 100 characters"
    elif sender_name_problem(name):
        problems["sender.name"] = str(sender_name_problem(name))
    reply_to = sender.get("reply_to")
    if reply_to in (None, ""):
        reply_to = user.email  # the account's own address, accepted when the user was created
    elif not isinstance(reply_to, str):
        problems["sender.reply_to"] = "must be an email address"
    else:
        try:
            reply_to = normalize_email(reply_to)
        except InvalidEmail as exc:
            problems["sender.reply_to"] = str(exc)
    if problems:
        raise ValidationError("Sender is invalid.", problems)
    return name.strip(), str(reply_to)
