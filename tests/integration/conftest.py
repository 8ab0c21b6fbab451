"""Fixtures for the core mesh tests: real runtime + sidecar processes on the embedded SQLite queue."""

from __future__ import annotations

import pytest

from tests.support.mesh import Mesh


def policy(max_attempts=1, initial="100ms", maximum="1s", timeout="20s"):
    return {"actorTimeout": timeout, "policies": {"default": {
        "maxAttempts": max_attempts, "backoff": "exponential", "initialInterval": initial, "maxInterval": maximum}}}


ROUTING_ACTORS = [
    {"name": "double", "handler": "mesh_handlers.double", "resiliency": policy()},
    {"name": "add-one", "handler": "mesh_handlers.add_one", "resiliency": policy()},
    {"name": "fan", "handler": "mesh_handlers.fan_out", "resiliency": policy()},
    {"name": "nothing", "handler": "mesh_handlers.nothing", "resiliency": policy()},
    {"name": "echo", "handler": "mesh_handlers.echo", "resiliency": policy()},
    {"name": "to-store", "handler": "mesh_handlers.to_store", "resiliency": policy()},
    {"name": "store", "handler": "mesh_handlers.mark_store", "resiliency": policy()},
    {"name": "reroute", "handler": "mesh_handlers.reroute_envelope", "handlerMode": "envelope", "resiliency": policy()},
    {"name": "bad-rewrite", "handler": "mesh_handlers.rewrite_prev", "handlerMode": "envelope",
     "resiliency": policy()},
    {"name": "greeter", "handler": "mesh_handlers.Greeter.greet", "handlerArgs": {"greeting": "hej"},
     "resiliency": policy()},
    {"name": "async-sleepy", "handler": "mesh_handlers.async_sleepy", "concurrency": 8, "resiliency": policy()},
    {"name": "flaky3", "handler": "mesh_handlers.flaky", "resiliency": policy(max_attempts=3, initial="300ms")},
    {"name": "flaky2", "handler": "mesh_handlers.flaky", "resiliency": policy(max_attempts=2, initial="300ms")},
    {"name": "sleepy", "handler": "mesh_handlers.sleepy", "resiliency": policy(max_attempts=1, timeout="2s")},
    {"name": "long", "handler": "mesh_handlers.count_and_echo", "concurrency": 2, "resiliency": policy(max_attempts=1, timeout="30s")},
]


@pytest.fixture(scope="session")
def mesh(tmp_path_factory):
    """One mesh with every actor the routing and failure tests need (started once: ~30 processes)."""
    running = Mesh(tmp_path_factory.mktemp("mesh"), ROUTING_ACTORS).start()
    yield running
    running.stop()
