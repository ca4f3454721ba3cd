"""Amazon SES backend (boto3 sesv2 SendEmail with raw content)."""

from __future__ import annotations

import logging
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from delivery.base import (
    PERMANENT,
    QUOTA,
    SENT,
    TRANSIENT,
    DeliveryResult,
    OutgoingMessage,
    failure,
)

log = logging.getLogger(__name__)

THROTTLED = {"TooManyRequestsException", "Throttling", "ThrottlingException"}
# The account cannot send right now: stop the batch, lose nothing, let the worker pause.
ACCOUNT_STOPPED = {"LimitExceededException", "SendingPausedException", "AccountSuspendedException"}


def classify_client_error(exc: ClientError) -> str:
    """Map an SES ClientError to transient, quota or permanent."""
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    text = str(error.get("Message", "")).lower()
    if "quota" in text:
        return QUOTA
    if code in THROTTLED or "maximum sending rate" in text:
        return TRANSIENT
    if code in ACCOUNT_STOPPED:
        return QUOTA
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
    if status >= 500 or code in {"InternalFailure", "ServiceUnavailable"}:
        return TRANSIENT
    return PERMANENT


class SesBackend:
    """Deliver through SES v2; each message is one SendEmail call tagged with its send id."""

    def __init__(
        self,
        region: str,
        endpoint_url: str | None = None,
        configuration_set: str | None = None,
        client: Any = None,
    ) -> None:
        self.configuration_set = configuration_set or None
        # No botocore retries: a retried SendEmail after a read timeout could send twice, and
        # the sends ledger already retries transient results with backoff.
        self.client = client or boto3.client(
            "sesv2",
            region_name=region,
            endpoint_url=endpoint_url or None,
            config=Config(
                retries={"max_attempts": 1, "mode": "standard"},
                connect_timeout=10,
                read_timeout=30,
            ),
        )

    def _request(self, message: OutgoingMessage) -> dict[str, Any]:
        request: dict[str, Any] = {
            "FromEmailAddress": message.mail_from,
            "Destination": {"ToAddresses": [message.rcpt_to]},
            "Content": {"Raw": {"Data": message.data}},
            "EmailTags": [{"Name": "send_id", "Value": str(message.send_id)}],
        }
        if self.configuration_set:
            request["ConfigurationSetName"] = self.configuration_set
        return request

    def deliver(self, messages: list[OutgoingMessage]) -> list[DeliveryResult]:
        """Send each message; throttling, quota and unreachable endpoints stop the batch."""
        results: list[DeliveryResult] = []
        for index, message in enumerate(messages):
            try:
                response = self.client.send_email(**self._request(message))
            except ClientError as exc:
                error = exc.response.get("Error", {})
                text = f"{error.get('Code', 'ClientError')}: {error.get('Message', '')}"
                outcome = classify_client_error(exc)
                results.append(failure(message, outcome, text))
                if outcome in (TRANSIENT, QUOTA):
                    # The next call would meet the same limit; do not hammer the API.
                    rest = f"not attempted: {text}"
                    results.extend(failure(m, outcome, rest) for m in messages[index + 1 :])
                    log.warning("ses: %s; stopping batch", text)
                    break
                continue
            except ParamValidationError as exc:
                results.append(failure(message, PERMANENT, f"ParamValidationError: {exc}"))
                continue
            except BotoCoreError as exc:
                # Endpoint unreachable, timeouts, missing credentials: not the message's fault.
                text = f"{type(exc).__name__}: {exc}"
                results.append(failure(message, TRANSIENT, text))
                results.extend(
                    failure(m, TRANSIENT, f"not attempted: {text}") for m in messages[index + 1 :]
                )
                log.warning("ses: %s; stopping batch", text)
                break
            except Exception as exc:
                log.exception("ses: unexpected error sending send %s", message.send_id)
                text = f"{type(exc).__name__}: {exc}"
                results.append(failure(message, TRANSIENT, text))
                results.extend(
                    failure(m, TRANSIENT, f"not attempted: {text}") for m in messages[index + 1 :]
                )
                break
            results.append(DeliveryResult(message.send_id, SENT, response.get("MessageId")))
        return results

    def close(self) -> None:
        """Close the client's HTTP connection pool."""
        close = getattr(self.client, "close", None)
        if close is not None:
            close()
