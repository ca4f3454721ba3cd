"""Count failures per key in fixed windows, shared through Redis when configured.

With REDIS_URL every web node shares one count; without it (embedded mode, one process), or
while Redis is unreachable, the counts live in this process: a Redis outage weakens the
throttle for a while, it never stops anyone from signing in.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Mapping

from redis import Redis

from core.redis import configured_redis

log = logging.getLogger(__name__)
_local: dict[str, tuple[int, float]] = {}
_lock = threading.Lock()


def _key(key: str) -> str:
    # Keys carry user input (an email address): hash them to a fixed, harmless length.
    return "lastmile:throttle:" + hashlib.sha256(key.encode()).hexdigest()[:32]


def _redis(config: Mapping) -> Redis | None:
    # A sign-in must not wait on a sick Redis: one second, then count in this process.
    return configured_redis(config, timeout=1)


def failures(config: Mapping, key: str) -> int:
    """Return how many failures `key` has in its current window."""
    client = _redis(config)
    if client is not None:
        try:
            return int(client.get(_key(key)) or 0)
        except Exception:  # noqa: BLE001 - any Redis failure falls back to local counts
            log.warning("throttle: Redis unreachable, counting in this process", exc_info=True)
    with _lock:
        count, expires = _local.get(key, (0, 0.0))
        return count if expires > time.monotonic() else 0


def record_failure(config: Mapping, key: str, window_seconds: int) -> int:
    """Count one failure for `key` (the window starts at its first failure); return the count."""
    client = _redis(config)
    if client is not None:
        try:
            name = _key(key)
            count = int(client.incr(name))
            if count == 1:  # the first failure opens the window (works on any Redis version)
                client.expire(name, window_seconds)
            return count
        except Exception:  # noqa: BLE001 - any Redis failure falls back to local counts
            log.warning("throttle: Redis unreachable, counting in this process", exc_info=True)
    with _lock:
        now = time.monotonic()
        count, expires = _local.get(key, (0, 0.0))
        if expires <= now:
            count, expires = 0, now + window_seconds
        _local[key] = (count + 1, expires)
        if len(_local) > 100_000:  # keep memory bounded under a spray of keys
            for stale in [k for k, (_c, e) in _local.items() if e <= now]:
                del _local[stale]
        return count + 1
