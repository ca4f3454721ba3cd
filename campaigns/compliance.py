"""The brand's compliance rules on partners' text: restricted phrases and patterns, allowed
image domains; for every journey or one.

Checked on every slot value and member override when it is saved (campaigns.values), when a
campaign is approved (campaigns.lifecycle) and when a message is sent (campaigns.sending): a
rule added after approval still holds back the mail it matches, with its message.

Patterns are regular expressions written by the brand and run on partners' text, so they run
with the `regex` engine and a time limit per match: a pathological pattern such as `(a+)+$`
cannot hang a worker. A match that runs out of time counts as a match ("could not be checked
in time"), so nothing unchecked goes out.
"""

from __future__ import annotations

import html
import re
from urllib.parse import urlsplit

import regex
from sqlalchemy import or_, select

from campaigns.models import COMPLIANCE_KINDS, ComplianceRule
from core.db import db
from core.errors import NotFound, ValidationError
from core.i18n import _
from core.validate import is_db_id
from journeys.models import Journey, TemplateVersion

MATCH_SECONDS = 0.05  # per value and pattern; partners' values are short
MAX_PATTERN = 500
MAX_MESSAGE = 500
_TAGS = re.compile(r"<[^>]*>")
_IMG_SRC = re.compile(r"""<img\b[^>]*?\bsrc\s*=\s*["']?([^"'\s>]+)""", re.IGNORECASE)
_HOST = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _text(value: str) -> str:
    """The words a reader sees: tags removed, entities decoded, spaces collapsed."""
    return " ".join(html.unescape(_TAGS.sub(" ", value)).split())


def _compiled(pattern: str):
    return regex.compile(pattern, regex.IGNORECASE | regex.V0)


def add_rule(data: dict, created_by: int | None = None) -> ComplianceRule:
    """Create a rule from {kind, pattern, message, journey_id?}; every problem in one 422."""
    problems: dict[str, str] = {}
    for key in set(data) - {"kind", "pattern", "message", "journey_id"}:
        problems[str(key)[:100]] = _("is not a rule field")
    kind, pattern, message = data.get("kind"), data.get("pattern"), data.get("message")
    if kind not in COMPLIANCE_KINDS:
        problems["kind"] = _("must be “phrase”, “regex” or “image_domain”")
    if not isinstance(pattern, str) or not pattern.strip() or _CONTROL.search(pattern):
        problems["pattern"] = _("is required (one line)")
    elif len(pattern) > MAX_PATTERN:
        problems["pattern"] = _("at most %(n)d characters", n=MAX_PATTERN)
    elif kind == "regex":
        try:
            _compiled(pattern)
        except (regex.error, OverflowError, RecursionError) as exc:
            problems["pattern"] = _("is not a valid regular expression: %(why)s", why=str(exc))
    elif kind == "image_domain":
        pattern = pattern.strip().lower().removeprefix("*.")
        if not _HOST.match(pattern):
            problems["pattern"] = _("must be a domain name such as images.brand.example")
    if not isinstance(message, str) or not message.strip() or _CONTROL.search(message):
        problems["message"] = _("is required: the partner reads it when a value is refused")
    elif len(message) > MAX_MESSAGE:
        problems["message"] = _("at most %(n)d characters", n=MAX_MESSAGE)
    journey_id = data.get("journey_id")
    if journey_id is not None and (not is_db_id(journey_id)
                                   or db.session.get(Journey, journey_id) is None):
        problems["journey_id"] = _("must name an existing journey (or be left out: every one)")
    if problems:
        raise ValidationError(_("The rule is invalid."), problems)
    rule = ComplianceRule(kind=kind, pattern=pattern.strip() if kind != "regex" else pattern,
                          message=message.strip(), journey_id=journey_id,
                          created_by=created_by)
    db.session.add(rule)
    db.session.commit()
    return rule


def list_rules() -> list[ComplianceRule]:
    """Every rule, oldest first."""
    return list(db.session.scalars(select(ComplianceRule).order_by(ComplianceRule.id)))


def delete_rule(rule_id: int) -> None:
    """Delete a rule (404 when there is none)."""
    rule = db.session.get(ComplianceRule, rule_id)
    if rule is None:
        raise NotFound(_("Rule not found."))
    db.session.delete(rule)
    db.session.commit()


def rules_for(journey_id: int | None) -> list[ComplianceRule]:
    """The rules that apply to a journey's campaigns: the brand-wide ones and its own."""
    query = select(ComplianceRule).order_by(ComplianceRule.id)
    scope = ComplianceRule.journey_id.is_(None)
    if journey_id is not None:
        scope = or_(scope, ComplianceRule.journey_id == journey_id)
    return list(db.session.scalars(query.where(scope)))


def _image_urls(value: str, kind: str) -> list[str]:
    if kind == "image":
        return [value] if value else []
    return _IMG_SRC.findall(value)


def _allowed_image(url: str, domains: list[str]) -> bool:
    host = (urlsplit(url.strip()).hostname or "").lower()
    return any(host == d or host.endswith("." + d) for d in domains)


def value_problem(value: str, slot_type: str, rules: list[ComplianceRule]) -> str:
    """Return the first rule's message that `value` breaks ('' when it breaks none)."""
    if not isinstance(value, str) or not value:
        return ""
    text = _text(value)
    folded = text.casefold()
    for rule in rules:
        if rule.kind == "phrase":
            if " ".join(rule.pattern.split()).casefold() in folded:
                return rule.message
        elif rule.kind == "regex":
            try:
                hit = any(_compiled(rule.pattern).search(s, timeout=MATCH_SECONDS)
                          for s in {text, value})
            except TimeoutError:
                return _("%(message)s (this text could not be checked in time)",
                         message=rule.message)
            if hit:
                return rule.message
    domains = [r.pattern for r in rules if r.kind == "image_domain"]
    if domains and slot_type in ("image", "richtext"):
        for url in _image_urls(value, slot_type):
            if not _allowed_image(url, domains):
                message = next(r.message for r in rules if r.kind == "image_domain")
                return message
    return ""


def version_problems(values: dict, version: TemplateVersion,
                     rules: list[ComplianceRule]) -> dict[str, str]:
    """Check one step's {slot: value} against the rules; return {slot: message}."""
    kinds = {slot["name"]: slot.get("type", "text") for slot in version.slots}
    problems = {}
    for name, value in (values or {}).items():
        message = value_problem(value, kinds.get(name, "text"), rules)
        if message:
            problems[name] = message
    return problems


def step_problems(values_by_step: dict, versions: list[TemplateVersion],
                  rules: list[ComplianceRule], where: str = "steps") -> dict[str, str]:
    """Check {"i": {slot: value}} against the rules; return {"steps.i.slot": message}."""
    if not rules:
        return {}
    problems = {}
    for index, version in enumerate(versions):
        for name, message in version_problems(values_by_step.get(str(index)) or {}, version,
                                              rules).items():
            problems[f"{where}.{index}.{name}"] = message
    return problems


def send_problem(slot_values: dict, overrides: dict, step_index: int,
                 version: TemplateVersion, rules: list[ComplianceRule]) -> tuple[str, str]:
    """At send: (problem with the campaign's values, problem with this member's overrides).

    Each is '' or the rule's message in words ('step 1, Headline: …').
    """
    if not rules:
        return "", ""
    labels = {s["name"]: s.get("label") or s["name"] for s in version.slots}

    def words(problems: dict[str, str]) -> str:
        return "; ".join(_("step %(n)d, %(label)s: %(problem)s", n=step_index + 1,
                           label=labels.get(k, k), problem=m) for k, m in problems.items())

    base = (slot_values or {}).get(str(step_index)) or {}
    own = (overrides or {}).get(str(step_index)) or {}
    return (words(version_problems(base, version, rules)),
            words(version_problems(own, version, rules)))


def in_words(problems: dict[str, str], versions: list[TemplateVersion]) -> str:
    """Say which values break which rule: 'step 1, Headline: <the brand's message>'."""
    labels = {(str(i), s["name"]): s.get("label") or s["name"]
              for i, v in enumerate(versions) for s in v.slots}
    parts = []
    for key, message in problems.items():
        bits = key.split(".")
        label = labels.get((bits[-2], bits[-1]), bits[-1]) if len(bits) >= 3 else key
        step = int(bits[-2]) + 1 if len(bits) >= 3 and bits[-2].isdigit() else 1
        parts.append(_("step %(n)d, %(label)s: %(problem)s", n=step, label=label,
                       problem=message))
    return "; ".join(parts)
