"""The processes that run the send path: the scheduler loop, RQ workers, the embedded loop.

- Scale-out (REDIS_URL set): `flask scheduler` moves due send ids to the `sends` queue in
  batches; `flask worker` runs non-forking RQ workers with the app preloaded (one app per
  process; N processes via fork, each disposing the engine pool it inherited).
- Embedded (REDIS_URL empty, `make run`): `flask worker` runs one loop that does the scheduler's
  housekeeping and calls the delivery code directly; nothing else to install.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import os
import signal
import time
from pathlib import Path
from typing import Any

import redis
from flask import Flask
from redis import Redis
from rq import Queue, SimpleWorker
from rq.job import Job

from campaigns import sending
from campaigns.contacts_import import (
    import_queue,
    next_queued_import,
    recover_stale_imports,
    run_import_job,
)
from campaigns.sending import housekeeping, scheduler_tick, send_queue
from core.backoff import Backoff
from core.db import db
from core.redis import redis_client
from delivery.backends import drop_backend

log = logging.getLogger(__name__)


def redis_connection(app: Flask) -> Redis:
    """Return the Redis client RQ uses for the app's REDIS_URL (blocking reads: no timeout)."""
    return redis_client(app.config["REDIS_URL"])


def run_scheduler(
    app: Flask, *, once: bool, interval: float, batch_size: int, enqueue_seconds: float
) -> None:
    """Run scheduler ticks forever (or once), logging what each tick did.

    A tick that fails (the database or Redis is away) is logged and tried again with backoff;
    the process lives on. With `once` the failure is raised.
    """
    queue = send_queue(redis_connection(app))
    backoff = Backoff()
    while True:
        counts: dict[str, int] = {}
        with app.app_context():
            try:
                counts = scheduler_tick(queue, batch_size, enqueue_seconds)
                counts.update(recover_stale_imports())
            except Exception as exc:
                if once:
                    raise
                delay = backoff.failed()
                log.warning("scheduler: tick failed (%s); retrying in %.1f s", _reason(exc), delay)
                time.sleep(delay)
                continue
            finally:
                with contextlib.suppress(Exception):  # the database may be what failed
                    db.session.remove()
        if backoff.failures:
            log.warning("scheduler: working again after %s failed ticks", backoff.failures)
        backoff.succeeded()
        if counts:
            log.info("scheduler: %s", counts)
        if once:
            return
        time.sleep(interval)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


class AppWorker(SimpleWorker):
    """A non-forking RQ worker that runs every job inside the preloaded app's context."""

    def __init__(self, *args: Any, app: Flask, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.app = app

    def execute_job(self, job: Job, queue: Queue) -> None:
        """Run the job in a fresh app context, dropping the session afterwards."""
        with self.app.app_context():
            try:
                super().execute_job(job, queue)
            finally:
                db.session.remove()


def make_worker(app: Flask, connection: Redis | None = None) -> AppWorker:
    """Return an AppWorker on the sends queue, then the contact imports queue.

    Sends come first: a worker takes an import only when no send batch is waiting.
    """
    connection = connection or redis_connection(app)
    return AppWorker([send_queue(connection), import_queue(connection)],
                     connection=connection, app=app)


def write_stats() -> None:
    """Write this process's phase timings and peak RSS to $LASTMILE_STATS_DIR (benchmarks)."""
    directory = os.environ.get("LASTMILE_STATS_DIR")
    if not directory:
        return
    peak_kb = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak_kb = int(line.split()[1])
    stats = {**sending.STATS, "peak_rss_kb": peak_kb, "pid": os.getpid()}
    Path(directory, f"worker-{os.getpid()}.json").write_text(json.dumps(stats))


def _work(app: Flask, burst: bool, forked: bool) -> None:
    if forked:
        with app.app_context():
            # Connections inherited from the parent must not be shared with it.
            db.engine.dispose(close=False)
    backoff = Backoff()
    try:
        while True:
            started = time.monotonic()
            worker = make_worker(app)
            try:
                worker.work(burst=burst, logging_level=os.environ.get("LOG_LEVEL", "INFO"))
            except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError) as exc:
                log.warning("worker: Redis failed (%s)", _reason(exc))
            else:
                # RQ leaves its loop when asked to stop, when a burst is done, and also on a
                # Redis timeout or an unexpected error: only the first two end this process.
                if burst or getattr(worker, "_stop_requested", False):
                    return
                log.warning("worker: RQ's loop ended unexpectedly")
            if time.monotonic() - started > 60:
                backoff.succeeded()
            delay = backoff.failed()
            log.warning("worker: starting again in %.1f s", delay)
            time.sleep(delay)
    finally:
        drop_backend()
        write_stats()


def run_workers(app: Flask, *, processes: int, burst: bool) -> None:
    """Run `processes` RQ workers (forked when more than one) until stopped or drained."""
    if processes <= 1:
        _work(app, burst, forked=False)
        return
    context = multiprocessing.get_context("fork")
    children = [
        context.Process(target=_work, args=(app, burst, True), name=f"lastmile-worker-{n}")
        for n in range(processes)
    ]
    for child in children:
        child.start()
    log.info("started %s worker processes: %s", processes, [c.pid for c in children])

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            if child.pid and child.is_alive():
                os.kill(child.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for child in children:
        child.join()


def run_embedded(
    app: Flask, *, burst: bool, interval: float, batch_size: int,
) -> dict[str, int]:
    """Run scheduler and delivery in this process without Redis; return totals in burst mode."""
    totals: dict[str, int] = {}
    backoff = Backoff()
    while True:
        worked = False
        with app.app_context():
            try:
                for key, n in housekeeping().items():
                    totals[key] = totals.get(key, 0) + n
                for key, n in recover_stale_imports().items():
                    totals[key] = totals.get(key, 0) + n
                # Without Redis the database is the imports queue: run what is waiting.
                while (import_id := next_queued_import()) is not None:
                    run_import_job(import_id)
                    totals["imports"] = totals.get("imports", 0) + 1
                    worked = True
                while True:
                    counts = sending.deliver_due(limit=batch_size)
                    if not counts:
                        break
                    if set(counts) <= {"rate_limited"}:
                        # Over the limit: the held rows come due in a second.
                        worked = True
                        time.sleep(min(interval, 0.2))
                        break
                    worked = True
                    for key, n in counts.items():
                        totals[key] = totals.get(key, 0) + n
                for key, n in housekeeping().items():
                    totals[key] = totals.get(key, 0) + n
            except Exception as exc:
                if burst:
                    raise
                # The database is away (or one pass failed): the ledger keeps every row.
                delay = backoff.failed()
                log.warning("worker: pass failed (%s); retrying in %.1f s", _reason(exc), delay)
                time.sleep(delay)
                continue
            finally:
                with contextlib.suppress(Exception):
                    db.session.remove()
        backoff.succeeded()
        if burst and not worked:
            drop_backend()
            write_stats()
            return totals
        if not worked:
            time.sleep(interval)
