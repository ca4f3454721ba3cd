"""The delivery interface: messages in, one result per message out (see delivery.backends)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

SENT = "sent"
TRANSIENT = "transient"
PERMANENT = "permanent"
QUOTA = "quota"

# Long provider replies are cut so a result always fits the ledger's last_error column.
MAX_ERROR = 500


@dataclass(frozen=True)
class OutgoingMessage:
    """One message to hand to a backend: envelope plus the complete RFC 5322 bytes."""

    send_id: int
    mail_from: str
    rcpt_to: str
    data: bytes


@dataclass(frozen=True)
class DeliveryResult:
    """What happened to one message: sent, transient (retry), permanent (give up) or quota."""

    send_id: int
    outcome: str
    provider_message_id: str | None = None
    error: str = ""


@runtime_checkable
class Backend(Protocol):
    """A delivery engine; deliver() never raises for a per-message or connection failure."""

    def deliver(self, messages: list[OutgoingMessage]) -> list[DeliveryResult]:
        """Deliver messages; return one result per message, in the same order."""
        ...

    def close(self) -> None:
        """Release connections held between batches."""
        ...


def failure(message: OutgoingMessage, outcome: str, error: str) -> DeliveryResult:
    """Return a failed result for message with the error text cut to MAX_ERROR characters."""
    return DeliveryResult(message.send_id, outcome, None, error[:MAX_ERROR])


_MESSAGE_ID = re.compile(rb"(?:^|\r?\n)message-id:[ \t]*<?([^\s<>]+)>?", re.IGNORECASE)


def message_id_of(data: bytes) -> str | None:
    """Return the Message-ID of raw message bytes without angle brackets, or None."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        end = data.find(b"\n\n")
    head = data if end < 0 else data[:end]
    match = _MESSAGE_ID.search(head)
    return match.group(1).decode("ascii", "replace") if match else None
