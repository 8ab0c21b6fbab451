"""The test kubelet keeps the pod contract the scaling tests rely on (tests/support/kubelet.py).

One pod exercises what the chart does not: env from a ConfigMap key, ``fieldRef`` and ``envFrom`` (with
a prefix), an init container writing into an ``emptyDir`` the container reads, readiness from an exec
probe, and on deletion ``preStop`` strictly before SIGTERM, then the pod object gone and no process left.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest

from tests.scaling.harness import HANDLER_IMAGE, pod_processes
from tests.support.require import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(180)]

MAIN = """
import json, os, signal, sys, time
out = os.environ["OUT"]
def term(*_):
    with open(out + "/order", "a") as f:
        f.write("sigterm-after-prestop\\n" if os.path.exists(out + "/prestop") else "sigterm-before-prestop\\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, term)
env = {k: v for k, v in os.environ.items() if k.startswith(("V_", "CM_", "SEC_"))}
env["init"] = open(out + "/init").read()
json.dump(env, open(out + "/env.json", "w"))
while True:
    time.sleep(1)
"""


def _apply(plane, namespace: str, manifest: dict) -> None:
    plane.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest))


def test_pod_env_init_probe_and_termination_order(scaling_cluster, scaling_namespace):
    plane, ns = scaling_cluster.plane, scaling_namespace
    name = f"p{uuid.uuid4().hex[:6]}"
    _apply(plane, ns, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"},
                       "data": {"colour": "blue", "size": "7"}})
    _apply(plane, ns, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sec"},
                       "stringData": {"token": "s3cret"}})
    # no ServiceAccount controller runs here (the chart brings its own ServiceAccount)
    _apply(plane, ns, {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}})
    mount = [{"name": "out", "mountPath": "/var/out"}]
    _apply(plane, ns, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "terminationGracePeriodSeconds": 20,
            "volumes": [{"name": "out", "emptyDir": {}}],
            "initContainers": [{"name": "init", "image": f"{HANDLER_IMAGE}:1", "volumeMounts": mount,
                                "command": ["python3", "-c", "open('/var/out/init', 'w').write('done')"]}],
            "containers": [{
                "name": "main", "image": f"{HANDLER_IMAGE}:1", "volumeMounts": mount,
                "command": ["python3", "-c", MAIN],
                "env": [{"name": "OUT", "value": "/var/out"},
                        {"name": "V_PLAIN", "value": "x"},
                        {"name": "V_COLOUR", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "colour"}}},
                        {"name": "V_TOKEN", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "token"}}},
                        {"name": "V_POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "V_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                        {"name": "V_LABEL", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                        {"name": "V_MISSING", "valueFrom": {"configMapKeyRef": {
                            "name": "absent", "key": "k", "optional": True}}}],
                "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CM_"},
                            {"secretRef": {"name": "sec"}, "prefix": "SEC_"}],
                "readinessProbe": {"exec": {"command": ["python3", "-c",
                                                        "import os; assert os.path.exists('/var/out/env.json')"]},
                                   "periodSeconds": 1},
                "lifecycle": {"preStop": {"exec": {"command": ["python3", "-c",
                                                               "open('/var/out/prestop', 'w').write('1')"]}}},
            }]}})

    def ready() -> bool:
        out = plane.kubectl("get", "pod", name, "-n", ns, "-o",
                            "jsonpath={.status.conditions[?(@.type=='Ready')].status}", check=False)
        return out.stdout.strip() == "True"

    wait_for(ready, 60, interval=0.5, what=f"pod {name} Ready")
    uid = json.loads(plane.kubectl("get", "pod", name, "-n", ns, "-o", "json").stdout)["metadata"]["uid"]
    out = scaling_cluster.workdir / "kubelet" / "p" / uid[:8] / "v" / "out"
    env = json.loads((out / "env.json").read_text())
    assert env == {"V_PLAIN": "x", "V_COLOUR": "blue", "V_TOKEN": "s3cret", "V_POD": name, "V_NS": ns,
                   "V_LABEL": name, "CM_colour": "blue", "CM_size": "7", "SEC_token": "s3cret", "init": "done"}
    assert pod_processes(scaling_cluster.kubelet.pid, ns)

    started = time.monotonic()
    plane.kubectl("delete", "pod", name, "-n", ns, "--wait=true", "--timeout=60s")
    assert time.monotonic() - started < 20, "the container exits on SIGTERM, well before the grace period"
    assert (out / "order").read_text() == "sigterm-after-prestop\n"
    wait_for(lambda: not pod_processes(scaling_cluster.kubelet.pid, ns), 10, what="no process left")
