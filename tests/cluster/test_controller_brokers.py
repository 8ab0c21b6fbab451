"""Installing the real ``asya-actor`` chart makes the actor's queue and DLQ appear on each real broker.

The controller runs as a subprocess against the session's API server and a broker started by
tests/support/brokers.py; the actor is installed with helm from the chart's own ci scenario of that
broker. A ``helm upgrade`` that changes the DLQ limit is reported as drift, and opt-in deletion
removes the queues on ``helm uninstall``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import urllib.parse
import uuid

import pytest

from asya_common import dlq
from asya_common import envelope as env
from asya_common.transport import QueueNotFound, Transport, TransportError
from tests.cluster.harness import (ControllerProcess, actor_deployment, apply, events_for, get_json, open_transport,
                                   wait_until)
from tests.support.cluster import REPO

pytestmark = [pytest.mark.cluster, pytest.mark.broker, pytest.mark.timeout(240)]

SCENARIOS = {"rabbitmq": "rabbitmq-values.yaml", "sqs": "sqs-secret-values.yaml",
             "pubsub": "pubsub-workload-identity-values.yaml"}


async def broker_queue_exists(transport: Transport, queue: str) -> bool:
    """True when ``queue`` exists; falls back to a receive where the broker cannot count (Pub/Sub emulator)."""
    try:
        await transport.depth(queue)
        return True
    except QueueNotFound:
        return False
    except TransportError:
        try:
            for message in await transport.receive(queue, max_messages=1, wait_seconds=0.1, lease_seconds=1):
                await transport.nack(message)
            return True
        except QueueNotFound:
            return False


async def broker_queue_routable(transport: Transport, queue: str) -> bool:
    """True when ``queue`` exists and a publish reaches it: on RabbitMQ the queue exists a moment before its
    binding to the exchange, and a publish in between is unroutable (issue 10, item 9)."""
    if not await broker_queue_exists(transport, queue):
        return False
    management = getattr(transport, "_management", None)
    if management is None:  # SQS, Pub/Sub: a queue that exists is routable
        return True
    path = f"/queues/{management._vhost}/{urllib.parse.quote(queue, safe='')}/bindings"
    bindings = await asyncio.to_thread(management._get, path)
    return any(b.get("source") == transport._exchange_name for b in bindings)


def _helm(helm, control_plane, tmp_path, *args: str) -> None:
    env = {**os.environ, "KUBECONFIG": str(control_plane.kubeconfig), "HELM_CACHE_HOME": str(tmp_path / "h"),
           "HELM_CONFIG_HOME": str(tmp_path / "h"), "HELM_DATA_HOME": str(tmp_path / "h")}
    proc = subprocess.run([str(helm), *args], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("kind", list(SCENARIOS))
async def test_actor_chart_install_creates_broker_queues(kind, request, control_plane, helm, namespace, tmp_path):
    settings = request.getfixturevalue(f"{kind}_settings")
    actor = f"a{uuid.uuid4().hex[:8]}"
    queue, dead = f"{settings.queue_prefix}{actor}", f"{settings.queue_prefix}{actor}-dlq"
    chart = str(REPO / "charts/asya-actor")
    values = ["-f", str(REPO / "charts/asya-actor/ci" / SCENARIOS[kind]), "--set", f"name={actor}",
              "--set-string", f"transport.queuePrefix={settings.queue_prefix}",
              "--set", f"transport.pubsub.project={settings.pubsub_project or 'p'}",
              "--set", "transport.queueDeletion=delete"]
    transport = await open_transport(settings)
    controller = ControllerProcess(tmp_path, control_plane.kubeconfig, settings, identity=f"ctl-{kind}",
                                   namespaces=namespace, lease_namespace=namespace)
    try:
        _helm(helm, control_plane, tmp_path, "install", actor, chart, "-n", namespace, *values)
        await wait_until(lambda: broker_queue_exists(transport, queue), 60, f"{kind} queue {queue}")
        assert await broker_queue_exists(transport, dead)

        _helm(helm, control_plane, tmp_path, "upgrade", actor, chart, "-n", namespace, *values,
              "--set", "resiliency.deadLetter.maxReceiveCount=3")

        def drift():
            deployments = get_json(control_plane, "deployments", "-n", namespace, "-l", f"asya.sh/actor={actor}")
            return deployments["items"][0]["metadata"]["annotations"].get("asya.sh/queue-drift")

        text = await wait_until(drift, 30, "drift reported after the upgrade")
        assert json.loads(text)[queue]["max_receive_count"] == {"wanted": 3, "actual": 10}

        _helm(helm, control_plane, tmp_path, "uninstall", actor, "-n", namespace)
        await wait_until(lambda: not get_json(control_plane, "deployments", "-n", namespace, "-l",
                                              f"asya.sh/actor={actor}")["items"], 60, "finalizer released")
        assert not await broker_queue_exists(transport, queue)
        assert not await broker_queue_exists(transport, dead)
    finally:
        code = controller.stop()
        await transport.close()
        assert code == 0, controller.logs()[-3000:]


class _Proxy:
    """A TCP proxy to the broker that the test can cut, to make the broker unreachable for the controller only."""

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.writers: set[asyncio.StreamWriter] = set()
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader, writer):
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self.writers |= {writer, up_writer}

        async def pipe(src, dst):
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except OSError:
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def cut(self) -> None:
        """Stops accepting and drops every open connection."""
        self.server.close()
        for writer in self.writers:
            writer.transport.abort()
        await self.server.wait_closed()


async def test_unreachable_broker_never_wedges_a_deletion(request, control_plane, namespace, tmp_path):
    settings = request.getfixturevalue("rabbitmq_settings")
    parsed = urllib.parse.urlsplit(settings.rabbitmq_url)
    proxy = _Proxy(parsed.hostname or "127.0.0.1", parsed.port or 5672)
    port = await proxy.start()
    via_proxy = dataclasses.replace(settings, rabbitmq_url=parsed._replace(
        netloc=parsed.netloc.rsplit(":", 1)[0] + f":{port}").geturl())
    actor = f"w{uuid.uuid4().hex[:8]}"
    transport = await open_transport(settings)
    controller = ControllerProcess(tmp_path, control_plane.kubeconfig, via_proxy, identity="ctl-wedge",
                                   namespaces=namespace, lease_namespace=namespace,
                                   extra_env={"ASYA_CONTROLLER_CLEANUP_TIMEOUT": "2s"})
    try:
        apply(control_plane, namespace, actor_deployment(actor, transport="rabbitmq", deletion="delete"))
        await wait_until(lambda: broker_queue_exists(transport, f"asya-{actor}"), 60, "queue created via the proxy")
        await wait_until(lambda: "asya.sh/queue-cleanup" in (get_json(
            control_plane, f"deployment/{actor}", "-n", namespace)["metadata"].get("finalizers") or []),
            15, "finalizer")

        await proxy.cut()
        control_plane.kubectl("delete", f"deployment/{actor}", "-n", namespace, "--wait=false")
        await wait_until(lambda: control_plane.kubectl("get", f"deployment/{actor}", "-n", namespace, check=False)
                         .returncode != 0, 90, "deletion finishes although the broker is unreachable")
        abandoned = [e for e in events_for(control_plane, namespace, actor) if e["reason"] == "QueueCleanupAbandoned"]
        assert abandoned and abandoned[0]["type"] == "Warning" and f"asya-{actor}" in abandoned[0]["message"]
        assert await broker_queue_exists(transport, f"asya-{actor}")  # left for a human, as the event says
    finally:
        code = controller.stop()
        await transport.delete_queue(f"asya-{actor}")
        await transport.delete_queue(f"asya-{actor}-dlq")
        await transport.close()
        assert code == 0, controller.logs()[-3000:]


@pytest.mark.parametrize("kind", ["rabbitmq", "sqs"])  # the Pub/Sub emulator cannot count messages
async def test_dlq_bookkeeping_holds_nothing_back_from_a_redrive(kind, request, control_plane, namespace, tmp_path):
    settings = request.getfixturevalue(f"{kind}_settings")
    actor = f"d{uuid.uuid4().hex[:8]}"
    queue, dead = f"{settings.queue_prefix}{actor}", f"{settings.queue_prefix}{actor}-dlq"
    transport = await open_transport(settings)
    controller = ControllerProcess(tmp_path, control_plane.kubeconfig, settings, identity=f"ctl-d{kind}",
                                   namespaces=namespace, lease_namespace=namespace,
                                   extra_env={"ASYA_CONTROLLER_DLQ_INTERVAL": "2s"})
    try:
        apply(control_plane, namespace, actor_deployment(actor, transport=kind, deletion="delete"))
        await wait_until(lambda: broker_queue_routable(transport, dead), 60, "DLQ created and routable")
        await transport.send_many(dead, [env.dumps(env.make_envelope([actor], {"i": i})) for i in range(20)])
        await wait_until(lambda: controller.metric("asya_dlq_depth", actor=actor) == 20, 60, "asya_dlq_depth == 20")
        await wait_until(lambda: (controller.metric("asya_dlq_oldest_age_seconds", actor=actor) or 0) > 0, 30,
                         "oldest DLQ message age measured")
        await wait_until(lambda: "DeadLetters" in [e["reason"] for e in events_for(control_plane, namespace, actor)],
                         15, "DeadLetters event")

        # the controller keeps measuring meanwhile; one redrive must still get every message
        moved = await dlq.redrive(transport, dead, queue)
        assert moved.moved == 20
    finally:
        code = controller.stop()
        for name in (queue, dead):
            await transport.delete_queue(name)
        await transport.close()
        assert code == 0, controller.logs()[-3000:]
