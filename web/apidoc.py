"""The HTTP contract, web/openapi.yaml: served as JSON and as a readable reference page.

The YAML is read once per process. `/api/openapi.json` answers it as JSON for tools;
`/api-docs` renders it server-side (no script) into a page grouped by tag, with a field
table for every parameter, request body and response. Both are public documentation.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from flask import Blueprint, Response, render_template
from markupsafe import Markup, escape

bp = Blueprint("apidoc", __name__)

SPEC_PATH = Path(__file__).with_name("openapi.yaml")
METHODS = ("get", "post", "put", "patch", "delete")
MAX_DEPTH = 4  # nested fields shown under an operation; deeper ones are under Schemas


@functools.cache
def spec() -> dict:
    """Return the OpenAPI document (parsed once)."""
    with SPEC_PATH.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


@functools.cache
def spec_json() -> str:
    """Return the OpenAPI document serialized as JSON, keys in the document's order."""
    return json.dumps(spec(), ensure_ascii=False)


# ------------------------------------------------------------------------------- text helpers

_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*([^*]+)\*\*")


def prose(text: str | None) -> Markup:
    """Render a description's small Markdown subset (paragraphs, `code`, **bold**) safely."""
    if not text:
        return Markup("")
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    out = []
    for paragraph in paragraphs:
        html = str(escape(" ".join(paragraph.split())))
        html = _CODE.sub(r"<code>\1</code>", html)
        html = _BOLD.sub(r"<strong>\1</strong>", html)
        out.append(f"<p>{html}</p>")
    return Markup("".join(out))  # noqa: S704 - built from escaped text only


# ------------------------------------------------------------------------------ schema walking


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def resolve(node: Any) -> tuple[dict, str | None]:
    """Follow a local `$ref` (repeatedly); return (target, name of the first ref or None)."""
    name = None
    seen = 0
    while isinstance(node, dict) and "$ref" in node and seen < 20:
        ref = node["$ref"]
        name = name or _ref_name(ref)
        target: Any = spec()
        for part in ref.lstrip("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        # Sibling keywords (a description next to the $ref) refine the target.
        extra = {k: v for k, v in node.items() if k != "$ref"}
        node = {**target, **extra} if extra else target
        seen += 1
    return (node if isinstance(node, dict) else {}), name


def _merged(schema: dict) -> dict:
    """Merge allOf parts (properties, required) into one object schema view."""
    schema, _ = resolve(schema)
    if "allOf" not in schema:
        return schema
    merged: dict = {k: v for k, v in schema.items() if k != "allOf"}
    props: dict = {}
    required: list = list(schema.get("required", []))
    for part in schema["allOf"]:
        part = _merged(part)
        props.update(part.get("properties", {}))
        required += part.get("required", [])
        for key in ("type", "enum", "const", "description", "default", "items",
                    "additionalProperties"):
            if key in part and key not in merged:
                merged[key] = part[key]
    props.update(schema.get("properties", {}))
    if props:
        merged["properties"] = props
        merged.setdefault("type", "object")
    if required:
        merged["required"] = list(dict.fromkeys(required))
    return merged


def _grouped(label: str) -> str:
    return f"({label})" if " or " in label else label


def type_label(schema: Any) -> str:
    """Describe a schema's type in a few words: 'integer or null', 'array of Campaign'."""
    raw = schema if isinstance(schema, dict) else {}
    target, name = resolve(raw)
    target = _merged(target)
    if "const" in target:
        return json.dumps(target["const"])
    if "enum" in target:
        return "one of: " + " | ".join(str(v) for v in target["enum"])
    for key in ("oneOf", "anyOf"):
        if key in target:
            labels = [type_label(s) for s in target[key]]
            return " or ".join(dict.fromkeys(labels))
    kinds = target.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds] if kinds else []
    labels = []
    for kind in kinds:
        if kind == "array":
            labels.append(f"array of {_grouped(type_label(target.get('items', {})))}")
        elif kind == "object" and name and target.get("properties"):
            labels.append(f"object ({name})")
        elif kind == "object" and isinstance(target.get("additionalProperties"), dict) \
                and not target.get("properties"):
            labels.append(f"object of {_grouped(type_label(target['additionalProperties']))}")
        elif kind == "string" and name:
            labels.append(f"string ({name})")
        elif kind == "string" and target.get("format"):
            labels.append(f"string ({target['format']})")
        else:
            labels.append(str(kind))
    if not labels and name:
        return name
    return " or ".join(labels) or "any"


def _notes(schema: dict) -> str:
    """Constraints worth reading: default, ranges, lengths."""
    target = _merged(schema)
    notes = []
    if "default" in target:
        notes.append(f"default {json.dumps(target['default'])}")
    if "minimum" in target and "maximum" in target:
        notes.append(f"{target['minimum']} to {target['maximum']}")
    elif "minimum" in target:
        notes.append(f"at least {target['minimum']}")
    elif "maximum" in target:
        notes.append(f"at most {target['maximum']}")
    if "minLength" in target and target["minLength"] > 0:
        notes.append(f"at least {target['minLength']} characters")
    if "maxLength" in target:
        notes.append(f"at most {target['maxLength']} characters")
    if "minItems" in target:
        notes.append(f"at least {target['minItems']} items")
    if "maxItems" in target:
        notes.append(f"at most {target['maxItems']} items")
    return "; ".join(notes)


@dataclass
class Field:
    name: str
    type: str
    required: bool
    description: str
    notes: str = ""
    depth: int = 0
    location: str = ""  # for parameters: path, query or header
    link: str | None = None  # the reusable schema this field's value is described by


def schema_fields(schema: Any, prefix: str = "", depth: int = 0,
                  seen: tuple[str, ...] = ()) -> list[Field]:
    """Flatten an object schema into rows `a`, `a.b`, `items[].c`, `map.{key}` ...

    Nested objects that are reusable schemas are not expanded: their row links to the
    schema's own section instead, which keeps every operation short.
    """
    raw = schema if isinstance(schema, dict) else {}
    _, name = resolve(raw)
    if name in seen or depth > MAX_DEPTH:
        return []
    seen = (*seen, name) if name else seen
    target = _merged(raw)
    rows: list[Field] = []
    required = set(target.get("required", []))
    members = list((target.get("properties") or {}).items())
    extra = target.get("additionalProperties")
    if isinstance(extra, dict) and extra:
        members.append((f"{{{_key_name(target)}}}", extra))
    for prop, sub in members:
        sub_target, _ = resolve(sub)
        description = (sub.get("description") if isinstance(sub, dict) else None) \
            or sub_target.get("description") or ""
        link = object_name(sub)
        rows.append(Field(prefix + prop, type_label(sub), prop in required, description,
                          _notes(sub), depth, link=link))
        if link is None:
            rows += _nested(sub, prefix + prop, depth + 1, seen)
    return rows


def object_name(schema: Any) -> str | None:
    """Return the name of the reusable object schema `schema` is (or is an array of)."""
    raw = schema if isinstance(schema, dict) else {}
    target, name = resolve(raw)
    merged = _merged(target)
    if name and merged.get("properties"):
        return name
    kinds = merged.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    if "array" in kinds:
        return object_name(merged.get("items", {}))
    for key in ("oneOf", "anyOf"):
        for option in merged.get(key, []):
            found = object_name(option)
            if found:
                return found
    return None


def _key_name(schema: dict) -> str:
    pattern = (schema.get("propertyNames") or {}).get("pattern", "")
    return "index" if pattern == "^[0-9]+$" else "key"


def _nested(schema: Any, path: str, depth: int, seen: tuple[str, ...]) -> list[Field]:
    target = _merged(schema if isinstance(schema, dict) else {})
    kinds = target.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    if "array" in kinds:
        return schema_fields(target.get("items", {}), f"{path}[].", depth, seen)
    if "object" in kinds or target.get("properties") or target.get("additionalProperties"):
        return schema_fields(schema, f"{path}.", depth, seen)
    for key in ("oneOf", "anyOf"):
        for option in target.get(key, []):
            rows = _nested(option, path, depth, seen)
            if rows:
                return rows
    return []


# ------------------------------------------------------------------------------ page model


@dataclass
class Body:
    media_type: str
    type: str
    schema_name: str | None
    fields: list[Field]
    alternatives: list[tuple[str, list[Field]]] = field(default_factory=list)


@dataclass
class Reply:
    status: str
    description: str
    bodies: list[Body]
    headers: list[Field]


@dataclass
class Operation:
    id: str
    method: str
    path: str
    tag: str
    summary: str
    description: str
    public: bool
    roles: list[str]
    parameters: list[Field]
    request: list[Body]
    request_required: bool
    responses: list[Reply]


@dataclass
class Tag:
    name: str
    anchor: str
    description: str
    operations: list[Operation] = field(default_factory=list)


def _body(media_type: str, content: dict) -> Body:
    schema = content.get("schema", {})
    _, name = resolve(schema)
    target = _merged(schema)
    alternatives = []
    for key in ("anyOf", "oneOf"):
        for option in target.get(key, []):
            _, option_name = resolve(option)
            alternatives.append((option_name or type_label(option), schema_fields(option)))
    fields = [] if alternatives else schema_fields(schema)
    return Body(media_type, type_label(schema), name, fields, alternatives)


def _parameter(param: dict) -> Field:
    param, _ = resolve(param)
    schema = param.get("schema", {})
    return Field(param["name"], type_label(schema), bool(param.get("required")),
                 param.get("description", ""), _notes(schema), 0, param.get("in", ""))


def _header(name: str, header: dict) -> Field:
    header, _ = resolve(header)
    return Field(name, type_label(header.get("schema", {})), False,
                 header.get("description", ""))


def _anchor(text: str) -> str:
    return "tag-" + re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def operations_by_tag() -> list[Tag]:
    """Return the document's tags, each with its operations in document order."""
    doc = spec()
    tags = {t["name"]: Tag(t["name"], _anchor(t["name"]), t.get("description", ""))
            for t in doc.get("tags", [])}
    global_security = doc.get("security", [])
    for path, item in doc["paths"].items():
        shared = item.get("parameters", [])
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            tag_name = (op.get("tags") or ["Other"])[0]
            tag = tags.setdefault(tag_name, Tag(tag_name, _anchor(tag_name), ""))
            security = op.get("security", global_security)
            body = op.get("requestBody")
            body = resolve(body)[0] if body else None
            replies = []
            for status, reply in op.get("responses", {}).items():
                reply, _ = resolve(reply)
                headers = [_header(name, header)
                           for name, header in (reply.get("headers") or {}).items()]
                replies.append(Reply(str(status), reply.get("description", ""),
                                     [_body(mt, c) for mt, c in
                                      (reply.get("content") or {}).items()], headers))
            tag.operations.append(Operation(
                id=op.get("operationId") or f"{method}-{path}",
                method=method.upper(), path=path, tag=tag_name,
                summary=op.get("summary", ""), description=op.get("description", ""),
                public=not security or security == [{}],
                roles=list(op.get("x-roles", [])),
                parameters=[_parameter(p) for p in [*shared, *op.get("parameters", [])]],
                request=[_body(mt, c) for mt, c in (body or {}).get("content", {}).items()],
                request_required=bool((body or {}).get("required")),
                responses=replies,
            ))
    return [t for t in tags.values() if t.operations]


def schema_sections() -> list[tuple[str, str, str, list[Field]]]:
    """Return (name, type, description, fields) for every reusable schema."""
    out = []
    for name, schema in spec().get("components", {}).get("schemas", {}).items():
        merged = _merged(schema)
        out.append((name, type_label(schema), merged.get("description", ""),
                    schema_fields(schema)))
    return out


# ------------------------------------------------------------------------------------ routes


@bp.get("/api/openapi.json")
def openapi_json() -> Response:
    """The OpenAPI document as JSON (public)."""
    return Response(spec_json(), mimetype="application/json")


@functools.cache
def page_model() -> dict:
    """Everything the reference page shows, built once from the document."""
    doc = spec()
    example = {"error": {"code": "invalid", "message": "Contact is invalid.",
                         "fields": {"consent": "must be true or false"}}}
    return {
        "info": doc["info"], "tags": operations_by_tag(), "schemas": schema_sections(),
        "error_fields": schema_fields({"$ref": "#/components/schemas/Error"}),
        "error_example": json.dumps(example, indent=2),
        "error_codes": doc["info"].get("x-error-codes", {}),
        "security": doc.get("components", {}).get("securitySchemes", {}),
    }


@bp.get("/api-docs")
def reference() -> str:
    """The readable API reference (public)."""
    return render_template("web/api_reference.html", prose=prose, **page_model())
