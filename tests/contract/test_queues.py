"""Queue management contract: ensure is idempotent, drift is reported (never recreated), delete works."""

from __future__ import annotations

import pytest

from asya_common.transport import QueueNotFound, QueueSpec
from tests.contract.conftest import unique_name
from tests.contract.helpers import receive_one

pytestmark = [pytest.mark.broker]


async def test_ensure_queue_creates_queue_and_dlq_then_is_idempotent(transport):
    name = unique_name()
    spec = QueueSpec(name=name, dlq_name=f"{name}-dlq", max_receive_count=5, lease_seconds=2)
    try:
        first = await transport.ensure_queue(spec)
        assert [(r.queue, r.created, r.drift) for r in first] == [(f"{name}-dlq", True, {}), (name, True, {})]
        second = await transport.ensure_queue(spec)
        assert [(r.queue, r.created, r.drift) for r in second] == [(f"{name}-dlq", False, {}), (name, False, {})]
        await transport.send(f"{name}-dlq", b"dlq is a queue too")
        message = await receive_one(transport, f"{name}-dlq", within=5)
        assert message is not None
        await transport.ack(message)
    finally:
        await transport.delete_queue(name)
        await transport.delete_queue(f"{name}-dlq")


async def test_ensure_queue_without_dlq_is_idempotent(transport):
    name = unique_name()
    try:
        for created in (True, False):
            results = await transport.ensure_queue(QueueSpec(name=name, dlq_name=None))
            assert [(r.queue, r.created, r.drift) for r in results] == [(name, created, {})]
    finally:
        await transport.delete_queue(name)


async def test_ensure_queue_reports_drift_and_keeps_the_existing_queue(transport):
    name = unique_name()
    spec = QueueSpec(name=name, dlq_name=f"{name}-dlq", max_receive_count=5, lease_seconds=2)
    try:
        await transport.ensure_queue(spec)
        await transport.send(name, b"must survive")
        changed = QueueSpec(name=name, dlq_name=f"{name}-other-dlq", max_receive_count=7, lease_seconds=2)
        results = {r.queue: r for r in await transport.ensure_queue(changed)}
        main = results[name]
        assert main.created is False
        assert main.drift["max_receive_count"] == (7, 5)
        assert main.drift["dlq_name"] == (f"{name}-other-dlq", f"{name}-dlq")
        message = await receive_one(transport, name, within=5)
        assert message is not None and message.body == b"must survive", "a drifted queue was recreated"
        await transport.ack(message)
    finally:
        for queue in (name, f"{name}-dlq", f"{name}-other-dlq"):
            await transport.delete_queue(queue)


async def test_delete_queue_removes_it_and_tolerates_missing(transport):
    name = unique_name()
    await transport.ensure_queue(QueueSpec(name=name, dlq_name=None))
    await transport.send(name, b"gone soon")
    await transport.delete_queue(name)
    with pytest.raises(QueueNotFound):
        await transport.send(name, b"after delete")
    await transport.delete_queue(name)
