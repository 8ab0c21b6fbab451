"""The controller works with exactly the rights its chart grants, and those rights are the least it needs.

The chart is installed into the real API server; the controller then runs as a subprocess with a token
of the chart's ServiceAccount (TokenRequest) and the env of the chart's Deployment. Rights are checked
with ``kubectl auth can-i`` (SelfSubjectAccessReview) as that ServiceAccount.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest

from tests.cluster.harness import (ControllerProcess, actor_deployment, apply, events_for, get_json, open_transport,
                                   queue_exists, sqlite_settings, wait_until)
from tests.support.cluster import REPO

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(240)]


def _install(control_plane, helm, tmp_path, release: str, namespace: str, watch: list[str],
             cluster_wide: bool = False) -> str:
    env = {**os.environ, "KUBECONFIG": str(control_plane.kubeconfig), "HELM_CACHE_HOME": str(tmp_path / "h"),
           "HELM_CONFIG_HOME": str(tmp_path / "h"), "HELM_DATA_HOME": str(tmp_path / "h")}
    proc = subprocess.run([str(helm), "install", release, str(REPO / "charts/asya-controller"), "-n", namespace,
                           "--set", "transport.type=sqs", "--set-json", f"watchNamespaces={json.dumps(watch)}",
                           "--set", f"clusterWide={str(cluster_wide).lower()}"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return f"{release}-asya-controller"


def _can(control_plane, kubeconfig, verb: str, resource: str, namespace: str | None) -> bool:
    scope = ["-n", namespace] if namespace else ["--all-namespaces"]
    proc = control_plane.kubectl("auth", "can-i", verb, resource, *scope, kubeconfig=kubeconfig, check=False)
    assert proc.stdout.strip() in ("yes", "no"), proc.stderr
    return proc.stdout.strip() == "yes"


def _chart_env(control_plane, namespace: str, fullname: str, pod: str) -> dict[str, str]:
    """The controller container's env as the chart sets it, with the downward-API fields resolved."""
    deployment = get_json(control_plane, f"deployment/{fullname}", "-n", namespace)
    env = {}
    for var in deployment["spec"]["template"]["spec"]["containers"][0]["env"]:
        if "value" in var:
            env[var["name"]] = var["value"]
        elif var.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.namespace":
            env[var["name"]] = namespace
        elif var.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name":
            env[var["name"]] = pod
    return env


async def test_controller_runs_with_exactly_its_chart_rbac(control_plane, helm, tmp_path):
    home, watched, unwatched = (f"{p}-{uuid.uuid4().hex[:6]}" for p in ("ctl", "team", "other"))
    for ns in (home, watched, unwatched):
        control_plane.kubectl("create", "namespace", ns)
    fullname = _install(control_plane, helm, tmp_path, "ctl", home, [watched])
    token = control_plane.service_account_token(home, fullname)
    sa = control_plane.write_kubeconfig(f"sa-{home}", f"system:serviceaccount:{home}:{fullname}", token, home)

    allowed = [("list", "deployments.apps", watched), ("watch", "deployments.apps", watched),
               ("patch", "deployments.apps", watched), ("create", "events", watched),
               ("create", "leases.coordination.k8s.io", home),
               ("update", f"leases.coordination.k8s.io/{fullname}", home),
               ("get", f"leases.coordination.k8s.io/{fullname}", home)]
    denied = [("list", "deployments.apps", unwatched), ("list", "deployments.apps", None),
              ("create", "deployments.apps", watched), ("delete", "deployments.apps", watched),
              ("update", "deployments.apps", watched), ("get", "secrets", watched), ("get", "secrets", home),
              ("list", "pods", watched), ("create", "events", unwatched),
              ("update", "leases.coordination.k8s.io/someone-else", home),
              ("get", "leases.coordination.k8s.io", watched),
              ("create", "clusterroles.rbac.authorization.k8s.io", None)]
    assert [c for c in allowed if not _can(control_plane, sa, *c)] == []
    assert [c for c in denied if _can(control_plane, sa, *c)] == []

    settings = sqlite_settings(tmp_path / "queues.sqlite3")
    transport = await open_transport(settings)
    env = _chart_env(control_plane, home, fullname, pod=f"{fullname}-0")
    env.update(ASYA_CONTROLLER_RESYNC="3s", ASYA_LOG_LEVEL="INFO")
    controller = ControllerProcess(tmp_path, sa, settings, identity=env.pop("ASYA_CONTROLLER_IDENTITY"),
                                   namespaces=env.pop("ASYA_CONTROLLER_NAMESPACES"),
                                   lease_namespace=env.pop("ASYA_CONTROLLER_LEASE_NAMESPACE"),
                                   lease_name=env.pop("ASYA_CONTROLLER_LEASE_NAME"), resync="3s",
                                   extra_env={k: v for k, v in env.items() if k.startswith("ASYA_CONTROLLER_")
                                              and k != "ASYA_CONTROLLER_LEASE_DURATION"})
    try:
        apply(control_plane, watched, actor_deployment("seen", deletion="delete"))
        apply(control_plane, unwatched, actor_deployment("unseen"))
        await wait_until(lambda: queue_exists(transport, "asya-seen"), 30, "queue of the watched actor")
        await wait_until(lambda: "QueueCreated" in [e["reason"] for e in events_for(control_plane, watched, "seen")],
                         15, "event written with the chart's rights")
        await wait_until(lambda: "asya.sh/queue-cleanup" in (
            get_json(control_plane, "deployment/seen", "-n", watched)["metadata"].get("finalizers") or []),
            15, "finalizer patched with the chart's rights")
        lease = get_json(control_plane, f"lease/{fullname}", "-n", home)
        assert lease["spec"]["holderIdentity"] == f"{fullname}-0"

        control_plane.kubectl("delete", "deployment/seen", "-n", watched, "--wait=false")
        await wait_until(lambda: control_plane.kubectl("get", "deployment/seen", "-n", watched, check=False)
                         .returncode != 0, 30, "deletion finished with the chart's rights")
        assert not await queue_exists(transport, "asya-seen")
        assert not await queue_exists(transport, "asya-unseen")
        logs = controller.logs()
        assert "Forbidden" not in logs and " 403" not in logs, logs[-3000:]
    finally:
        assert controller.stop() == 0, controller.logs()[-3000:]
        await transport.close()


def test_all_namespaces_install_uses_a_cluster_role_with_the_same_few_rights(control_plane, helm, tmp_path):
    home, anywhere = f"ctl-{uuid.uuid4().hex[:6]}", f"any-{uuid.uuid4().hex[:6]}"
    for ns in (home, anywhere):
        control_plane.kubectl("create", "namespace", ns)
    fullname = _install(control_plane, helm, tmp_path, "all", home, [], cluster_wide=True)
    token = control_plane.service_account_token(home, fullname)
    sa = control_plane.write_kubeconfig(f"sa-{home}", f"system:serviceaccount:{home}:{fullname}", token, home)
    assert _can(control_plane, sa, "watch", "deployments.apps", None)
    assert _can(control_plane, sa, "patch", "deployments.apps", anywhere)
    assert _can(control_plane, sa, "create", "events", anywhere)
    for verb, resource, ns in [("delete", "deployments.apps", anywhere), ("get", "secrets", anywhere),
                               ("list", "secrets", None), ("create", "leases.coordination.k8s.io", anywhere),
                               ("list", "pods", None)]:
        assert not _can(control_plane, sa, verb, resource, ns), (verb, resource, ns)


def test_default_install_is_namespace_scoped(control_plane, helm, tmp_path):
    """Issue 10: without ``clusterWide: true`` the controller manages its own namespace only (before: every namespace)."""
    home, elsewhere = f"ctl-{uuid.uuid4().hex[:6]}", f"else-{uuid.uuid4().hex[:6]}"
    for ns in (home, elsewhere):
        control_plane.kubectl("create", "namespace", ns)
    fullname = _install(control_plane, helm, tmp_path, "own", home, [])
    token = control_plane.service_account_token(home, fullname)
    sa = control_plane.write_kubeconfig(f"sa-{home}", f"system:serviceaccount:{home}:{fullname}", token, home)
    assert _can(control_plane, sa, "patch", "deployments.apps", home)
    for verb, resource, ns in [("list", "deployments.apps", None), ("patch", "deployments.apps", elsewhere),
                               ("create", "events", elsewhere)]:
        assert not _can(control_plane, sa, verb, resource, ns), (verb, resource, ns)
    env = _chart_env(control_plane, home, fullname, pod=f"{fullname}-0")
    assert env["ASYA_CONTROLLER_NAMESPACES"] == home
