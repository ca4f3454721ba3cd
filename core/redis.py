"""The one place Redis clients are built: one client per URL and timeout in each process.

redis-py's connection pool notices a fork and opens fresh connections in the child, so a
client made before forking workers is safe to keep using after.
"""

from __future__ import annotations

from collections.abc import Mapping

import redis

_clients: dict[tuple[str, float | None], redis.Redis] = {}


def redis_client(url: str, *, timeout: float | None = None) -> redis.Redis:
    """Return this process's client for `url`; `timeout` bounds connects and commands.

    Request paths pass a short timeout so a Redis outage cannot hold a request; blocking
    consumers (RQ workers, the tracking drainer) pass none.
    """
    key = (url, timeout)
    client = _clients.get(key)
    if client is None:
        connect = None if timeout is None else min(timeout, 2.0)
        client = redis.Redis.from_url(url, socket_timeout=timeout,
                                      socket_connect_timeout=connect)
        _clients[key] = client
    return client


def configured_redis(config: Mapping, *, timeout: float | None = None) -> redis.Redis | None:
    """Return the client for config["REDIS_URL"], or None in embedded mode (no Redis)."""
    url = str(config.get("REDIS_URL") or "")
    return redis_client(url, timeout=timeout) if url else None
