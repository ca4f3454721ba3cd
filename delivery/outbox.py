"""Outbox backend: every message becomes an .eml file that the web UI lists (development)."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from email import policy
from email.parser import BytesHeaderParser
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from core import clock
from delivery.base import SENT, TRANSIENT, DeliveryResult, OutgoingMessage, failure, message_id_of

_ID = re.compile(r"[\w.-]+", re.ASCII)
_SEND_ID = re.compile(rb"(?:^|\n)x-lastmile-send-id:[ \t]*(\d+)", re.IGNORECASE)
# A test message (campaigns.testsend) is filed as <stamp>-t<test id>: it has no send row.
_TEST_SEND = re.compile(rb"(?:^|\n)x-lastmile-test-send:[ \t]*(\d+)", re.IGNORECASE)
# Headers of a stored message are read from this many leading bytes only.
_HEAD_BYTES = 64 * 1024


def store_eml(directory: str | os.PathLike[str], data: bytes, send_id: int | None = None) -> str:
    """Write data atomically as <directory>/<utc-timestamp>-<send_id>.eml; return the id.

    A test message is written as <utc-timestamp>-t<test send id>.eml instead.
    """
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    head = data[:_HEAD_BYTES]
    end = head.find(b"\r\n\r\n")
    test = _TEST_SEND.search(head if end < 0 else head[:end])  # headers only, never the body
    if test:
        tag = f"t{int(test.group(1))}"
    else:
        if send_id is None:
            match = _SEND_ID.search(head)
            send_id = int(match.group(1)) if match else 0
        tag = str(int(send_id))
    stamp = clock.now().strftime("%Y%m%dT%H%M%S%fZ")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".eml")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        # os.link never overwrites: a name already taken (same instant, same send) gets a suffix.
        for attempt in range(1000):
            stem = f"{stamp}-{tag}" + (f"-{attempt}" if attempt else "")
            try:
                os.link(tmp, folder / f"{stem}.eml")
            except FileExistsError:
                continue
            return stem
        raise FileExistsError(f"no free outbox name for {stamp}-{send_id}")
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


class OutboxBackend:
    """Store messages as .eml files instead of sending them."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def deliver(self, messages: list[OutgoingMessage]) -> list[DeliveryResult]:
        """Write each message to the outbox directory."""
        results: list[DeliveryResult] = []
        for message in messages:
            try:
                store_eml(self.directory, message.data, message.send_id)
            except OSError as exc:
                results.append(failure(message, TRANSIENT, f"outbox write failed: {exc}"))
                continue
            results.append(DeliveryResult(message.send_id, SENT, message_id_of(message.data)))
        return results

    def close(self) -> None:
        """Nothing to release."""


def _stems(directory: str | os.PathLike[str]) -> list[str]:
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(
        (name[:-4] for name in names if name.endswith(".eml") and not name.startswith(".")),
        reverse=True,
    )


def count_outbox(directory: str | os.PathLike[str]) -> int:
    """Return how many messages the outbox holds."""
    return len(_stems(directory))


def _summary(path: Path) -> dict[str, Any]:
    with path.open("rb") as handle:
        head = handle.read(_HEAD_BYTES)
    end = head.find(b"\r\n\r\n")
    headers = BytesHeaderParser(policy=policy.default).parsebytes(head if end < 0 else head[:end])
    stat = path.stat()
    date = datetime.fromtimestamp(stat.st_mtime, UTC).replace(tzinfo=None)
    if headers["Date"]:
        with contextlib.suppress(TypeError, ValueError):
            parsed = parsedate_to_datetime(str(headers["Date"]))
            if parsed.tzinfo is not None:
                parsed = parsed.astimezone(UTC).replace(tzinfo=None)
            date = parsed
    return {
        "id": path.stem,
        "subject": str(headers["Subject"] or ""),
        "to": str(headers["To"] or ""),
        "from": str(headers["From"] or ""),
        "date": date.isoformat(),
        "size": stat.st_size,
    }


def send_id_of(message_id: str) -> int | None:
    """Return the send id an outbox id was stored under (`<stamp>-<send_id>[-n]`), if any."""
    parts = message_id.split("-")
    if len(parts) < 2 or not parts[1].isdigit():
        return None
    return int(parts[1]) or None


def id_of_test_send(message_id: str) -> int | None:
    """Return the test send id an outbox id was stored under (`<stamp>-t<id>[-n]`), if any."""
    parts = message_id.split("-")
    if len(parts) < 2 or not parts[1].startswith("t") or not parts[1][1:].isdigit():
        return None
    return int(parts[1][1:]) or None


def list_outbox(
    directory: str | os.PathLike[str], page: int = 1, per_page: int = 50,
    only: Callable[[set[int]], set[int]] | None = None,
    only_tests: Callable[[set[int]], set[int]] | None = None,
) -> list[dict[str, Any]]:
    """Return one page (1-based) of stored messages, newest first.

    `only`, given the send ids present, returns those the caller may see; others are left out.
    With `only`, test messages are left out too unless `only_tests`, given the test send ids
    present, returns them.
    """
    page = max(1, int(page))
    per_page = max(1, int(per_page))
    stems = _stems(directory)
    if only is not None:
        allowed = only({i for i in map(send_id_of, stems) if i is not None})
        tests = {i for i in map(id_of_test_send, stems) if i is not None}
        allowed_tests = only_tests(tests) if only_tests is not None and tests else set()
        stems = [stem for stem in stems
                 if send_id_of(stem) in allowed or id_of_test_send(stem) in allowed_tests]
    stems = stems[(page - 1) * per_page : page * per_page]
    items: list[dict[str, Any]] = []
    for stem in stems:
        # A file removed between listing and reading is simply left out.
        with contextlib.suppress(FileNotFoundError):
            items.append(_summary(Path(directory) / f"{stem}.eml"))
    return items


def outbox_path(directory: str | os.PathLike[str], message_id: str) -> Path | None:
    """Return the file of an outbox id, or None if the id is malformed or not inside directory."""
    if not isinstance(message_id, str) or not _ID.fullmatch(message_id):
        return None
    if message_id.startswith("."):
        return None
    root = Path(directory).resolve()
    path = (root / f"{message_id}.eml").resolve()
    if path.parent != root or not path.is_file():
        return None
    return path


def read_outbox(directory: str | os.PathLike[str], message_id: str) -> bytes | None:
    """Return the raw bytes of one stored message, or None if the id is invalid or unknown."""
    path = outbox_path(directory, message_id)
    if path is None:
        return None
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
