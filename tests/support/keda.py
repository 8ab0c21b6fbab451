"""The real KEDA operator and metrics adapter as local processes next to a test control plane.

KEDA is built from its pinned Go module by ``make tools-scaling`` (ci/mk/scaling.mk). The operator
reconciles ScaledObjects (its HPA, scale 0 <-> 1 itself) and serves metrics to the adapter over mTLS
gRPC; the adapter serves ``external.metrics.k8s.io`` to the HPA controller through API aggregation on
loopback: an ExternalName Service ``keda/keda-metrics-apiserver`` pointing at ``localhost`` and the
``v1beta1.external.metrics.k8s.io`` APIService with our CA. One CA and one certificate (serving and
client, for ``localhost``, ``127.0.0.1`` and the Service names) serve both the gRPC link and the
adapter's HTTPS. The control plane must run with ``aggregation=True`` (front-proxy flags).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

from tests.support.cluster import TOOLS_CACHE, ControlPlane, make_ca, sign_cert
from tests.support.require import free_port, wait_for

REPO = Path(__file__).resolve().parents[2]
KEDA_TOOLS_VERSION = next(
    line.split()[2] for line in (REPO / "tests/scaling/tools/go.mod").read_text().splitlines()
    if line.startswith("require github.com/kedacore/keda/v2 ")
)
NAMESPACE = "keda"
SERVICE = "keda-metrics-apiserver"


def keda_binary(name: str) -> Path:
    """``keda-operator`` / ``keda-adapter`` from ``make tools-scaling`` (``ASYA_KEDA_OPERATOR`` / ``_ADAPTER``)."""
    env = "ASYA_" + name.upper().replace("-", "_")
    return Path(os.environ.get(env, TOOLS_CACHE / "keda" / KEDA_TOOLS_VERSION / "bin" / name))


class Keda:
    """Operator + metrics adapter of one control plane; :meth:`start` waits until the metrics API is Available."""

    def __init__(self, plane: ControlPlane, workdir: Path):
        self.plane, self.workdir = plane, workdir
        self.certs = workdir / "keda-certs"
        self.grpc_port, self.adapter_port = free_port(), free_port()
        self.procs: dict[str, subprocess.Popen] = {}

    def _write_certs(self) -> None:
        self.certs.mkdir(mode=0o700, exist_ok=True)
        ca = make_ca(self.certs, "ca")
        sans = (f"IP:127.0.0.1,DNS:localhost,DNS:{SERVICE}.{NAMESPACE}.svc,"
                f"DNS:{SERVICE}.{NAMESPACE}.svc.cluster.local,DNS:keda-operator.{NAMESPACE}.svc.cluster.local")
        sign_cert(ca, self.certs / "tls.crt", self.certs / "tls.key", "keda", sans)

    def _apply(self, manifest: dict) -> None:
        self.plane.kubectl("apply", "-f", "-", input=json.dumps(manifest))

    def _spawn(self, name: str, args: list[str]) -> None:
        env = {**os.environ, "KUBECONFIG": str(self.plane.kubeconfig), "WATCH_NAMESPACE": "",
               "POD_NAMESPACE": NAMESPACE, "KEDA_CLUSTER_OBJECT_NAMESPACE": NAMESPACE}
        log = open(self.workdir / f"{name}.log", "ab")
        self.procs[name] = subprocess.Popen([str(keda_binary(name)), *args], env=env, stdout=log,
                                            stderr=subprocess.STDOUT, cwd=self.workdir)

    def start(self) -> "Keda":
        """Certificates, Service, APIService, then both processes; waits for the APIService to be Available."""
        self._write_certs()
        kubeconfig = str(self.plane.kubeconfig)
        self.plane.kubectl("create", "namespace", NAMESPACE, check=False)
        self._apply({"apiVersion": "v1", "kind": "Service",
                     "metadata": {"name": SERVICE, "namespace": NAMESPACE},
                     "spec": {"type": "ExternalName", "externalName": "localhost"}})
        self._apply({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
                     "metadata": {"name": "v1beta1.external.metrics.k8s.io"},
                     "spec": {"group": "external.metrics.k8s.io", "version": "v1beta1",
                              "service": {"namespace": NAMESPACE, "name": SERVICE, "port": self.adapter_port},
                              "caBundle": base64.b64encode((self.certs / "ca.crt").read_bytes()).decode(),
                              "groupPriorityMinimum": 100, "versionPriority": 100}})
        self._spawn("keda-operator", [
            f"--metrics-bind-address=127.0.0.1:{free_port()}", f"--health-probe-bind-address=127.0.0.1:{free_port()}",
            f"--metrics-service-bind-address=127.0.0.1:{self.grpc_port}", f"--cert-dir={self.certs}",
            f"--ca-dir={self.certs}", "--leader-elect=false", "--enable-cert-rotation=false",
            "--enable-webhook-patching=false", "--enable-apiservice-patching=false", "--zap-log-level=info"])
        self._spawn("keda-adapter", [
            f"--secure-port={self.adapter_port}", "--bind-address=127.0.0.1", f"--cert-dir={self.certs}",
            f"--tls-cert-file={self.certs / 'tls.crt'}", f"--tls-private-key-file={self.certs / 'tls.key'}",
            f"--metrics-service-address=127.0.0.1:{self.grpc_port}", f"--port={free_port()}",
            f"--lister-kubeconfig={kubeconfig}", f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}", "--zap-log-level=info"])
        wait_for(self._available, 120, interval=0.5, what=f"APIService v1beta1.external.metrics.k8s.io Available "
                                                          f"(logs: {self.workdir}/keda-*.log)")
        return self

    def _available(self) -> bool:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}: {self.log_tail(name)}")
        out = self.plane.kubectl("get", "apiservice", "v1beta1.external.metrics.k8s.io", "-o",
                                 "jsonpath={.status.conditions[?(@.type=='Available')].status}", check=False)
        return out.stdout.strip() == "True"

    def log_tail(self, name: str, chars: int = 3000) -> str:
        """The end of ``keda-operator`` / ``keda-adapter``'s log."""
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"

    def stop(self) -> None:
        """SIGTERM both processes and wait (SIGKILL after 20 s)."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
