"""Shared pieces of the pipeline tests: a recording SMTP server, a launched campaign, drains.

Helpers only (no tests here); test_pipeline_*.py modules import them.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller
from flask import Flask
from sqlalchemy import select

from accounts.models import Partner, User
from campaigns import ledger, lifecycle, members
from campaigns.models import Campaign, Contact, Send
from campaigns.sending import scheduler_tick, send_queue
from campaigns.worker import make_worker
from core import clock
from core.db import db
from journeys import services as journeys
from tests.builders import make_partner, make_user

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2030, 3, 4, 9, 0, 0)

MJML = """<mjml>
  <mj-body>
    <mj-section>
      <mj-column>
        <mj-text font-size="20px">{{ brand.name }} with {{ partner.name }}</mj-text>
        <mj-text>Dear {{ contact.first_name }}, {{ slots.intro }}</mj-text>
        <mj-button href="https://brand.example/book">Book a call</mj-button>
        <mj-text>Locked brand paragraph: rates subject to change.
          <a href="{{ unsubscribe_url }}">Unsubscribe</a></mj-text>
      </mj-column>
    </mj-section>
  </mj-body>
</mjml>"""
SLOTS = [{"name": "intro", "type": "text", "label": "Intro", "default": "welcome aboard.",
          "max_length": 80}]


def free_port() -> int:
    """Return a loopback TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Recorder:
    """aiosmtpd handler keeping every accepted message; refuses listed recipients."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.refuse: dict[str, str] = {}
        self.messages: list[bytes] = []
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: ANN001
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001
        if self.delay:
            await asyncio.sleep(self.delay)
        with self.lock:
            self.messages.append(envelope.original_content or envelope.content)
        return "250 2.0.0 accepted"

    def parsed(self) -> list[EmailMessage]:
        with self.lock:
            raw = list(self.messages)
        return [message_from_bytes(m, policy=policy.default) for m in raw]  # type: ignore[misc]

    def send_ids(self) -> Counter:
        return Counter(int(m["X-Lastmile-Send-Id"]) for m in self.parsed())

    def count(self) -> int:
        with self.lock:
            return len(self.messages)


@contextmanager
def smtp_server(port: int | None = None, delay: float = 0.0):
    """Run a recording aiosmtpd server on loopback; yield (recorder, port)."""
    recorder = Recorder(delay)
    port = port or free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield recorder, port
    finally:
        controller.stop()


@contextmanager
def configured(app: Flask, **overrides: object):
    """Apply app.config overrides for the duration of a test, then restore them."""
    saved = {key: app.config.get(key) for key in overrides}
    app.config.update(overrides)
    try:
        yield app
    finally:
        app.config.update(saved)


@dataclass
class Launched:
    campaign_id: int
    journey_id: int
    partner: Partner
    user: User
    contacts: list[Contact] = field(default_factory=list)
    version_ids: list[int] = field(default_factory=list)


def launch_campaign(
    n_contacts: int,
    steps: list[tuple[float, str]] = ((0, "always"),),  # type: ignore[assignment]
    partner: Partner | None = None,
    prefix: str = "person",
) -> Launched:
    """Publish a journey of `steps` (delay_hours, when), fill a campaign and launch it."""
    marketer, _ = make_user("brand_marketer")
    partner = partner or make_partner(name=f"Harbor {prefix}")
    user, _ = make_user("partner_admin", partner)
    template_ids = []
    version_ids = []
    for i, _step in enumerate(steps):
        subject = f"Step {i} for {{{{ contact.first_name }}}}"
        version = journeys.create_template(f"Step {i}", subject, "", MJML, SLOTS,
                                           created_by=marketer.id)
        published = journeys.publish_template(version.template_id)
        template_ids.append(version.template_id)
        version_ids.append(published.id)
    journey = journeys.create_journey(
        name=f"Journey {prefix}",
        steps=[{"template_id": tid, "delay_hours": delay, "when": when}
               for tid, (delay, when) in zip(template_ids, steps, strict=True)],
        created_by=marketer.id,
    )
    journeys.publish_journey(journey.id)
    contacts = [
        Contact(partner_id=partner.id, email=f"{prefix}{n}@example.org",
                first_name=f"Fn{prefix}{n}", last_name="Tester", consent=True, attributes={})
        for n in range(n_contacts)
    ]
    db.session.add_all(contacts)
    db.session.commit()
    campaign = lifecycle.create_campaign(partner, user, {
        "journey_id": journey.id, "name": f"Campaign {prefix}",
        "slot_values": {"intro": "let us talk about your plans."},
        "sender": {"name": "Dana Advisor", "reply_to": "dana@harbor.example"},
    })
    members.add_members(campaign, [c.id for c in contacts])
    lifecycle.launch_campaign(campaign)
    ledger.start_scheduled_campaigns()  # the scheduler's first tick queues step 0
    return Launched(campaign.id, journey.id, partner, user, contacts, version_ids)


def drain(app: Flask, batch_size: int = 20, rounds: int = 50) -> None:
    """Run scheduler ticks and a burst worker until a tick finds nothing to enqueue."""
    queue = send_queue(make_worker(app).connection)
    for _ in range(rounds):
        counts = scheduler_tick(queue, batch_size=batch_size)
        make_worker(app, queue.connection).work(burst=True, logging_level="WARNING")
        if not counts.get("enqueued"):
            return
    raise AssertionError("the queue never drained")


def statuses(campaign_id: int) -> Counter:
    """Return a Counter of send statuses of a campaign (fresh from the database)."""
    db.session.expire_all()
    return Counter(db.session.execute(
        select(Send.status).where(Send.campaign_id == campaign_id)).scalars())


def campaign_status(campaign_id: int) -> tuple[str, str]:
    db.session.expire_all()
    campaign = db.session.get(Campaign, campaign_id)
    assert campaign is not None
    return campaign.status, campaign.status_reason


def subprocess_env(app: Flask, smtp_port: int, now: datetime) -> dict[str, str]:
    """Return the environment a `flask --app app ...` subprocess needs to join this test."""
    env = dict(os.environ)
    env.update({
        "DATABASE_URL": app.config["DATABASE_URL"],
        "REDIS_URL": app.config["REDIS_URL"],
        "SECRET_KEY": app.config["SECRET_KEY"],
        "PUBLIC_BASE_URL": app.config["PUBLIC_BASE_URL"],
        "DELIVERY_BACKEND": "smtp",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_port),
        "LASTMILE_NOW": now.isoformat(),
        "LOG_LEVEL": "WARNING",
    })
    return env


def flask_process(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    """Start `python -m flask --app app ARGS` in the repository."""
    return subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "app", *args],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )


def run_flask(args: list[str], env: dict[str, str], timeout: float = 120) -> str:
    """Run a flask command to completion; return its output (fail on a non-zero exit)."""
    proc = flask_process(args, env)
    out, _ = proc.communicate(timeout=timeout)
    text = out.decode("utf-8", "replace")
    assert proc.returncode == 0, text
    return text


__all__ = ["T0", "clock"]
