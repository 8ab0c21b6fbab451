"""RabbitMQ helpers that are not the message path: queue arguments, drift, delay buckets, depth.

AMQP cannot read a queue's arguments back, but RabbitMQ answers a declare with different arguments
with ``PRECONDITION_FAILED - inequivalent arg 'x' ... but current is the value 'v'``. Declaring with
a guess, correcting it from each error, until the declare succeeds, reads the actual arguments
without any plugin (:func:`read_arguments`). Depth needs the in-flight count, which only the
management plugin's HTTP API exposes (:func:`management_depth`). Channels are plain aiormq channels
(:func:`new_channel`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
import re
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import aiormq.exceptions

from asya_common.transport.base import EnsureResult, QueueDepth, QueueNotFound, TransportError, drift_between

QUORUM = "quorum"
DEFAULT_MANAGEMENT_PORT = 15672
_INEQUIVALENT = re.compile(
    r"inequivalent arg '(?P<arg>[^']+)'.*?but current is "
    r"(?:none|the value '(?P<value>.*)' of type '(?P<type>\w+)'|'(?P<bare>.*)')"
)
_INTEGER_TYPES = {"long", "signedint", "short", "byte", "unsignedbyte", "unsignedshort", "unsignedint"}
# Delayed sends are parked in per-delay queues whose message TTL is the delay; delays are rounded
# UP to one of these steps (about 10% apart) so a message is never early and few queues exist.
_DELAY_STEP = 1.1
_MIN_DELAY_MS = 50


async def new_channel(connection, *, publisher_confirms: bool = False):
    """Opens an aiormq channel on ``connection``.

    Only the publishing channel needs confirms; every other channel (consumers, queue administration)
    opens without them, which saves the ``confirm.select`` round trip.

    Raises:
        aiormq.exceptions.ConnectionClosed: The connection is closed (aiormq raises a bare ``RuntimeError``).
    """
    if connection.is_closed:
        raise aiormq.exceptions.ConnectionClosed(320, "connection is closed")
    try:
        return await connection.channel(publisher_confirms=publisher_confirms, on_return_raises=True)
    except RuntimeError as exc:  # closed while the channel was being opened
        raise aiormq.exceptions.ConnectionClosed(320, str(exc)) from exc


@contextlib.asynccontextmanager
async def open_channel(connection):
    """A short-lived channel, closed afterwards unless the broker already closed it (after an error)."""
    channel = await new_channel(connection)
    try:
        yield channel
    finally:
        if not channel.is_closed:
            await channel.close()


async def require_queue(channel, queue: str):
    """Passively declares ``queue`` on ``channel`` (the broker's ``DeclareOk``: message and consumer counts).

    Raises:
        QueueNotFound: The queue does not exist (the broker then closes ``channel``).
    """
    try:
        return await channel.queue_declare(queue, passive=True)
    except aiormq.exceptions.ChannelNotFoundEntity:
        raise QueueNotFound(f"RabbitMQ queue {queue!r} does not exist") from None


def queue_arguments(max_receive_count: int | None, dlq_name: str | None) -> dict[str, Any]:
    """Arguments of an Asya queue: quorum, bounded deliveries, at-least-once dead-lettering."""
    args: dict[str, Any] = {"x-queue-type": QUORUM}
    if dlq_name:
        args.update(
            {
                "x-delivery-limit": max(0, max_receive_count - 1) if max_receive_count else 0,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": dlq_name,
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
            }
        )
    return args


def spec_attributes(arguments: dict[str, Any]) -> dict[str, Any]:
    """Maps actual queue arguments back onto :meth:`QueueSpec.attributes` terms."""
    limit = arguments.get("x-delivery-limit")
    return {
        "dlq_name": arguments.get("x-dead-letter-routing-key") or None,
        "max_receive_count": None if limit is None else int(limit) + 1,
        "queue_type": arguments.get("x-queue-type", "classic"),
    }


async def read_arguments(connection, queue: str, guess: dict[str, Any]) -> dict[str, Any]:
    """Reads the arguments of an existing queue by declaring it with ``guess`` and fixing mismatches.

    Raises:
        QueueNotFound: The queue does not exist.
    """
    async with open_channel(connection) as channel:
        await require_queue(channel, queue)
    args = dict(guess)
    for _ in range(32):
        async with open_channel(connection) as channel:
            try:
                await channel.queue_declare(queue, durable=True, arguments=args)
                return args
            except aiormq.exceptions.ChannelPreconditionFailed as exc:
                match = _INEQUIVALENT.search(str(exc))
                if not match or match["arg"] == "durable":
                    raise TransportError(f"queue {queue!r} cannot be inspected: {exc}") from None
                if match["value"] is not None:
                    value: Any = match["value"]
                    args[match["arg"]] = int(value) if match["type"] in _INTEGER_TYPES else value
                elif match["bare"] is not None:
                    bare = match["bare"]
                    args[match["arg"]] = int(bare) if re.fullmatch(r"-?\d+", bare) else bare
                else:
                    args.pop(match["arg"], None)
    raise TransportError(f"queue {queue!r}: could not read its arguments")


async def ensure_one(
    connection, exchange: str, name: str, args: dict[str, Any], wanted: dict[str, Any] | None
) -> tuple[EnsureResult, dict[str, Any]]:
    """Creates ``name`` with ``args`` (bound to ``exchange``) or compares an existing queue with ``wanted``.

    Returns:
        The result (drift included) and the queue's actual attributes in :func:`spec_attributes` terms.
    """
    async with open_channel(connection) as channel:
        try:
            actual = await read_arguments(connection, name, args)
        except QueueNotFound:
            await channel.queue_declare(name, durable=True, arguments=args)
            await channel.queue_bind(name, exchange, routing_key=name)
            return EnsureResult(queue=name, created=True), spec_attributes(args)
        attributes = spec_attributes(actual)
        wanted = wanted or {"dlq_name": None, "queue_type": QUORUM}
        await require_queue(channel, name)
        await channel.queue_bind(name, exchange, routing_key=name)
        return EnsureResult(queue=name, created=False, drift=drift_between(wanted, attributes)), attributes


async def delete(connection, name: str) -> None:
    """Deletes a queue and its messages; a missing queue is fine."""
    async with open_channel(connection) as channel:
        try:
            await channel.queue_delete(name)
        except aiormq.exceptions.ChannelNotFoundEntity:
            pass


def delay_bucket_ms(delay_seconds: float) -> int:
    """The delay-queue TTL used for ``delay_seconds``: the next step at or above it."""
    wanted = max(_MIN_DELAY_MS, math.ceil(delay_seconds * 1000))
    step = math.ceil(math.log(wanted / _MIN_DELAY_MS, _DELAY_STEP) - 1e-9)
    return max(wanted, round(_MIN_DELAY_MS * _DELAY_STEP**step))


def delay_queue_name(queue: str, bucket_ms: int) -> str:
    return f"{queue}.delay.{bucket_ms}"


def delay_queue_arguments(queue: str, bucket_ms: int) -> dict[str, Any]:
    """A parking queue: messages expire after ``bucket_ms`` into ``queue``; the queue itself expires when idle."""
    return {
        "x-queue-type": QUORUM,
        "x-message-ttl": bucket_ms,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": queue,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
        "x-expires": bucket_ms + 600_000,
    }


class ManagementAPI:
    """Reads queue depth from the management plugin (HTTP, on the AMQP host)."""

    def __init__(self, amqp_url: str, management_url: str = ""):
        parsed = urllib.parse.urlsplit(amqp_url)
        query = dict(urllib.parse.parse_qsl(parsed.query))
        port = int(query.get("management_port", DEFAULT_MANAGEMENT_PORT))
        scheme = "https" if parsed.scheme == "amqps" else "http"
        self.base = f"{scheme}://{parsed.hostname or '127.0.0.1'}:{port}/api"
        user = urllib.parse.unquote(parsed.username or "guest")
        password = urllib.parse.unquote(parsed.password or "guest")
        if management_url:  # ASYA_RABBITMQ_MANAGEMENT_URL wins: another host, port, scheme or user
            explicit = urllib.parse.urlsplit(management_url)
            netloc = explicit.hostname + (f":{explicit.port}" if explicit.port else "")
            self.base = f"{explicit.scheme}://{netloc}{explicit.path.rstrip('/')}/api"
            user = urllib.parse.unquote(explicit.username) if explicit.username else user
            password = urllib.parse.unquote(explicit.password) if explicit.password else password
        self._auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        vhost = urllib.parse.unquote(parsed.path[1:]) if len(parsed.path) > 1 else "/"
        self._vhost = urllib.parse.quote(vhost, safe="")

    def _get(self, path: str) -> Any:
        request = urllib.request.Request(self.base + path, headers={"Authorization": self._auth})
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.load(response)

    def _depth(self, queue: str) -> QueueDepth:
        try:
            info = self._get(f"/queues/{self._vhost}/{urllib.parse.quote(queue, safe='')}")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise QueueNotFound(f"RabbitMQ queue {queue!r} does not exist") from None
            raise
        pattern = urllib.parse.quote("^" + re.escape(queue) + r"\.delay\.\d+$", safe="")
        parked = self._get(f"/queues/{self._vhost}?name={pattern}&use_regex=true&page=1&page_size=500")
        delayed = sum(int(q.get("messages", 0) or 0) for q in parked.get("items", []))
        return QueueDepth(
            ready=int(info.get("messages_ready", 0) or 0),
            in_flight=int(info.get("messages_unacknowledged", 0) or 0),
            delayed=delayed,
        )

    async def depth(self, queue: str) -> QueueDepth:
        """Ready, unacknowledged and parked-for-delay messages (stats lag by the broker's collection interval).

        Raises:
            QueueNotFound: No such queue.
            TransportError: The management API is unreachable or refused the request.
        """
        try:
            return await asyncio.to_thread(self._depth, queue)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise TransportError(
                f"RabbitMQ depth of {queue!r} needs the management plugin at {self.base} "
                f"(set management_port=N in the AMQP URL query if it is not 15672): {exc}"
            ) from exc
