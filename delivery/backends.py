"""Choosing a backend by configuration, and the one each worker process keeps open.

A new backend is one module implementing `delivery.base.Backend`, plus a branch here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from delivery.base import SENT, Backend, OutgoingMessage
from delivery.outbox import OutboxBackend
from delivery.ses import SesBackend
from delivery.smtp import SmtpBackend

log = logging.getLogger(__name__)

BACKEND_KEYS = ("DELIVERY_BACKEND", "SMTP_HOST", "SMTP_PORT", "SMTP_USERNAME", "SMTP_PASSWORD",
                "SMTP_SECURITY", "SES_REGION", "SES_ENDPOINT_URL", "SES_CONFIGURATION_SET",
                "OUTBOX_DIR")
_backend: tuple[tuple, Backend] | None = None


def get_backend(config: Mapping) -> Backend:
    """Return the backend named by config["DELIVERY_BACKEND"] (smtp, ses or outbox)."""
    name = str(config.get("DELIVERY_BACKEND") or "smtp").strip().lower()
    if name == "smtp":
        return SmtpBackend(
            host=str(config.get("SMTP_HOST") or "127.0.0.1"),
            port=int(config.get("SMTP_PORT") or 25),
            username=str(config.get("SMTP_USERNAME") or ""),
            password=str(config.get("SMTP_PASSWORD") or ""),
            security=str(config.get("SMTP_SECURITY") or "none"),
            timeout=float(config.get("SMTP_TIMEOUT") or 30),
            local_hostname=config.get("SMTP_LOCAL_HOSTNAME") or None,
        )
    if name == "ses":
        return SesBackend(
            region=str(config.get("SES_REGION") or "us-east-1"),
            endpoint_url=config.get("SES_ENDPOINT_URL") or None,
            configuration_set=config.get("SES_CONFIGURATION_SET") or None,
        )
    if name == "outbox":
        directory = config.get("OUTBOX_DIR")
        if not directory:
            raise ValueError("OUTBOX_DIR must be set for the outbox backend")
        return OutboxBackend(str(directory))
    raise ValueError(f"unknown DELIVERY_BACKEND {name!r}: use smtp, ses or outbox")


def delivery_backend(config: Mapping) -> Backend:
    """Return this process's backend for `config`, kept open across batches.

    Opening an SMTP session (or an SES client) costs more than sending dozens of messages;
    the SMTP backend checks a kept connection with NOOP before reusing it.
    """
    global _backend
    key = tuple(str(config.get(name) or "") for name in BACKEND_KEYS)
    if _backend is not None and _backend[0] == key:
        return _backend[1]
    drop_backend()
    _backend = (key, get_backend(config))
    return _backend[1]


def drop_backend() -> None:
    """Close and forget this process's kept backend."""
    global _backend
    if _backend is not None:
        try:
            _backend[1].close()
        except Exception:  # noqa: BLE001 - closing a broken connection may fail; it is gone
            log.debug("closing the delivery backend failed", exc_info=True)
        _backend = None


def deliver_now(messages: list[OutgoingMessage], config: Mapping, timeout: float) -> str:
    """Deliver a few messages from a web request, in order over one new connection, stopping at
    the first failure; return its error ("" when the server took them all).

    A backend of its own (not the worker's kept one: a web process serves many threads), with
    SMTP_TIMEOUT capped at `timeout` so a dead server cannot hold the page for long.
    """
    settings = dict(config)
    settings["SMTP_TIMEOUT"] = min(float(config.get("SMTP_TIMEOUT") or timeout), timeout)
    try:
        backend = get_backend(settings)
    except ValueError as exc:
        return str(exc)
    try:
        for message in messages:
            result = backend.deliver([message])[0]
            if result.outcome != SENT:
                return result.error or result.outcome
    finally:
        try:
            backend.close()
        except Exception:  # noqa: BLE001 - closing a broken connection may fail; it is gone
            log.debug("closing a one-off delivery backend failed", exc_info=True)
    return ""
