"""The one Jinja sandbox Lastmile renders with, and the expression allow-list authors must stay in.

Brand templates may only print merge fields (`contact.*`, `partner.*`, `sender.*`, `brand.*`),
slot values (`slots.NAME`) and `unsubscribe_url`, through a few harmless filters. Anything
else (statements, calls, private attributes, `|attr`, arithmetic) is refused when the template
is saved, so a published template can only ever print data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

ALLOWED_NAMES = ("slots", "contact", "partner", "sender", "brand", "unsubscribe_url")
MERGE_FIELDS: dict[str, tuple[str, ...]] = {
    "contact": ("email", "first_name", "last_name", "attributes"),
    # The partner's account (name, tier, region) and its profile (accounts.profile.PROFILE_FIELDS;
    # the approved values only: a change waiting for brand approval is not sent).
    "partner": ("name", "tier", "region", "display_name", "advisor_name", "title", "photo_url",
                "logo_url", "signature", "phone", "address", "website", "disclosures"),
    "sender": ("name", "reply_to"),
    "brand": ("name", "from_email"),
}
ALLOWED_FILTERS = (
    "upper", "lower", "title", "capitalize", "default", "d", "trim", "truncate", "e", "escape",
    "striptags", "replace", "length", "int", "round", "urlencode", "wordcount",
)
_SAFE_CONST = (str, int, float, bool, type(None))


def make_env(autoescape: bool, finalize: Callable[[Any], Any] | None = None
             ) -> ImmutableSandboxedEnvironment:
    """Return a sandboxed environment with only the allowed filters and no globals."""
    env = ImmutableSandboxedEnvironment(
        autoescape=autoescape,
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        auto_reload=False,
        cache_size=0,
        finalize=finalize,
    )
    env.filters = {name: env.filters[name] for name in ALLOWED_FILTERS}
    env.tests = {}
    env.globals = {}
    return env


# Used only to lex and parse; rendering environments live in render.py.
PARSE_ENV = make_env(autoescape=True)


@dataclass
class Analysis:
    """What one template source contains: its expressions, slot references and problems."""

    pieces: list[tuple[str, str]] = field(default_factory=list)  # ("data"|"expr", text)
    slot_refs: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)
    expr_slots: dict[int, set[str]] = field(default_factory=dict)  # piece index -> slots used


def _flatten(node: nodes.Node) -> tuple[nodes.Node, list[str]] | None:
    """Return (base, [attr, ...]) for a chain of Getattr/Getitem with constant keys."""
    path: list[str] = []
    while isinstance(node, nodes.Getattr | nodes.Getitem):
        if isinstance(node, nodes.Getattr):
            path.append(node.attr)
        else:
            arg = node.arg
            if not (isinstance(arg, nodes.Const) and isinstance(arg.value, str)):
                return None
            path.append(arg.value)
        node = node.node
    path.reverse()
    return node, path


def _check_ref(node: nodes.Node, problems: list[str], refs: set[str]) -> None:
    flat = _flatten(node)
    if flat is None:
        problems.append("only constant keys may be used with [...]")
        return
    base, path = flat
    private = [p for p in path if p.startswith("_")]
    if private:
        problems.append(f"private attribute {private[0]!r} is not allowed")
        return
    if not isinstance(base, nodes.Name):
        problems.append("attributes may only be read from merge fields and slots")
        return
    name = base.name
    if name not in ALLOWED_NAMES:
        problems.append(
            f"{name!r} is not available (use one of: {', '.join(ALLOWED_NAMES)})"
        )
        return
    dotted = ".".join([name, *path])
    if name == "unsubscribe_url":
        if path:
            problems.append("unsubscribe_url has no attributes")
        return
    if name == "slots":
        if len(path) != 1:
            problems.append("slots are used as slots.NAME")
            return
        refs.add(path[0])
        return
    allowed = MERGE_FIELDS[name]
    if not path:
        problems.append(f"{name} must be used with a field, e.g. {name}.{allowed[0]}")
    elif path[0] not in allowed:
        problems.append(f"{dotted!r} is not a merge field (known: {', '.join(allowed)})")
    elif path[0] == "attributes":
        if len(path) != 2:
            problems.append("contact attributes are used as contact.attributes.KEY")
    elif len(path) > 1:
        problems.append(f"{dotted!r}: merge fields have no attributes")


def _check_expr(node: nodes.Node, problems: list[str], refs: set[str]) -> None:
    if isinstance(node, nodes.Const):
        if not isinstance(node.value, _SAFE_CONST):
            problems.append("only simple constants are allowed")
    elif isinstance(node, nodes.Name | nodes.Getattr | nodes.Getitem):
        _check_ref(node, problems, refs)
    elif isinstance(node, nodes.Filter):
        if node.name not in ALLOWED_FILTERS:
            problems.append(
                f"filter {node.name!r} is not allowed (allowed: {', '.join(ALLOWED_FILTERS)})"
            )
            return
        if node.dyn_args is not None or node.dyn_kwargs is not None:
            problems.append("*args and **kwargs are not allowed")
            return
        if node.node is not None:
            _check_expr(node.node, problems, refs)
        for arg in node.args:
            _check_expr(arg, problems, refs)
        for kwarg in node.kwargs:
            _check_expr(kwarg.value, problems, refs)
    elif isinstance(node, nodes.Concat):
        for child in node.nodes:
            _check_expr(child, problems, refs)
    elif isinstance(node, nodes.CondExpr):
        for child in (node.test, node.expr1, node.expr2):
            if child is not None:
                _check_expr(child, problems, refs)
    elif isinstance(node, nodes.And | nodes.Or):
        _check_expr(node.left, problems, refs)
        _check_expr(node.right, problems, refs)
    elif isinstance(node, nodes.Not):
        _check_expr(node.node, problems, refs)
    elif isinstance(node, nodes.Compare):
        _check_expr(node.expr, problems, refs)
        for operand in node.ops:
            if operand.op not in ("eq", "ne", "in", "notin"):
                problems.append(f"comparison {operand.op!r} is not allowed")
            _check_expr(operand.expr, problems, refs)
    elif isinstance(node, nodes.Call):
        problems.append("function and method calls are not allowed")
    else:
        problems.append(f"{type(node).__name__} expressions are not allowed")


def analyze(source: str) -> Analysis:
    """Split `source` into literal data and expressions and check each expression."""
    result = Analysis()
    try:
        tokens = list(PARSE_ENV.lex(source))
    except TemplateSyntaxError as exc:
        result.problems.append(f"line {exc.lineno}: {exc.message}")
        return result
    expr: list[str] | None = None
    for _lineno, kind, value in tokens:
        if kind in ("block_begin", "linestatement_begin"):
            result.problems.append("statements ({% ... %}) are not allowed; only {{ ... }}")
            return result
        if kind in ("comment_begin", "linecomment_begin"):
            result.problems.append("comments ({# ... #}) are not allowed")
            return result
        if kind == "raw_begin":
            result.problems.append("{% raw %} blocks are not allowed")
            return result
        if kind == "variable_begin":
            expr = []
        elif kind == "variable_end":
            result.pieces.append(("expr", "".join(expr or []).strip()))
            expr = None
        elif expr is not None:
            expr.append(value)
        elif kind == "data":
            if result.pieces and result.pieces[-1][0] == "data":
                result.pieces[-1] = ("data", result.pieces[-1][1] + value)
            else:
                result.pieces.append(("data", value))
    for index, (kind, text) in enumerate(result.pieces):
        if kind != "expr":
            continue
        try:
            tree = PARSE_ENV.parse("{{ " + text + " }}")
        except TemplateSyntaxError as exc:
            result.problems.append(f"{{{{ {text[:80]} }}}}: {exc.message}")
            continue
        body = tree.body
        if len(body) != 1 or not isinstance(body[0], nodes.Output) or len(body[0].nodes) != 1:
            result.problems.append(f"{{{{ {text[:80]} }}}}: not a single expression")
            continue
        problems: list[str] = []
        refs: set[str] = set()
        _check_expr(body[0].nodes[0], problems, refs)
        for problem in problems:
            result.problems.append(f"{{{{ {text[:80]} }}}}: {problem}")
        result.slot_refs |= refs
        result.expr_slots[index] = refs
    return result


def walk(node: nodes.Node, kind: type | tuple[type, ...] = nodes.Node) -> list[Any]:
    """Return `node` and all its descendants that are instances of `kind`."""
    found = [node] if isinstance(node, kind) else []
    return found + list(node.find_all(kind))


def is_unsubscribe_expr(text: str) -> bool:
    """Tell whether an expression's source is exactly the unsubscribe_url merge field."""
    return text.strip() == "unsubscribe_url"
