"""The sidecar's publish-and-ack on the embedded queue: one ``Transport.forward`` commit per hop.

A real SQLite file and the sidecar's own ``MessageProcessor``; the messages are ones the sidecar settles
without calling the runtime (a body that is not an envelope goes to error-end), so no runtime is started.
A message whose lease another consumer took is neither published nor acked by the old holder, and is
counted ``returned``; its new holder publishes it once.
"""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry

from asya_common.logging import get_logger
from asya_common.transport import QueueSpec, TransportSettings, create_transport
from asya_sidecar.metrics import SidecarMetrics
from asya_sidecar.processor import MessageProcessor
from asya_sidecar.runtime_client import RuntimeClient
from asya_sidecar.settings import RetryPolicy, SidecarSettings


def _outcome(registry: CollectorRegistry, outcome: str) -> float:
    return registry.get_sample_value("asya_messages_processed_total", {"actor": "judge", "outcome": outcome}) or 0.0


async def test_a_lost_lease_publishes_nothing_and_its_new_holder_publishes_once(tmp_path):
    settings = SidecarSettings(actor="judge", lease_seconds=30.0, socket_path=str(tmp_path / "none.sock"))
    registry = CollectorRegistry()
    async with create_transport(TransportSettings(kind="sqlite", sqlite_path=str(tmp_path / "q.db"))) as transport:
        for name in ("asya-judge", "asya-error-end"):
            await transport.ensure_queue(QueueSpec(name, f"{name}-dlq"))
        processor = MessageProcessor(settings, RetryPolicy(), transport, RuntimeClient(settings.socket_path, 1.0),
                                     SidecarMetrics("judge", registry), get_logger(actor="judge"), "asya-")
        await transport.send("asya-judge", b"not an envelope")
        (stale,) = await transport.receive("asya-judge", wait_seconds=1.0, lease_seconds=0.2)
        await asyncio.sleep(0.3)  # the lease runs out and another consumer takes the message
        (taken,) = await transport.receive("asya-judge", wait_seconds=1.0, lease_seconds=30.0)

        await processor.process(stale)
        assert (await transport.depth("asya-error-end")).total == 0, "a lost lease published its output"
        assert _outcome(registry, "returned") == 1 and _outcome(registry, "malformed") == 0
        assert registry.get_sample_value("asya_messages_published_total",
                                         {"actor": "judge", "destination": "error-end"}) is None

        await processor.process(taken)
        assert (await transport.depth("asya-error-end")).total == 1
        assert (await transport.depth("asya-judge")).total == 0
        assert _outcome(registry, "malformed") == 1
        assert registry.get_sample_value("asya_messages_published_total",
                                         {"actor": "judge", "destination": "error-end"}) == 1
