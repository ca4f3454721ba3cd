"""Turn the web forms' flat fields into the plain arguments the services take, and back."""

from __future__ import annotations

import re
from collections.abc import Mapping

from werkzeug.datastructures import MultiDict

_ROW = re.compile(r"^(slot|step)-(\d{1,3})-([a-z_]+)$")
_LINE = re.compile(r"\bline\s*[:#]?\s*(\d+)", re.IGNORECASE)
_KEY_LINE = re.compile(r"(?:^|[.:\[])(?:line[.:_]?)?(\d+)\]?$")


def _rows(form: Mapping, kind: str) -> list[dict[str, str]]:
    rows: dict[int, dict[str, str]] = {}
    for key in form:
        match = _ROW.match(key)
        if match and match.group(1) == kind:
            rows.setdefault(int(match.group(2)), {})[match.group(3)] = form.get(key, "")
    return [rows[i] for i in sorted(rows)]


def split_list(value: str) -> list[str]:
    """Split a comma-separated text field into its non-empty trimmed items."""
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def slots_from_form(form: MultiDict) -> list[dict]:
    """Build a slot schema list from `slot-N-field` inputs, skipping blank rows."""
    slots = []
    for row in _rows(form, "slot"):
        if not any((row.get(k) or "").strip() for k in ("name", "label", "default")):
            continue
        slot: dict = {"name": row.get("name", "").strip(), "type": row.get("type") or "text",
                      "label": row.get("label", "").strip(), "default": row.get("default", ""),
                      "required": row.get("required") == "on"}
        max_length = (row.get("max_length") or "").strip()
        if max_length:
            slot["max_length"] = int(max_length) if max_length.isdigit() else max_length
        if slot["type"] == "choice":
            slot["choices"] = split_list(row.get("choices", ""))
        if slot["type"] in ("url", "image") and split_list(row.get("allowed_domains", "")):
            slot["allowed_domains"] = split_list(row.get("allowed_domains", ""))
        slots.append(slot)
    return slots


def slot_rows(slots: list[dict]) -> list[dict]:
    """Return a slot schema as editable form rows (lists joined by commas)."""
    return [dict(slot, choices=", ".join(slot.get("choices") or []),
                 allowed_domains=", ".join(slot.get("allowed_domains") or []),
                 max_length=slot.get("max_length") or "") for slot in slots]


def _number(value: str) -> float | int | str:
    value = (value or "").strip() or "0"
    try:
        number = float(value)
    except ValueError:
        return value
    return int(number) if number.is_integer() else number


def steps_from_form(form: MultiDict) -> list[dict]:
    """Build journey steps from `step-N-field` inputs, skipping rows with no template."""
    steps = []
    for row in _rows(form, "step"):
        template = (row.get("template_id") or "").strip()
        if not template:
            continue
        steps.append({"template_id": int(template) if template.isdigit() else template,
                      "delay_hours": _number(row.get("delay_hours", "0")),
                      "when": row.get("when") or "always"})
    return steps


def slot_errors(fields: dict[str, str], slots: list[dict]) -> dict[int, list[str]]:
    """Map the service's slot problems (slots.NAME.x or slots[i].x) to form row indices."""
    by_name = {slot.get("name"): i for i, slot in enumerate(slots)}
    out: dict[int, list[str]] = {}
    for key, message in fields.items():
        index = None
        match = re.match(r"^slots\[(\d+)\](?:\.(\w+))?$", key)
        if match:
            index, field = int(match.group(1)), match.group(2) or ""
        else:
            match = re.match(r"^slots\.([a-z0-9_]+)(?:\.(\w+))?$", key)
            if match and match.group(1) in by_name:
                index, field = by_name[match.group(1)], match.group(2) or ""
        if index is not None:
            label = f"{field}: " if field and field != "fields" else ""
            out.setdefault(index, []).append(f"{label}{message}")
    return out


def _line_of(source: str, needle: str) -> int | None:
    index = source.find(needle)
    return source.count("\n", 0, index) + 1 if index >= 0 else None


def mjml_errors(fields: dict[str, str], source: str = "",
                declared: frozenset[str] = frozenset()) -> list[dict]:
    """Return template problems about the source as [{line, message}] (line None if unknown).

    The line comes from the problem itself when the compiler gave one; otherwise the first
    line holding the element or expression it names (e.g. 'mj-bogus', slots.title).
    """
    out = []
    for key, message in fields.items():
        text = str(message)
        line = None
        slot = re.match(r"^slots\.([a-z0-9_]+)$", key)
        if key.startswith("slots") and not (slot and slot.group(1) not in declared):
            continue  # a problem of a declared slot is shown next to its row
        if key in ("name", "subject", "preheader"):
            continue
        match = _LINE.search(text) or _KEY_LINE.search(key)
        if match:
            line = int(match.group(1))
        elif slot:
            line = _line_of(source, f"slots.{slot.group(1)}")
        else:
            named = re.search(r"'(mj-[a-z-]+)'", text) or re.search(r"<(mj-[a-z-]+)", text)
            if named:
                line = _line_of(source, "<" + named.group(1))
        label = text if key in ("mjml", "template") or slot else f"{key}: {text}"
        if slot:
            label = f"slots.{slot.group(1)} {text}"
        out.append({"line": line, "message": label})
    return sorted(out, key=lambda e: (e["line"] is None, e["line"] or 0))


def source_excerpt(source: str, errors: list[dict], context: int = 2) -> list[dict]:
    """Return the source lines around each error line, each with the errors it carries."""
    lines = source.splitlines()
    wanted: dict[int, list[str]] = {}
    for error in errors:
        if error["line"] and 1 <= error["line"] <= len(lines):
            wanted.setdefault(error["line"], []).append(error["message"])
    show: set[int] = set()
    for line in wanted:
        show.update(range(max(1, line - context), min(len(lines), line + context) + 1))
    return [{"number": n, "text": lines[n - 1], "errors": wanted.get(n, []),
             "gap": n - 1 not in show and n != min(show)} for n in sorted(show)]
