"""Benchmark: a whole campaign through scheduler + 2 worker processes into a local SMTP sink.

Runs a 10,000- and a 100,000-recipient campaign on PostgreSQL (database lastmile_bench_send,
created if missing, schema reset each run) and Redis db 13, prints end-to-end messages/s,
where the workers spent their time (rendering, building MIME, talking SMTP, the database),
each worker's peak RSS (flat in the number of recipients), and a baseline in the same run:
raw smtplib sending one prebuilt message of the same size from 2 processes to the same sink.

    python bench/send.py [--recipients 10000 --recipients 100000]

The sink is Postfix's C `smtp-sink` when installed (apt-get install postfix), otherwise a
minimal asyncio sink in its own process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_SERVER = os.environ.get("BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
DB_NAME = "lastmile_bench_send"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
WORKERS = 2
BATCH = 500
TARGET = 1000.0

MJML = """<mjml>
  <mj-body>
    <mj-section><mj-column>
      <mj-text font-size="20px">{{ brand.name }} with {{ partner.name }}</mj-text>
      <mj-text>Dear {{ contact.first_name }}, {{ slots.intro }}</mj-text>
      <mj-button href="https://brand.example/book">Book a call</mj-button>
      <mj-text>Rates are subject to change. Past performance does not guarantee results.
        Read the <a href="https://brand.example/legal">legal notice</a> and the
        <a href="https://brand.example/privacy">privacy policy</a>.
        <a href="{{ unsubscribe_url }}">Unsubscribe</a></mj-text>
    </mj-column></mj-section>
  </mj-body>
</mjml>"""
SLOTS = [{"name": "intro", "type": "text", "label": "Intro", "default": "welcome.",
          "max_length": 200}]


# ------------------------------------------------------------------------------- SMTP sinks


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"220 sink ESMTP\r\n")
    while True:
        line = await reader.readline()
        if not line:
            break
        verb = line[:4].upper()
        if verb == b"EHLO":
            writer.write(b"250-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 52428800\r\n")
        elif verb == b"DATA":
            writer.write(b"354 go ahead\r\n")
            await writer.drain()
            await reader.readuntil(b"\r\n.\r\n")
            writer.write(b"250 2.0.0 queued\r\n")
        elif verb == b"QUIT":
            writer.write(b"221 bye\r\n")
            await writer.drain()
            break
        else:  # HELO, MAIL, RCPT, RSET, NOOP
            writer.write(b"250 ok\r\n")
        await writer.drain()
    writer.close()


def _python_sink(port: int) -> None:
    async def main() -> None:
        server = await asyncio.start_server(_session, "127.0.0.1", port, limit=1 << 24)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


class Sink:
    """A local SMTP sink: Postfix smtp-sink if installed, else the asyncio one."""

    def __init__(self) -> None:
        self.port = free_port()
        binary = shutil.which("smtp-sink") or (
            "/usr/sbin/smtp-sink" if Path("/usr/sbin/smtp-sink").exists() else None)
        if binary:
            self.kind = "postfix smtp-sink"
            args = [binary]
            if os.geteuid() == 0:
                args += ["-u", "nobody"]
            self.proc = subprocess.Popen([*args, f"127.0.0.1:{self.port}", "256"],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.process = None
        else:
            self.kind = "asyncio sink (install postfix for smtp-sink)"
            self.proc = None
            self.process = multiprocessing.get_context("fork").Process(
                target=_python_sink, args=(self.port,), daemon=True)
            self.process.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the SMTP sink did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        if self.process is not None:
            self.process.terminate()
            self.process.join(timeout=10)


# ------------------------------------------------------------------------------- baseline


def _baseline_worker(port: int, data: bytes, count: int) -> None:
    conn = smtplib.SMTP("127.0.0.1", port)
    for _ in range(count):
        conn.sendmail("news@acme.example", ["someone@example.org"], data)
    conn.quit()


def baseline(port: int, data: bytes, total: int) -> float:
    """Send `total` copies of one prebuilt message from WORKERS processes; return msgs/s."""
    context = multiprocessing.get_context("fork")
    procs = [context.Process(target=_baseline_worker, args=(port, data, total // WORKERS))
             for _ in range(WORKERS)]
    started = time.perf_counter()
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
    return (total // WORKERS * WORKERS) / (time.perf_counter() - started)


# ------------------------------------------------------------------------------- the campaign


def reset_database() -> str:
    from sqlalchemy import create_engine, text

    admin = create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"),
                              {"n": DB_NAME}).scalar()
        if not exists:
            conn.execute(text(f'CREATE DATABASE "{DB_NAME}"'))
    admin.dispose()
    url = f"{PG_SERVER}/{DB_NAME}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return url


def env_for(url: str, port: int, stats_dir: str, instance: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "DATABASE_URL": url, "REDIS_URL": REDIS_URL, "SECRET_KEY": "bench-secret",
        "DELIVERY_BACKEND": "smtp", "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port),
        "PUBLIC_BASE_URL": "https://t.acme.example", "LOG_LEVEL": "WARNING",
        "LASTMILE_STATS_DIR": stats_dir, "LASTMILE_INSTANCE": instance,
    })
    env.pop("LASTMILE_NOW", None)
    return env


def prepare(env: dict[str, str], recipients: int) -> tuple[int, bytes]:
    """Create the brand, a partner, a journey and a launched campaign; return (id, sample)."""
    for key in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "LASTMILE_INSTANCE",
                "PUBLIC_BASE_URL"):
        os.environ[key] = env[key]
    import redis
    from sqlalchemy import insert

    from accounts import lists
    from accounts import services as accounts
    from app import create_app
    from campaigns import lifecycle
    from campaigns.models import Campaign, CampaignMember, Contact
    from campaigns.sending import compose_message
    from core import migrate
    from core.db import db
    from delivery.mime import build_message
    from journeys import services as journeys

    redis.Redis.from_url(REDIS_URL).flushdb()
    app = create_app({"DATABASE_URL": env["DATABASE_URL"], "REDIS_URL": REDIS_URL,
                      "SECRET_KEY": env["SECRET_KEY"], "PUBLIC_BASE_URL": env["PUBLIC_BASE_URL"]})
    with app.app_context():
        migrate.upgrade(env["DATABASE_URL"])
        marketer, _ = accounts.create_user("marketer@acme.example", "brand_marketer", None)
        lists.add_name("tier", "gold")  # a partner's tier and region come from the brand's lists
        lists.add_name("region", "west")
        partner = accounts.create_partner(name="Harbor Advisors", tier="gold", region="west")
        user, _ = accounts.create_user("dana@harbor.example", "partner_admin", partner.id)
        version = journeys.create_template("Welcome", "Hello {{ contact.first_name }}", "",
                                           MJML, SLOTS, created_by=marketer.id)
        journeys.publish_template(version.template_id)
        journey = journeys.create_journey(
            name="Welcome", steps=[{"template_id": version.template_id, "delay_hours": 0}],
            created_by=marketer.id)
        journeys.publish_journey(journey.id)
        campaign = lifecycle.create_campaign(partner, user, {
            "journey_id": journey.id, "name": "Bench",
            "slot_values": {"intro": "here is what changes for your savings this spring."},
            "sender": {"name": "Dana Advisor", "reply_to": "dana@harbor.example"}})
        for start in range(0, recipients, 10_000):
            rows = [{"partner_id": partner.id, "email": f"r{n}@example.org",
                     "first_name": f"Reader{n}", "last_name": "Bench", "consent": True,
                     "attributes": {}} for n in range(start, min(recipients, start + 10_000))]
            db.session.execute(insert(Contact), rows)
        db.session.commit()
        contact_ids = [c for (c,) in db.session.execute(
            db.select(Contact.id).order_by(Contact.id)).all()]
        for start in range(0, len(contact_ids), 10_000):
            db.session.execute(insert(CampaignMember), [
                {"campaign_id": campaign.id, "contact_id": cid, "overrides": {}}
                for cid in contact_ids[start:start + 10_000]])
        db.session.commit()
        lifecycle.launch_campaign(db.session.get(Campaign, campaign.id))
        contact = db.session.get(Contact, contact_ids[0])
        rendered = compose_message(campaign, 0, contact, partner, send_id=1, config=app.config)
        sample = build_message(
            message_id="bench.1@acme.example", from_name="Dana Advisor via Acme",
            from_email="news@acme.example", reply_to="dana@harbor.example",
            reply_to_name="Dana Advisor", to=contact.email, subject=rendered.subject,
            html=rendered.html, text=rendered.text,
            list_unsubscribe_url="https://t.acme.example/u/x",
            list_unsubscribe_mailto="mailto:news@acme.example", send_id=1)
        campaign_id = campaign.id
        db.session.remove()
        db.engine.dispose()
    return campaign_id, sample


def sent_count(url: str, campaign_id: int) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM sends WHERE campaign_id = :c AND "
                              "status = 'sent'"), {"c": campaign_id}).scalar()
    engine.dispose()
    return int(n or 0)


def flask(args: list[str], env: dict[str, str]) -> None:
    proc = subprocess.run([sys.executable, "-m", "flask", "--app", "app", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"flask {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")


def run_campaign(recipients: int, sink: Sink) -> dict:
    """Run one campaign in a fresh interpreter state; return its measurements."""
    url = reset_database()
    with tempfile.TemporaryDirectory() as stats_dir, tempfile.TemporaryDirectory() as inst:
        env = env_for(url, sink.port, stats_dir, inst)
        # Data setup runs in a child so this process stays small and import-free.
        context = multiprocessing.get_context("fork")
        queue = context.Queue()
        child = context.Process(target=lambda: queue.put(prepare(env, recipients)))
        child.start()
        campaign_id, sample = queue.get()
        child.join()

        started = time.perf_counter()
        flask(["scheduler", "--once", "--batch-size", str(BATCH)], env)
        scheduled = time.perf_counter()
        flask(["worker", "--burst", "--processes", str(WORKERS)], env)
        elapsed = time.perf_counter() - started
        stats = [json.loads(p.read_text()) for p in Path(stats_dir).glob("worker-*.json")]
    sent = sent_count(url, campaign_id)
    busy = {k: sum(s.get(k, 0.0) for s in stats) for k in ("render", "mime", "smtp", "db")}
    total_busy = sum(busy.values()) or 1.0
    return {
        "recipients": recipients, "sent": sent, "seconds": elapsed,
        "schedule_seconds": scheduled - started, "rate": sent / elapsed,
        "shares": {k: v / total_busy for k, v in busy.items()},
        "busy_seconds": total_busy,
        "peak_rss_mb": [round(s["peak_rss_kb"] / 1024, 1) for s in stats],
        "message_bytes": len(sample), "sample": sample,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, action="append",
                        help="campaign sizes to run (default: 10000 and 100000)")
    args = parser.parse_args()
    sizes = args.recipients or [10_000, 100_000]
    sink = Sink()
    print(f"sink: {sink.kind} on port {sink.port}; {WORKERS} worker processes, "
          f"batches of {BATCH}; PostgreSQL {DB_NAME}, Redis {REDIS_URL}")
    results = []
    try:
        for size in sizes:
            result = run_campaign(size, sink)
            results.append(result)
            shares = ", ".join(f"{k} {v:.0%}" for k, v in result["shares"].items())
            print(f"{size:>7} recipients: {result['sent']} sent in {result['seconds']:.1f} s "
                  f"(scheduler {result['schedule_seconds']:.1f} s) = {result['rate']:.0f} msgs/s"
                  f" | worker busy {result['busy_seconds']:.1f} s: {shares}"
                  f" | peak RSS per worker (MB): {result['peak_rss_mb']}"
                  f" | message {result['message_bytes']} bytes")
        base = baseline(sink.port, results[-1]["sample"], 20_000)
    finally:
        sink.stop()
    best = results[-1]
    print(f"baseline: raw smtplib, one prebuilt {best['message_bytes']}-byte message, "
          f"{WORKERS} processes: {base:.0f} msgs/s")
    print(f"pipeline / baseline = {best['rate'] / base:.2f} "
          f"(end to end incl. scheduling, rendering, MIME, ledger commits)")
    if len(results) > 1:
        small, large = results[0], results[-1]
        print(f"memory: peak RSS {max(small['peak_rss_mb'])} MB at {small['recipients']} vs "
              f"{max(large['peak_rss_mb'])} MB at {large['recipients']} recipients")
    ok = all(r["sent"] == r["recipients"] for r in results)
    if not ok:
        print("ERROR: not every recipient was sent")
    if best["rate"] < TARGET:
        print(f"note: below the {TARGET:.0f} msgs/s target on this machine")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
