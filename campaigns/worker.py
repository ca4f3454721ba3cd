"""Running the delivery pipeline: the scheduler tick, RQ workers and the embedded loop.

- Scale-out (REDIS_URL set): `flask scheduler` moves due send ids to the `sends` queue in
  batches; `flask worker` runs non-forking RQ workers with the app preloaded (one app per
  process; N processes via fork, each disposing the engine pool it inherited).
- Embedded (REDIS_URL empty, `make run`): `flask worker` runs one loop that does the scheduler's
  housekeeping and calls the delivery code directly; nothing else to install.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import time
from pathlib import Path
from typing import Any

from flask import Flask
from redis import Redis
from rq import Queue, SimpleWorker
from rq.job import Job

from campaigns import ledger, tasks
from core.db import db

log = logging.getLogger(__name__)

QUEUE_NAME = "sends"
# A job must end before its rows' lease does, or another worker could take them over.
JOB_TIMEOUT = ledger.DEFAULT_LEASE_SECONDS - 30
ENQUEUE_GROUP = 50  # batches per Redis pipeline


def redis_connection(app: Flask) -> Redis:
    """Return a Redis client for the app's REDIS_URL."""
    return Redis.from_url(app.config["REDIS_URL"])


def send_queue(connection: Redis) -> Queue:
    """Return the queue send batches travel on."""
    return Queue(QUEUE_NAME, connection=connection)


def enqueue_batches(queue: Queue, batches: list[list[int]]) -> int:
    """Enqueue one `send_batch` job per batch of ids through one pipeline; return jobs."""
    for start in range(0, len(batches), ENQUEUE_GROUP):
        group = batches[start:start + ENQUEUE_GROUP]
        with queue.connection.pipeline() as pipe:
            queue.enqueue_many(
                [
                    Queue.prepare_data(
                        tasks.send_batch, args=(ids,), timeout=JOB_TIMEOUT, result_ttl=0,
                        failure_ttl=7 * 86400, description=f"send_batch({len(ids)} sends)",
                    )
                    for ids in group
                ],
                pipeline=pipe,
            )
            pipe.execute()
    return len(batches)


def housekeeping() -> dict[str, int]:
    """Start scheduled campaigns, reap expired leases, tidy and complete; return counts."""
    counts = {
        "started": ledger.start_scheduled_campaigns(),
        "reaped": ledger.reap_expired_leases(),
        "tidied": ledger.tidy_stopped_campaigns(),
        "completed": sum(ledger.complete_if_done(cid) for cid in ledger.running_campaign_ids()),
    }
    return {k: v for k, v in counts.items() if v}


def scheduler_tick(
    queue: Queue,
    batch_size: int = 200,
    enqueue_seconds: float = ledger.DEFAULT_ENQUEUE_SECONDS,
) -> dict[str, int]:
    """Run one scheduler pass: housekeeping, then hand every due row to the queue as ids."""
    counts = housekeeping()
    rows = jobs = 0
    while True:
        ids = ledger.take_due_ids(batch_size * ENQUEUE_GROUP, enqueue_seconds)
        if not ids:
            break
        batches = [ids[i:i + batch_size] for i in range(0, len(ids), batch_size)]
        try:
            jobs += enqueue_batches(queue, batches)
        except Exception:  # noqa: BLE001 - Redis down: the rows' marks expire, mail is delayed
            log.exception("could not enqueue %s sends; they come due again later", len(ids))
            counts["enqueue_failed"] = len(ids)
            break
        rows += len(ids)
        if len(ids) < batch_size * ENQUEUE_GROUP:
            break
    if rows:
        counts.update(enqueued=rows, jobs=jobs)
    return counts


def run_scheduler(
    app: Flask, *, once: bool, interval: float, batch_size: int, enqueue_seconds: float
) -> None:
    """Run scheduler ticks forever (or once), logging what each tick did."""
    queue = send_queue(redis_connection(app))
    while True:
        with app.app_context():
            try:
                counts = scheduler_tick(queue, batch_size, enqueue_seconds)
            finally:
                db.session.remove()
        if counts:
            log.info("scheduler: %s", counts)
        if once:
            return
        time.sleep(interval)


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
    """Return an AppWorker on the sends queue."""
    connection = connection or redis_connection(app)
    return AppWorker([send_queue(connection)], connection=connection, app=app)


def write_stats() -> None:
    """Write this process's phase timings and peak RSS to $LASTMILE_STATS_DIR (benchmarks)."""
    directory = os.environ.get("LASTMILE_STATS_DIR")
    if not directory:
        return
    peak_kb = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak_kb = int(line.split()[1])
    stats = {**tasks.STATS, "peak_rss_kb": peak_kb, "pid": os.getpid()}
    Path(directory, f"worker-{os.getpid()}.json").write_text(json.dumps(stats))


def _work(app: Flask, burst: bool, forked: bool) -> None:
    if forked:
        with app.app_context():
            # Connections inherited from the parent must not be shared with it.
            db.engine.dispose(close=False)
    worker = make_worker(app)
    try:
        worker.work(burst=burst, logging_level=os.environ.get("LOG_LEVEL", "INFO"))
    finally:
        tasks.drop_backend()
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
    lease_seconds: float = ledger.DEFAULT_LEASE_SECONDS,
) -> dict[str, int]:
    """Run scheduler and delivery in this process without Redis; return totals in burst mode."""
    totals: dict[str, int] = {}
    while True:
        worked = False
        with app.app_context():
            try:
                for key, n in housekeeping().items():
                    totals[key] = totals.get(key, 0) + n
                while True:
                    counts = tasks.deliver_due(limit=batch_size, lease_seconds=lease_seconds)
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
            finally:
                db.session.remove()
        if burst and not worked:
            tasks.drop_backend()
            write_stats()
            return totals
        if not worked:
            time.sleep(interval)
