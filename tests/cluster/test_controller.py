"""The controller against the real API server, on the SQLite transport, run as a real subprocess.

What an operator relies on: installing an actor makes its queues appear; a queue deleted by hand comes
back within one resync; a changed DLQ limit is reported (Event + annotation), never applied by
recreating the queue; opt-in deletion removes the queues and the default keeps them; DLQ growth shows
up as metrics and an Event.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from asya_common import envelope as env
from tests.cluster.harness import (ControllerProcess, actor_deployment, apply, events_for, get_json, open_transport,
                                   queue_exists, sqlite_settings, wait_until)

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(180)]


@pytest.fixture
async def sqlite_transport(tmp_path):
    settings = sqlite_settings(tmp_path / "queues.sqlite3")
    transport = await open_transport(settings)
    yield settings, transport
    await transport.close()


@pytest.fixture
def controller(control_plane, namespace, sqlite_transport, tmp_path):
    settings, _ = sqlite_transport
    proc = ControllerProcess(tmp_path, control_plane.kubeconfig, settings, identity="ctl-0", namespaces=namespace,
                             lease_namespace=namespace)
    yield proc
    assert proc.stop() == 0, proc.logs()[-3000:]


def _reasons(control_plane, namespace, name):
    return [e["reason"] for e in events_for(control_plane, namespace, name)]


async def test_actor_install_creates_queue_and_dlq(control_plane, namespace, sqlite_transport, controller):
    _, transport = sqlite_transport
    apply(control_plane, namespace, actor_deployment("judge"))
    await wait_until(lambda: queue_exists(transport, "asya-judge"), 30, "queue asya-judge")
    assert await queue_exists(transport, "asya-judge-dlq")
    deployment = await wait_until(
        lambda: (d := get_json(control_plane, "deployment/judge", "-n", namespace))["metadata"]["annotations"]
        .get("asya.sh/queue-ready") == "true" and d, 15, "queue-ready annotation")
    assert "asya.sh/queue-drift" not in deployment["metadata"]["annotations"]
    assert "asya.sh/queue-cleanup" not in (deployment["metadata"].get("finalizers") or [])
    await wait_until(lambda: "QueueCreated" in _reasons(control_plane, namespace, "judge"), 15, "QueueCreated event")
    assert controller.probe("/healthz") == 200 and controller.probe("/readyz") == 200
    assert controller.metric("asya_controller_queues_created_total") == 2


async def test_queue_deleted_by_hand_comes_back_within_one_resync(control_plane, namespace, sqlite_transport,
                                                                  controller):
    _, transport = sqlite_transport
    apply(control_plane, namespace, actor_deployment("store"))
    await wait_until(lambda: queue_exists(transport, "asya-store"), 30, "queue asya-store")
    await transport.delete_queue("asya-store")
    assert not await queue_exists(transport, "asya-store")
    # resync is 3s: allow one period plus the re-list and a loaded machine
    await wait_until(lambda: queue_exists(transport, "asya-store"), 10, "asya-store recreated by the resync")


async def test_dlq_limit_change_is_reported_as_drift_not_applied(control_plane, namespace, sqlite_transport,
                                                                 controller):
    _, transport = sqlite_transport
    apply(control_plane, namespace, actor_deployment("rank", max_receive=10))
    await wait_until(lambda: queue_exists(transport, "asya-rank"), 30, "queue asya-rank")
    await transport.send("asya-rank", env.dumps(env.make_envelope(["rank"], {"n": 1})))

    apply(control_plane, namespace, actor_deployment("rank", max_receive=3))

    def drift():
        annotations = get_json(control_plane, "deployment/rank", "-n", namespace)["metadata"]["annotations"]
        return annotations.get("asya.sh/queue-drift")

    text = await wait_until(drift, 20, "asya.sh/queue-drift annotation")
    assert json.loads(text) == {"asya-rank": {"max_receive_count": {"wanted": 3, "actual": 10}}}
    await wait_until(lambda: "QueueDrift" in _reasons(control_plane, namespace, "rank"), 10, "QueueDrift event")
    warning = next(e for e in events_for(control_plane, namespace, "rank") if e["reason"] == "QueueDrift")
    assert warning["type"] == "Warning" and "max_receive_count" in warning["message"]
    # never silently recreated: the message sent before the change is still there
    assert (await transport.depth("asya-rank")).total == 1

    apply(control_plane, namespace, actor_deployment("rank", max_receive=10))
    await wait_until(lambda: drift() is None, 20, "drift annotation removed once the spec matches again")


async def test_opt_in_deletion_removes_queues_default_keeps_them(control_plane, namespace, sqlite_transport,
                                                                 controller):
    _, transport = sqlite_transport
    apply(control_plane, namespace, actor_deployment("temp", deletion="delete"))
    apply(control_plane, namespace, actor_deployment("kept"))
    await wait_until(lambda: queue_exists(transport, "asya-temp"), 30, "queue asya-temp")
    await wait_until(lambda: queue_exists(transport, "asya-kept"), 30, "queue asya-kept")
    await wait_until(lambda: "asya.sh/queue-cleanup" in (
        get_json(control_plane, "deployment/temp", "-n", namespace)["metadata"].get("finalizers") or []),
        15, "finalizer on the opted-in actor")

    control_plane.kubectl("delete", "deployment", "temp", "kept", "-n", namespace, "--wait=false")
    await wait_until(lambda: control_plane.kubectl("get", "deployment/temp", "-n", namespace, check=False)
                     .returncode != 0, 30, "opted-in Deployment gone (finalizer released)")
    assert not await queue_exists(transport, "asya-temp")
    assert not await queue_exists(transport, "asya-temp-dlq")
    await_deleted = control_plane.kubectl("get", "deployment/kept", "-n", namespace, check=False)
    assert await_deleted.returncode != 0
    await asyncio.sleep(1)
    assert await queue_exists(transport, "asya-kept") and await queue_exists(transport, "asya-kept-dlq")


async def test_dlq_growth_shows_in_metrics_and_events(control_plane, namespace, sqlite_transport, controller):
    _, transport = sqlite_transport
    apply(control_plane, namespace, actor_deployment("ocr"))
    await wait_until(lambda: queue_exists(transport, "asya-ocr-dlq"), 30, "queue asya-ocr-dlq")
    await transport.send_many("asya-ocr-dlq", [env.dumps(env.make_envelope(["ocr"], {"i": i})) for i in range(5)])

    await wait_until(lambda: controller.metric("asya_dlq_depth", actor="ocr", namespace=namespace) == 5, 20,
                     "asya_dlq_depth == 5")
    await wait_until(lambda: (controller.metric("asya_dlq_oldest_age_seconds", actor="ocr") or 0) > 0, 20,
                     "oldest DLQ message age > 0")
    await wait_until(lambda: "DeadLetters" in _reasons(control_plane, namespace, "ocr"), 15, "DeadLetters event")
    # the peek used to measure the age must not consume anything
    assert (await transport.depth("asya-ocr-dlq")).total == 5


async def test_invalid_annotations_are_reported_not_guessed(control_plane, namespace, sqlite_transport, controller):
    _, transport = sqlite_transport
    manifest = actor_deployment("bad", max_receive=10)
    manifest["metadata"]["annotations"]["asya.sh/dlq-max-receive-count"] = "ten"
    apply(control_plane, namespace, manifest)
    await wait_until(lambda: "InvalidActor" in _reasons(control_plane, namespace, "bad"), 30, "InvalidActor event")
    event = next(e for e in events_for(control_plane, namespace, "bad") if e["reason"] == "InvalidActor")
    assert "asya.sh/dlq-max-receive-count" in event["message"]
    assert not await queue_exists(transport, "asya-bad")



@pytest.mark.parametrize("scope", ["listed", "all"])
async def test_watches_exactly_the_configured_namespaces(scope, control_plane, sqlite_transport, tmp_path):
    settings, transport = sqlite_transport
    first, second, other = (f"w-{uuid.uuid4().hex[:8]}" for _ in range(3))
    for ns in (first, second, other):
        control_plane.kubectl("create", "namespace", ns)
    namespaces = f"{first},{second}" if scope == "listed" else ""
    proc = ControllerProcess(tmp_path, control_plane.kubeconfig, settings, identity=f"ctl-{scope}",
                             namespaces=namespaces, lease_namespace=first, lease_name=f"asya-{scope}")
    try:
        for ns, actor in ((first, f"a{first}"), (second, f"b{second}"), (other, f"c{other}")):
            apply(control_plane, ns, actor_deployment(actor))
        await wait_until(lambda: queue_exists(transport, f"asya-a{first}"), 30, "actor in the first namespace")
        await wait_until(lambda: queue_exists(transport, f"asya-b{second}"), 30, "actor in the second namespace")
        if scope == "all":
            await wait_until(lambda: queue_exists(transport, f"asya-c{other}"), 30, "actor in any namespace")
        else:
            await asyncio.sleep(4)  # more than one resync period
            assert not await queue_exists(transport, f"asya-c{other}"), "acted outside ASYA_CONTROLLER_NAMESPACES"
    finally:
        assert proc.stop() == 0, proc.logs()[-3000:]


async def test_dlq_bookkeeping_records_dead_lettered_envelopes(control_plane, namespace, sqlite_transport, tmp_path):
    """Issue 10: an envelope the broker dead-lettered is ``dead_lettered`` in the status store (before: ``running``)."""
    from asya_common.status import open_store

    settings, transport = sqlite_transport
    store = open_store(tmp_path / "status.sqlite3")
    store.mark_running("stuck-1", "keeper")
    proc = ControllerProcess(tmp_path, control_plane.kubeconfig, settings, identity="ctl-dl", namespaces=namespace,
                             lease_namespace=namespace, extra_env={"ASYA_CONTROLLER_DLQ_INTERVAL": "1s",
                                                                   "ASYA_STATUS_DB": str(tmp_path / "status.sqlite3")})
    try:
        apply(control_plane, namespace, actor_deployment("keeper"))
        await wait_until(lambda: queue_exists(transport, "asya-keeper-dlq"), 30, "DLQ asya-keeper-dlq")
        await transport.send("asya-keeper-dlq", env.dumps(env.make_envelope(["keeper"], 1, envelope_id="stuck-1")))

        async def dead_lettered():
            record = await asyncio.to_thread(store.get, "stuck-1")
            return record["status"] == "dead_lettered" and record
        await wait_until(dead_lettered, 30, "stuck-1 recorded dead_lettered")
        assert (await transport.depth("asya-keeper-dlq")).total == 1  # recorded, never taken from the DLQ
    finally:
        store.close()
        assert proc.stop() == 0, proc.logs()[-3000:]
