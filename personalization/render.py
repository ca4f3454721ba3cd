"""Per-recipient rendering of a frozen (published) template.

The frozen Jinja templates are parsed once per version. Rendering then happens in two stages
that together produce exactly what one sandboxed render of the frozen template would:

1. per campaign context (slot values, partner, sender, brand): every expression that does not
   depend on the recipient is rendered once, leaving the literal HTML split into chunks;
2. per recipient: only the holes between those chunks are filled — `link(N)` (signed through
   `link_url`), `unsubscribe_url`, `open_pixel` and the `contact.*` expressions.

Per-recipient work is therefore a handful of small evaluations plus one string join.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from jinja2 import Template, nodes
from markupsafe import Markup, escape

from core.errors import RenderError, TemplateError
from core.i18n import _
from personalization.compile import Compiled, compile_or_problems, html_to_text
from personalization.context import SAMPLE_PARTNER, sample_contact
from personalization.sandbox import (
    MAX_OUTPUT_CHARS,
    MERGE_FIELDS,
    analyze,
    bounded,
    charge,
    make_env,
    too_large_message,
    walk,
)
from personalization.slots import (
    HARD_MAX_LENGTH,
    clean_slot_values,
    sanitize_richtext,
    validate_slot_schema,
    value_problem,
)

VALUE_CHUNK = 200
SEP = "\x00"  # separates holes; stripped from every expression output, refused in templates
RECIPIENT_NAMES = frozenset({"contact", "link", "unsubscribe_url", "open_pixel"})
_CACHE_MAX = 1024
_STAGE1_MAX = 64
_SAFE_SCHEMES = ("http://", "https://", "mailto:")
_FIELD_DEFAULTS = {group: dict.fromkeys(names, "") for group, names in MERGE_FIELDS.items()}
_cache: dict[Any, tuple[str, _Frozen]] = {}


def _fold(value: Any) -> Any:
    """Finalize each output: drop NUL/bare CR, break long strings at whitespace (SMTP lines).

    Every printed value is charged to the render's budget (sandbox.bounded)."""
    if not isinstance(value, str):
        return value
    charge(len(value))
    if SEP in value or "\r" in value:
        value = type(value)(value.replace(SEP, "").replace("\r\n", "\n").replace("\r", "\n"))
    if len(value) <= VALUE_CHUNK:
        return value
    lines = []
    for line in value.split("\n"):
        while len(line) > VALUE_CHUNK:
            cut = max(line.rfind(" ", 0, VALUE_CHUNK), line.rfind("\t", 0, VALUE_CHUNK))
            if cut <= 0:
                cut = min((i for i in (line.find(" ", VALUE_CHUNK), line.find("\t", VALUE_CHUNK))
                           if i > 0), default=-1)
                if cut < 0:
                    break
            lines.append(line[:cut])
            line = line[cut + 1:]
        lines.append(line)
    folded = "\n".join(lines)
    return Markup(folded) if isinstance(value, Markup) else folded  # noqa: S704 - was Markup


HTML_ENV = make_env(autoescape=True, finalize=_fold)
TEXT_ENV = make_env(autoescape=False, finalize=_fold)


class Rendered(NamedTuple):
    """One personalized message."""

    subject: str
    html: str
    text: str


class _Attributes:
    """contact.attributes: any KEY reads as its value, or "" when the contact lacks it."""

    __slots__ = ("_values",)

    def __init__(self, values: dict):
        self._values = values

    def __getattr__(self, name: str) -> str:
        value = self._values.get(name)
        return "" if value is None else value if isinstance(value, str) else str(value)

    def __getitem__(self, name: str) -> str:
        return self.__getattr__(name)


# A hole is filled per recipient: ("link", N) | ("name", NAME) | ("contact", FIELD) |
# ("shared", i): output i of the text-mode recipient template, escaped in the html part |
# ("own", i): output i of the part's own recipient template (same mode as the part).
Hole = tuple[str, Any]

# Filters whose result, computed without autoescape and then escaped, equals the result
# computed under autoescape: expressions using only these can be evaluated once per recipient
# for both the html and the text part.
_PORTABLE_FILTERS = frozenset({
    "default", "d", "upper", "lower", "title", "capitalize", "trim", "truncate", "length",
    "int", "round", "wordcount", "urlencode", "striptags",
})


@dataclass
class _Part:
    """One of html/text/subject split into a campaign-level template and recipient holes."""

    static: Template  # the part with every recipient hole replaced by SEP
    holes: tuple[Hole, ...]
    own: Template | None  # recipient expressions that must render in this part's own mode
    autoescape: bool


def _portable(node: nodes.Node, richtext: frozenset[str]) -> bool:
    for filter_node in walk(node, nodes.Filter):
        if filter_node.name not in _PORTABLE_FILTERS:
            return False
    for getattr_node in walk(node, nodes.Getattr):
        base = getattr_node.node
        if isinstance(base, nodes.Name) and base.name == "slots" and getattr_node.attr in richtext:
            return False
    return not walk(node, nodes.Concat)


def _evaluator(node: nodes.Node, env: Any) -> Callable[[dict], Any] | None:
    """Compile a (portable) expression to a closure with the sandbox's exact semantics.

    Returns None for anything outside the small node set; the caller then renders it with Jinja.
    """
    if isinstance(node, nodes.Const):
        const = node.value
        return lambda ctx: const
    if isinstance(node, nodes.Name):
        name = node.name
        return lambda ctx: ctx[name]
    if isinstance(node, nodes.Getattr):
        inner, attr = _evaluator(node.node, env), node.attr
        if inner is None:
            return None
        return lambda ctx: env.getattr(inner(ctx), attr)
    if isinstance(node, nodes.Filter) and node.node is not None and node.name in _PORTABLE_FILTERS:
        if node.dyn_args is not None or node.dyn_kwargs is not None:
            return None
        value = _evaluator(node.node, env)
        args = [_evaluator(a, env) for a in node.args]
        kwargs = {k.key: _evaluator(k.value, env) for k in node.kwargs}
        if value is None or None in args or None in kwargs.values():
            return None
        name = node.name

        def apply(ctx: dict) -> Any:
            return env.call_filter(name, value(ctx), [a(ctx) for a in args],  # type: ignore[misc]
                                   {k: f(ctx) for k, f in kwargs.items()})  # type: ignore[misc]
        return apply
    return None


def _split(source: str, env: Any, shared: list[str], richtext: frozenset[str]) -> _Part:
    """Split a frozen template into its campaign-level template and per-recipient holes."""
    static: list[str] = []
    holes: list[Hole] = []
    own: list[str] = []
    expr: list[str] | None = None
    for _lineno, kind, value in env.lex(source):
        if kind == "variable_begin":
            expr = []
            continue
        if kind == "variable_end":
            text = "".join(expr or []).strip()
            expr = None
            node = env.parse("{{ " + text + " }}").body[0].nodes[0]
            names = {n.name for n in walk(node, nodes.Name)}
            if not names & RECIPIENT_NAMES:
                static.append("{{ " + text + " }}")
                continue
            static.append(SEP)
            if (isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name)
                    and node.node.name == "link" and len(node.args) == 1
                    and isinstance(node.args[0], nodes.Const)):
                holes.append(("link", int(node.args[0].value)))
            elif isinstance(node, nodes.Name):
                holes.append(("name", node.name))
            elif (isinstance(node, nodes.Getattr) and isinstance(node.node, nodes.Name)
                  and node.node.name == "contact" and node.attr != "attributes"):
                holes.append(("contact", node.attr))
            elif not env.autoescape or _portable(node, richtext):
                source_text = "{{ " + text + " }}"
                if source_text not in shared:
                    shared.append(source_text)
                holes.append(("shared", shared.index(source_text)))
            else:
                holes.append(("own", len(own)))
                own.append("{{ " + text + " }}")
            continue
        if expr is not None:
            expr.append(value)
        else:
            static.append(value)
    own_template = env.from_string(SEP.join(own)) if own else None
    return _Part(env.from_string("".join(static)), tuple(holes), own_template,
                 bool(env.autoescape))


@dataclass
class _Frozen:
    html: _Part
    text: _Part
    subject: _Part
    links: tuple[tuple[str | None, Template | None, bool], ...]  # (constant, template, per-rcpt)
    shared: Template | None  # text-mode recipient expressions shared by all parts
    shared_fns: tuple[Callable[[dict], Any], ...] | None  # the same, as closures when possible
    richtext: frozenset[str]
    defaults: dict[str, str]
    stage1: dict[Any, _Stage1] = field(default_factory=dict)


@dataclass(frozen=True)
class _Stage1:
    """A campaign context's rendered chunks and link targets."""

    html: tuple[str, ...]
    text: tuple[str, ...]
    subject: tuple[str, ...]
    links: tuple[str | None, ...]  # resolved safe URL, or None if it depends on the recipient
    html_slots: dict
    text_slots: dict
    partner: dict
    sender: dict
    brand: dict


def _build(html: str, text: str, subject: str, links: list[str], slots: list[dict]) -> _Frozen:
    link_parts = []
    for url in links:
        if "{{" in url:
            template = TEXT_ENV.from_string(url)
            per_recipient = any(name in url for name in ("contact", "link(", "open_pixel",
                                                         "unsubscribe_url"))
            link_parts.append((None, template, per_recipient))
        else:
            link_parts.append((url, None, False))
    richtext = frozenset(s["name"] for s in slots if s.get("type") == "richtext")
    shared: list[str] = []
    parts = [_split(html, HTML_ENV, shared, richtext), _split(text, TEXT_ENV, shared, richtext),
             _split(subject, TEXT_ENV, shared, richtext)]
    return _Frozen(
        html=parts[0],
        text=parts[1],
        subject=parts[2],
        links=tuple(link_parts),
        shared=TEXT_ENV.from_string(SEP.join(shared)) if shared else None,
        shared_fns=_shared_fns(shared),
        richtext=richtext,
        defaults={s["name"]: s.get("default", "") or "" for s in slots},
    )


def _shared_fns(shared: list[str]) -> tuple[Callable[[dict], Any], ...] | None:
    fns = []
    for source in shared:
        fn = _evaluator(TEXT_ENV.parse(source).body[0].nodes[0], TEXT_ENV)
        if fn is None:
            return None
        fns.append(fn)
    return tuple(fns)


def _frozen(version: Any) -> _Frozen:
    """Return the cached frozen templates of a published version (rebuilt if its text changed)."""
    key = version.id
    source = version.compiled_html
    hit = _cache.get(key)
    if hit is not None and (hit[0] is source or hit[0] == source):
        return hit[1]
    if source is None:
        raise ValueError("template version is not published (no compiled_html)")
    frozen = _build(source, version.compiled_text or "", version.subject, version.links or [],
                    version.slots or [])
    if len(_cache) >= _CACHE_MAX:
        _cache.pop(next(iter(_cache)))
    _cache[key] = (source, frozen)
    return frozen


@functools.lru_cache(maxsize=4096)
def _richtext_markup(value: str) -> Markup:
    return Markup(sanitize_richtext(value))  # noqa: S704 - sanitized to the allow-list


@functools.lru_cache(maxsize=4096)
def _richtext_text(value: str) -> str:
    return html_to_text(sanitize_richtext(value)).strip()


def _safe_url(url: str) -> str:
    url = url.strip()
    if not url.lower().startswith(_SAFE_SCHEMES) or not url.isprintable() or " " in url:
        return "#"
    return url


def _pixel(url: str | None, honeypot_url: str | None = None) -> Markup | str:
    """Return the open pixel, plus a hidden link no person sees (scanners follow every href)."""
    if not url:
        return ""
    html = (f'<img src="{escape(url)}" width="1" height="1" alt="" border="0" '
            'style="display:block;border:0;width:1px;height:1px;overflow:hidden" />')
    if honeypot_url:
        html += (f'<a href="{escape(honeypot_url)}" style="display:none" aria-hidden="true" '
                 'tabindex="-1"></a>')
    return Markup(html)  # noqa: S704 - the only dynamic parts are escaped


def _fields(group: str, values: dict | None) -> dict:
    """Return `values` with every known merge field present (missing ones read as "")."""
    values = values or {}
    missing = _FIELD_DEFAULTS[group].keys() - values.keys()
    return {**values, **dict.fromkeys(missing, "")} if missing else values


def _contact(contact: dict | None) -> dict:
    contact = _fields("contact", contact)
    attributes = contact.get("attributes")
    return {**contact, "attributes": _Attributes(attributes if isinstance(attributes, dict)
                                                 else {})}


def _freeze_key(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple((k, _freeze_key(v)) for k, v in value.items())
    if isinstance(value, list):
        return tuple(_freeze_key(v) for v in value)
    return value


def _stage1(frozen: _Frozen, slot_values: dict, partner: dict, sender: dict,
            brand: dict) -> _Stage1:
    """Render everything that is the same for every recipient of a campaign (cached)."""
    key: Any = (tuple(slot_values.items()), tuple(partner.items()), tuple(sender.items()),
                tuple(brand.items()))
    try:
        hit = frozen.stage1.get(key)
    except TypeError:  # nested values: freeze them, or render without caching
        try:
            key = (key[0], _freeze_key(partner), _freeze_key(sender), _freeze_key(brand))
            hit = frozen.stage1.get(key)
        except TypeError:
            key, hit = None, None
    if hit is not None:
        return hit
    html_slots: dict[str, Any] = dict(frozen.defaults)
    for name, value in slot_values.items():
        if name in html_slots and isinstance(value, str):
            html_slots[name] = value
    text_slots = html_slots
    if frozen.richtext:
        text_slots = dict(html_slots)
        for name in frozen.richtext:
            html_slots[name] = _richtext_markup(html_slots[name])
            text_slots[name] = _richtext_text(text_slots[name])
    partner, sender, brand = (_fields("partner", partner), _fields("sender", sender),
                              _fields("brand", brand))
    html_ctx = {"slots": html_slots, "partner": partner, "sender": sender, "brand": brand}
    text_ctx = {**html_ctx, "slots": text_slots}
    links: list[str | None] = []
    for constant, template, per_recipient in frozen.links:
        if per_recipient:
            links.append(None)
        else:
            links.append(_safe_url(constant if template is None else template.render(text_ctx)))
    stage = _Stage1(
        html=tuple(frozen.html.static.render(html_ctx).split(SEP)),
        text=tuple(frozen.text.static.render(text_ctx).split(SEP)),
        subject=tuple(frozen.subject.static.render(text_ctx).split(SEP)),
        links=tuple(links),
        html_slots=html_slots, text_slots=text_slots, partner=partner, sender=sender,
        brand=brand,
    )
    if key is not None:
        if len(frozen.stage1) >= _STAGE1_MAX:
            frozen.stage1.pop(next(iter(frozen.stage1)))
        frozen.stage1[key] = stage
    return stage


def _fill(part: _Part, chunks: tuple[str, ...], values: dict[str, Any], link: Callable,
          shared: list[str], own_context: Callable[[], dict]) -> str:
    """Interleave a part's campaign-level chunks with this recipient's hole values."""
    if not part.holes:
        return chunks[0]
    own: list[str] = part.own.render(own_context()).split(SEP) if part.own is not None else []
    out = [chunks[0]]
    esc = part.autoescape
    contact = values["contact"]
    for (kind, arg), chunk in zip(part.holes, chunks[1:], strict=True):
        if kind == "link":
            value = link(arg)  # _safe_url: printable, no whitespace, so _fold is a no-op
        elif kind == "shared":
            value = shared[arg]
        elif kind == "contact":
            value = _fold(contact[arg])
        elif kind == "name":
            value = _fold(values[arg])
        else:
            out.append(own[arg])
            out.append(chunk)
            continue
        out.append(escape(value) if esc else str(value))
        out.append(chunk)
    return "".join(out)


def _bounded(render: Callable[[], Rendered]) -> Rendered:
    """Run `render` within the sandbox's bounds; any failure becomes a RenderError saying why
    (a send fails with that reason, a preview answers 422), never another exception."""
    try:
        with bounded():
            rendered = render()
    except RenderError:
        raise
    except RecursionError as exc:  # a template published before expressions were bounded
        raise RenderError(_("the template cannot be rendered: an expression is too deeply "
                            "nested")) from exc
    except Exception as exc:  # noqa: BLE001 - a value the template's filters cannot handle
        raise RenderError(_("the template cannot be rendered: %(reason)s",
                            reason=_reason(exc))) from exc
    if len(rendered.html) + len(rendered.text) + len(rendered.subject) > MAX_OUTPUT_CHARS:
        raise RenderError(too_large_message())
    return rendered


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[:300]


def _render(frozen: _Frozen, slot_values: dict, contact: dict, partner: dict, sender: dict,
            brand: dict, link_url: Callable[[int, str], str] | None, unsubscribe_url: str,
            open_pixel_url: str | None, honeypot_url: str | None = None) -> Rendered:
    return _bounded(lambda: _render_unbounded(
        frozen, slot_values, contact, partner, sender, brand, link_url, unsubscribe_url,
        open_pixel_url, honeypot_url))


def _render_unbounded(frozen: _Frozen, slot_values: dict, contact: dict, partner: dict,
                      sender: dict, brand: dict, link_url: Callable[[int, str], str] | None,
                      unsubscribe_url: str, open_pixel_url: str | None,
                      honeypot_url: str | None = None) -> Rendered:
    stage = _stage1(frozen, slot_values, partner, sender, brand)
    values = {"contact": _contact(contact), "unsubscribe_url": unsubscribe_url,
              "open_pixel": _pixel(open_pixel_url, honeypot_url)}
    resolved: dict[int, str] = {}
    contexts: dict[bool, dict] = {}

    def context(html: bool = False) -> dict:
        """Return the full Jinja context (built only when a hole needs Jinja)."""
        if html not in contexts:
            contexts[html] = {"slots": stage.html_slots if html else stage.text_slots,
                              "partner": stage.partner, "sender": stage.sender,
                              "brand": stage.brand, "link": link, **values}
        return contexts[html]

    def link(index: int) -> str:
        url = resolved.get(index)
        if url is None:
            url = stage.links[index]
            if url is None:
                template = frozen.links[index][1]
                assert template is not None
                url = _safe_url(template.render(context()))
            if link_url is not None and url != "#":
                url = link_url(index, url)
            resolved[index] = url
        return url

    shared: list[str] = []
    if frozen.shared_fns is not None:
        if frozen.shared_fns:
            ctx = {"contact": values["contact"], "slots": stage.text_slots,
                   "partner": stage.partner, "sender": stage.sender, "brand": stage.brand,
                   "unsubscribe_url": unsubscribe_url, "open_pixel": values["open_pixel"]}
            shared = [str(_fold(fn(ctx))) for fn in frozen.shared_fns]
    elif frozen.shared is not None:
        shared = frozen.shared.render(context()).split(SEP)
    html = _fill(frozen.html, stage.html, values, link, shared, lambda: context(True))
    text = _fill(frozen.text, stage.text, values, link, shared, context)
    subject = _fill(frozen.subject, stage.subject, values, link, shared, context)
    return Rendered(" ".join(subject.split()), html, text)  # split() drops CR/LF/TAB too


def render_message(version: Any, slot_values: dict, contact: dict, partner: dict, sender: dict,
                   brand: dict, *, link_url: Callable[[int, str], str] | None = None,
                   unsubscribe_url: str = "#", open_pixel_url: str | None = None,
                   honeypot_url: str | None = None) -> Rendered:
    """Render one recipient's message from a published version's frozen template.

    Raises RenderError (with the reason) when it cannot: never any other exception."""
    try:
        frozen = _frozen(version)
    except RecursionError as exc:  # published before expressions were bounded
        raise RenderError(_("the template cannot be rendered: an expression is too deeply "
                            "nested")) from exc
    return _render(frozen, slot_values or {}, contact, partner, sender, brand,
                   link_url, unsubscribe_url, open_pixel_url, honeypot_url)


def render_preview(version: Any, slot_values: dict, contact: dict, partner: dict, sender: dict,
                   brand: dict) -> Rendered:
    """Render a published version for preview: values validated, no tracking."""
    cleaned = clean_slot_values(version.slots or [], slot_values or {})
    return render_message(version, cleaned, contact, partner, sender, brand)


def render_draft(mjml: str, subject: str, preheader: str, slots: list[dict], slot_values: dict,
                 contact: dict, partner: dict, sender: dict, brand: dict) -> Rendered:
    """Compile an unpublished draft on the fly and render it (raises TemplateError/SlotError)."""
    compiled = compile_source(mjml, subject, preheader, slots)
    normalized, _ignored = validate_slot_schema(slots)
    cleaned = clean_slot_values(normalized, slot_values or {})
    frozen = _build(compiled.html, compiled.text, subject, compiled.links, normalized)
    return _render(frozen, cleaned, contact, partner, sender, brand, None, "#", None)


def render_reference(version: Any, slot_values: dict, contact: dict, partner: dict,
                     sender: dict, brand: dict, *,
                     link_url: Callable[[int, str], str] | None = None,
                     unsubscribe_url: str = "#", open_pixel_url: str | None = None,
                     honeypot_url: str | None = None) -> Rendered:
    """Render with one plain sandboxed Jinja render per part (slow; the fast path's oracle)."""
    return _bounded(lambda: _render_reference(version, slot_values, contact, partner, sender,
                                              brand, link_url, unsubscribe_url, open_pixel_url,
                                              honeypot_url))


def _render_reference(version: Any, slot_values: dict, contact: dict, partner: dict,
                      sender: dict, brand: dict, link_url: Callable[[int, str], str] | None,
                      unsubscribe_url: str, open_pixel_url: str | None,
                      honeypot_url: str | None) -> Rendered:
    slots = {s["name"]: s.get("default", "") or "" for s in version.slots or []}
    slots.update({k: v for k, v in (slot_values or {}).items() if k in slots})
    richtext = {s["name"] for s in version.slots or [] if s.get("type") == "richtext"}
    html_slots = {k: _richtext_markup(v) if k in richtext else v for k, v in slots.items()}
    text_slots = {k: _richtext_text(v) if k in richtext else v for k, v in slots.items()}
    base = {"contact": _contact(contact), "partner": _fields("partner", partner),
            "sender": _fields("sender", sender), "brand": _fields("brand", brand),
            "unsubscribe_url": unsubscribe_url,
            "open_pixel": _pixel(open_pixel_url, honeypot_url)}
    resolved: dict[int, str] = {}

    def link(index: int) -> str:
        if index not in resolved:
            url = _safe_url(TEXT_ENV.from_string(version.links[index]).render(
                {**base, "slots": text_slots}))
            resolved[index] = link_url(index, url) if link_url and url != "#" else url
        return resolved[index]

    html = HTML_ENV.from_string(version.compiled_html).render(
        {**base, "slots": html_slots, "link": link})
    text = TEXT_ENV.from_string(version.compiled_text).render(
        {**base, "slots": text_slots, "link": link})
    subject = TEXT_ENV.from_string(version.subject).render({**base, "slots": text_slots})
    return Rendered(" ".join(subject.split()), html, text)


# ---------------------------------------------------------------- render checks at save

SAMPLE_MERGE_LENGTH = 200  # a long contact/partner value, for the probes below
_MAX_CHOICES_PROBED = 100


class _AnyAttributes(dict):
    """contact.attributes where every KEY has the same value (a probe's long value)."""

    def __init__(self, value: str):
        super().__init__()
        self.value = value

    def get(self, key: Any, default: Any = None) -> Any:
        return self.value


def _extremes(slot: dict) -> list[tuple[str, str]]:
    """Return (description, value): the type-valid extreme values of a slot."""
    kind = slot["type"]
    limit = min(slot.get("max_length") or HARD_MAX_LENGTH, HARD_MAX_LENGTH)
    values: list[tuple[str, str]] = []
    if not slot.get("required"):
        values.append((_("empty"), ""))
    if kind == "text":
        values += [(_("%(n)s characters long", n=limit), "x" * limit),
                   (_("a number of %(n)s digits", n=limit), "9" * limit),
                   (_("a negative number"), "-" + "9" * (limit - 1) if limit > 1 else "-"),
                   (_("zero"), "0")]
    elif kind == "richtext":
        if limit > 7:
            values.append((_("%(n)s characters long", n=limit), "<p>" + "x" * (limit - 7) + "</p>"))
    elif kind in ("url", "image"):
        domains = slot.get("allowed_domains") or ["example.com"]
        prefix = f"https://{domains[0]}/"
        if limit > len(prefix):
            values.append((_("%(n)s characters long", n=limit),
                           prefix + "x" * (limit - len(prefix))))
    elif kind == "choice":
        values += [(repr(choice), choice) for choice in slot.get("choices", [])
                   [:_MAX_CHOICES_PROBED]]
    return [(d, v) for d, v in values if not value_problem(slot, v)]


def _merge_inputs(long: bool) -> tuple[dict, dict, dict, dict]:
    """Return (contact, partner, sender, brand) with every merge field empty or long."""
    value = "9" * SAMPLE_MERGE_LENGTH if long else ""
    groups = {group: dict.fromkeys(names, value) for group, names in MERGE_FIELDS.items()}
    groups["contact"]["attributes"] = _AnyAttributes(value)
    return groups["contact"], groups["partner"], groups["sender"], groups["brand"]


def _contexts(slots: list[dict], values: dict[str, str], contact: dict, partner: dict,
              sender: dict, brand: dict) -> tuple[dict, dict]:
    """Return the (html, text) Jinja contexts one render sees."""
    richtext = {s["name"] for s in slots if s["type"] == "richtext"}
    plain = {s["name"]: values.get(s["name"], s.get("default", "") or "") for s in slots}
    html_slots = {k: _richtext_markup(v) if k in richtext else v for k, v in plain.items()}
    text_slots = {k: _richtext_text(v) if k in richtext else v for k, v in plain.items()}
    base = {"contact": _contact(contact), "partner": _fields("partner", partner),
            "sender": _fields("sender", sender), "brand": _fields("brand", brand),
            "unsubscribe_url": "#"}
    return {**base, "slots": html_slots}, {**base, "slots": text_slots}


class _Probe(NamedTuple):
    """Expressions of a template, joined into one template per rendering mode."""

    exprs: list[str]
    html: Template
    text: Template


def _probe(exprs: list[str]) -> _Probe:
    joined = SEP.join("{{ " + e + " }}" for e in exprs)
    return _Probe(exprs, HTML_ENV.from_string(joined), TEXT_ENV.from_string(joined))


def _failure(probe: _Probe, html_ctx: dict, text_ctx: dict) -> tuple[str, str] | None:
    """Render every expression of `probe`; return (expression, reason) of the first failure."""
    def attempt(templates: list[tuple[Template, dict]]) -> str | None:
        try:
            with bounded():
                for template, ctx in templates:
                    template.render(ctx)
        except RecursionError:
            return _("an expression is too deeply nested")
        except Exception as exc:  # noqa: BLE001 - the failure is what is reported
            return _reason(exc)
        return None

    reason = attempt([(probe.html, html_ctx), (probe.text, text_ctx)])
    if reason is None:
        return None
    for expr in probe.exprs:
        one = _probe([expr])
        own = attempt([(one.html, html_ctx), (one.text, text_ctx)])
        if own is not None:
            return expr, own
    return "", reason


def _expressions(sources: dict[str, str]) -> list[tuple[str, str, frozenset[str], bool]]:
    """Return (where, expression, slots used, uses merge fields) for each distinct one."""
    found: dict[tuple[str, str], tuple[str, str, frozenset[str], bool]] = {}
    for where, source in sources.items():
        analysis = analyze(source)
        for index, (kind, text) in enumerate(analysis.pieces):
            if kind != "expr" or (where, text) in found:
                continue
            node = TEXT_ENV.parse("{{ " + text + " }}").body[0].nodes[0]
            names = {n.name for n in walk(node, nodes.Name)}
            found[(where, text)] = (where, text, frozenset(analysis.expr_slots.get(index, ())),
                                    bool(names & set(MERGE_FIELDS)))
    return list(found.values())


def render_problems(compiled: Compiled, mjml: str, subject: str, preheader: str,
                    slots: list[dict]) -> dict[str, str]:
    """Render a compiled template the ways it will be sent; return what cannot render.

    Every expression renders with the slots' defaults, with each slot at each of its
    type-valid extreme values (empty where optional, at its maximum length, numbers, each
    choice), and with every merge field empty and long; the whole message then renders with
    the defaults and with every slot at its longest, within the sandbox's bounds. A failure is
    reported against the slot whose value broke it (`slots.NAME`) or where the expression is.
    """
    problems: dict[str, str] = {}
    by_name = {s["name"]: s for s in slots}
    exprs = _expressions({"mjml": mjml, "subject": subject, "preheader": preheader})
    sample = (sample_contact(), dict(SAMPLE_PARTNER), {"name": "Sample", "reply_to": ""},
              {"name": "Brand", "from_email": ""})

    probes: dict[tuple[str, ...], _Probe] = {}

    def report(key: str, message: str) -> None:
        if key not in problems:
            problems[key] = message

    def run(selected: list[tuple[str, str, frozenset[str], bool]], values: dict[str, str],
            inputs: tuple[dict, dict, dict, dict], key_for: Callable[[tuple], str],
            describe: str) -> None:
        if not selected:
            return
        key = tuple(e[1] for e in selected)
        probe = probes.get(key)
        if probe is None:
            probe = probes[key] = _probe(list(key))
        failed = _failure(probe, *_contexts(slots, values, *inputs))
        if failed is None:
            return
        expr, reason = failed
        entry = next((e for e in selected if e[1] == expr), selected[0])
        shown = "{{ " + expr[:80] + " }}" if expr else _("the template")
        report(key_for(entry), _("%(expr)s cannot be rendered when %(case)s: %(reason)s",
                                 expr=shown, case=describe, reason=reason))

    def slot_key(name: str) -> Callable[[tuple], str]:
        return lambda _entry: f"slots.{name}"

    def where_key(entry: tuple) -> str:
        return f"slots.{sorted(entry[2])[0]}" if entry[2] else entry[0]

    run(exprs, {}, sample, where_key, _("every slot has its default value"))
    for name, slot in by_name.items():
        users = [e for e in exprs if name in e[2]]
        for describe, value in _extremes(slot):
            if f"slots.{name}" in problems:
                break
            run(users, {name: value}, sample, slot_key(name),
                _("%(slot)s is %(value)s", slot=slot.get("label") or name, value=describe))
    merged = [e for e in exprs if e[3]]
    run(merged, {}, _merge_inputs(False), where_key, _("merge fields are empty"))
    run(merged, {}, _merge_inputs(True), where_key,
        _("merge fields are %(n)s characters long", n=SAMPLE_MERGE_LENGTH))
    if problems:
        return problems

    frozen = _build(compiled.html, compiled.text, subject, compiled.links, slots)
    longest = {name: max((v for _d, v in _extremes(slot)), key=len, default=slot["default"])
               for name, slot in by_name.items()}
    for values, inputs, describe in (
            ({}, sample, _("every slot has its default value")),
            (longest, _merge_inputs(True), _("every slot and merge field is at its longest"))):
        try:
            _render(frozen, values, *inputs, None, "#", None)
        except RenderError as exc:
            report("mjml", _("the message cannot be rendered when %(case)s: %(reason)s",
                             case=describe, reason=exc.message))
            break
    return problems


def check_source(mjml: object, subject: object, preheader: object,
                 slots: object) -> dict[str, str]:
    """Return every problem of a template, including what would fail when it renders."""
    return _checked(mjml, subject, preheader, slots)[0]


def compile_source(mjml: object, subject: object, preheader: object,
                   slots: object) -> Compiled:
    """Compile a template for publishing, refusing (TemplateError) what cannot render."""
    problems, compiled = _checked(mjml, subject, preheader, slots)
    if problems or compiled is None:
        raise TemplateError("The template is invalid.", problems or {"mjml": "did not compile"})
    return compiled


def _checked(mjml: object, subject: object, preheader: object,
             slots: object) -> tuple[dict[str, str], Compiled | None]:
    problems, compiled = compile_or_problems(mjml, subject, preheader, slots)
    if problems or compiled is None:
        return problems, None
    assert isinstance(mjml, str) and isinstance(subject, str)
    normalized, _ignored = validate_slot_schema(slots)
    problems = render_problems(compiled, mjml, subject, preheader or "", normalized)
    return problems, None if problems else compiled
