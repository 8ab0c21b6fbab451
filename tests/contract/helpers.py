"""Small async helpers shared by the contract tests."""

from __future__ import annotations

import asyncio
import time

from asya_common.transport import ReceivedMessage, Transport


async def receive_one(transport: Transport, queue: str, *, within: float, lease: float = 30.0) -> ReceivedMessage | None:
    """Polls ``queue`` until one message arrives or ``within`` seconds pass."""
    deadline = time.monotonic() + within
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        got = await transport.receive(queue, max_messages=1, wait_seconds=min(1.0, remaining), lease_seconds=lease)
        if got:
            return got[0]


async def drain(transport: Transport, queue: str, count: int, *, within: float) -> list[ReceivedMessage]:
    """Receives and acks until ``count`` messages came or ``within`` seconds pass."""
    deadline = time.monotonic() + within
    received: list[ReceivedMessage] = []
    while len(received) < count and time.monotonic() < deadline:
        batch = await transport.receive(queue, max_messages=min(10, count - len(received)), wait_seconds=1.0)
        for message in batch:
            await transport.ack(message)
        received.extend(batch)
    return received


async def eventually(check, *, within: float, interval: float = 0.25):
    """Awaits ``check()`` until it returns a truthy value; returns the last value either way."""
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(interval)
