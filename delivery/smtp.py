"""SMTP backend: one smtplib connection reused across messages and batches."""

from __future__ import annotations

import contextlib
import logging
import smtplib
import ssl

from delivery.base import (
    PERMANENT,
    SENT,
    TRANSIENT,
    DeliveryResult,
    OutgoingMessage,
    failure,
    message_id_of,
)

log = logging.getLogger(__name__)

SECURITY_MODES = ("none", "starttls", "tls")
# Replies that mean "this connection cannot send anything": 421 service closing, 530 the server
# wants STARTTLS/AUTH first. Every message would meet them, so the batch stops as transient.
CONNECTION_CODES = {421, 530}


class _ConnectionLost(Exception):
    """The connection is gone: this message and the rest of the batch are transient."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


def _reply(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {text}".strip()


def _outcome_for(code: int) -> str:
    """Map an SMTP reply code to an outcome: 5xx permanent, anything else transient."""
    return PERMANENT if 500 <= code < 600 else TRANSIENT


class SmtpBackend:
    """Deliver over SMTP (none, STARTTLS or implicit TLS), optionally authenticated."""

    def __init__(
        self,
        host: str,
        port: int,
        username: str = "",
        password: str = "",
        security: str = "none",
        timeout: float = 30.0,
        local_hostname: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        security = (security or "none").lower()
        if security not in SECURITY_MODES:
            raise ValueError(f"SMTP security must be one of {SECURITY_MODES}, not {security!r}")
        self.host = host
        self.port = int(port)
        self.username = username
        self.password = password
        self.security = security
        self.timeout = timeout
        self.local_hostname = local_hostname
        self.ssl_context = ssl_context
        self._conn: smtplib.SMTP | None = None

    def _context(self) -> ssl.SSLContext:
        # Loading the CA bundle costs ~0.3 s: do it once, and only when TLS is in use.
        if self.ssl_context is None:
            self.ssl_context = ssl.create_default_context()
        return self.ssl_context

    def _connect(self) -> smtplib.SMTP:
        conn: smtplib.SMTP
        if self.security == "tls":
            conn = smtplib.SMTP_SSL(
                self.host,
                self.port,
                local_hostname=self.local_hostname,
                timeout=self.timeout,
                context=self._context(),
            )
        else:
            conn = smtplib.SMTP(
                self.host, self.port, local_hostname=self.local_hostname, timeout=self.timeout
            )
        try:
            conn.ehlo()
            if self.security == "starttls":
                conn.starttls(context=self._context())
                conn.ehlo()
            if self.username:
                conn.login(self.username, self.password)
        except BaseException:
            _close_quietly(conn)
            raise
        return conn

    def _connection(self) -> smtplib.SMTP:
        """Return a live connection: the kept one if it still answers NOOP, else a new one."""
        if self._conn is not None and self._conn.sock is not None:
            try:
                code, _ = self._conn.noop()
                if code == 250:
                    return self._conn
            except (OSError, smtplib.SMTPException):
                pass
        self._drop()
        try:
            self._conn = self._connect()
        except smtplib.SMTPResponseException as exc:
            raise _ConnectionLost(
                f"connect to {self.host}:{self.port}: {_reply(exc.smtp_code, exc.smtp_error)}"
            ) from exc
        except Exception as exc:  # refused, timeout, TLS, bad host name: all mean "not now"
            raise _ConnectionLost(
                f"connect to {self.host}:{self.port}: {type(exc).__name__}: {exc}"
            ) from exc
        return self._conn

    def _reset(self, conn: smtplib.SMTP) -> None:
        """RSET after a failed message so the next MAIL starts clean; drop the link if RSET fails.

        smtplib resets after most refusals itself, but not when it fails between MAIL and
        DATA on its own (e.g. an address it cannot encode); one extra RSET costs one round trip.
        """
        if conn.sock is None:
            return
        try:
            code, _ = conn.rset()
        except (OSError, smtplib.SMTPException):
            code = 0
        if code != 250:
            self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            _close_quietly(self._conn)
        self._conn = None

    def _send_one(self, conn: smtplib.SMTP, message: OutgoingMessage) -> DeliveryResult:
        """Send one message; smtplib itself sends RSET after a refused sender/recipient/data."""
        try:
            conn.sendmail(message.mail_from, [message.rcpt_to], message.data)
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = exc.recipients.get(message.rcpt_to, (-1, b"recipient refused"))
            if code in CONNECTION_CODES:
                raise _ConnectionLost(_reply(code, text)) from exc
            return failure(message, _outcome_for(code), _reply(code, text))
        except smtplib.SMTPServerDisconnected as exc:
            raise _ConnectionLost(f"server disconnected: {exc}") from exc
        except smtplib.SMTPResponseException as exc:
            # SMTPSenderRefused, SMTPDataError and any other coded reply.
            if exc.smtp_code in CONNECTION_CODES:
                raise _ConnectionLost(_reply(exc.smtp_code, exc.smtp_error)) from exc
            reply = _reply(exc.smtp_code, exc.smtp_error)
            return failure(message, _outcome_for(exc.smtp_code), reply)
        except OSError as exc:
            raise _ConnectionLost(f"{type(exc).__name__}: {exc}") from exc
        except (smtplib.SMTPException, UnicodeError) as exc:
            # e.g. SMTPNotSupportedError, or a non-ASCII address the server cannot take:
            # nothing a retry would change. smtplib fails these before sending the command.
            return failure(message, PERMANENT, f"{type(exc).__name__}: {exc}")
        except Exception as exc:
            # Unknown state: do not reuse this connection, and let the ledger retry later.
            log.exception("smtp: unexpected error sending send %s", message.send_id)
            raise _ConnectionLost(f"{type(exc).__name__}: {exc}") from exc
        return DeliveryResult(message.send_id, SENT, message_id_of(message.data))

    def deliver(self, messages: list[OutgoingMessage]) -> list[DeliveryResult]:
        """Send each message over one connection; never raise for delivery failures."""
        results: list[DeliveryResult] = []
        for index, message in enumerate(messages):
            try:
                conn = self._conn if results else self._connection()
                if conn is None or conn.sock is None:
                    conn = self._connection()
                result = self._send_one(conn, message)
                results.append(result)
                if result.outcome != SENT:
                    self._reset(conn)
            except _ConnectionLost as lost:
                self._drop()
                log.warning("smtp %s:%s: %s", self.host, self.port, lost.error)
                results.append(failure(message, TRANSIENT, lost.error))
                rest = f"not attempted: {lost.error}"
                results.extend(failure(m, TRANSIENT, rest) for m in messages[index + 1 :])
                break
        return results

    def close(self) -> None:
        """Say QUIT and close the kept connection."""
        if self._conn is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                self._conn.quit()
        self._drop()


def _close_quietly(conn: smtplib.SMTP) -> None:
    with contextlib.suppress(OSError):
        conn.close()
