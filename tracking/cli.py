"""CLI commands of the tracking package: `flask tracking-drain`."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket

import click
import redis
from flask import Flask, current_app
from sqlalchemy.exc import SQLAlchemyError

from core.backoff import Backoff, pause
from core.db import db
from core.redis import redis_client
from tracking import ingest

log = logging.getLogger("lastmile.tracking")


@click.command("tracking-drain")
@click.option("--consumer", default=None, help="Consumer name (default: host-pid).")
@click.option("--batch", default=1000, show_default=True, help="Entries per transaction.")
@click.option("--once", is_flag=True, help="Drain what is there now, then exit.")
@click.option("--min-idle-ms", default=30_000, show_default=True,
              help="Take over entries another (dead) drainer left pending this long.")
def drain(consumer: str | None, batch: int, once: bool, min_idle_ms: int) -> None:
    """Move tracking hits from the Redis stream into the database (run one or more)."""
    url = current_app.config.get("REDIS_URL")
    if not url:
        raise click.ClickException("REDIS_URL is empty: hits go straight to the database.")
    r = redis_client(url)
    name = consumer or f"{socket.gethostname()}-{os.getpid()}"
    stopping = {"flag": False}

    def _stop(*_args: object) -> None:
        stopping["flag"] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    total = 0
    backoff = Backoff()
    while not stopping["flag"]:
        try:
            moved = ingest.drain_once(r, name, count=batch, block_ms=None if once else 1000,
                                      min_idle_ms=min_idle_ms)
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError) as exc:
            # Redis down, restarted or flushed (a blocked read then fails with "UNBLOCKED the
            # stream key no longer exists", the next with NOGROUP): drain_once recreates the
            # stream and group once Redis answers again.
            delay = backoff.failed()
            log.warning("tracking drainer: Redis failed (%s); retrying in %.1f s", exc, delay)
            pause(delay, lambda: stopping["flag"])
            continue
        except SQLAlchemyError as exc:
            # The database went away mid-batch: nothing was acknowledged, so the same entries
            # are read again (this consumer's pending ones come first) once it is back.
            with contextlib.suppress(Exception):
                db.session.remove()
            delay = backoff.failed()
            log.warning("tracking drainer: database failed (%s); retrying in %.1f s",
                        str(exc).splitlines()[0][:300], delay)
            pause(delay, lambda: stopping["flag"])
            continue
        if backoff.failures:
            log.warning("tracking drainer: working again after %s failed tries",
                        backoff.failures)
        backoff.succeeded()
        total += moved
        if once and not moved:
            break
    click.echo(f"drained {total} entries", err=True)


def init_app(app: Flask) -> None:
    """Register this package's CLI commands."""
    app.cli.add_command(drain)
