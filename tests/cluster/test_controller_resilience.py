"""The controller keeps working through what a real cluster does to it.

API server restarts mid-watch, resourceVersions that expire (410 Gone), and two replicas of which
only the Lease holder may act — with fail-over when the holder is killed.
"""

from __future__ import annotations

import asyncio

import pytest

from asya_controller.kube import KubeClient, KubeError
from asya_controller.watcher import DeploymentWatcher, WorkQueue
from tests.cluster.harness import (ControllerProcess, actor_deployment, apply, events_for, get_json, open_transport,
                                   queue_exists, sqlite_settings, wait_until)

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(240)]


async def test_api_server_restart_mid_watch_misses_no_actor(control_plane, namespace, tmp_path):
    settings = sqlite_settings(tmp_path / "queues.sqlite3")
    transport = await open_transport(settings)
    controller = ControllerProcess(tmp_path, control_plane.kubeconfig, settings, identity="ctl-r",
                                   namespaces=namespace, lease_namespace=namespace, resync="10m",
                                   # longer than the outage: this test is about the watch, not about fail-over
                                   extra_env={"ASYA_CONTROLLER_LEASE_DURATION": "60s"})
    try:
        apply(control_plane, namespace, actor_deployment("before"))
        await wait_until(lambda: queue_exists(transport, "asya-before"), 30, "queue of the actor made before")

        control_plane.restart_apiserver(down_seconds=2)
        # created right after the restart, while the controller's watch is broken and backing off;
        # resync is 10 minutes, so only a correct resume/re-list can see it
        apply(control_plane, namespace, actor_deployment("after"))
        await wait_until(lambda: queue_exists(transport, "asya-after"), 60, "queue of the actor made after")
        assert controller.proc.poll() is None, "controller died with the API server"
    finally:
        assert controller.stop() == 0, controller.logs()[-3000:]
        await transport.close()


async def test_expired_resource_version_410_triggers_relist(control_plane, namespace):
    kube = await KubeClient.create(str(control_plane.kubeconfig))
    try:
        path = f"/apis/apps/v1/namespaces/{namespace}/deployments"
        stale = (await kube.request("GET", path))["metadata"]["resourceVersion"]
        apply(control_plane, namespace, actor_deployment("late"))
        for i in range(5):
            control_plane.kubectl("annotate", "deployment/late", "-n", namespace, f"x/n={i}", "--overwrite")
        control_plane.compact_etcd()
        control_plane.restart_apiserver()  # the watch cache forgets history too: only etcd could have served it

        with pytest.raises(KubeError) as gone:
            async for _ in kube.watch(path, {"resourceVersion": stale, "timeoutSeconds": 5}, timeout=10):
                pass
        assert gone.value.status == 410

        queue = WorkQueue()
        watcher = DeploymentWatcher(kube, queue, (namespace,), resync=600, resume_from=stale)
        task = asyncio.create_task(watcher.run())
        try:
            await wait_until(lambda: watcher.relist_causes, 30, "a re-list after 410 Gone")
            assert watcher.relist_causes[0] == "gone"
            key, obj, deleted = await asyncio.wait_for(queue.get(), 10)
            assert key == (namespace, "late") and not deleted
            assert obj["metadata"]["annotations"]["x/n"] == "4"
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    finally:
        await kube.close()


async def test_only_the_lease_holder_acts_and_the_other_takes_over(control_plane, namespace, tmp_path):
    # each replica gets its own queue database: a queue appearing in a replica's database is that replica acting
    dbs = {name: sqlite_settings(tmp_path / f"{name}.sqlite3") for name in ("ctl-a", "ctl-b")}
    transports = {name: await open_transport(s) for name, s in dbs.items()}
    procs = {name: ControllerProcess(tmp_path, control_plane.kubeconfig, dbs[name], identity=name,
                                     namespaces=namespace, lease_namespace=namespace, lease_name="asya-ha")
             for name in dbs}
    try:
        def holder():
            spec = get_json(control_plane, "lease/asya-ha", "-n", namespace)["spec"]
            return spec.get("holderIdentity")

        await wait_until(lambda: control_plane.kubectl("get", "lease/asya-ha", "-n", namespace, check=False)
                         .returncode == 0 and holder(), 30, "a Lease holder")
        leader = holder()
        follower = next(n for n in procs if n != leader)

        apply(control_plane, namespace, actor_deployment("first"))
        await wait_until(lambda: queue_exists(transports[leader], "asya-first"), 30, "leader creates the queue")
        await asyncio.sleep(3)  # several follower lease attempts and a resync period
        assert not await queue_exists(transports[follower], "asya-first"), "the follower acted without the Lease"
        created = [e for e in events_for(control_plane, namespace, "first") if e["reason"] == "QueueCreated"]
        assert {e.get("reportingInstance") for e in created} == {leader}
        assert procs[follower].metric("asya_controller_leader") == 0
        assert procs[leader].metric("asya_controller_leader") == 1

        procs[leader].kill()  # no release: the follower must wait out the lease
        apply(control_plane, namespace, actor_deployment("second"))
        await wait_until(lambda: holder() == follower, 30, "the follower takes the Lease")
        await wait_until(lambda: queue_exists(transports[follower], "asya-second"), 30, "new leader creates queues")
        assert await queue_exists(transports[follower], "asya-first")  # and re-lists everything it now owns
        assert not await queue_exists(transports[leader], "asya-second")

        assert procs[follower].stop() == 0  # SIGTERM hands the Lease back instead of letting it expire
        assert holder() in ("", None)
    finally:
        for proc in procs.values():
            proc.stop()
        for transport in transports.values():
            await transport.close()
