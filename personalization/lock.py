"""The brand-lock proof: a rendered message is the frozen template's literal text, in order,
with only expression outputs between the literal segments.

Published templates contain no statements (no `{% if %}`/`{% for %}`: they are refused when the
template is saved), so the frozen template is a flat sequence literal, expression, literal,
...; finding each literal leftmost-first after the previous one decides whether such a
decomposition of the rendered HTML exists, in linear passes and without regex backtracking.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jinja2 import nodes
from markupsafe import escape

from personalization.sandbox import PARSE_ENV, walk

_CACHE_MAX = 512
_cache: dict[Any, tuple[str, _Plan]] = {}
MAX_REPORTED = 5


@dataclass(frozen=True)
class _Plan:
    literals: tuple[str, ...]  # len(gaps) + 1 literal segments
    gaps: tuple[tuple[str, bool], ...]  # (expression label, may emit markup)


def _label(node: nodes.Node) -> str:
    for getattr_node in walk(node, nodes.Getattr):
        base = getattr_node.node
        if isinstance(base, nodes.Name):
            return f"{{{{ {base.name}.{getattr_node.attr} }}}}"
    for name in walk(node, nodes.Name):
        return f"{{{{ {name.name} }}}}"
    return "{{ ... }}"


def _may_emit_markup(node: nodes.Node, richtext: set[str]) -> bool:
    if isinstance(node, nodes.Name) and node.name == "open_pixel":
        return True
    for getattr_node in walk(node, nodes.Getattr):
        base = getattr_node.node
        if isinstance(base, nodes.Name) and base.name == "slots" and getattr_node.attr in richtext:
            return True
    return False


def _plan_for(source: str, slots: list[dict]) -> _Plan:
    richtext = {s["name"] for s in slots if s.get("type") == "richtext"}
    literals: list[str] = [""]
    gaps: list[tuple[str, bool]] = []
    for output in PARSE_ENV.parse(source).body:
        if not isinstance(output, nodes.Output):
            raise ValueError("published templates contain only literal text and expressions")
        for node in output.nodes:
            if isinstance(node, nodes.TemplateData):
                literals[-1] += node.data
            elif isinstance(node, nodes.Const) and isinstance(node.value, str):
                literals[-1] += str(escape(node.value))
            else:
                gaps.append((_label(node), _may_emit_markup(node, richtext)))
                literals.append("")
    return _Plan(tuple(literals), tuple(gaps))


def _plan(version: Any) -> _Plan:
    source = version.compiled_html or ""
    key = getattr(version, "id", None)
    hit = _cache.get(key) if key is not None else None
    if hit is not None and (hit[0] is source or hit[0] == source):
        return hit[1]
    plan = _plan_for(source, version.slots or [])
    if key is not None:
        if len(_cache) >= _CACHE_MAX:
            _cache.pop(next(iter(_cache)))
        _cache[key] = (source, plan)
    return plan


def _excerpt(text: str, size: int = 60) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= size else text[:size] + "…")


def _decompose(plan: _Plan, html: str) -> tuple[list[str], list[tuple[int, int]]]:
    """Place each literal leftmost after the previous one; return (problems, gap spans)."""
    problems: list[str] = []
    spans: list[tuple[int, int]] = []
    literals = plan.literals
    first = literals[0]
    if not html.startswith(first):
        problems.append(f"the beginning of the message was changed (expected {_excerpt(first)}, "
                        f"found {_excerpt(html[:len(first) or 60])})")
        pos = 0
    else:
        pos = len(first)
    last_index = len(literals) - 1
    for i in range(1, last_index + 1):
        literal = literals[i]
        if i == last_index:
            start = len(html) - len(literal)
            if html.endswith(literal) and start >= pos:
                spans.append((pos, start))
            else:
                problems.append(
                    f"the end of the message was changed (expected {_excerpt(literal)})"
                )
            break
        found = html.find(literal, pos)
        if found < 0:
            problems.append(
                f"locked segment {i} after {plan.gaps[i - 1][0]} was changed or removed "
                f"(expected {_excerpt(literal)} near {_excerpt(html[pos:pos + 60])})"
            )
            spans.append((pos, pos))
            if len(problems) >= MAX_REPORTED:
                break
            continue
        spans.append((pos, found))
        pos = found + len(literal)
    return problems, spans


def check_locked_regions(version: Any, html: str) -> list[str]:
    """Return how `html` departs from the version's locked literal text (empty = intact)."""
    plan = _plan(version)
    if not plan.gaps:
        return [] if html == plan.literals[0] else ["the message differs from the template"]
    return _decompose(plan, html)[0]


def check_escaped_outputs(version: Any, html: str) -> list[str]:
    """Return expressions (other than richtext slots) whose output contains raw markup."""
    plan = _plan(version)
    problems, spans = _decompose(plan, html)
    if problems:
        return problems
    found = []
    for (label, markup_ok), (start, end) in zip(plan.gaps, spans, strict=False):
        if not markup_ok and "<" in html[start:end]:
            found.append(f"{label} emitted unescaped markup: {_excerpt(html[start:end])}")
    return found
