"""POST /webhooks/ses: SNS signature verification, dedupe, bounces and complaints."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from sqlalchemy import func, select

from campaigns.models import Suppression
from core.db import db
from tests.builders import make_sent_message
from tests.test_openapi import conforms
from tracking import sns
from tracking.models import EngagementRollup, Event, SnsMessage

TOPIC = "arn:aws:sns:us-east-1:123456789012:ses-events"
CERT_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc123.pem"


@pytest.fixture(scope="module")
def signer():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
            .sign(key, hashes.SHA256()))
    return key, cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(autouse=True)
def sns_setup(app, monkeypatch, signer):
    fetched: list[str] = []
    confirmed: list[str] = []

    def fake_fetch(url: str) -> bytes:
        assert sns.is_sns_url(url)  # the real fetcher is only ever given SNS URLs
        fetched.append(url)
        return signer[1]

    monkeypatch.setattr(sns, "fetch_certificate", fake_fetch)
    monkeypatch.setattr(sns, "confirm_subscription", confirmed.append)
    monkeypatch.setitem(app.config, "SNS_TOPIC_ARNS", f"{TOPIC}, arn:aws:sns:eu-west-1:1:other")
    sns._CERT_CACHE.clear()
    return {"fetched": fetched, "confirmed": confirmed}


def signed(signer, message: dict, version: str = "1", key=None) -> dict:
    msg = {"SignatureVersion": version, "SigningCertURL": CERT_URL, **message}
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()  # noqa: S303
    signature = (key or signer[0]).sign(sns.canonical_string(msg), padding.PKCS1v15(), algorithm)
    msg["Signature"] = base64.b64encode(signature).decode()
    return msg


def notification(signer, body: dict, message_id: str = "m-1", version: str = "1",
                 **over) -> dict:
    msg = {"Type": "Notification", "MessageId": message_id, "TopicArn": TOPIC,
           "Message": json.dumps(body), "Timestamp": "2030-01-01T00:00:00.000Z", **over}
    return signed(signer, msg, version)


def bounce(send=None, recipients=("a@example.com",), bounce_type="Permanent") -> dict:
    mail = {"messageId": "ses-provider-id-1", "tags": {}}
    if send is not None:
        mail["tags"] = {"send_id": [str(send.id)]}
    return {"notificationType": "Bounce", "mail": mail,
            "bounce": {"bounceType": bounce_type,
                       "bouncedRecipients": [{"emailAddress": r} for r in recipients]}}


def post(client, msg: dict):
    return client.post("/webhooks/ses", data=json.dumps(msg),
                       headers={"Content-Type": "text/plain; charset=UTF-8",
                                "x-amz-sns-message-type": msg.get("Type", "")})


def state() -> tuple:
    return (
        sorted((s.email, s.reason) for s in db.session.scalars(select(Suppression))),
        db.session.scalar(select(func.count()).select_from(Event)),
        db.session.scalar(select(func.count()).select_from(SnsMessage)),
        db.session.scalar(select(func.coalesce(func.sum(EngagementRollup.soft_bounces), 0))),
    )


@pytest.mark.parametrize("version", ["1", "2"])
def test_permanent_bounce_suppresses_every_recipient_and_records_the_event(client, signer,
                                                                           version):
    send = make_sent_message(email="a@example.com")
    msg = notification(signer, bounce(send, ["a@example.com", "B@example.com",
                                             "Carol <c@example.com>"]), version=version)
    resp = post(client, msg)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    suppressed, events, messages, _ = state()
    assert suppressed == [("a@example.com", "bounced"), ("b@example.com", "bounced"),
                          ("c@example.com", "bounced")]
    assert events == 1 and messages == 1
    event = db.session.scalar(select(Event))
    assert (event.kind, event.send_id) == ("bounce", send.id)


def test_an_invalid_recipient_does_not_block_the_valid_ones(client, signer):
    send = make_sent_message(email="a@example.com")
    junk = "x@" + "y" * 400 + ".example"
    msg = notification(signer, bounce(send, ["a@example.com", junk, "not an address\x00"]))
    assert post(client, msg).status_code == 200
    suppressed, events, messages, _ = state()
    assert suppressed == [("a@example.com", "bounced")] and events == 1 and messages == 1


def test_a_failure_after_suppressing_leaves_nothing_applied(client, signer, monkeypatch):
    from tracking import sns as sns_module

    def broken(*_args, **_kwargs):
        raise RuntimeError("database went away")

    real_apply_hits = sns_module.apply_hits
    monkeypatch.setattr(sns_module, "apply_hits", broken)
    send = make_sent_message(email="a@example.com")
    msg = notification(signer, bounce(send, ["a@example.com", "b@example.com"]))
    assert post(client, msg).status_code == 500
    # Nothing half-applied, and the MessageId is not remembered: SNS's retry applies it all.
    assert state()[:3] == ([], 0, 0)
    monkeypatch.setattr(sns_module, "apply_hits", real_apply_hits)
    assert post(client, msg).status_code == 200
    assert state()[0] == [("a@example.com", "bounced"), ("b@example.com", "bounced")]


def test_replayed_message_id_is_a_no_op(client, signer):
    send = make_sent_message(email="a@example.com")
    msg = notification(signer, bounce(send))
    assert post(client, msg).status_code == 200
    before = state()
    db.session.query(Suppression).delete()  # even if someone cleared the list meanwhile
    db.session.commit()
    resp = post(client, msg)
    assert resp.status_code == 200 and resp.json["status"] == "duplicate"
    assert state() == ([], *before[1:])


def test_complaint_suppresses_and_finds_the_send_by_provider_message_id(client, signer):
    send = make_sent_message(email="c@example.com")
    send.provider_message_id = "0100018f-abc"
    db.session.commit()
    body = {"notificationType": "Complaint", "mail": {"messageId": "0100018f-abc"},
            "complaint": {"complainedRecipients": [{"emailAddress": "c@example.com"}]}}
    assert post(client, notification(signer, body)).status_code == 200
    assert state()[0] == [("c@example.com", "complained")]
    event = db.session.scalar(select(Event))
    assert (event.kind, event.send_id) == ("complaint", send.id)


def test_transient_bounce_is_only_counted(client, signer):
    send = make_sent_message(email="t@example.com")
    body = bounce(send, ["t@example.com"], bounce_type="Transient")
    assert post(client, notification(signer, body)).status_code == 200
    suppressed, events, messages, soft = state()
    assert (suppressed, events, messages, soft) == ([], 0, 1, 1)


def test_send_found_through_the_lastmile_header(client, signer):
    send = make_sent_message(email="h@example.com")
    body = bounce(None, ["h@example.com"])
    body["mail"]["headers"] = [{"name": "X-Lastmile-Send-Id", "value": str(send.id)}]
    assert post(client, notification(signer, body)).status_code == 200
    assert db.session.scalar(select(Event.send_id)) == send.id


def test_bad_signature_wrong_topic_and_foreign_certificate_are_403(client, signer):
    make_sent_message(email="a@example.com")
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    good = notification(signer, bounce(None, ["a@example.com"]))
    tampered = dict(good, Message=json.dumps(bounce(None, ["victim@example.com"])))
    wrong_key = signed(signer, {k: v for k, v in good.items() if k != "Signature"},
                       key=other_key)
    wrong_topic = notification(signer, bounce(None), TopicArn="arn:aws:sns:us-east-1:9:evil")
    bad_version = dict(good, SignatureVersion="3")
    no_signature = {k: v for k, v in good.items() if k != "Signature"}
    cases = [tampered, wrong_key, wrong_topic, bad_version, no_signature]
    for url in ("https://sns.us-east-1.amazonaws.com.evil.com/cert.pem",
                "http://sns.us-east-1.amazonaws.com/cert.pem",
                "https://evil.com/sns.us-east-1.amazonaws.com/cert.pem",
                "https://sns.us-east-1.amazonaws.com@evil.com/cert.pem",
                "https://sns.us-east-1.amazonaws.com:8443/cert.pem",
                "https://sns.us-east-1.amazonaws.com/cert.txt",
                "https://s3.amazonaws.com/sns/cert.pem"):
        cases.append(signed(signer, {**{k: v for k, v in good.items() if k != "Signature"},
                                     "SigningCertURL": url}))
    for msg in cases:
        resp = post(client, msg)
        assert resp.status_code == 403, msg
    assert state() == ([], 0, 0, 0)


def test_malformed_bodies_are_400(client):
    for body in ("not json", "[]", json.dumps({"Type": "Notification"})):
        resp = client.post("/webhooks/ses", data=body)
        assert resp.status_code == 400
    assert state() == ([], 0, 0, 0)


def test_unstorable_text_is_a_documented_422_and_changes_nothing(client):
    # Found by tests/test_api_fuzz.py: a lone surrogate answered 422, then undocumented.
    spec = client.get("/api/openapi.json").get_json()
    for body in ('{"Type": "Notification", "MessageId": "\\ud800"}',
                 '{"Type": "Notification", "MessageId": "a\\u0000b"}'):
        resp = client.post("/webhooks/ses", data=body)
        assert resp.status_code == 422, body
        assert resp.json["error"]["fields"]
        conforms(spec, "/webhooks/ses", "post", resp)
    assert state() == ([], 0, 0, 0)


def test_subscription_confirmation_only_for_allowed_topics(client, signer, sns_setup):
    sub = {"Type": "SubscriptionConfirmation", "MessageId": "s-1", "Token": "tok",
           "TopicArn": TOPIC, "Message": "confirm",
           "SubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription",
           "Timestamp": "2030-01-01T00:00:00.000Z"}
    assert post(client, signed(signer, sub)).status_code == 200
    assert sns_setup["confirmed"] == [sub["SubscribeURL"]]
    evil = dict(sub, MessageId="s-2", TopicArn="arn:aws:sns:us-east-1:9:evil")
    assert post(client, signed(signer, evil)).status_code == 403
    redirect = dict(sub, MessageId="s-3", SubscribeURL="https://evil.com/confirm")
    assert post(client, signed(signer, redirect)).status_code == 403
    assert sns_setup["confirmed"] == [sub["SubscribeURL"]]
    assert sns_setup["fetched"] == [CERT_URL]  # fetched once, then cached


def test_send_found_through_an_old_format_message_id(client, signer):
    # Mail sent before Message-IDs were random named its send and campaign in them.
    send = make_sent_message(email="o@example.com")
    body = bounce(None, ["o@example.com"])
    body["mail"]["commonHeaders"] = {"messageId": f"<lastmile.{send.id}.{send.campaign_id}"
                                                  "@acme.example>"}
    assert post(client, notification(signer, body)).status_code == 200
    assert db.session.scalar(select(Event.send_id)) == send.id


def test_old_format_message_id_of_another_campaign_names_no_send(client, signer):
    send = make_sent_message(email="w@example.com")
    body = bounce(None, ["w@example.com"])
    body["mail"]["commonHeaders"] = {"messageId": f"<lastmile.{send.id}."
                                                  f"{send.campaign_id + 1}@acme.example>"}
    body["mail"]["headers"] = ["not a header", {"name": "Message-ID",
                                                "value": "<lastmile.99999999999.1@x>"}]
    response = post(client, notification(signer, body))
    assert response.status_code == 200 and response.json["send_id"] is None
    assert db.session.scalar(select(func.count()).select_from(Event)) == 0
    assert state()[0] == [("w@example.com", "bounced")]  # the address is still suppressed


def test_send_found_through_its_random_message_id(client, signer):
    send = make_sent_message(email="r@example.com")
    send.provider_message_id = "lm.0123456789abcdef0123456789abcdef@acme.example"
    db.session.commit()
    body = bounce(None, ["r@example.com"])
    body["mail"]["headers"] = [{"name": "Message-ID", "value": f"<{send.provider_message_id}>"}]
    assert post(client, notification(signer, body)).status_code == 200
    assert db.session.scalar(select(Event.send_id)) == send.id
