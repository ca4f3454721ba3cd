"""Run every benchmark in bench/ (except this file) in sequence; keep going past failures.

Each bench prints its own figures and ratio to a baseline. A failing bench is reported and
the run continues; the exit status is non-zero if any bench failed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    """Run bench/*.py one after another; return 1 if any of them failed."""
    scripts = sorted(p for p in HERE.glob("*.py")
                     if p.name != Path(__file__).name and not p.name.startswith("_"))
    failed: list[str] = []
    for script in scripts:
        load = os.getloadavg()[0]
        print(f"=== {script.name} (load average {load:.1f} on {os.cpu_count()} cores) ===",
              flush=True)
        started = time.perf_counter()
        try:
            code = subprocess.run([sys.executable, str(script)], cwd=HERE.parent,
                                  check=False).returncode
        except Exception as exc:  # noqa: BLE001 - report and continue with the next bench
            print(f"!!! {script.name} could not run: {exc}", flush=True)
            code = -1
        took = time.perf_counter() - started
        if code != 0:
            failed.append(script.name)
            print(f"!!! {script.name} failed (exit {code}) after {took:.0f} s", flush=True)
        else:
            print(f"=== {script.name} done in {took:.0f} s ===", flush=True)
    if failed:
        print(f"failed benches: {', '.join(failed)}")
        return 1
    print(f"all {len(scripts)} benches ran")
    return 0


if __name__ == "__main__":
    sys.exit(main())
