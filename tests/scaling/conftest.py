"""Fixtures of the scale-to-zero suite: one cluster that really runs pods, for this package only.

etcd + kube-apiserver (with API aggregation) + kube-controller-manager + kube-scheduler + the real
KEDA operator and metrics adapter + the test kubelet (tests/support/kubelet.py) on one Node. Brokers
come from tests/support/brokers.py (root conftest plugin). Everything stops when the package is done.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.scaling.harness import HANDLER_IMAGE, HANDLERS, TIMELINES, ScalingCluster
from tests.support.cluster import REPO, ControlPlane, apiserver_binary, helm_binary, kube_binary
from tests.support.keda import Keda, keda_binary
from tests.support.require import require, wait_for

NODE = "asya-test-node"


def _node_ready(plane: ControlPlane) -> bool:
    out = plane.kubectl("get", "node", NODE, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
                        check=False)
    return out.stdout.strip() == "True"


@pytest.fixture(scope="package")
def scaling_cluster(request):
    """The whole stack, started once for the package; its logs are kept when a test failed."""
    binaries = [apiserver_binary(), kube_binary("kube-controller-manager"), kube_binary("kube-scheduler"),
                keda_binary("keda-operator"), keda_binary("keda-adapter")]
    missing = [str(b) for b in binaries if not b.exists()]
    require(not missing, f"not built: {missing}: run `make tools-kube tools-scaling`")
    require(shutil.which("etcd") is not None, "etcd not installed: `make system-deps` (Debian etcd-server)")
    require(shutil.which("kubectl") is not None, "kubectl not installed")
    workdir = Path(tempfile.mkdtemp(prefix="asya-scale-"))
    handlers = workdir / "handlers"
    handlers.mkdir()
    (handlers / "scaling_handlers.py").write_text(HANDLERS)
    plane = ControlPlane(workdir, aggregation=True)
    keda = Keda(plane, workdir)
    kubelet = None
    try:
        plane.start()
        plane.start_controllers(hpa_sync_period="5s")  # default 15 s; 5 s keeps the suite short
        keda.start()
        log = open(workdir / "kubelet.log", "ab")
        kubelet = subprocess.Popen(
            [sys.executable, "-m", "tests.support.kubelet", "--kubeconfig", str(plane.kubeconfig), "--node", NODE,
             "--workdir", str(workdir / "kubelet"), "--image", f"{HANDLER_IMAGE}={handlers}"],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        wait_for(lambda: _node_ready(plane), 60, interval=0.5, what=f"Node {NODE} Ready (log: {workdir}/kubelet.log)")
        yield ScalingCluster(plane, keda, kubelet, workdir)
    finally:
        if kubelet is not None:
            kubelet.terminate()
            try:
                kubelet.wait(timeout=30)
            except subprocess.TimeoutExpired:
                kubelet.kill()
                kubelet.wait()
        keda.stop()
        plane.stop()
        if request.session.testsfailed:
            print(f"\nscaling cluster logs kept in {workdir} (a test failed)")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def scaling_namespace(scaling_cluster) -> str:
    """A fresh namespace per test."""
    name = f"s-{uuid.uuid4().hex[:8]}"
    scaling_cluster.plane.kubectl("create", "namespace", name)
    return name


@pytest.fixture(scope="package")
def helm() -> Path:
    """The pinned helm binary (``make tools-helm``)."""
    path = helm_binary()
    require(path is not None, "helm not built: run `make tools-helm`")
    return path


def pytest_terminal_summary(terminalreporter):
    """Every observed scaling timeline of the run, together (the tests print them one by one too)."""
    if TIMELINES:
        terminalreporter.section("scaling timelines")
        for timeline in TIMELINES:
            terminalreporter.write_line(timeline)
