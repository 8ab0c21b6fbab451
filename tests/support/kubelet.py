"""A test kubelet: runs the pods the scheduler binds to one Node as local processes (no container runtime).

Why: there is no container engine on this machine or in CI, yet scale-to-zero is only proven by pods
that really start, consume their queue and stop. This kubelet registers a Ready Node, renews its Lease
(merge patch), watches the pods bound to the Node and runs each one with
:class:`tests.support.kubelet_pod.Pod`: init containers then containers as processes, env resolved
(``value``, ``secretKeyRef``, ``configMapKeyRef``, ``fieldRef``, ``envFrom``), images mapped to local
commands and folders, readiness from the probes reported in the pod status, and on deletion
``preStop`` -> SIGTERM -> SIGKILL after the grace period, then the pod object removed (grace 0).

Image mapping: the project's runtime, sidecar and crew images are recognised by repository name on any
registry; handler images are given as ``--image REPOSITORY=FOLDER`` (the folder is the working dir).

Run: ``python -m tests.support.kubelet --kubeconfig K --node N --workdir D [--image R=F] [--backoff S]
[--backoff-max S]``; SIGTERM stops every pod (preStop and grace included, at most 15 s) and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import ctypes
import signal
import sys
import time
from pathlib import Path
from typing import Any

from asya_controller.kube import MERGE_PATCH, KubeClient, KubeError
from tests.support.kubelet_pod import Image, Pod, _now, builtin_images
from tests.support.require import free_port

LEASE_SECONDS = 40
RENEW_EVERY = 10.0
PR_SET_CHILD_SUBREAPER = 36


class Kubelet:
    """One Node and the pods bound to it."""

    def __init__(self, api: KubeClient, node: str, workdir: Path, images: dict[str, str], backoff: float,
                 backoff_max: float):
        self.api, self.node, self.workdir = api, node, workdir
        self.backoff, self.backoff_max = backoff, backoff_max
        self.images = {repo: Image(workdir=folder) for repo, folder in images.items()}
        self.builtin = builtin_images(workdir)
        self.pods: dict[str, Pod] = {}
        self._used_ports: set[int] = set()

    # -- helpers used by pods ----------------------------------------------------------------
    @staticmethod
    def log(message: str) -> None:
        """One line on stderr (the kubelet's log file)."""
        print(f"{time.strftime('%H:%M:%S')} kubelet: {message}", file=sys.stderr, flush=True)

    def free_port(self) -> int:
        """A loopback port not handed to another pod of this kubelet."""
        while (port := free_port()) in self._used_ports:
            pass
        self._used_ports.add(port)
        return port

    def image(self, ref: str) -> Image:
        """The local meaning of image ``ref`` (tag and digest ignored)."""
        repo = ref.split("@")[0]
        if ":" in repo.rsplit("/", 1)[-1]:
            repo = repo.rsplit(":", 1)[0]
        if repo in self.images:
            return self.images[repo]
        for pattern, image in self.builtin:
            if pattern.search(repo):
                return image
        raise LookupError(f"no local mapping for image {ref!r}: pass --image {repo}=FOLDER")

    async def object_data(self, kind: str, namespace: str, name: str, optional: bool) -> dict[str, str]:
        """The decoded ``data`` of a Secret or ConfigMap ({} when it is missing and ``optional``)."""
        try:
            obj = await self.api.request("GET", f"/api/v1/namespaces/{namespace}/{kind}/{name}")
        except KubeError as exc:
            if exc.status == 404 and optional:
                return {}
            raise
        data = obj.get("data") or {}
        if kind == "secrets":
            return {k: base64.b64decode(v).decode() for k, v in data.items()}
        return dict(data)

    async def status(self, pod: Pod, phase: str, initializing: str | None = None, message: str = "") -> None:
        """Writes the pod's phase, conditions and container statuses (merge patch of /status)."""
        spec = pod.pod["spec"]
        containers = []
        for c in spec["containers"]:
            proc = pod.procs.get(c["name"])
            running = proc is not None and proc.returncode is None and initializing is None
            state = ({"running": {"startedAt": pod.started}} if running else
                     {"waiting": {"reason": "PodInitializing" if initializing else "CrashLoopBackOff"}})
            containers.append({"name": c["name"], "image": c["image"], "imageID": "", "started": running,
                               "ready": running and pod.ready.get(c["name"], False),
                               "restartCount": pod.restarts.get(c["name"], 0), "state": state,
                               **({"containerID": f"local://{proc.pid}"} if running else {})})
        ready = phase == "Running" and all(c["ready"] for c in containers)

        def cond(kind: str, ok: bool) -> dict[str, str]:
            return {"type": kind, "status": "True" if ok else "False", "lastTransitionTime": _now()[:19] + "Z"}

        status = {"phase": phase, "hostIP": "127.0.0.1", "hostIPs": [{"ip": "127.0.0.1"}], "podIP": "127.0.0.1",
                  "podIPs": [{"ip": "127.0.0.1"}], "startTime": pod.started[:19] + "Z", "message": message,
                  "conditions": [cond("PodScheduled", True), cond("Initialized", initializing is None),
                                 cond("ContainersReady", ready), cond("Ready", ready)],
                  "containerStatuses": containers}
        try:
            await self.api.request("PATCH", f"/api/v1/namespaces/{pod.ns}/pods/{pod.name}/status",
                                   body={"status": status}, content_type=MERGE_PATCH)
        except KubeError as exc:
            if exc.status != 404:
                self.log(f"status of {pod.ns}/{pod.name}: {exc}")

    # -- node --------------------------------------------------------------------------------
    async def register(self) -> None:
        """Creates the Node (if missing), marks it Ready and creates its Lease."""
        labels = {"kubernetes.io/hostname": self.node, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}
        try:
            await self.api.request("POST", "/api/v1/nodes", body={"metadata": {"name": self.node, "labels": labels}})
        except KubeError as exc:
            if exc.status != 409:
                raise
        resources = {"cpu": "32", "memory": "64Gi", "pods": "110", "ephemeral-storage": "100Gi"}
        conditions = [{"type": t, "status": "False", "reason": "KubeletHasSufficientResources"}
                      for t in ("MemoryPressure", "DiskPressure", "PIDPressure")]
        conditions.append({"type": "Ready", "status": "True", "reason": "KubeletReady",
                           "lastHeartbeatTime": _now()[:19] + "Z"})
        await self.api.request("PATCH", f"/api/v1/nodes/{self.node}/status", content_type=MERGE_PATCH, body={
            "status": {"capacity": resources, "allocatable": resources, "conditions": conditions,
                       "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                                     {"type": "Hostname", "address": self.node}],
                       "nodeInfo": {"kubeletVersion": "asya-test-kubelet", "operatingSystem": "linux",
                                    "architecture": "amd64", "containerRuntimeVersion": "local-process://1",
                                    "machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": "",
                                    "osImage": "", "kubeProxyVersion": ""}}})
        # Admission taints a new Node not-ready; the node lifecycle controller (not run here) would lift it.
        await self.api.request("PATCH", f"/api/v1/nodes/{self.node}", body={"spec": {"taints": None}},
                               content_type=MERGE_PATCH)
        lease = {"metadata": {"name": self.node, "namespace": "kube-node-lease"},
                 "spec": {"holderIdentity": self.node, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": _now()}}
        try:
            await self.api.request("POST", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", body=lease)
        except KubeError as exc:
            if exc.status != 409:
                raise

    async def renew_lease(self) -> None:
        """Renews the Node's Lease every 10 s (merge patch of renewTime)."""
        while True:
            await asyncio.sleep(RENEW_EVERY)
            try:
                await self.api.request(
                    "PATCH", f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.node}",
                    body={"spec": {"renewTime": _now(), "holderIdentity": self.node}}, content_type=MERGE_PATCH)
            except (KubeError, OSError) as exc:
                self.log(f"lease renewal failed: {exc}")

    # -- pods --------------------------------------------------------------------------------
    async def sync_pods(self) -> None:
        """List + watch of the pods bound to this Node; relists after a broken or expired watch."""
        query = {"fieldSelector": f"spec.nodeName={self.node}"}
        while True:
            try:
                listing = await self.api.request("GET", "/api/v1/pods", query=query)
                for pod in listing.get("items", []):
                    await self.handle("ADDED", pod)
                version = listing["metadata"]["resourceVersion"]
                while True:
                    watch = {**query, "resourceVersion": version, "allowWatchBookmarks": True, "timeoutSeconds": 50}
                    async for event in self.api.watch("/api/v1/pods", watch, timeout=70):
                        version = event["object"]["metadata"].get("resourceVersion", version)
                        if event["type"] != "BOOKMARK":
                            await self.handle(event["type"], event["object"])
            except (KubeError, OSError, asyncio.TimeoutError) as exc:
                self.log(f"pod watch ended ({exc}); relisting")
                await asyncio.sleep(1)

    async def handle(self, kind: str, obj: dict[str, Any]) -> None:
        """Starts, stops or forgets one pod after a watch event."""
        meta = obj["metadata"]
        uid = meta["uid"]
        running = self.pods.get(uid)
        if kind == "DELETED":
            if running is not None:
                running.kill_now()
                self.pods.pop(uid, None)
            return
        if meta.get("deletionTimestamp"):
            if running is None or not running.stopping:
                asyncio.create_task(self._terminate(obj, running))
            return
        if running is None and obj.get("status", {}).get("phase") not in ("Succeeded", "Failed"):
            self.log(f"starting pod {meta['namespace']}/{meta['name']}")
            self.pods[uid] = Pod(self, obj)

    async def _terminate(self, obj: dict[str, Any], pod: Pod | None, grace: float | None = None) -> None:
        meta = obj["metadata"]
        if grace is None:
            grace = float(meta.get("deletionGracePeriodSeconds", obj["spec"].get("terminationGracePeriodSeconds", 30)))
        if pod is not None:
            self.log(f"stopping pod {meta['namespace']}/{meta['name']} (grace {grace:g}s)")
            await pod.terminate(grace)
            self.pods.pop(meta["uid"], None)
        try:
            await self.api.request("DELETE", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                                   body={"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}})
        except KubeError as exc:
            if exc.status not in (404, 409):
                self.log(f"final delete of {meta['name']}: {exc}")

    async def shutdown(self) -> None:
        """Stops every pod (preStop, SIGTERM, at most 15 s each, in parallel)."""
        await asyncio.gather(*(p.terminate(15.0) for p in list(self.pods.values())), return_exceptions=True)


async def main(argv: list[str] | None = None) -> None:
    """Runs the kubelet until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m tests.support.kubelet", description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--node", required=True)
    parser.add_argument("--workdir", required=True, type=Path)
    parser.add_argument("--image", action="append", default=[], help="REPOSITORY=FOLDER of a handler image")
    parser.add_argument("--backoff", type=float, default=1.0, help="first restart delay of an exited container")
    parser.add_argument("--backoff-max", type=float, default=10.0, help="longest restart delay (doubling)")
    args = parser.parse_args(argv)
    # Orphans of a pod (a container's children whose parent died) are re-parented to us, not to init:
    # a test looking for leftover pod processes among our descendants finds them too.
    ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    images = dict(item.split("=", 1) for item in args.image)
    api = await KubeClient.create(args.kubeconfig)
    kubelet = Kubelet(api, args.node, args.workdir, images, args.backoff, args.backoff_max)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await kubelet.register()
    kubelet.log(f"node {args.node} registered")
    tasks = [asyncio.create_task(kubelet.renew_lease()), asyncio.create_task(kubelet.sync_pods())]
    await stop.wait()
    for task in tasks:
        task.cancel()
    await kubelet.shutdown()
    await api.close()


if __name__ == "__main__":
    asyncio.run(main())
