"""The layering holds: no package cycle, and no project import hidden inside a function."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("package_graph", ROOT / "scripts/package_graph.py")
package_graph = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(package_graph)
PROJECT = set(package_graph.PACKAGES) | {"app"}


def test_package_graph_has_no_cycle():
    edges = package_graph.package_edges()
    assert package_graph.find_cycle(edges) is None
    # The graph is the layering the README documents: core at the bottom, web near the top.
    assert edges["core"] == set()
    assert "tracking" not in edges["campaigns"]
    assert "campaigns" in edges["tracking"]


def test_cycle_finder_reports_a_back_edge():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert package_graph.find_cycle(edges) == ["a", "b", "c", "a"]
    assert package_graph.find_cycle({"a": {"b"}, "b": set()}) is None


def test_graph_script_prints_the_graph_and_exits_zero():
    result = subprocess.run([sys.executable, str(ROOT / "scripts/package_graph.py")],
                            capture_output=True, text=True, cwd=ROOT, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "campaigns -> " in result.stdout and "no cycle" in result.stdout


def _function_local_project_imports(path: Path) -> list[str]:
    found = []
    tree = ast.parse(path.read_text())
    for func in ast.walk(tree):
        if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(func):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                if name.split(".")[0] in PROJECT:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
    return found


def test_no_project_import_inside_a_function():
    files = [ROOT / "app.py"] + [
        f for package in package_graph.PACKAGES for f in (ROOT / package).rglob("*.py")
    ]
    hidden = [hit for f in files for hit in _function_local_project_imports(f)]
    assert hidden == [], "imports hidden inside functions (a layering problem):\n" + "\n".join(
        hidden)
