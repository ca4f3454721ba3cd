"""Faults in the delivery pipeline: every recipient still gets each message exactly once.

Killed workers, a flushed Redis, racing schedulers and workers, an SMTP server that is down,
and an SES account out of quota. Workers here are real `flask worker` subprocesses where the
fault is about processes; the SMTP server is a real aiosmtpd on loopback.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import boto3
import pytest
import redis
from moto.server import ThreadedMotoServer
from sqlalchemy import select

from campaigns import ledger, lifecycle, sending
from campaigns.models import Send
from campaigns.sending import enqueue_batches, scheduler_tick, send_queue
from campaigns.worker import make_worker
from core import clock
from core.db import db
from tests.test_pipeline_support import (
    T0,
    campaign_status,
    configured,
    drain,
    flask_process,
    free_port,
    launch_campaign,
    run_flask,
    smtp_server,
    statuses,
    subprocess_env,
)


def _send_ids(campaign_id: int, status: str | None = None) -> set[int]:
    db.session.expire_all()
    query = select(Send.id).where(Send.campaign_id == campaign_id)
    if status:
        query = query.where(Send.status == status)
    return set(db.session.execute(query).scalars())


@pytest.mark.slow
def test_worker_killed_mid_batch_resends_only_uncommitted_rows(app, capsys):
    clock.freeze(T0)
    with smtp_server(delay=0.004) as (smtp, port), configured(
        app, DELIVERY_BACKEND="smtp", SMTP_PORT=str(port)
    ):
        launched = launch_campaign(300)
        queue = send_queue(make_worker(app).connection)
        assert scheduler_tick(queue, batch_size=50)["jobs"] == 6

        worker = flask_process(["worker"], subprocess_env(app, port, clock.now()))
        deadline = time.monotonic() + 60
        while smtp.count() < 85 and time.monotonic() < deadline:
            time.sleep(0.01)
        worker.kill()  # SIGKILL: no cleanup, no chance to commit anything
        worker.communicate(timeout=10)
        assert 85 <= smtp.count() < 300, "the kill must land mid-campaign"

        committed_before = _send_ids(launched.campaign_id, "sent")
        assert statuses(launched.campaign_id)["claimed"] > 0  # a batch was cut off mid-way

        # The dead worker's lease runs out; the scheduler hands its rows out again.
        clock.advance(seconds=ledger.DEFAULT_LEASE_SECONDS + 60)
        assert scheduler_tick(queue, batch_size=50).get("reaped", 0) > 0
        run_flask(["worker", "--burst"], subprocess_env(app, port, clock.now()))
        drain(app)

        assert statuses(launched.campaign_id) == {"sent": 300}
        received = smtp.send_ids()
        assert set(received) == _send_ids(launched.campaign_id)
        # What was committed as sent before the kill was never sent again.
        assert all(received[i] == 1 for i in committed_before)
        duplicates = sum(n - 1 for n in received.values())
        # Only the accept-to-commit window (at most one commit group) can repeat a message.
        assert duplicates <= sending.COMMIT_EVERY
    with capsys.disabled():
        print(f"\n[kill test] {len(committed_before)} committed before SIGKILL, "
              f"duplicates from the accept-to-commit window: {duplicates}")


def test_redis_flushed_mid_send_only_delays_mail(app):
    clock.freeze(T0)
    with smtp_server() as (smtp, port), configured(
        app, DELIVERY_BACKEND="smtp", SMTP_PORT=str(port)
    ):
        launched = launch_campaign(100)
        queue = send_queue(make_worker(app).connection)
        assert scheduler_tick(queue, batch_size=25)["jobs"] == 4
        make_worker(app, queue.connection).work(burst=True, max_jobs=1, logging_level="WARNING")
        assert smtp.count() == 25

        redis.Redis.from_url(app.config["REDIS_URL"]).flushdb()  # every queued job is gone
        drain(app)
        assert smtp.count() == 25 and statuses(launched.campaign_id) == {"sent": 25,
                                                                           "queued": 75}
        clock.advance(seconds=ledger.DEFAULT_ENQUEUE_SECONDS + 1)
        drain(app)
        assert statuses(launched.campaign_id) == {"sent": 100}
        assert smtp.count() == 100 and set(smtp.send_ids().values()) == {1}


@pytest.mark.slow
def test_two_schedulers_and_two_workers_send_each_row_once(app):
    clock.freeze(T0)
    with smtp_server(delay=0.001) as (smtp, port), configured(
        app, DELIVERY_BACKEND="smtp", SMTP_PORT=str(port)
    ):
        launched = launch_campaign(300)
        env = subprocess_env(app, port, clock.now())
        schedulers = [flask_process(["scheduler", "--once", "--batch-size", "20"], env)
                      for _ in range(2)]
        for proc in schedulers:
            out, _ = proc.communicate(timeout=60)
            assert proc.returncode == 0, out
        # Every row rung a second time, as if a third scheduler raced the first two.
        queue = send_queue(make_worker(app).connection)
        ids = sorted(_send_ids(launched.campaign_id))
        enqueue_batches(queue, [ids[i:i + 20] for i in range(0, len(ids), 20)])

        workers = [flask_process(["worker", "--burst"], env),
                   flask_process(["worker", "--burst", "--processes", "2"], env)]
        for proc in workers:
            out, _ = proc.communicate(timeout=120)
            assert proc.returncode == 0, out
        assert statuses(launched.campaign_id) == {"sent": 300}
        received = smtp.send_ids()
        assert len(received) == 300 and set(received.values()) == {1}


def test_smtp_server_down_then_back_delivers_each_row_once(app):
    clock.freeze(T0)
    port = free_port()
    with configured(app, DELIVERY_BACKEND="smtp", SMTP_PORT=str(port)):
        launched = launch_campaign(10)
        drain(app)  # nobody listens on the port
        assert statuses(launched.campaign_id) == {"retry": 10}
        rows = db.session.execute(
            select(Send).where(Send.campaign_id == launched.campaign_id)).scalars().all()
        assert all(r.attempts == 1 and r.last_error and r.due_at > T0 for r in rows)

        clock.advance(minutes=1)  # first backoff is 30-60 s: due again, still down
        drain(app)
        assert statuses(launched.campaign_id) == {"retry": 10}

        with smtp_server(port=port) as (smtp, _):
            drain(app)
            assert smtp.count() == 0  # backoff not elapsed yet: nothing is hammered
            clock.advance(hours=1)
            drain(app)
            assert statuses(launched.campaign_id) == {"sent": 10}
            assert smtp.count() == 10 and set(smtp.send_ids().values()) == {1}


class _QuotaAfter:
    """botocore before-call hook: let `allowed` SendEmail calls reach moto, then refuse."""

    def __init__(self, allowed: int) -> None:
        self.allowed = allowed
        self.calls = 0

    def __call__(self, **kwargs):  # noqa: ANN003, ANN204
        self.calls += 1
        if self.calls <= self.allowed:
            return None
        error = {"Error": {"Code": "LimitExceededException",
                           "Message": "Daily message quota exceeded."},
                 "ResponseMetadata": {"HTTPStatusCode": 400}}
        return SimpleNamespace(status_code=400, headers={}), error


def test_ses_quota_pauses_the_campaign_with_a_reason(app, monkeypatch):
    clock.freeze(T0)
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(name, value)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    hook = _QuotaAfter(allowed=3)
    session = boto3._get_default_session()
    session.events.register("before-call.sesv2.SendEmail", hook)
    try:
        boto3.client("ses", region_name="us-east-1", endpoint_url=endpoint).verify_email_identity(
            EmailAddress="news@acme.example")
        with configured(app, DELIVERY_BACKEND="ses", SES_ENDPOINT_URL=endpoint,
                        SES_REGION="us-east-1", BRAND_FROM_EMAIL="news@acme.example"):
            launched = launch_campaign(8)
            drain(app)
            status, reason = campaign_status(launched.campaign_id)
            assert (status, reason) == ("paused", "SES daily quota exceeded")
            counts = statuses(launched.campaign_id)
            assert counts["sent"] == 3 and counts["sent"] + counts["queued"] + counts[
                "retry"] == 8
            # Nothing counted against the recipients: the refused attempt was handed back.
            rows = db.session.execute(select(Send).where(
                Send.campaign_id == launched.campaign_id, Send.status != "sent")).scalars().all()
            assert all(r.attempts == 0 for r in rows)

            hook.allowed = 10**6  # a new day: the quota is back
            campaign = lifecycle.get_campaign(launched.campaign_id)
            lifecycle.resume_campaign(campaign)
            drain(app)
            assert statuses(launched.campaign_id) == {"sent": 8}
    finally:
        session.events.unregister("before-call.sesv2.SendEmail", hook)
        server.stop()
