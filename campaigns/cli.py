"""CLI commands of the campaigns package: the scheduler and the delivery workers."""

from __future__ import annotations

import logging

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from campaigns import ledger
from campaigns.worker import run_embedded, run_scheduler, run_workers

log = logging.getLogger(__name__)


@click.command("scheduler")
@click.option("--once", is_flag=True, help="Run a single tick and exit.")
@click.option("--interval", default=1.0, show_default=True, type=float,
              help="Seconds to sleep between ticks.")
@click.option("--batch-size", default=200, show_default=True, type=click.IntRange(1, 5000),
              help="Send ids per queued job.")
@click.option("--enqueue-timeout", default=float(ledger.DEFAULT_ENQUEUE_SECONDS),
              show_default=True, type=float,
              help="Seconds after which a queued row whose job never ran is queued again.")
@with_appcontext
def scheduler_command(once: bool, interval: float, batch_size: int,
                      enqueue_timeout: float) -> None:
    """Move due sends to the Redis queue as batches of ids, reap expired leases."""

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if not app.config.get("REDIS_URL"):
        raise click.UsageError(
            "REDIS_URL is empty (embedded mode): `flask worker` schedules and sends by itself."
        )
    click.echo(f"scheduler: queue 'sends' on {app.config['REDIS_URL']}, batch {batch_size}")
    run_scheduler(app, once=once, interval=interval, batch_size=batch_size,
                  enqueue_seconds=enqueue_timeout)


@click.command("worker")
@click.option("--burst", is_flag=True, help="Exit once nothing is left to do.")
@click.option("--processes", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Worker processes to run (RQ mode).")
@click.option("--interval", default=1.0, show_default=True, type=float,
              help="Embedded mode: seconds to sleep when nothing is due.")
@click.option("--batch-size", default=200, show_default=True, type=click.IntRange(1, 5000),
              help="Embedded mode: sends claimed per batch.")
@with_appcontext
def worker_command(burst: bool, processes: int, interval: float, batch_size: int) -> None:
    """Deliver mail and run contact imports: RQ workers, or the embedded loop without Redis."""

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if app.config.get("REDIS_URL"):
        click.echo(f"worker: {processes} process(es) on queue 'sends'"
                   f"{' (burst)' if burst else ''}")
        run_workers(app, processes=processes, burst=burst)
        return
    click.echo("worker: embedded mode (no REDIS_URL): scheduling and sending in-process")
    totals = run_embedded(app, burst=burst, interval=interval, batch_size=batch_size)
    if burst:
        click.echo(f"worker: done {totals}")


def init_app(app: Flask) -> None:
    """Register this package's CLI commands."""
    app.cli.add_command(scheduler_command)
    app.cli.add_command(worker_command)
