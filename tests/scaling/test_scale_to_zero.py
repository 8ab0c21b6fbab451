"""Scale to zero, proven: the real KEDA operator scales a chart-installed actor 0 -> N -> 0 on queue depth.

The actor is installed with ``helm install`` from the chart with the platform values of its broker and
a test layer of short timings (polling 5 s, cooldown 30 s, at most 5 pods, scale-down of 100 % every
5 s); the real controller creates its queues. Its pods run as processes under the test kubelet, with
the real runtime and sidecar. Waits are generous and the observed timeline is printed, never asserted.

- 100 envelopes wake the actor from 0, it reaches its 5 pods, every envelope ends in happy-end (none
  in error-end, none left in the queue or its DLQ), a pod deleted while busy loses nothing, the
  scale-in drains in-flight envelopes (duplicates counted and reported), and the actor returns to 0
  pods and 0 processes.
- A handler that kills its runtime on every call (the container crash-loops) still lets the actor scale
  back to zero, and its envelopes end in error-end.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
import uuid
from collections import Counter

import pytest

from asya_common import envelope as env
from asya_common.transport import QueueSpec, TransportSettings
from asya_controller.kube import KubeClient
from tests.cluster.harness import ControllerProcess, open_transport, queue_exists, wait_until
from tests.scaling.harness import (TIMELINES, Finals, Observer, Timeline, actor_values, install_actor,
                                   pod_processes)

pytestmark = [pytest.mark.cluster, pytest.mark.broker, pytest.mark.slow, pytest.mark.timeout(600)]

TRANSPORTS = ["rabbitmq", "sqs"]
MAX_REPLICAS = 5
COOLDOWN = 30
SLOW_CALL = 30  # seconds; the actor timeout (and so the drain time on SIGTERM) is longer


def _secret(plane, namespace: str, name: str, data: dict[str, str]) -> None:
    plane.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}))


def _broker_layer(kind: str, settings: TransportSettings, plane, namespace: str) -> list[str]:
    """Creates the broker Secret the platform values name; returns the --set flags of the local broker."""
    if kind == "rabbitmq":
        url = urllib.parse.urlsplit(settings.rabbitmq_url)
        port = urllib.parse.parse_qs(url.query)["management_port"][0]
        _secret(plane, namespace, "asya-rabbitmq", {
            "url": settings.rabbitmq_url, "managementUrl": f"http://{url.username}:{url.password}@127.0.0.1:{port}/"})
        return []
    # values/platform/sqs.yaml uses IRSA; ElasticMQ takes static keys from a Secret instead.
    _secret(plane, namespace, "sqs-keys", {"AWS_ACCESS_KEY_ID": "asya-test", "AWS_SECRET_ACCESS_KEY": "asya-test"})
    return ["--set", "podIdentity=none", "--set", "transport.sqs.existingSecret=sqs-keys",
            "--set", f"transport.sqs.endpointUrl={settings.sqs_endpoint_url}",
            "--set", f"transport.sqs.region={settings.sqs_region}",
            "--set-string", "transport.sqs.accountId=000000000000"]


class Run:
    """One installed actor with its controller, observers and final-queue consumer."""

    def __init__(self, kind, settings, cluster, helm, namespace, tmp_path, handler, concurrency=1):
        self.kind, self.cluster, self.namespace = kind, cluster, namespace
        self.actor = f"a{uuid.uuid4().hex[:6]}"
        self.prefix = f"t{uuid.uuid4().hex[:6]}-"
        self.settings, self.helm, self.tmp_path = settings, helm, tmp_path
        self.values = actor_values(self.actor, self.prefix, handler, concurrency, MAX_REPLICAS)
        self.timeline = Timeline(f"{kind} {handler}")
        self.queue = env.queue_name(self.actor, self.prefix)

    async def __aenter__(self) -> "Run":
        plane = self.cluster.plane
        self.transport = await open_transport(self.settings)
        for terminal in ("happy-end", "error-end"):
            await self.transport.ensure_queue(QueueSpec(env.queue_name(terminal, self.prefix),
                                                        env.dlq_name(terminal, self.prefix)))
        self.controller = ControllerProcess(self.tmp_path, plane.kubeconfig, self.settings,
                                            identity=f"ctl-{self.actor}", namespaces=self.namespace,
                                            lease_namespace=self.namespace)
        extra = _broker_layer(self.kind, self.settings, plane, self.namespace)
        install_actor(self.cluster, self.helm, self.namespace, self.kind, self.values, extra, self.tmp_path)
        self.api = await KubeClient.create(str(plane.kubeconfig))
        self.finals = Finals(self.transport, self.prefix, self.timeline)
        self.finals.start()
        self.observer = Observer(self.api, self.namespace, self.actor, self.timeline, MAX_REPLICAS,
                                 finished=lambda: len(self.finals.ids() | self.finals.ids("errors")))
        self.observer.start()
        await wait_until(lambda: queue_exists(self.transport, self.queue), 60, f"controller creates {self.queue}")
        # KEDA takes the Deployment (created with 1 replica) to 0 while the queue is empty.
        await wait_until(lambda: self.observer.replicas == 0 and self.observer.pods == 0, 120,
                         "replicas 0 and no pod before anything is sent")
        assert not pod_processes(self.cluster.kubelet.pid, self.namespace)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.observer.stop()
        await self.finals.stop()
        print("\n" + self.timeline.render() + "\n" + self.observer.render_history())
        TIMELINES.append(self.timeline.render())
        if exc[0] is not None:
            for name in ("keda-operator", "keda-adapter"):
                print(f"--- {name} log tail ---\n{self.cluster.keda.log_tail(name, 1500)}")
            print(f"--- kubelet log tail ---\n{(self.cluster.workdir / 'kubelet.log').read_text()[-3000:]}")
        self.cluster.helm(self.helm, "uninstall", self.actor, "-n", self.namespace, "--wait", "--timeout", "120s")
        code = self.controller.stop()
        for terminal in ("happy-end", "error-end"):
            for name in (env.queue_name(terminal, self.prefix), env.dlq_name(terminal, self.prefix)):
                await self.transport.delete_queue(name)
        await self.transport.close()
        await self.api.close()
        assert code == 0, self.controller.logs()[-3000:]

    async def publish(self, payloads: list[dict]) -> list[str]:
        """Sends one envelope per payload to the actor; returns their ids (timeline starts here)."""
        envelopes = [env.make_envelope([self.actor], p) for p in payloads]
        self.timeline.start()
        await self.transport.send_many(self.queue, [env.dumps(e) for e in envelopes])
        self.timeline.mark("published")
        return [e["id"] for e in envelopes]

    async def back_to_zero(self) -> None:
        """Waits for 0 replicas, 0 pods and 0 pod processes; cooldown + generous slack under load."""
        await wait_until(lambda: self.observer.replicas == 0 and self.observer.pods == 0, COOLDOWN + 150,
                         "scaled back to 0 replicas and 0 pods")
        await wait_until(lambda: not pod_processes(self.cluster.kubelet.pid, self.namespace), 30,
                         "no pod process left")
        self.timeline.mark("->0 processes")
        log = (self.cluster.workdir / "kubelet.log").read_text(errors="replace")
        killed = [line for line in log.splitlines() if f" {self.namespace}/" in line and "SIGKILL" in line]
        assert not killed, f"pods had to be killed after their grace period: {killed}"

    async def queue_empty(self) -> None:
        for name in (self.queue, env.dlq_name(self.actor, self.prefix)):
            depth = await self.transport.depth(name)
            assert depth.total == 0, f"{name} still holds {depth}"


@pytest.mark.parametrize("kind", TRANSPORTS)
async def test_actor_scales_from_zero_to_max_and_back_losing_nothing(kind, request, scaling_cluster, helm,
                                                                    scaling_namespace, tmp_path):
    settings = request.getfixturevalue(f"{kind}_settings")
    quick, slow = 95, MAX_REPLICAS
    async with Run(kind, settings, scaling_cluster, helm, scaling_namespace, tmp_path, "scaling_handlers.work") as run:
        ids = await run.publish([{"i": i, "sleep": 0.5} for i in range(quick)])
        await wait_until(lambda: run.observer.replicas >= 1, 90, "KEDA wakes the actor from 0")
        await wait_until(lambda: run.observer.ready >= MAX_REPLICAS, 150,
                         f"{MAX_REPLICAS} pods Ready (max reached)")

        # a pod deleted while busy (eviction) must lose nothing: its in-flight envelope finishes or returns
        pods = await run.api.request("GET", f"/api/v1/namespaces/{scaling_namespace}/pods",
                                     query={"labelSelector": f"asya.sh/actor={run.actor}"})
        victim = next(p["metadata"]["name"] for p in pods["items"] if not p["metadata"].get("deletionTimestamp"))
        await run.api.request("DELETE", f"/api/v1/namespaces/{scaling_namespace}/pods/{victim}")
        run.timeline.note(f"deleted pod {victim} with {len(run.finals.happy)}/{quick} done")

        # the tail: one long call per pod, so the scale-in finds every pod it removes busy
        await wait_until(lambda: len(run.finals.ids()) >= quick - 10, 240, "most of the quick envelopes done")
        long_calls = [env.make_envelope([run.actor], {"i": quick + i, "sleep": SLOW_CALL}) for i in range(slow)]
        await run.transport.send_many(run.queue, [env.dumps(e) for e in long_calls])
        run.timeline.note(f"published {slow} calls of {SLOW_CALL}s")
        ids += [e["id"] for e in long_calls]

        await wait_until(lambda: run.finals.ids() >= set(ids), 240, f"all {len(ids)} envelopes in happy-end")
        run.timeline.mark(f"drained: all {len(ids)} in happy-end")
        await run.back_to_zero()
        await run.queue_empty()

        duplicates = sum(n - 1 for n in Counter(e["id"] for e in run.finals.happy).values())
        scale_in = run.observer.scale_in
        run.timeline.note(f"{len(run.finals.happy)} arrivals in happy-end, {duplicates} duplicates; max replicas "
                          f"{run.observer.max_replicas_seen}, max Ready {run.observer.max_ready_seen}; scale-in "
                          f"from {MAX_REPLICAS} with {scale_in and len(ids) - scale_in[1]} envelopes unfinished")
        assert run.finals.ids() == set(ids)
        assert not run.finals.errors, [e.get("headers", {}).get(env.H_ERROR) for e in run.finals.errors][:3]
        assert run.observer.max_replicas_seen == MAX_REPLICAS
        assert all("pid" in e["payload"] for e in run.finals.happy), "every result came from the handler"
        assert len({e["payload"]["pid"] for e in run.finals.happy}) > 1, "the work was spread over several pods"
        assert scale_in is not None and scale_in[1] < len(ids), "the scale-in removed pods while they were busy"


@pytest.mark.parametrize("kind", TRANSPORTS)
async def test_crash_looping_handler_scales_back_to_zero_and_parks_envelopes_in_error_end(
        kind, request, scaling_cluster, helm, scaling_namespace, tmp_path):
    settings = request.getfixturevalue(f"{kind}_settings")
    total = 6
    async with Run(kind, settings, scaling_cluster, helm, scaling_namespace, tmp_path, "scaling_handlers.crash",
                   concurrency=3) as run:
        ids = await run.publish([{"i": i} for i in range(total)])
        await wait_until(lambda: run.observer.replicas >= 1, 90, "KEDA wakes the actor from 0")
        await wait_until(lambda: run.finals.ids("errors") >= set(ids), 240, f"all {total} envelopes in error-end")
        run.timeline.mark(f"all {total} in error-end")
        await run.back_to_zero()
        await run.queue_empty()
        run.timeline.note(f"runtime container restarts seen: {run.observer.max_restarts}")
        assert not run.finals.happy
        assert run.finals.ids("errors") == set(ids)
        assert run.observer.max_restarts >= 1, "the runtime container crashed and was restarted by the kubelet"
        errors = [e["headers"][env.H_ERROR] for e in run.finals.errors]
        # Every envelope failed because the runtime died under it. Its last attempt may instead read ActorTimeout:
        # a pod being scaled in does not restart its runtime, so a call the sidecar still holds waits for it
        # until actorTimeout (reported to the sidecar's owners; the envelope still ends in error-end).
        summary = [(e["actor"], [a.get("type") for a in e.get("attempts", [])]) for e in errors]
        run.timeline.note(f"error-end attempts: {summary}")
        assert all(error["actor"] == run.actor and "RuntimeCrashed" in [a.get("type") for a in error["attempts"]]
                   for error in errors), summary
