"""delivery.smtp against real aiosmtpd servers on loopback."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from email import message_from_bytes, policy

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from delivery.backends import get_backend
from delivery.base import DeliveryResult, OutgoingMessage
from delivery.mime import build_message
from delivery.smtp import SmtpBackend

SENDER = "news@acme.example"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RecordingHandler:
    """Records every accepted message and the client connections; answers as told."""

    def __init__(self) -> None:
        self.peers: set[tuple[str, int]] = set()
        self.delivered: list[tuple[str, list[str], bytes]] = []
        self.replies: dict[str, str] = {}  # recipient -> reply to RCPT
        self.drop: set[str] = set()  # recipients at which the server hangs up
        self.refuse_sender: dict[str, str] = {}
        self.data_reply: dict[str, str] = {}  # recipient -> reply to DATA

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        self.peers.add(session.peer)
        if address in self.refuse_sender:
            return self.refuse_sender[address]
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.drop:
            server.transport.close()
            return "250 OK"
        if address in self.replies:
            return self.replies[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        for rcpt in envelope.rcpt_tos:
            if rcpt in self.data_reply:
                return self.data_reply[rcpt]
        self.delivered.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 2.0.0 Ok: queued"

    def recipients(self) -> list[str]:
        return [rcpt for _, rcpts, _ in self.delivered for rcpt in rcpts]


@pytest.fixture
def smtp_server() -> Iterator[tuple[RecordingHandler, int]]:
    handler = RecordingHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def message(send_id: int, rcpt: str) -> OutgoingMessage:
    data = build_message(
        message_id=f"{send_id}.test@lastmile.test",
        from_name="Acme Financial",
        from_email=SENDER,
        reply_to="",
        reply_to_name="",
        to=rcpt,
        subject=f"Hello {send_id} — grüße",
        html=f"<p>Hi {send_id}</p>",
        text=f"Hi {send_id}",
        list_unsubscribe_url=f"https://lastmile.test/u/{send_id}",
        list_unsubscribe_mailto="",
        send_id=send_id,
    )
    return OutgoingMessage(send_id=send_id, mail_from=SENDER, rcpt_to=rcpt, data=data)


def batch(*rcpts: str, start: int = 1) -> list[OutgoingMessage]:
    return [message(start + i, rcpt) for i, rcpt in enumerate(rcpts)]


def outcomes(results: list[DeliveryResult]) -> list[str]:
    return [r.outcome for r in results]


def test_batch_of_five_uses_one_connection_and_arrives_intact(smtp_server):
    handler, port = smtp_server
    backend = SmtpBackend("127.0.0.1", port, timeout=5)
    messages = batch(*(f"user{i}@example.com" for i in range(5)))
    results = backend.deliver(messages)
    backend.close()

    assert outcomes(results) == ["sent"] * 5
    assert [r.send_id for r in results] == [1, 2, 3, 4, 5]
    assert [r.provider_message_id for r in results] == [
        f"{i}.test@lastmile.test" for i in range(1, 6)
    ]
    assert len(handler.peers) == 1
    assert handler.recipients() == [f"user{i}@example.com" for i in range(5)]
    mail_from, _, data = handler.delivered[2]
    assert mail_from == SENDER
    received = message_from_bytes(data, policy=policy.default)
    assert received["Subject"] == "Hello 3 — grüße"
    assert received["X-Lastmile-Send-Id"] == "3"
    assert received.get_body(("html",)).get_content().strip() == "<p>Hi 3</p>"


def test_connection_is_reused_across_batches(smtp_server):
    handler, port = smtp_server
    backend = SmtpBackend("127.0.0.1", port, timeout=5)
    assert outcomes(backend.deliver(batch("a@example.com", "b@example.com"))) == ["sent"] * 2
    assert outcomes(backend.deliver(batch("c@example.com", start=3))) == ["sent"]
    backend.close()
    assert handler.recipients() == ["a@example.com", "b@example.com", "c@example.com"]
    assert len(handler.peers) == 1


def test_550_fails_only_that_message_and_451_is_transient(smtp_server):
    handler, port = smtp_server
    handler.replies["gone@example.com"] = "550 5.1.1 No such user"
    handler.replies["later@example.com"] = "451 4.3.0 Try again later"
    backend = SmtpBackend("127.0.0.1", port, timeout=5)
    results = backend.deliver(
        batch(
            "a@example.com",
            "gone@example.com",
            "b@example.com",
            "later@example.com",
            "c@example.com",
        )
    )
    backend.close()

    assert outcomes(results) == ["sent", "permanent", "sent", "transient", "sent"]
    assert results[1].error.startswith("550") and "No such user" in results[1].error
    assert results[3].error.startswith("451")
    assert results[1].provider_message_id is None
    assert handler.recipients() == ["a@example.com", "b@example.com", "c@example.com"]
    assert len(handler.peers) == 1


def test_sender_refused_and_data_rejected_map_by_code(smtp_server):
    handler, port = smtp_server
    handler.data_reply["spam@example.com"] = "554 5.7.1 Message rejected as spam"
    handler.data_reply["full@example.com"] = "452 4.2.2 Mailbox full"
    backend = SmtpBackend("127.0.0.1", port, timeout=5)
    results = backend.deliver(
        [*batch("spam@example.com", "full@example.com", "ok@example.com")]
        + [
            OutgoingMessage(
                9, "blocked@acme.example", "x@example.com", message(9, "x@example.com").data
            )
        ]
    )
    handler.refuse_sender["blocked@acme.example"] = "553 5.7.1 Sender not allowed"
    refused = backend.deliver(
        [
            OutgoingMessage(
                10, "blocked@acme.example", "y@example.com", message(10, "y@example.com").data
            )
        ]
    )
    backend.close()

    assert outcomes(results) == ["permanent", "transient", "sent", "sent"]
    assert "spam" in results[0].error
    assert outcomes(refused) == ["permanent"]
    assert refused[0].error.startswith("553")
    assert handler.recipients() == ["ok@example.com", "x@example.com"]


def test_dropped_connection_makes_the_rest_transient_and_next_batch_reconnects(smtp_server):
    handler, port = smtp_server
    handler.drop.add("drop@example.com")
    backend = SmtpBackend("127.0.0.1", port, timeout=5)
    results = backend.deliver(batch("a@example.com", "drop@example.com", "b@example.com"))
    assert outcomes(results) == ["sent", "transient", "transient"]
    assert "not attempted" in results[2].error
    assert handler.recipients() == ["a@example.com"]

    again = backend.deliver(batch("b@example.com", start=3))
    backend.close()
    assert outcomes(again) == ["sent"]
    assert handler.recipients() == ["a@example.com", "b@example.com"]
    assert len(handler.peers) == 2


def test_nothing_listening_makes_every_message_transient():
    backend = SmtpBackend("127.0.0.1", free_port(), timeout=2)
    results = backend.deliver(batch("a@example.com", "b@example.com", "c@example.com"))
    backend.close()
    assert outcomes(results) == ["transient"] * 3
    assert [r.send_id for r in results] == [1, 2, 3]
    assert "connect" in results[0].error


def test_silent_server_times_out_as_transient():
    # Accepts TCP (the kernel completes the handshake) but never sends a greeting.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        backend = SmtpBackend("127.0.0.1", listener.getsockname()[1], timeout=0.5)
        results = backend.deliver(batch("a@example.com", "b@example.com"))
        backend.close()
    assert outcomes(results) == ["transient", "transient"]


def test_server_that_went_away_between_batches_is_reconnected(smtp_server):
    handler, port = smtp_server
    backend = SmtpBackend("127.0.0.1", port, timeout=5)
    assert outcomes(backend.deliver(batch("a@example.com"))) == ["sent"]
    # Simulate an idle timeout: the server side closes the kept connection.
    assert backend._conn is not None
    backend._conn.sock.shutdown(socket.SHUT_RDWR)
    assert outcomes(backend.deliver(batch("b@example.com", start=2))) == ["sent"]
    backend.close()
    assert handler.recipients() == ["a@example.com", "b@example.com"]


def test_get_backend_builds_smtp_from_config(smtp_server):
    handler, port = smtp_server
    backend = get_backend(
        {"DELIVERY_BACKEND": "smtp", "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port)}
    )
    assert isinstance(backend, SmtpBackend)
    assert outcomes(backend.deliver(batch("a@example.com"))) == ["sent"]
    backend.close()
    assert handler.recipients() == ["a@example.com"]


def test_unknown_security_mode_is_rejected():
    with pytest.raises(ValueError):
        SmtpBackend("127.0.0.1", 25, security="ssl3")


# --- TLS ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory) -> tuple[str, str, str]:
    """A self-signed certificate for 127.0.0.1/localhost: (cert path, key path, cert PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (folder / "cert.pem").write_bytes(pem)
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(folder / "cert.pem"), str(folder / "key.pem"), pem.decode("ascii")


class Logins:
    """aiosmtpd authenticator accepting one user; records what it saw."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, bool]] = []
        self.lock = threading.Lock()

    def __call__(self, server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login == b"mailer" and auth_data.password == b"s3cret"
        )
        with self.lock:
            self.seen.append((auth_data.login.decode(), bool(session.ssl)))
        # handled=False makes aiosmtpd answer the failure with 535 itself.
        return AuthResult(success=ok, handled=False)


def _server_context(tls_files) -> ssl.SSLContext:
    cert, key, _ = tls_files
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def test_starttls_with_authentication(tls_files):
    handler = RecordingHandler()
    logins = Logins()
    port = free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        tls_context=_server_context(tls_files),
        require_starttls=True,
        authenticator=logins,
        auth_required=True,
        # Python 3.11's smtplib AUTH LOGIN fallback resends the user name as the password
        # (fixed in 3.12); offer PLAIN only so a wrong password gets a clean 535.
        auth_exclude_mechanism=["LOGIN"],
    )
    controller.start()
    trusted = ssl.create_default_context(cadata=tls_files[2])

    def backend(**kwargs) -> SmtpBackend:
        options = {"username": "mailer", "password": "s3cret", "ssl_context": trusted}
        return SmtpBackend(
            "127.0.0.1", port, security="starttls", timeout=5, **{**options, **kwargs}
        )

    try:
        good = backend()
        results = good.deliver(batch("a@example.com", "b@example.com"))
        good.close()
        wrong = backend(password="wrong")
        refused = wrong.deliver(batch("c@example.com", start=3))
        wrong.close()
        untrusted = backend(ssl_context=None)
        unverified = untrusted.deliver(batch("d@example.com", start=4))
        untrusted.close()
        plain = SmtpBackend("127.0.0.1", port, security="none", timeout=5)
        cleartext = plain.deliver(batch("e@example.com", start=5))
        plain.close()
    finally:
        controller.stop()

    assert outcomes(results) == ["sent", "sent"]
    assert handler.recipients() == ["a@example.com", "b@example.com"]
    assert ("mailer", True) in logins.seen
    # Bad credentials or an untrusted certificate are not the message's fault: retry later.
    assert outcomes(refused) == ["transient"]
    assert "535" in refused[0].error
    assert outcomes(unverified) == ["transient"]
    assert "CERTIFICATE_VERIFY_FAILED" in unverified[0].error
    # A server demanding STARTTLS refuses MAIL in cleartext (530): a setup problem, not the mail's.
    assert outcomes(cleartext) == ["transient"]
    assert "530" in cleartext[0].error


def test_implicit_tls(tls_files):
    handler = RecordingHandler()
    port = free_port()
    controller = Controller(
        handler, hostname="127.0.0.1", port=port, ssl_context=_server_context(tls_files)
    )
    controller.start()
    try:
        backend = SmtpBackend(
            "127.0.0.1",
            port,
            security="tls",
            timeout=5,
            ssl_context=ssl.create_default_context(cadata=tls_files[2]),
        )
        results = backend.deliver(batch("a@example.com", "b@example.com"))
        backend.close()
    finally:
        controller.stop()
    assert outcomes(results) == ["sent", "sent"]
    assert handler.recipients() == ["a@example.com", "b@example.com"]
    assert len(handler.peers) == 1


def test_421_mid_batch_stops_the_batch_as_transient(smtp_server):
    handler, port = smtp_server
    handler.replies["busy@example.com"] = "421 4.3.2 Service shutting down"
    backend = SmtpBackend("127.0.0.1", port, timeout=5)
    results = backend.deliver(batch("a@example.com", "busy@example.com", "b@example.com"))
    backend.close()
    assert outcomes(results) == ["sent", "transient", "transient"]
    assert results[1].error.startswith("421")
    assert "not attempted" in results[2].error
    assert handler.recipients() == ["a@example.com"]


def test_non_ascii_address_fails_only_that_message(smtp_server):
    handler, port = smtp_server
    backend = SmtpBackend("127.0.0.1", port, timeout=5)
    odd = OutgoingMessage(2, SENDER, "bjørn@example.com", message(1, "a@example.com").data)
    results = backend.deliver([message(1, "a@example.com"), odd, message(3, "c@example.com")])
    backend.close()
    assert outcomes(results) == ["sent", "permanent", "sent"]
    assert handler.recipients() == ["a@example.com", "c@example.com"]
    assert len(handler.peers) == 1
