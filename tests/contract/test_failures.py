"""Failure contract: a consumer killed with -9 loses nothing; a RabbitMQ restart loses nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from asya_common.transport import LeaseLost, QueueSpec, TransportError, create_transport
from tests.contract.conftest import LEASE, unique_name
from tests.contract.helpers import drain, receive_one

pytestmark = [pytest.mark.broker]
ROOT = Path(__file__).resolve().parents[2]


async def test_consumer_killed_with_sigkill_loses_nothing(transport, queue, settings, traits):
    await transport.send(queue, b"survives kill -9")
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.contract.consumer_process", json.dumps(dataclasses.asdict(settings)), queue,
         str(LEASE)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), 60)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    assert line.startswith("LEASED"), f"consumer did not lease the message: {child.stderr.read()[-3000:]}"
    message = await receive_one(transport, queue, within=traits.crash_redelivery_seconds)
    assert message is not None, "the message leased by the killed consumer was lost"
    assert message.body == b"survives kill -9" and message.receive_count >= 2
    await transport.ack(message)


async def test_rabbitmq_broker_restart_loses_nothing(rabbitmq_server, rabbitmq_settings):
    if rabbitmq_server is None:
        pytest.skip("RabbitMQ is external (ASYA_TEST_RABBITMQ_URL): not ours to restart")
    queue = unique_name()
    async with create_transport(rabbitmq_settings) as transport:
        await transport.ensure_queue(QueueSpec(name=queue, dlq_name=f"{queue}-dlq", max_receive_count=3))
        bodies = [f"m{i}".encode() for i in range(6)]
        for body in bodies:
            await transport.send(queue, body)
        held = []  # receive() returns what has been delivered so far (up to max_messages): ask until 2 are held
        for _ in range(10):
            held += await transport.receive(queue, max_messages=2 - len(held), wait_seconds=5, lease_seconds=60)
            if len(held) == 2:
                break
        assert len(held) == 2
        await asyncio.to_thread(rabbitmq_server.restart)
        for message in held:
            with pytest.raises((LeaseLost, TransportError)):
                await transport.ack(message)
        await transport.send(queue, b"after restart")
        received = await drain(transport, queue, len(bodies) + 1, within=30)
        assert sorted(m.body for m in received) == sorted(bodies + [b"after restart"])
        await transport.delete_queue(queue)
        await transport.delete_queue(f"{queue}-dlq")


async def test_rabbitmq_sends_waiting_for_confirms_survive_a_dropped_connection(rabbitmq_settings):
    """The transport drops its whole connection after an error on any channel; sends then waiting for their
    confirm must be retried on the new connection (at-least-once), never end as a CancelledError."""
    queue = unique_name()
    async with create_transport(rabbitmq_settings) as transport:
        await transport.ensure_queue(QueueSpec(name=queue, dlq_name=f"{queue}-dlq", max_receive_count=3))
        bodies = [f"m{i}".encode() * 4096 for i in range(50)]
        sends = [asyncio.ensure_future(transport.send(queue, body)) for body in bodies]
        while not transport._publish_channel.confirmations:  # some publishes are on the wire, unconfirmed
            await asyncio.sleep(0)
        transport._broken()  # what an error on another channel (a consumer's, a declare's) does
        done, stuck = await asyncio.wait(sends, timeout=60)
        for task in stuck:
            task.cancel()
        assert not stuck, f"{len(stuck)} sends still waiting a minute after the connection was dropped"
        assert [task.exception() for task in done if task.exception()] == []
        seen: set[bytes] = set()  # a retried send may arrive twice, never lost: drain until every body came
        deadline = time.monotonic() + 30
        while seen != set(bodies) and time.monotonic() < deadline:
            for message in await transport.receive(queue, max_messages=10, wait_seconds=1.0):
                seen.add(message.body)
                await transport.ack(message)
        assert seen == set(bodies)
        await transport.delete_queue(queue)
        await transport.delete_queue(f"{queue}-dlq")
