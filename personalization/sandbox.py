"""The one Jinja sandbox Lastmile renders with, and the expression allow-list authors must stay in.

Brand templates may only print merge fields (`contact.*`, `partner.*`, `sender.*`, `brand.*`),
slot values (`slots.NAME`) and `unsubscribe_url`, through a few harmless filters. Anything
else (statements, calls, private attributes, `|attr`, arithmetic) is refused when the template
is saved, so a published template can only ever print data.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup, escape

from core.errors import RenderError
from core.i18n import _

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

# Bounds on what one expression may be (checked when a template is saved, before parsing, so
# that no input can exhaust the parser's or the compiler's recursion) ...
MAX_EXPR_TOKENS = 200
MAX_EXPR_DEPTH = 20
# ... and on what one render may produce or cost (checked as it renders).
MAX_OUTPUT_CHARS = 4_000_000  # the rendered message, all parts together
MAX_WORK_CHARS = 16_000_000  # every filter result and printed value, summed over a render
MAX_RENDER_SECONDS = 10.0
MAX_ROUND_PRECISION = 100


@dataclass
class _Budget:
    work: int = 0
    deadline: float = 0.0


_BUDGET: ContextVar[_Budget | None] = ContextVar("lastmile_render_budget", default=None)


@contextmanager
def bounded() -> Iterator[None]:
    """Bound the renders inside this block (together) in size and time; nested blocks share
    the outermost budget. Exceeding a bound raises RenderError."""
    if _BUDGET.get() is not None:
        yield
        return
    token = _BUDGET.set(_Budget(deadline=time.monotonic() + MAX_RENDER_SECONDS))
    try:
        yield
    finally:
        _BUDGET.reset(token)


def too_large_message() -> str:
    return _("the message would be larger than %(limit)s characters",
             limit=f"{MAX_OUTPUT_CHARS:,}")


def charge(size: int) -> None:
    """Count `size` characters produced by the render in progress; raise RenderError past a
    bound (one value larger than a whole message, the render's work, or its time)."""
    if size > MAX_OUTPUT_CHARS:
        raise RenderError(too_large_message())
    budget = _BUDGET.get()
    if budget is None:
        return
    budget.work += size
    if budget.work > MAX_WORK_CHARS:
        raise RenderError(_("the template produces more than %(limit)s characters while "
                            "rendering (filters such as replace multiply text)",
                            limit=f"{MAX_WORK_CHARS:,}"))
    if time.monotonic() > budget.deadline:
        raise RenderError(_("rendering took longer than %(seconds)s seconds",
                            seconds=f"{MAX_RENDER_SECONDS:g}"))


def _size(value: Any) -> int:
    return len(value) if isinstance(value, str) else 0


def _guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a filter so that its result is charged to the render's budget."""
    @functools.wraps(fn)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        result = fn(*args, **kwargs)
        charge(_size(result))
        return result
    return guarded


def _guarded_replace(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`replace`, refused before it runs when its result would exceed a message's bound
    (`'a'|replace('', 'aaaaaaaaaa')` grows 11x per application)."""
    @functools.wraps(fn)
    def replace(eval_ctx: Any, s: Any, old: Any, new: Any, count: Any = None) -> Any:
        if eval_ctx.autoescape:
            text = str(s if isinstance(s, Markup) else escape(s))
            old_text, new_text = str(escape(old)), str(escape(new))
        else:
            text, old_text, new_text = str(s), str(old), str(new)
        times = len(text) + 1 if old_text == "" else text.count(old_text)
        if isinstance(count, int) and count >= 0:
            times = min(times, count)
        charge(len(text) + times * max(len(new_text) - len(old_text), 0))
        return fn(eval_ctx, s, old, new, count)
    return replace


def _guarded_round(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`round`, refusing a precision whose power of ten would take long to compute."""
    @functools.wraps(fn)
    def round_(value: Any, precision: Any = 0, method: Any = "common") -> Any:
        if isinstance(precision, int) and abs(precision) > MAX_ROUND_PRECISION:
            raise RenderError(_("round: precision must be between -%(n)s and %(n)s",
                                n=MAX_ROUND_PRECISION))
        return fn(value, precision, method)
    return round_


_FILTER_GUARDS = {"replace": _guarded_replace, "round": _guarded_round}


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
    env.filters = {name: _guarded(_FILTER_GUARDS.get(name, lambda f: f)(env.filters[name]))
                   for name in ALLOWED_FILTERS}
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


def too_deep_message() -> str:
    return _("expression too deeply nested (at most %(n)s levels of parentheses, filters, "
             "not, and/or or if/else)", n=MAX_EXPR_DEPTH)


def tree_depth(node: nodes.Node) -> int:
    """Return the depth of a parsed tree, without recursion (a deep tree is what is refused)."""
    deepest = 0
    stack = [(node, 1)]
    while stack:
        current, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in current.iter_child_nodes())
    return deepest


def analyze(source: str) -> Analysis:
    """Split `source` into literal data and expressions and check each expression."""
    result = Analysis()
    try:
        tokens = list(PARSE_ENV.lex(source))
    except TemplateSyntaxError as exc:
        result.problems.append(f"line {exc.lineno}: {exc.message}")
        return result
    expr: list[str] | None = None
    shape: dict[int, str] = {}  # piece index -> why the expression is refused unparsed
    depth = deepest = count = chained = 0
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
            depth = deepest = count = chained = 0
        elif kind == "variable_end":
            if deepest + chained > MAX_EXPR_DEPTH:
                shape[len(result.pieces)] = too_deep_message()
            elif count > MAX_EXPR_TOKENS:
                shape[len(result.pieces)] = _("expression too long (at most %(n)s names, "
                                              "values and operators)", n=MAX_EXPR_TOKENS)
            result.pieces.append(("expr", "".join(expr or []).strip()))
            expr = None
        elif expr is not None:
            expr.append(value)
            if kind != "whitespace":
                count += 1
            # lex() yields raw tokens: brackets and pipes are "operator"s
            if (kind == "operator" and value == "|") or (
                    kind == "name" and value in ("not", "and", "or", "if")):
                chained += 1  # each nests the expression one level deeper once parsed
            elif kind == "operator" and value in "([{":
                depth += 1
                deepest = max(deepest, depth)
            elif kind == "operator" and value in ")]}":
                depth -= 1
        elif kind == "data":
            if result.pieces and result.pieces[-1][0] == "data":
                result.pieces[-1] = ("data", result.pieces[-1][1] + value)
            else:
                result.pieces.append(("data", value))
    for index, (kind, text) in enumerate(result.pieces):
        if kind != "expr":
            continue
        if index in shape:
            result.problems.append(f"{{{{ {text[:80]} }}}}: {shape[index]}")
            continue
        try:
            tree = PARSE_ENV.parse("{{ " + text + " }}")
        except TemplateSyntaxError as exc:
            result.problems.append(f"{{{{ {text[:80]} }}}}: {exc.message}")
            continue
        except RecursionError:
            result.problems.append(f"{{{{ {text[:80]} }}}}: {too_deep_message()}")
            continue
        if tree_depth(tree) > MAX_EXPR_DEPTH + 5:  # Template, Output; contact.attributes.KEY
            result.problems.append(f"{{{{ {text[:80]} }}}}: {too_deep_message()}")
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
