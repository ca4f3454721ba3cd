"""delivery.ses against moto running as a real HTTP server, plus the error mapping."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from email import message_from_string, policy

import boto3
import pytest
import requests
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from moto.server import ThreadedMotoServer

from delivery.backends import get_backend
from delivery.base import OutgoingMessage
from delivery.mime import build_message
from delivery.ses import SesBackend, classify_client_error

SENDER = "news@acme.example"
REGION = "us-east-1"


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def ses(moto_endpoint, monkeypatch) -> str:
    """A clean moto SES with the sender identity verified; returns the endpoint URL."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    requests.post(f"{moto_endpoint}/moto-api/reset", timeout=10).raise_for_status()
    client = boto3.client("sesv2", region_name=REGION, endpoint_url=moto_endpoint)
    client.create_email_identity(EmailIdentity=SENDER)
    client.close()
    return moto_endpoint


def sent_messages(endpoint: str) -> list[dict]:
    response = requests.get(f"{endpoint}/moto-api/data.json", timeout=10)
    response.raise_for_status()
    return response.json()["ses"]["RawMessage"]


def message(send_id: int, rcpt: str, mail_from: str = SENDER) -> OutgoingMessage:
    data = build_message(
        message_id=f"{send_id}.test@lastmile.test",
        from_name="Acme Financial",
        from_email=mail_from,
        reply_to="",
        reply_to_name="",
        to=rcpt,
        subject=f"Grüße {send_id}",
        html=f"<p>Hi {send_id}</p>",
        text=f"Hi {send_id}",
        list_unsubscribe_url=f"https://lastmile.test/u/{send_id}",
        list_unsubscribe_mailto="",
        send_id=send_id,
    )
    return OutgoingMessage(send_id=send_id, mail_from=mail_from, rcpt_to=rcpt, data=data)


def fake_error(code: str, text: str, status: int = 400):
    """A before-call handler answering SendEmail with an AWS error instead of calling SES."""

    def handler(**kwargs):
        response = AWSResponse(url="", status_code=status, headers={}, raw=None)
        parsed = {
            "Error": {"Code": code, "Message": text},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }
        return response, parsed

    return handler


def test_sends_raw_messages_through_ses(ses):
    backend = SesBackend(region=REGION, endpoint_url=ses)
    results = backend.deliver([message(1, "a@example.com"), message(2, "b@example.com")])
    backend.close()

    assert [r.outcome for r in results] == ["sent", "sent"]
    stored = sent_messages(ses)
    assert [m["id"] for m in stored] == [r.provider_message_id for r in results]
    assert stored[0]["source"] == SENDER
    assert "a@example.com" in stored[0]["destinations"]
    parsed = message_from_string(stored[1]["raw_data"], policy=policy.default)
    assert parsed["Subject"] == "Grüße 2"
    assert parsed["X-Lastmile-Send-Id"] == "2"
    assert parsed.get_body(("plain",)).get_content().strip() == "Hi 2"


def test_request_carries_send_id_tag_and_configuration_set(ses):
    client = boto3.client("sesv2", region_name=REGION, endpoint_url=ses)
    client.create_configuration_set(ConfigurationSetName="lastmile-events")
    seen: list[dict] = []
    backend = SesBackend(region=REGION, endpoint_url=ses, configuration_set="lastmile-events")
    backend.client.meta.events.register(
        "provide-client-params.sesv2.SendEmail", lambda params, **_: seen.append(dict(params))
    )
    outgoing = message(77, "a@example.com")
    results = backend.deliver([outgoing])
    backend.close()
    client.close()

    assert [r.outcome for r in results] == ["sent"]
    (params,) = seen
    assert params["EmailTags"] == [{"Name": "send_id", "Value": "77"}]
    assert params["ConfigurationSetName"] == "lastmile-events"
    assert params["Destination"] == {"ToAddresses": ["a@example.com"]}
    assert params["FromEmailAddress"] == SENDER
    assert params["Content"]["Raw"]["Data"] == outgoing.data
    assert len(sent_messages(ses)) == 1


def test_unverified_sender_fails_only_that_message(ses):
    backend = SesBackend(region=REGION, endpoint_url=ses)
    results = backend.deliver(
        [
            message(1, "a@example.com"),
            message(2, "b@example.com", mail_from="stranger@elsewhere.example"),
            message(3, "c@example.com"),
        ]
    )
    backend.close()
    assert [r.outcome for r in results] == ["sent", "permanent", "sent"]
    assert results[1].error.startswith("MessageRejected")
    assert [m["destinations"][0] for m in sent_messages(ses)] == ["a@example.com", "c@example.com"]


@pytest.mark.parametrize(
    ("code", "text", "status", "outcome"),
    [
        ("TooManyRequestsException", "Too many requests", 429, "transient"),
        ("ThrottlingException", "Rate exceeded", 400, "transient"),
        ("Throttling", "Maximum sending rate exceeded.", 400, "transient"),
        ("LimitExceededException", "Limit exceeded", 400, "quota"),
        ("MessageRejected", "Daily message quota exceeded.", 400, "quota"),
        ("SendingPausedException", "Sending paused for this account", 400, "quota"),
    ],
)
def test_throttling_and_quota_stop_the_batch(ses, code, text, status, outcome):
    backend = SesBackend(region=REGION, endpoint_url=ses)
    calls: list[int] = []
    real = fake_error(code, text, status)

    def second_call_fails(**kwargs):
        calls.append(1)
        return real(**kwargs) if len(calls) == 2 else None

    backend.client.meta.events.register("before-call.sesv2.SendEmail", second_call_fails)
    results = backend.deliver([message(i, f"u{i}@example.com") for i in range(1, 5)])
    backend.close()

    assert [r.outcome for r in results] == ["sent", outcome, outcome, outcome]
    assert code in results[1].error
    assert "not attempted" in results[2].error
    assert len(calls) == 2, "the batch must stop at the first throttle or quota error"
    assert [m["destinations"][0] for m in sent_messages(ses)] == ["u1@example.com"]


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("MessageRejected", 400),
        ("MailFromDomainNotVerifiedException", 400),
        ("BadRequestException", 400),
    ],
)
def test_permanent_errors_fail_only_their_message(ses, code, status):
    backend = SesBackend(region=REGION, endpoint_url=ses)
    calls: list[int] = []
    real = fake_error(code, "nope", status)

    def first_call_fails(**kwargs):
        calls.append(1)
        return real(**kwargs) if len(calls) == 1 else None

    backend.client.meta.events.register("before-call.sesv2.SendEmail", first_call_fails)
    results = backend.deliver([message(1, "a@example.com"), message(2, "b@example.com")])
    backend.close()
    assert [r.outcome for r in results] == ["permanent", "sent"]
    assert [m["destinations"][0] for m in sent_messages(ses)] == ["b@example.com"]


def test_server_errors_are_transient():
    error = ClientError(
        {
            "Error": {"Code": "InternalFailure", "Message": "oops"},
            "ResponseMetadata": {"HTTPStatusCode": 500},
        },
        "SendEmail",
    )
    assert classify_client_error(error) == "transient"


def test_unreachable_endpoint_makes_every_message_transient(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backend = SesBackend(region=REGION, endpoint_url=f"http://127.0.0.1:{port}")
    results = backend.deliver([message(1, "a@example.com"), message(2, "b@example.com")])
    backend.close()
    assert [r.outcome for r in results] == ["transient", "transient"]
    assert "EndpointConnectionError" in results[0].error


def test_get_backend_builds_ses_from_config(ses):
    backend = get_backend(
        {"DELIVERY_BACKEND": "ses", "SES_REGION": REGION, "SES_ENDPOINT_URL": ses}
    )
    assert isinstance(backend, SesBackend)
    assert [r.outcome for r in backend.deliver([message(1, "a@example.com")])] == ["sent"]
    backend.close()
    assert len(sent_messages(ses)) == 1
