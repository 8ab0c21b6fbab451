"""Amazon SQS transport (aiobotocore): long polling, visibility timeouts, RedrivePolicy DLQs.

How the interface maps onto SQS (details in ``docs/transports.md``):

* ``receive`` long-polls (``WaitTimeSeconds`` up to 20) and leases with ``VisibilityTimeout``
  (whole seconds, rounded up); ``receive_count`` is ``ApproximateReceiveCount``;
* ``nack(delay)`` and ``extend_lease`` are ``ChangeMessageVisibility``; a delayed ``send`` uses
  ``DelaySeconds``, which SQS caps at 15 minutes (longer delays arrive early; the sidecar's
  ``x-asya-not-before`` guard re-nacks them);
* the DLQ is a ``RedrivePolicy`` with ``maxReceiveCount`` from the :class:`QueueSpec`;
* bodies are sent as text when they are valid SQS text (JSON envelopes are), otherwise base64 with
  a ``asya-encoding`` attribute; the 256 KiB limit is checked before sending;
* the lease is also tracked here: acking after the lease lapsed raises :class:`LeaseLost` instead of
  deleting a message that may already be leased to another consumer.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import re
import time
from dataclasses import dataclass
from typing import Any

from aiobotocore.session import get_session
from botocore.config import Config
from botocore.exceptions import ClientError

from asya_common.transport._sqs_batch import DeleteBatcher
from asya_common.transport.base import (
    EnsureResult,
    LeaseLost,
    MessageTooLarge,
    QueueDepth,
    QueueNotFound,
    QueueSpec,
    ReceivedMessage,
    Transport,
    TransportError,
    drift_between,
)
from asya_common.transport.config import TransportSettings

ENCODING_ATTRIBUTE = "asya-encoding"
MAX_DELAY_SECONDS = 900
MAX_VISIBILITY_SECONDS = 43200
MAX_RETENTION_SECONDS = 1209600
_NOT_FOUND = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}
_LEASE_GONE = {"ReceiptHandleIsInvalid", "InvalidParameterValue", "MessageNotInflight", "AWS.SimpleQueueService.MessageNotInflight"}
_NOT_SQS_TEXT = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_ENCODING_OVERHEAD = len(ENCODING_ATTRIBUTE) + len("String") + len("base64")


@dataclass
class _Lease:
    receipt_handle: str
    deadline: float


def _code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def _seconds(value: float, upper: int) -> int:
    return max(0, min(upper, math.ceil(value - 1e-6)))


class SQSTransport(Transport):
    """Transport over one aiobotocore SQS client; queue URLs are looked up once and cached."""

    name = "sqs"
    max_message_bytes = 256 * 1024
    #: Largest body that is not SQS text (sent base64-encoded with one message attribute).
    max_binary_bytes = (max_message_bytes - _ENCODING_OVERHEAD) // 4 * 3

    def __init__(self, settings: TransportSettings):
        self.settings = settings
        self._stack: contextlib.AsyncExitStack | None = None
        self._client: Any = None
        self._urls: dict[str, str] = {}
        self._deletes = DeleteBatcher(self._delete_batch, self._delete_error)

    async def connect(self) -> None:
        if self._client is not None:
            return
        self._stack = contextlib.AsyncExitStack()
        self._client = await self._stack.enter_async_context(
            get_session().create_client(
                "sqs",
                region_name=self.settings.sqs_region,
                endpoint_url=self.settings.sqs_endpoint_url or None,
                config=Config(retries={"max_attempts": 5, "mode": "standard"}, read_timeout=30),
            )
        )

    async def close(self) -> None:
        if self._stack is not None:
            await self._stack.aclose()
        self._stack, self._client = None, None
        self._urls.clear()

    async def _url(self, queue: str) -> str:
        if queue not in self._urls:
            try:
                self._urls[queue] = (await self._client.get_queue_url(QueueName=queue))["QueueUrl"]
            except ClientError as exc:
                if _code(exc) in _NOT_FOUND:
                    raise QueueNotFound(f"SQS queue {queue!r} does not exist") from None
                raise TransportError(f"SQS GetQueueUrl {queue!r} failed: {exc}") from exc
        return self._urls[queue]

    # -- queues ---------------------------------------------------------------------------------

    async def ensure_queue(self, spec: QueueSpec) -> list[EnsureResult]:
        base = {
            "VisibilityTimeout": str(_seconds(spec.lease_seconds, MAX_VISIBILITY_SECONDS)),
            "MessageRetentionPeriod": str(min(spec.retention_seconds, MAX_RETENTION_SECONDS)),
        }
        results = []
        wanted: dict[str, Any] = {"dlq_name": None}
        if spec.dlq_name:
            results.append(await self._ensure_one(spec.dlq_name, base, {"dlq_name": None}))
            dlq_arn = await self._arn(spec.dlq_name)
            redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(spec.max_receive_count)}
            base = {**base, "RedrivePolicy": json.dumps(redrive)}
            wanted = spec.attributes()
        results.append(await self._ensure_one(spec.name, base, wanted))
        return results

    async def _arn(self, queue: str) -> str:
        attrs = await self._client.get_queue_attributes(QueueUrl=await self._url(queue), AttributeNames=["QueueArn"])
        return attrs["Attributes"]["QueueArn"]

    async def _ensure_one(self, name: str, attributes: dict[str, str], wanted: dict[str, Any]) -> EnsureResult:
        try:
            url = await self._url(name)
        except QueueNotFound:
            response = await self._client.create_queue(QueueName=name, Attributes=attributes)
            self._urls[name] = response["QueueUrl"]
            return EnsureResult(queue=name, created=True)
        actual = await self._client.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])
        raw = actual.get("Attributes", {}).get("RedrivePolicy")
        redrive = json.loads(raw) if raw else {}
        found = {
            "dlq_name": redrive["deadLetterTargetArn"].rsplit(":", 1)[-1] if redrive else None,
            "max_receive_count": int(redrive["maxReceiveCount"]) if redrive else None,
        }
        return EnsureResult(queue=name, created=False, drift=drift_between(wanted, found))

    async def delete_queue(self, name: str) -> None:
        try:
            url = await self._url(name)
            await self._client.delete_queue(QueueUrl=url)
        except QueueNotFound:
            pass
        except ClientError as exc:
            if _code(exc) not in _NOT_FOUND:
                raise TransportError(f"SQS DeleteQueue {name!r} failed: {exc}") from exc
        self._urls.pop(name, None)

    # -- publishing -----------------------------------------------------------------------------

    def _entry(self, queue: str, body: bytes, delay_seconds: float) -> dict[str, Any]:
        self.check_size(queue, body)
        entry: dict[str, Any] = {"DelaySeconds": _seconds(delay_seconds, MAX_DELAY_SECONDS)}
        try:
            text = body.decode("utf-8")
            if _NOT_SQS_TEXT.search(text):
                raise ValueError("characters SQS does not accept")
            entry["MessageBody"] = text
        except ValueError:
            encoded = base64.b64encode(body).decode("ascii")
            if len(encoded) + _ENCODING_OVERHEAD > self.max_message_bytes:
                raise MessageTooLarge(queue, len(body), self.max_binary_bytes) from None
            entry["MessageBody"] = encoded
            entry["MessageAttributes"] = {ENCODING_ATTRIBUTE: {"DataType": "String", "StringValue": "base64"}}
        return entry

    async def send(self, queue: str, body: bytes, *, delay_seconds: float = 0.0) -> None:
        entry = self._entry(queue, body, delay_seconds)
        url = await self._url(queue)
        try:
            await self._client.send_message(QueueUrl=url, **entry)
        except ClientError as exc:
            self._raise(queue, "SendMessage", exc)

    async def send_many(self, queue: str, bodies: list[bytes], *, delay_seconds: float = 0.0) -> None:
        """Sends in ``SendMessageBatch`` calls of up to 10 entries and 256 KiB; raises if any entry failed."""
        entries = [self._entry(queue, body, delay_seconds) for body in bodies]
        url = await self._url(queue)
        batch: list[dict[str, Any]] = []
        size = 0
        for entry in entries + [None]:
            entry_size = len(entry["MessageBody"].encode()) + _ENCODING_OVERHEAD if entry else 0
            if batch and (entry is None or len(batch) == 10 or size + entry_size > self.max_message_bytes):
                try:
                    response = await self._client.send_message_batch(
                        QueueUrl=url, Entries=[{"Id": str(i), **e} for i, e in enumerate(batch)]
                    )
                except ClientError as exc:
                    self._raise(queue, "SendMessageBatch", exc)
                if response.get("Failed"):
                    raise TransportError(f"SQS SendMessageBatch to {queue!r}: entries failed: {response['Failed']}")
                batch, size = [], 0
            if entry is not None:
                batch.append(entry)
                size += entry_size

    def _raise(self, queue: str, operation: str, exc: ClientError):
        if _code(exc) in _NOT_FOUND:
            self._urls.pop(queue, None)
            raise QueueNotFound(f"SQS queue {queue!r} does not exist") from None
        raise TransportError(f"SQS {operation} on {queue!r} failed: {exc}") from exc

    # -- consuming ------------------------------------------------------------------------------

    async def receive(
        self, queue: str, *, max_messages: int = 1, wait_seconds: float = 1.0, lease_seconds: float = 30.0
    ) -> list[ReceivedMessage]:
        url = await self._url(queue)
        received: list[ReceivedMessage] = []
        wait = _seconds(wait_seconds, 20)
        while len(received) < max_messages:
            started = time.monotonic()
            try:
                response = await self._client.receive_message(
                    QueueUrl=url,
                    MaxNumberOfMessages=min(10, max_messages - len(received)),
                    WaitTimeSeconds=wait,
                    VisibilityTimeout=_seconds(lease_seconds, MAX_VISIBILITY_SECONDS),
                    MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
                    MessageAttributeNames=[ENCODING_ATTRIBUTE],
                )
            except ClientError as exc:
                self._raise(queue, "ReceiveMessage", exc)
            batch = response.get("Messages", [])
            for raw in batch:
                received.append(self._message(queue, raw, started + lease_seconds))
            if not batch or len(batch) < 10:
                break
            wait = 0
        return received

    @staticmethod
    def _message(queue: str, raw: dict[str, Any], deadline: float) -> ReceivedMessage:
        attributes = raw.get("Attributes", {})
        encoding = raw.get("MessageAttributes", {}).get(ENCODING_ATTRIBUTE, {}).get("StringValue")
        body = base64.b64decode(raw["Body"]) if encoding == "base64" else raw["Body"].encode("utf-8")
        sent = attributes.get("SentTimestamp")
        return ReceivedMessage(
            queue=queue,
            body=body,
            message_id=raw["MessageId"],
            receive_count=int(attributes.get("ApproximateReceiveCount", 1)),
            handle=_Lease(raw["ReceiptHandle"], deadline),
            enqueued_at=int(sent) / 1000 if sent else None,
        )

    def _live(self, message: ReceivedMessage) -> _Lease:
        lease: _Lease = message.handle
        if time.monotonic() > lease.deadline:
            raise LeaseLost.expired(message)
        return lease

    async def ack(self, message: ReceivedMessage) -> None:
        """Deletes the message (concurrent acks share ``DeleteMessageBatch`` calls)."""
        lease = self._live(message)
        try:
            await self._deletes.delete(await self._url(message.queue), lease.receipt_handle)
        except ClientError as exc:
            self._raise(message.queue, "DeleteMessageBatch", exc)

    async def _delete_batch(self, url: str, entries: list[dict[str, str]]) -> dict[str, Any]:
        return await self._client.delete_message_batch(QueueUrl=url, Entries=entries)

    @staticmethod
    def _delete_error(failure: dict[str, Any]) -> Exception:
        text = f"SQS delete failed: {failure.get('Code')}: {failure.get('Message')}"
        return LeaseLost(text) if failure.get("Code") in _LEASE_GONE else TransportError(text)

    async def _change_visibility(self, message: ReceivedMessage, seconds: float) -> _Lease:
        lease = self._live(message)
        try:
            await self._client.change_message_visibility(
                QueueUrl=await self._url(message.queue),
                ReceiptHandle=lease.receipt_handle,
                VisibilityTimeout=_seconds(seconds, MAX_VISIBILITY_SECONDS),
            )
        except ClientError as exc:
            if _code(exc) in _LEASE_GONE:
                raise LeaseLost(f"message {message.message_id}: {exc}") from exc
            self._raise(message.queue, "ChangeMessageVisibility", exc)
        return lease

    async def nack(self, message: ReceivedMessage, *, delay_seconds: float = 0.0) -> None:
        try:
            lease = await self._change_visibility(message, delay_seconds)
        except LeaseLost:
            return  # already visible again
        lease.deadline = 0.0

    async def extend_lease(self, message: ReceivedMessage, seconds: float) -> None:
        started = time.monotonic()
        lease = await self._change_visibility(message, seconds)
        lease.deadline = started + seconds

    async def depth(self, queue: str) -> QueueDepth:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"]
        try:
            response = await self._client.get_queue_attributes(QueueUrl=await self._url(queue), AttributeNames=names)
        except ClientError as exc:
            self._raise(queue, "GetQueueAttributes", exc)
        values = [int(response["Attributes"].get(name, 0)) for name in names]
        return QueueDepth(ready=values[0], in_flight=values[1], delayed=values[2])
