"""delivery.outbox, the SMTP catcher and its CLI command."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from core import clock
from delivery.backends import get_backend
from delivery.base import OutgoingMessage
from delivery.catcher import start_catcher
from delivery.mime import build_message
from delivery.outbox import OutboxBackend, count_outbox, list_outbox, read_outbox
from delivery.smtp import SmtpBackend

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _unfreeze():
    yield
    clock.freeze(None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def message(send_id: int, rcpt: str = "bob@example.com", subject: str = "") -> OutgoingMessage:
    data = build_message(
        message_id=f"{send_id}.test@lastmile.test",
        from_name="Acme Financial",
        from_email="news@acme.example",
        reply_to="",
        reply_to_name="",
        to=rcpt,
        subject=subject or f"Grüße Nummer {send_id}",
        html=f"<p>Hi {send_id}</p>",
        text=f"Hi {send_id}",
        list_unsubscribe_url=f"https://lastmile.test/u/{send_id}",
        list_unsubscribe_mailto="",
        send_id=send_id,
        date=datetime(2025, 1, 20, 9, 30, send_id % 60),
    )
    return OutgoingMessage(send_id, "news@acme.example", rcpt, data)


def test_outbox_writes_one_eml_per_message(tmp_path):
    clock.freeze(datetime(2025, 1, 20, 9, 30, 5, 123456))
    backend = OutboxBackend(tmp_path / "outbox")
    messages = [message(7), message(8, "ann@example.com")]
    results = backend.deliver(messages)
    backend.close()

    assert [r.outcome for r in results] == ["sent", "sent"]
    assert [r.provider_message_id for r in results] == [
        "7.test@lastmile.test",
        "8.test@lastmile.test",
    ]
    files = sorted(os.listdir(tmp_path / "outbox"))
    assert files == ["20250120T093005123456Z-7.eml", "20250120T093005123456Z-8.eml"]
    assert (tmp_path / "outbox" / files[0]).read_bytes() == messages[0].data


def test_same_instant_and_send_id_never_overwrites(tmp_path):
    clock.freeze(datetime(2025, 1, 20, 9, 30, 5))
    backend = OutboxBackend(tmp_path)
    first, second = message(7, subject="first"), message(7, subject="second")
    backend.deliver([first])
    backend.deliver([second])
    stored = {read_outbox(tmp_path, item["id"]) for item in list_outbox(tmp_path)}
    assert stored == {first.data, second.data}
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".")]


def test_unwritable_outbox_is_transient(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    results = OutboxBackend(blocker).deliver([message(1), message(2)])
    assert [r.outcome for r in results] == ["transient", "transient"]
    assert "outbox" in results[0].error


def test_list_is_newest_first_paginated_and_summarized(tmp_path):
    backend = OutboxBackend(tmp_path)
    for send_id in range(1, 6):
        clock.freeze(datetime(2025, 1, 20, 9, 0, send_id))
        backend.deliver([message(send_id, f"u{send_id}@example.com")])

    assert count_outbox(tmp_path) == 5
    first_page = list_outbox(tmp_path, page=1, per_page=2)
    assert [item["to"] for item in first_page] == ["u5@example.com", "u4@example.com"]
    assert [item["to"] for item in list_outbox(tmp_path, 3, 2)] == ["u1@example.com"]
    assert list_outbox(tmp_path, 4, 2) == []

    newest = first_page[0]
    assert newest["id"] == "20250120T090005000000Z-5"
    assert newest["subject"] == "Grüße Nummer 5"
    assert newest["from"] == "Acme Financial <news@acme.example>"
    assert newest["date"] == "2025-01-20T09:30:05"
    assert newest["size"] == (tmp_path / f"{newest['id']}.eml").stat().st_size


def test_list_of_missing_directory_is_empty(tmp_path):
    assert list_outbox(tmp_path / "nothing-here") == []
    assert count_outbox(tmp_path / "nothing-here") == 0


def test_read_returns_bytes_and_rejects_traversal(tmp_path):
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    backend = OutboxBackend(outbox)
    outgoing = message(3)
    backend.deliver([outgoing])
    (item,) = list_outbox(outbox)
    assert read_outbox(outbox, item["id"]) == outgoing.data
    parsed = message_from_bytes(read_outbox(outbox, item["id"]), policy=policy.default)
    assert parsed["X-Lastmile-Send-Id"] == "3"

    secret = tmp_path / "secret.eml"
    secret.write_bytes(b"Subject: secret\r\n\r\nkeep out")
    (outbox / "link.eml").symlink_to(secret)
    (outbox / ".tmp-hidden.eml").write_bytes(b"partial")
    for bad in [
        "../secret",
        "..",
        "../outbox/" + item["id"],
        str(secret.with_suffix("")),
        "/etc/passwd",
        "link",
        ".tmp-hidden",
        "",
        "missing",
        item["id"] + "\x00",
        item["id"] + "/..",
    ]:
        assert read_outbox(outbox, bad) is None, bad


def test_catcher_stores_what_it_receives(tmp_path):
    port = free_port()
    controller = start_catcher("127.0.0.1", port, tmp_path / "caught")
    try:
        backend = SmtpBackend("127.0.0.1", port, timeout=5)
        outgoing = [message(11, "a@example.com"), message(12, "b@example.com")]
        results = backend.deliver(outgoing)
        backend.close()
    finally:
        controller.stop()

    assert [r.outcome for r in results] == ["sent", "sent"]
    items = list_outbox(tmp_path / "caught")
    assert sorted(item["to"] for item in items) == ["a@example.com", "b@example.com"]
    assert all(item["id"].endswith(("-11", "-12")) for item in items)
    stored = read_outbox(
        tmp_path / "caught", next(i["id"] for i in items if i["to"] == "a@example.com")
    )
    parsed = message_from_bytes(stored, policy=policy.default)
    assert parsed["Subject"] == "Grüße Nummer 11"
    assert parsed.get_body(("html",)).get_content().strip() == "<p>Hi 11</p>"


def test_get_backend_outbox_and_unknown(tmp_path):
    backend = get_backend({"DELIVERY_BACKEND": "outbox", "OUTBOX_DIR": str(tmp_path)})
    assert [r.outcome for r in backend.deliver([message(1)])] == ["sent"]
    assert count_outbox(tmp_path) == 1
    with pytest.raises(ValueError):
        get_backend({"DELIVERY_BACKEND": "carrier-pigeon"})


def test_smtp_catcher_command_runs_until_interrupted(tmp_path):
    port = free_port()
    outbox = tmp_path / "outbox"
    env = {
        **os.environ,
        "LASTMILE_INSTANCE": str(tmp_path / "instance"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'lastmile.db'}",
        "OUTBOX_DIR": str(outbox),
        "SECRET_KEY": "catcher-test",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "app", "smtp-catcher", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(300):  # up to ~30 s for the interpreter and app to start
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        backend = SmtpBackend("127.0.0.1", port, timeout=5)
        results = backend.deliver([message(21, "cli@example.com")])
        backend.close()
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()

    assert [r.outcome for r in results] == ["sent"]
    assert proc.returncode == 0, stderr
    assert [item["to"] for item in list_outbox(outbox)] == ["cli@example.com"]
    assert "cli@example.com" in stderr
    assert "smtp-catcher stopped" in stderr
