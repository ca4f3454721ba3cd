"""Long-running processes ride out failures: short heartbeat-renewed leases, a killed worker's
rows retried within one lease, a slow live job keeping its rows, and `flask dev`'s supervisor
restarting a component that exits."""

from __future__ import annotations

import sys
import threading
import time

import pytest
from sqlalchemy import select

from campaigns import ledger, sending
from campaigns.models import Send
from campaigns.sending import scheduler_tick, send_queue
from campaigns.worker import make_worker
from core import clock
from core.db import db
from delivery import backends
from demo.supervisor import Supervisor
from tests.test_pipeline_support import (
    T0,
    configured,
    drain,
    flask_process,
    launch_campaign,
    run_flask,
    smtp_server,
    statuses,
    subprocess_env,
)


def _sent_ids(campaign_id: int) -> set[int]:
    db.session.expire_all()
    return set(db.session.execute(select(Send.id).where(
        Send.campaign_id == campaign_id, Send.status == "sent")).scalars())


@pytest.mark.slow
def test_a_killed_workers_rows_are_retried_after_one_short_lease(app, capsys):
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
        worker.kill()  # SIGKILL: no cleanup, its heartbeat stops with it
        worker.communicate(timeout=10)
        committed_before = _sent_ids(launched.campaign_id)
        assert statuses(launched.campaign_id)["claimed"] > 0

        clock.advance(seconds=ledger.DEFAULT_LEASE_SECONDS - 5)
        assert "reaped" not in scheduler_tick(queue, batch_size=50)  # the lease still holds
        # One short lease later (was 300 s) the dead worker's rows come due again.
        clock.advance(seconds=6)
        assert scheduler_tick(queue, batch_size=50).get("reaped", 0) > 0
        run_flask(["worker", "--burst"], subprocess_env(app, port, clock.now()))
        drain(app)

        assert statuses(launched.campaign_id) == {"sent": 300}
        received = smtp.send_ids()
        assert all(received[i] == 1 for i in committed_before)
        duplicates = sum(n - 1 for n in received.values())
        assert duplicates <= sending.COMMIT_EVERY
    with capsys.disabled():
        print(f"\n[short lease] rows retried {ledger.DEFAULT_LEASE_SECONDS} s after SIGKILL "
              f"(was 300 s); duplicates from the accept-to-commit window: {duplicates}")


def test_a_slow_live_job_keeps_its_rows_past_the_lease(app):
    # Real time: 16 messages at 0.5 s each take ~8 s, twice a 4 s lease; the heartbeat keeps
    # the claim while another worker keeps trying to reap and take the rows.
    lease = 4
    with smtp_server(delay=0.5) as (smtp, port), configured(
        app, DELIVERY_BACKEND="smtp", SMTP_PORT=str(port)
    ):
        launched = launch_campaign(16)
        result: dict = {}

        def job() -> None:
            with app.app_context():
                try:
                    result["counts"] = sending.deliver_due(limit=16, lease_seconds=lease)
                finally:
                    backends.drop_backend()
                    db.session.remove()

        worker = threading.Thread(target=job)
        worker.start()
        while statuses(launched.campaign_id)["queued"]:  # until the job has claimed them all
            assert worker.is_alive(), result
            db.session.remove()
            worker.join(timeout=0.02)
        reaped, stolen = 0, []
        while worker.is_alive():
            reaped += ledger.reap_expired_leases()
            stolen += ledger.claim_batch(16, lease)  # a second worker wanting due rows
            db.session.remove()
            worker.join(timeout=0.2)
        assert (reaped, stolen) == (0, [])
        assert result["counts"] == {"sent": 16}
        assert statuses(launched.campaign_id) == {"sent": 16}
        assert set(smtp.send_ids().values()) == {1}


def test_the_dev_supervisor_starts_again_a_component_that_exits(tmp_path):
    marks = tmp_path / "starts"
    dies = [sys.executable, "-c", f"open({str(marks)!r}, 'a').write('x'); raise SystemExit(3)"]
    lives = [sys.executable, "-c", "import time; time.sleep(600)"]
    said: list[str] = []
    supervisor = Supervisor({"dies": dies, "lives": lives}, first_delay=0.05, cap=0.2,
                            say=said.append)
    supervisor.start()
    steady = supervisor.children["lives"].pid
    stop = threading.Event()
    runner = threading.Thread(target=supervisor.run, args=(stop.is_set, 0.02))
    runner.start()
    try:
        deadline = time.monotonic() + 60
        while not (marks.exists() and len(marks.read_text()) >= 3):
            assert time.monotonic() < deadline, said
            time.sleep(0.02)
    finally:
        stop.set()
        runner.join(timeout=10)
        supervisor.stop()
    assert supervisor.restarts["dies"] >= 2 and supervisor.restarts["lives"] == 0
    assert supervisor.children["lives"].pid == steady
    assert "dies exited with code 3; starting it again in" in said[0]
