"""Send-rate limits per partner and overall, shared by every worker through Redis."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Protocol, TypeVar

from redis import Redis

from core import clock
from core.redis import redis_client


class HasPartner(Protocol):
    """Anything to be sent on behalf of a partner (a claimed send row)."""

    partner_id: int


Row = TypeVar("Row", bound=HasPartner)


class RateLimiter:
    """Fixed one-second windows per partner and overall, shared through Redis when present.

    Counting uses INCRBY + EXPIRE on a key per window, so any number of worker processes on
    any number of machines share one budget. Without Redis (embedded mode: one process) the
    windows live in this process.
    """

    def __init__(self, client: Redis | None = None) -> None:
        self.redis = client
        self.local: dict[str, int] = {}

    def _take(self, key: str, wanted: int, limit: int) -> int:
        """Take up to `wanted` units from the window `key` of size `limit`; return granted."""
        if wanted <= 0:
            return 0
        if self.redis is not None:
            pipe = self.redis.pipeline()
            pipe.incrby(key, wanted)
            pipe.expire(key, 5)
            total = int(pipe.execute()[0])
            granted = max(0, min(wanted, limit - (total - wanted)))
            if granted < wanted:
                self.redis.decrby(key, wanted - granted)
            return granted
        used = self.local.get(key, 0)
        granted = max(0, min(wanted, limit - used))
        self.local = {k: v for k, v in self.local.items() if k.endswith(key[-12:])}
        self.local[key] = used + granted
        return granted

    def _give_back(self, key: str, units: int) -> None:
        if units <= 0:
            return
        if self.redis is not None:
            self.redis.decrby(key, units)
        else:
            self.local[key] = self.local.get(key, 0) - units

    def admit(
        self, rows: list[Row], global_limit: int, partner_limit: int
    ) -> tuple[list[Row], list[Row]]:
        """Split rows into those the limits let out this second and those to hold back."""
        if global_limit <= 0 and partner_limit <= 0:
            return rows, []
        window = clock.now().strftime("%Y%m%d%H%M%S")
        by_partner: dict[int, list[Row]] = defaultdict(list)
        for row in rows:
            by_partner[row.partner_id].append(row)
        allowed: list[Row] = []
        held: list[Row] = []
        for partner_id, group in by_partner.items():
            n = len(group)
            partner_key = f"lastmile:rate:p{partner_id}:{window}"
            if partner_limit > 0:
                n = self._take(partner_key, n, partner_limit)
            granted = n
            if global_limit > 0:
                granted = self._take(f"lastmile:rate:all:{window}", n, global_limit)
                if partner_limit > 0:
                    self._give_back(partner_key, n - granted)
            allowed.extend(group[:granted])
            held.extend(group[granted:])
        return allowed, held


_limiters: dict[str, RateLimiter] = {}


def rate_limiter(config: Mapping) -> RateLimiter:
    """Return this process's limiter for the configured Redis (or the in-process one)."""
    url = str(config.get("REDIS_URL") or "")
    if url not in _limiters:
        _limiters[url] = RateLimiter(redis_client(url) if url else None)
    return _limiters[url]
