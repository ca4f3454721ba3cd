"""A local SMTP catcher for development: every message it receives lands in the outbox."""

from __future__ import annotations

import logging
import os
from typing import Any

from aiosmtpd.controller import Controller

from delivery.outbox import store_eml

log = logging.getLogger(__name__)


class OutboxHandler:
    """aiosmtpd handler that stores each received message as an .eml file."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = directory

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """Store the message and answer 250 with the outbox id."""
        data = envelope.original_content or envelope.content
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        try:
            stem = store_eml(self.directory, data)
        except OSError as exc:
            log.error("smtp-catcher: could not store message: %s", exc)
            return "451 4.3.0 Could not store the message"
        log.info(
            "smtp-catcher: %s -> %s (%d bytes) stored as %s",
            envelope.mail_from,
            ", ".join(envelope.rcpt_tos),
            len(data),
            stem,
        )
        return f"250 2.0.0 Ok: queued as {stem}"


def start_catcher(host: str, port: int, directory: str | os.PathLike[str]) -> Controller:
    """Start an SMTP catcher on host:port in a background thread; call .stop() to end it."""
    os.makedirs(directory, exist_ok=True)
    controller = Controller(OutboxHandler(directory), hostname=host, port=port)
    controller.start()
    return controller
