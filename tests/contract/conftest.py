"""Fixtures of the transport contract suite: every test runs once per transport, on a real server.

``transport`` is a connected instance of the transport under test; ``queue`` is a freshly ensured,
uniquely named queue (with its DLQ) that is deleted afterwards. ``traits`` holds the few documented
ways a broker differs (how soon a killed consumer's message comes back, whether depth is readable).
"""

from __future__ import annotations

import importlib.util
import uuid
from dataclasses import dataclass

import pytest

from asya_common.transport import QueueSpec, TransportSettings, create_transport


def pytest_configure(config):
    """Registers the broker fixtures (once per session, shared with other suites) unless already done."""
    if not config.pluginmanager.has_plugin("tests.support.brokers"):
        config.pluginmanager.import_plugin("tests.support.brokers")

LEASE = 1.5
MAX_RECEIVES = 3


@dataclass(frozen=True)
class Traits:
    """Documented differences between brokers (see docs/transports.md)."""

    #: Seconds after which a message held by a consumer killed with -9 must be back.
    crash_redelivery_seconds: float
    #: Whether ``depth`` can be read (the Pub/Sub emulator has no Cloud Monitoring).
    depth: bool = True
    #: Seconds depth figures may lag behind (management stats, SQS approximations).
    depth_lag_seconds: float = 5.0


TRAITS = {
    "sqlite": Traits(crash_redelivery_seconds=LEASE + 3),
    "rabbitmq": Traits(crash_redelivery_seconds=5),
    "sqs": Traits(crash_redelivery_seconds=LEASE + 5),
    "pubsub": Traits(crash_redelivery_seconds=LEASE + 5, depth=False),
}


@pytest.fixture(params=list(TRAITS))
def kind(request) -> str:
    return request.param


@pytest.fixture
def traits(kind) -> Traits:
    return TRAITS[kind]


@pytest.fixture
def settings(kind, request, tmp_path) -> TransportSettings:
    if kind == "sqlite":
        if importlib.util.find_spec("asya_common.transport.sqlite") is None:
            pytest.skip("the SQLite transport is not written yet")
        return TransportSettings(kind="sqlite", sqlite_path=str(tmp_path / "queues.sqlite3"))
    return request.getfixturevalue(f"{kind}_settings")


@pytest.fixture
async def transport(settings):
    async with create_transport(settings) as connected:
        yield connected


def unique_name(prefix: str = "asya-ct") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def queue(transport):
    """A new queue with DLQ, ``max_receive_count`` = 3; deleted (with its DLQ) after the test."""
    name = unique_name()
    await transport.ensure_queue(
        QueueSpec(name=name, dlq_name=f"{name}-dlq", max_receive_count=MAX_RECEIVES, lease_seconds=LEASE)
    )
    yield name
    await transport.delete_queue(name)
    await transport.delete_queue(f"{name}-dlq")
