"""Amazon SNS -> SES bounce and complaint notifications, verified before anything changes.

Verification follows AWS's "Verifying the signatures of Amazon SNS messages": the signing
certificate is fetched only from https://sns.<region>.amazonaws.com/...pem (strict host
match, cached), the canonical string is built from the message's own fields, and the
signature is checked with SHA1 (SignatureVersion 1) or SHA256 (SignatureVersion 2). The topic
must be one of SNS_TOPIC_ARNS. Every MessageId is stored once; a replay is a no-op.
"""

from __future__ import annotations

import base64
import logging
import re
from urllib.parse import urlsplit

import requests
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from sqlalchemy import select

from campaigns.contacts import InvalidEmail, normalize_email
from campaigns.models import Send
from campaigns.suppression import add_suppressions
from core import clock
from core.db import db
from core.errors import BadRequest, Forbidden
from core.validate import is_db_id, parse_json
from delivery.mime import legacy_message_id_send
from tracking.ingest import Hit, _insert, apply_hits
from tracking.models import SnsMessage

log = logging.getLogger("lastmile.tracking")

_SNS_HOST = re.compile(r"^sns\.[a-z]{2}(-[a-z]+)+-\d\.amazonaws\.com(\.cn)?$")
_NOTIFICATION_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_SUBSCRIPTION_FIELDS = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token",
                        "TopicArn", "Type")
_CERT_CACHE: dict[str, x509.Certificate] = {}


def is_sns_url(url: str) -> bool:
    """Tell whether `url` is an https URL on an SNS regional endpoint (nothing else is fetched)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except (ValueError, TypeError):
        return False
    return (parts.scheme == "https" and port is None and parts.username is None
            and parts.password is None and bool(_SNS_HOST.match(parts.hostname or ""))
            and parts.netloc == parts.hostname)


def fetch_certificate(url: str) -> bytes:
    """Download a signing certificate (tests replace this function)."""
    response = requests.get(url, timeout=5, allow_redirects=False)
    response.raise_for_status()
    return response.content


def confirm_subscription(url: str) -> None:
    """Visit a SubscribeURL to confirm a subscription (tests replace this function)."""
    requests.get(url, timeout=5, allow_redirects=False).raise_for_status()


def _certificate(url: str) -> x509.Certificate:
    cert = _CERT_CACHE.get(url)
    if cert is None:
        cert = x509.load_pem_x509_certificate(fetch_certificate(url))
        _CERT_CACHE[url] = cert
    return cert


def canonical_string(msg: dict) -> bytes:
    """Return the bytes SNS signed for `msg` (field order and presence per message type)."""
    names = _NOTIFICATION_FIELDS if msg.get("Type") == "Notification" else _SUBSCRIPTION_FIELDS
    out = []
    for name in names:
        if name in msg and msg[name] is not None:
            out.append(f"{name}\n{msg[name]}\n")
    return "".join(out).encode()


def verify(msg: dict, allowed_topics: list[str]) -> None:
    """Raise Forbidden unless `msg` comes from an allowed topic with a valid SNS signature."""
    if msg.get("TopicArn") not in allowed_topics:
        raise Forbidden("SNS topic is not accepted here.")
    version = str(msg.get("SignatureVersion", ""))
    algorithm = {"1": hashes.SHA1(), "2": hashes.SHA256()}.get(version)  # noqa: S303
    if algorithm is None:
        raise Forbidden("Unsupported SNS SignatureVersion.")
    cert_url = str(msg.get("SigningCertURL") or msg.get("SigningCertUrl") or "")
    if not is_sns_url(cert_url) or not cert_url.endswith(".pem"):
        raise Forbidden("SNS signing certificate URL is not an SNS endpoint.")
    try:
        signature = base64.b64decode(str(msg.get("Signature", "")), validate=True)
        key = _certificate(cert_url).public_key()
    except Exception as exc:  # noqa: BLE001 - any failure to get a key means unverified
        raise Forbidden("SNS signature could not be verified.") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise Forbidden("SNS signing key is not RSA.")
    try:
        key.verify(signature, canonical_string(msg), padding.PKCS1v15(), algorithm)
    except InvalidSignature as exc:
        raise Forbidden("SNS signature does not verify.") from exc


def _remember(msg: dict) -> bool:
    """Store the MessageId; False if it was already processed (a replay)."""
    row = {"message_id": str(msg.get("MessageId", ""))[:100], "type": str(msg.get("Type"))[:40],
           "topic_arn": str(msg.get("TopicArn"))[:300], "received_at": clock.now()}
    result = db.session.execute(
        _insert(SnsMessage).values(row).on_conflict_do_nothing(index_elements=["message_id"])
        .returning(SnsMessage.id))
    return result.first() is not None


def _headers(mail: dict) -> list[dict]:
    headers = mail.get("headers")
    return [h for h in headers if isinstance(h, dict)] if isinstance(headers, list) else []


def _find_send(mail: dict) -> Send | None:
    """Find the send a notification is about: our tag/header first, then the provider id."""
    candidates: list[str] = []
    tags = mail.get("tags") or {}
    for name in ("send_id", "lastmile_send_id", "X-Lastmile-Send-Id"):
        value = tags.get(name)
        candidates += value if isinstance(value, list) else [value] if value else []
    for header in _headers(mail):
        if str(header.get("name", "")).lower() == "x-lastmile-send-id":
            candidates.append(header.get("value"))
    for value in candidates:
        try:
            send_id = int(str(value).strip())
        except (TypeError, ValueError):
            continue
        send = db.session.get(Send, send_id) if is_db_id(send_id) else None
        if send is not None:
            return send
    provider_id = mail.get("messageId")
    if provider_id:
        send = db.session.scalar(
            select(Send).where(Send.provider_message_id == str(provider_id)).limit(1))
        if send is not None:
            return send
    # Last, the Message-ID we wrote: the SMTP backend stores it as the provider id, and an
    # old-format one (mail sent before they were random) names its send and campaign.
    common = mail.get("commonHeaders")
    ours = [common.get("messageId")] if isinstance(common, dict) else []
    ours += [h.get("value") for h in _headers(mail)
             if str(h.get("name", "")).lower() == "message-id"]
    for value in filter(None, ours):
        message_id = str(value).strip()
        legacy = legacy_message_id_send(message_id)
        if legacy is not None and is_db_id(legacy[0]):
            send = db.session.get(Send, legacy[0])
            if send is not None and send.campaign_id == legacy[1]:
                return send
        send = db.session.scalar(select(Send).where(
            Send.provider_message_id == message_id.strip("<>")[:300]).limit(1))
        if send is not None:
            return send
    return None


def _recipients(items: list | None) -> list[str]:
    """Return the valid, normalized addresses named in an SES recipients list."""

    out = []
    for item in items if isinstance(items, list) else []:
        address = str((item or {}).get("emailAddress", "") if isinstance(item, dict) else "")
        address = address.strip()
        if "<" in address and address.endswith(">"):
            address = address[address.rindex("<") + 1:-1]
        try:
            out.append(normalize_email(address))
        except InvalidEmail:
            # One malformed entry must not block the valid ones (SNS would retry forever).
            log.warning("SES notification names an invalid address; skipped: %r", address[:100])
    return out


def handle_ses_notification(body: dict, message_id: str) -> dict:
    """Apply one SES notification: suppress addresses, record events; return a summary."""

    kind = body.get("notificationType") or body.get("eventType") or ""
    mail = body.get("mail") or {}
    send = _find_send(mail)
    now = clock.now()
    summary: dict = {"type": kind, "send_id": send.id if send else None, "suppressed": []}
    hit_kind, reason, addresses = None, None, []
    if kind == "Bounce":
        bounce = body.get("bounce") or {}
        addresses = _recipients(bounce.get("bouncedRecipients"))
        if bounce.get("bounceType") == "Permanent":
            hit_kind, reason = "bounce", "bounced"
        else:
            hit_kind = "soft_bounce"  # transient / undetermined: counted, nobody suppressed
    elif kind == "Complaint":
        addresses = _recipients((body.get("complaint") or {}).get("complainedRecipients"))
        hit_kind, reason = "complaint", "complained"
    elif kind == "Delivery":
        hit_kind = "delivery"
    if reason:
        # No commit here: the suppressions, the MessageId and the events land together, so a
        # failure leaves nothing half-applied and SNS's retry is processed in full.
        add_suppressions(addresses, reason, detail=f"SES {kind.lower()} {message_id}")
        summary["suppressed"].extend(addresses)
    if send is not None and hit_kind:
        apply_hits([Hit(hit_kind, send.id, now, key=f"sns:{message_id}")])
    return summary


def handle(raw: bytes, allowed_topics: list[str]) -> dict:
    """Verify and apply one SNS POST body; raise BadRequest/Forbidden, return a summary."""
    msg = parse_json(raw)  # 400 for invalid or too deep JSON, 422 for unstorable text
    if not isinstance(msg, dict) or not msg.get("MessageId") or not msg.get("Type"):
        raise BadRequest("Body must be an SNS JSON message.")
    verify(msg, allowed_topics)
    if not _remember(msg):
        db.session.rollback()
        return {"status": "duplicate"}
    kind = msg["Type"]
    if kind == "SubscriptionConfirmation":
        url = str(msg.get("SubscribeURL", ""))
        if not is_sns_url(url):
            raise Forbidden("SubscribeURL is not an SNS endpoint.")
        confirm_subscription(url)  # before the commit: if it fails, SNS retries the message
        db.session.commit()
        return {"status": "subscribed"}
    if kind != "Notification":
        db.session.commit()
        return {"status": "ignored"}
    try:
        # Signed by SNS; every address in it is validated one by one (a bad one is skipped).
        body = parse_json(str(msg.get("Message") or ""), check_text=False)
    except BadRequest:
        body = None
    if not isinstance(body, dict):
        db.session.commit()
        return {"status": "ignored"}
    summary = handle_ses_notification(body, str(msg["MessageId"]))
    db.session.commit()
    return {"status": "processed", **summary}
