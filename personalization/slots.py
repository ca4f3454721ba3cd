"""Slot schemas (what a brand lets a partner change) and slot values (what a partner supplies).

Slot values are data: they are validated against their slot, richtext is sanitized to a small
allow-list, and nothing here ever treats a value as template source.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

import nh3

from core.errors import SlotError

SLOT_TYPES = ("text", "richtext", "url", "image", "choice")
NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,49}$")
HARD_MAX_LENGTH = 10_000  # no value may exceed this, whatever the slot says
MAX_SLOTS = 50
SINGLE_LINE_TYPES = ("url", "image", "choice")

RICHTEXT_TAGS = {"p", "br", "strong", "em", "b", "i", "u", "a", "ul", "ol", "li"}
RICHTEXT_ATTRIBUTES = {"a": {"href"}}
RICHTEXT_SCHEMES = {"http", "https", "mailto"}
_HREF = re.compile(r'href="([^"]*)"')


_SCHEME = re.compile(r"\s*[A-Za-z][A-Za-z0-9+.-]*:")


def _keep_absolute(element: str, attribute: str, value: str) -> str | None:
    """nh3 attribute filter: an href with a scheme stays only if absolute (`https:host` has
    one but no `//`: a browser may resolve it against the page). Relative ones are left to
    `url_relative`."""
    if (element == "a" and attribute == "href" and _SCHEME.match(value)
            and not value.strip().lower().startswith("mailto:") and not _absolute(value.strip())):
        return None
    return value


def _clean(value: str, url_relative: Any) -> str:
    return nh3.clean(
        value,
        tags=RICHTEXT_TAGS,
        clean_content_tags={"script", "style"},
        attributes=RICHTEXT_ATTRIBUTES,
        attribute_filter=_keep_absolute if url_relative != "pass_through" else None,
        url_schemes=RICHTEXT_SCHEMES,
        link_rel="noopener noreferrer",
        strip_comments=True,
        url_relative=url_relative,
    )


class _Removed(HTMLParser):
    """Collect what `sanitize_richtext` drops: elements, attributes and link schemes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: Counter[tuple[str, str]] = Counter()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in RICHTEXT_TAGS:
            self.found["element", tag] += 1
        allowed = RICHTEXT_ATTRIBUTES.get(tag, set()) if tag in RICHTEXT_TAGS else set()
        for name, value in attrs:
            if name == "rel" and tag == "a":
                continue  # links always get rel="noopener noreferrer"
            if name not in allowed:
                self.found["attribute", name] += 1
            elif name == "href":
                scheme = urlsplit((value or "").strip()).scheme.lower()
                if scheme and scheme not in RICHTEXT_SCHEMES:
                    self.found["link", scheme] += 1

    def handle_comment(self, data: str) -> None:
        self.found["comment", ""] += 1


def removed_markup(value: str) -> list[tuple[str, str, int]]:
    """Say what `sanitize_richtext` removes from `value`: [(kind, name, count)], in order.

    `kind` is `element` (a tag outside the allow-list, e.g. script), `attribute` (onclick,
    style...), `link` (an href whose scheme is not http, https or mailto) or `comment`.
    An empty list means the value is kept as written.
    """
    if not value or "<" not in value:
        return []
    parser = _Removed()
    parser.feed(value)
    parser.close()
    return [(kind, name, count) for (kind, name), count in parser.found.items()]


def sanitize_richtext(value: str, allowed_domains: list[str] | None = None) -> str:
    """Return `value` reduced to the richtext allow-list (links get rel=noopener noreferrer).

    Links keep only absolute http(s) and mailto targets: a relative href would resolve against
    whatever page shows the mail (a webmail's own site), a protocol-relative one (`//host`)
    to any host. `//host` on one of `allowed_domains` becomes `https://host`.
    """
    def relative(url: str) -> str | None:
        if allowed_domains and url.startswith("//") and _absolute(f"https:{url}"):
            host = urlsplit(f"https:{url}").hostname or ""
            if _host_allowed(host, allowed_domains):
                return f"https:{url}"
        return None

    return _clean(value, relative)


_ABSOLUTE = re.compile(r"https?://[^/?#\\\s]", re.IGNORECASE)


def _absolute(url: str) -> bool:
    return _ABSOLUTE.match(url) is not None and url_problem(url, None) is None


def _richtext_link_problem(value: str, allowed_domains: list[str]) -> str | None:
    """Return why a link in rich text is refused, or None (checked before sanitizing)."""
    for href in _HREF.findall(_clean(value, "pass_through")):
        target = html.unescape(href).strip()
        if target.lower().startswith("mailto:"):
            continue
        if target.startswith("//") and allowed_domains:
            target = f"https:{target}"  # allowed when its host is; https once sanitized
        elif not _ABSOLUTE.match(target):
            return ("links must be complete web addresses starting with https:// or http:// "
                    f"({target[:60]!r} is not)")
        problem = url_problem(target, allowed_domains)
        if problem:
            return f"links {problem}"
    return None


def _host_allowed(host: str, allowed_domains: list[str]) -> bool:
    host = host.lower().rstrip(".")
    for domain in allowed_domains:
        domain = domain.lower().strip().lstrip(".").rstrip(".")
        if domain and (host == domain or host.endswith("." + domain)):
            return True
    return False


def url_problem(value: str, allowed_domains: list[str] | None) -> str | None:
    """Return why `value` is not an acceptable http(s) URL for a slot, or None."""
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        return "must be an http(s) URL without spaces"
    try:
        parts = urlsplit(value)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return "must be a valid http(s) URL"
    if parts.scheme not in ("http", "https") or not host:
        return "must be an http(s) URL"
    if parts.username is not None or parts.password is not None:
        return "must not contain credentials"
    if allowed_domains and not _host_allowed(host, allowed_domains):
        return "must link to one of: " + ", ".join(allowed_domains)
    return None


def _value_problem(slot: dict, value: str) -> str | None:
    """Return the problem with one (string) value for `slot`, or None."""
    kind = slot["type"]
    limit = min(slot.get("max_length") or HARD_MAX_LENGTH, HARD_MAX_LENGTH)
    if len(value) > limit:
        return f"must be at most {limit} characters"
    if kind in SINGLE_LINE_TYPES and ("\r" in value or "\n" in value):
        return "must be a single line"
    if "\x00" in value:
        return "must not contain NUL characters"
    if kind in ("url", "image") and value:
        return url_problem(value, slot.get("allowed_domains") or [])
    if kind == "choice" and value not in slot.get("choices", []):
        return "must be one of: " + ", ".join(slot.get("choices", []))
    if kind == "richtext" and value:
        # Links inside rich text are absolute and obey the brand's domain rule as url slots do.
        return _richtext_link_problem(value, slot.get("allowed_domains") or [])
    return None


def value_problem(slot: dict, value: str) -> str | None:
    """Return the problem with one (string) value for a normalized `slot`, or None."""
    return _value_problem(slot, value)


def validate_slot_schema(slots: Any) -> tuple[list[dict], dict[str, str]]:
    """Normalize a list of Slot dicts and return (normalized, problems)."""
    problems: dict[str, str] = {}
    if not isinstance(slots, list):
        return [], {"slots": "must be a list of slots"}
    if len(slots) > MAX_SLOTS:
        problems["slots"] = f"at most {MAX_SLOTS} slots"
    normalized: list[dict] = []
    seen: set[str] = set()
    for i, raw in enumerate(slots):
        where = f"slots[{i}]"
        if not isinstance(raw, dict):
            problems[where] = "must be an object"
            continue
        name = raw.get("name")
        if not isinstance(name, str) or not NAME_RE.match(name):
            problems[f"{where}.name"] = "must be an identifier like hero_title (a-z, 0-9, _)"
            continue
        if name in seen:
            problems[f"{where}.name"] = f"duplicate slot name {name!r}"
            continue
        seen.add(name)
        key = f"slots.{name}"
        unknown = set(raw) - {
            "name", "type", "label", "default", "required", "max_length", "choices",
            "allowed_domains",
        }
        if unknown:
            problems[f"{key}.fields"] = "unknown fields: " + ", ".join(sorted(unknown))
        kind = raw.get("type", "text")
        if kind not in SLOT_TYPES:
            problems[f"{key}.type"] = "must be one of: " + ", ".join(SLOT_TYPES)
            continue
        label = raw.get("label", name)
        if not isinstance(label, str) or len(label) > 200:
            problems[f"{key}.label"] = "must be a string of at most 200 characters"
            label = name
        required = raw.get("required", False)
        if not isinstance(required, bool):
            problems[f"{key}.required"] = "must be true or false"
            required = False
        slot: dict[str, Any] = {"name": name, "type": kind, "label": label or name,
                                "required": required}
        max_length = raw.get("max_length")
        if max_length is not None:
            if (not isinstance(max_length, int) or isinstance(max_length, bool)
                    or not 1 <= max_length <= HARD_MAX_LENGTH):
                problems[f"{key}.max_length"] = f"must be an integer from 1 to {HARD_MAX_LENGTH}"
            else:
                slot["max_length"] = max_length
        if kind == "choice":
            choices = raw.get("choices")
            if (not isinstance(choices, list) or not choices
                    or not all(isinstance(c, str) for c in choices)):
                problems[f"{key}.choices"] = "a choice slot needs a non-empty list of strings"
                choices = []
            elif len(set(choices)) != len(choices):
                problems[f"{key}.choices"] = "choices must be unique"
            slot["choices"] = list(choices)
        elif "choices" in raw:
            problems[f"{key}.choices"] = "only choice slots have choices"
        if kind in ("url", "image", "richtext"):
            domains = raw.get("allowed_domains") or []
            if not isinstance(domains, list) or not all(
                isinstance(d, str) and re.fullmatch(r"\.?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.?", d)
                for d in domains
            ):
                problems[f"{key}.allowed_domains"] = "must be a list of domain names"
                domains = []
            slot["allowed_domains"] = [d.lower().strip(".") for d in domains]
        elif raw.get("allowed_domains"):
            problems[f"{key}.allowed_domains"] = (
                "only url, image and richtext slots have allowed_domains")
        default = raw.get("default", "")
        if default is None:
            default = ""
        if not isinstance(default, str):
            problems[f"{key}.default"] = "must be a string"
            default = ""
        elif f"{key}.choices" not in problems:
            problem = _value_problem(slot, default)
            if problem:
                problems[f"{key}.default"] = "default " + problem
            elif kind == "richtext" and default:
                default = sanitize_richtext(default, slot.get("allowed_domains"))
        if kind == "choice" and not default and slot.get("choices") and (
            f"{key}.default" not in problems
        ):
            problems[f"{key}.default"] = "a choice slot needs a default among its choices"
        slot["default"] = default
        normalized.append(slot)
    return normalized, problems


def clean_slot_values(slots: list[dict], values: Any) -> dict[str, str]:
    """Validate `values` against `slots`, fill defaults, sanitize richtext; raise SlotError."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise SlotError("Slot values must be an object.", {"slot_values": "must be an object"})
    by_name = {slot["name"]: slot for slot in slots}
    problems: dict[str, str] = {}
    for name in values:
        if name not in by_name:
            problems[str(name)[:100]] = "is not a slot of this template"
    cleaned: dict[str, str] = {}
    for name, slot in by_name.items():
        value = values.get(name)
        if value is None:
            value = slot.get("default", "") or ""
        elif not isinstance(value, str):
            problems[name] = "must be a string"
            continue
        problem = _value_problem(slot, value)
        if problem:
            problems[name] = problem
            continue
        if slot.get("required") and not value.strip():
            problems[name] = "is required"
            continue
        if slot["type"] == "richtext" and value:
            value = sanitize_richtext(value, slot.get("allowed_domains"))
        cleaned[name] = value
    if problems:
        raise SlotError("Some slot values are invalid.", problems)
    return cleaned
