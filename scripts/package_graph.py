#!/usr/bin/env python3
"""Print Lastmile's package dependency graph (from the imports) and fail if it has a cycle.

    python scripts/package_graph.py          # edges, then the packages in layer order

Uses grimp, the import-graph library behind import-linter, so it sees exactly what
`lint-imports` sees. Exit status 1 when any two packages depend on each other.
"""

from __future__ import annotations

import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("demo", "web", "tracking", "campaigns", "journeys", "accounts", "personalization",
            "delivery", "core")


def package_edges() -> dict[str, set[str]]:
    """Return {package: packages it imports directly}, from every module's imports."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    edges: dict[str, set[str]] = {p: set() for p in PACKAGES}
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            a, b = module.split(".")[0], imported.split(".")[0]
            if a != b:
                edges[a].add(b)
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """Return one cycle as a list of packages (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in edges:
        if node not in state and (found := visit(node)):
            return found
    return None


def layer_order(edges: dict[str, set[str]]) -> list[str]:
    """Return the packages bottom-up: each after everything it imports."""
    order: list[str] = []
    remaining = dict(edges)
    while remaining:
        # Among the packages ready to place, keep the documented order (PACKAGES is top-down).
        ready = [p for p in reversed(PACKAGES) if p in remaining and remaining[p] <= set(order)]
        if not ready:
            break
        order.extend(ready)
        for p in ready:
            del remaining[p]
    return order


def main() -> int:
    edges = package_edges()
    print("app.py -> every package (the factory wires them)")
    for package in PACKAGES:
        print(f"{package} -> {', '.join(sorted(edges[package])) or '(nothing)'}")
    cycle = find_cycle(edges)
    if cycle:
        print("CYCLE: " + " -> ".join(cycle))
        return 1
    print("no cycle; bottom-up: " + " <- ".join(layer_order(edges)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
