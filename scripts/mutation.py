"""Operator-swap mutation testing of the modules that guard the brand lock and security.

`make mutation` (not part of `make test`): for each module below, every comparison, boolean
operator, `not`, `+`/`-` and True/False in it is swapped, one at a time, in a scratch copy
of the tracked files (the work tree is never touched); the module's own test files run
against each mutant. A mutant is *killed* when they fail (or time out), *survives* when they
pass. The score is killed / all; survivors are listed with their line so a test can be
written for each (or the mutant recognized as equivalent).

    python scripts/mutation.py [MODULE ...] [--jobs N] [--list]

Tests run against TEST_DATABASE_URL / TEST_REDIS_URL like `make test`; modules whose tests
use the database run one mutant at a time whatever --jobs says.
"""

from __future__ import annotations

import argparse
import ast
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# module -> (its own test files, whether they use the database)
MODULES: dict[str, tuple[list[str], bool]] = {
    "personalization/slots.py": (["tests/test_personalization_slots.py"], False),
    "personalization/sandbox.py": (["tests/test_personalization_sandbox.py"], False),
    "personalization/lock.py": (["tests/test_personalization_lock.py"], False),
    "core/tokens.py": (["tests/test_tracking_tokens.py"], False),
    "accounts/auth.py": (["tests/test_accounts_auth.py"], True),
    "tracking/sns.py": (["tests/test_tracking_sns.py"], True),
}

_SWAPS: dict[type, type] = {
    ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Lt: ast.LtE, ast.LtE: ast.Lt,
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In,
    ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.And: ast.Or, ast.Or: ast.And,
    ast.Add: ast.Sub, ast.Sub: ast.Add,
}


@dataclass(frozen=True)
class Mutant:
    index: int
    line: int
    description: str


def _sites(tree: ast.AST) -> list[tuple[ast.AST, int, str]]:
    """Return every mutable site in a fixed order: (node to swap, line, what the swap does)."""
    sites: list[tuple[ast.AST, int, str]] = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Compare):
            for op in node.ops:
                if type(op) in _SWAPS:
                    sites.append((op, line, f"{type(op).__name__} -> "
                                            f"{_SWAPS[type(op)].__name__}"))
        elif isinstance(node, ast.BoolOp | ast.BinOp) and type(node.op) in _SWAPS:
            sites.append((node.op, line, f"{type(node.op).__name__} -> "
                                         f"{_SWAPS[type(node.op)].__name__}"))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            sites.append((node, line, "drop `not`"))
        elif isinstance(node, ast.Constant) and isinstance(node.value, bool):
            sites.append((node, line, f"{node.value} -> {not node.value}"))
    return sites


def mutants(source: str) -> list[Mutant]:
    sites = _sites(ast.parse(source))
    return [Mutant(i, line, what) for i, (_node, line, what) in enumerate(sites)]


class _Apply(ast.NodeTransformer):
    def __init__(self, target: ast.AST):
        self.target = target

    def generic_visit(self, node: ast.AST) -> ast.AST:
        node = super().generic_visit(node)
        if isinstance(node, ast.Compare):
            node.ops = [_SWAPS[type(op)]() if op is self.target else op for op in node.ops]
        elif isinstance(node, ast.BoolOp | ast.BinOp) and node.op is self.target:
            node.op = _SWAPS[type(node.op)]()
        elif node is self.target and isinstance(node, ast.UnaryOp):
            return node.operand
        elif node is self.target and isinstance(node, ast.Constant):
            return ast.copy_location(ast.Constant(not node.value), node)
        return node


def mutated_source(source: str, index: int) -> str:
    tree = ast.parse(source)
    target = _sites(tree)[index][0]
    return ast.unparse(ast.fix_missing_locations(_Apply(target).visit(tree)))


def _scratch_copy() -> Path:
    """Copy the tracked files (as in the work tree) to a scratch directory."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                           check=True, capture_output=True, text=True).stdout.split("\n")
    dest = Path(tempfile.mkdtemp(prefix="lastmile-mutation-"))
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def _run_tests(copy: Path, tests: list[str], timeout: float) -> tuple[bool, float]:
    """Run `tests` in `copy`; return (passed, seconds). A timeout counts as failing."""
    start = time.monotonic()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
             *tests],
            cwd=copy, capture_output=True, text=True, timeout=timeout,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    except subprocess.TimeoutExpired:
        return False, time.monotonic() - start
    return result.returncode == 0, time.monotonic() - start


def run_module(module: str, jobs: int) -> tuple[int, list[Mutant]]:
    """Mutate `module`; return (number of mutants, survivors)."""
    tests, uses_db = MODULES[module]
    source = (ROOT / module).read_text()
    found = mutants(source)
    copies = [_scratch_copy() for _ in range(1 if uses_db else max(1, jobs))]
    try:
        passed, baseline = _run_tests(copies[0], tests, timeout=900)
        if not passed:
            raise SystemExit(f"{module}: its tests fail without any mutation: fix them first")
        timeout = max(30.0, baseline * 5)

        def one(args: tuple[int, Mutant]) -> Mutant | None:
            slot, mutant = args
            copy = copies[slot % len(copies)]
            (copy / module).write_text(mutated_source(source, mutant.index))
            try:
                survived, _seconds = _run_tests(copy, tests, timeout)
            finally:
                (copy / module).write_text(source)
            return mutant if survived else None

        # Each copy runs one mutant at a time: mutant i goes to copy i % len(copies).
        batches = [[(i, m) for i, m in enumerate(found) if i % len(copies) == k]
                   for k in range(len(copies))]
        with ThreadPoolExecutor(max_workers=len(copies)) as pool:
            results = pool.map(lambda batch: [one(a) for a in batch], batches)
        survivors = sorted((m for batch in results for m in batch if m is not None),
                           key=lambda m: m.index)
    finally:
        for copy in copies:
            shutil.rmtree(copy, ignore_errors=True)
    return len(found), survivors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", default=list(MODULES))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--list", action="store_true", help="list the mutants, run nothing")
    args = parser.parse_args()
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        parser.error(f"unknown module(s): {', '.join(unknown)} (known: {', '.join(MODULES)})")
    scores = []
    for module in args.modules:
        if args.list:
            for m in mutants((ROOT / module).read_text()):
                print(f"{module}:{m.line}: {m.description}")
            continue
        start = time.monotonic()
        total, survivors = run_module(module, args.jobs)
        killed = total - len(survivors)
        score = 100.0 * killed / total if total else 100.0
        scores.append((module, killed, total, score))
        print(f"{module}: {killed}/{total} mutants killed ({score:.0f} %) "
              f"in {time.monotonic() - start:.0f} s", flush=True)
        for m in survivors:
            print(f"  survived {module}:{m.line}: {m.description}", flush=True)
    if scores:
        print("\n| module | killed | score |\n|---|---|---|")
        for module, killed, total, score in scores:
            print(f"| `{module}` | {killed} / {total} | {score:.0f} % |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
