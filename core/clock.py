"""An injectable clock: all domain code asks `clock.now()` so tests can move time.

Times are naive UTC everywhere (SQLite keeps no time zone, so one convention for both).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

_frozen: datetime | None = None


def now() -> datetime:
    """Return the current naive-UTC time, or the frozen/env-provided time in tests."""
    if _frozen is not None:
        return _frozen
    env = os.environ.get("LASTMILE_NOW")
    if env:
        return datetime.fromisoformat(env)
    return datetime.now(UTC).replace(tzinfo=None)


def freeze(at: datetime | None) -> None:
    """Freeze the clock at `at` (None unfreezes)."""
    global _frozen
    _frozen = at


def advance(**kwargs: float) -> datetime:
    """Move a frozen clock forward by a timedelta's keyword arguments."""
    global _frozen
    _frozen = (_frozen or now()) + timedelta(**kwargs)
    return _frozen
