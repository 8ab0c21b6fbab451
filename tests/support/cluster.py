"""A real Kubernetes control plane on loopback for the cluster tests: etcd + kube-apiserver.

Why not kind/k3d: there is no container engine here, and the controller and charts only need the API
server (no pods run). The kube-apiserver is built from pinned Go modules by ``make tools-kube``
(``ci/mk/cluster.mk``); etcd comes from Debian's ``etcd-server``. The server runs with RBAC on, a
static admin token, a generated service-account signing key (so TokenRequest works and a test can act
with exactly a ServiceAccount's rights) and a self-signed serving certificate. KEDA's CRDs (and the
ServiceMonitor CRD) are applied so that ScaledObjects validate server-side.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

from tests.support.require import free_port, wait_for

REPO = Path(__file__).resolve().parents[2]
TOOLS_CACHE = Path(os.environ.get("ASYA_TOOLS_CACHE", Path.home() / ".cache" / "asya-tools"))
KUBE_VERSION = next(
    line.split()[2] for line in (REPO / "tests/cluster/tools/go.mod").read_text().splitlines()
    if line.startswith("require k8s.io/kubernetes ")
)
KEDA_VERSION = os.environ.get("KEDA_VERSION", "v2.20.2")
PROMOP_VERSION = os.environ.get("PROMETHEUS_OPERATOR_VERSION", "v0.85.0")
ADMIN_TOKEN = "asya-test-admin-token"


def apiserver_binary() -> Path:
    """Where ``make tools-kube`` puts kube-apiserver (``ASYA_KUBE_APISERVER`` overrides)."""
    return Path(os.environ.get("ASYA_KUBE_APISERVER", TOOLS_CACHE / "kube" / KUBE_VERSION / "bin" / "kube-apiserver"))


def kube_binary(name: str) -> Path:
    """Where ``make tools-scaling`` puts ``kube-controller-manager`` / ``kube-scheduler``
    (``ASYA_KUBE_CONTROLLER_MANAGER`` / ``ASYA_KUBE_SCHEDULER`` override)."""
    env = "ASYA_" + name.upper().replace("-", "_")
    return Path(os.environ.get(env, TOOLS_CACHE / "kube" / KUBE_VERSION / "bin" / name))


def helm_binary() -> Path | None:
    """The pinned helm from ``make tools-helm``, or None when it is not built."""
    path = Path(os.environ.get("HELM", TOOLS_CACHE / "bin" / "helm"))
    return path if path.exists() else None


def _module_dir(module: str, version: str) -> Path:
    out = subprocess.run(["go", "mod", "download", "-json", f"{module}@{version}"], capture_output=True, text=True,
                         check=True, cwd=tempfile.gettempdir())
    return Path(json.loads(out.stdout)["Dir"])


def crd_files() -> list[Path]:
    """KEDA's CRDs and the ServiceMonitor CRD, from ``make keda-crds`` (ci/mk/charts.mk) when it ran,
    else straight from the Go module cache (``go mod download``) at the same pinned versions."""
    keda = Path(os.environ.get("KEDA_CRDS", TOOLS_CACHE / "keda-crds" / KEDA_VERSION))
    promop = Path(os.environ.get("PROMOP_CRDS", TOOLS_CACHE / "prometheus-operator-crds" / PROMOP_VERSION))
    files = sorted(keda.glob("*.yaml"))
    if not files:
        files = sorted((_module_dir("github.com/kedacore/keda/v2", KEDA_VERSION) / "config/crd/bases").glob("*.yaml"))
    monitor = promop / "monitoring.coreos.com_servicemonitors.yaml"
    if not monitor.exists():
        monitor = (_module_dir("github.com/prometheus-operator/prometheus-operator", PROMOP_VERSION)
                   / "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml")
    return [*files, monitor]


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_ca(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed CA ``<name>.crt`` / ``<name>.key`` in ``folder``."""
    crt, key = folder / f"{name}.crt", folder / f"{name}.key"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
             "-keyout", str(key), "-out", str(crt))
    return crt, key


def sign_cert(ca: tuple[Path, Path], crt: Path, key: Path, cn: str, sans: str = "",
              usage: str = "serverAuth,clientAuth") -> None:
    """A certificate for ``cn`` (and ``sans``, e.g. ``IP:127.0.0.1,DNS:localhost``) signed by ``ca``."""
    extra = ["-addext", f"subjectAltName={sans}"] if sans else []
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={cn}",
             "-CA", str(ca[0]), "-CAkey", str(ca[1]), "-addext", f"extendedKeyUsage={usage}", *extra,
             "-keyout", str(key), "-out", str(crt))


class ControlPlane:
    """etcd + kube-apiserver in ``workdir``; :meth:`restart_apiserver` keeps port, certs and data."""

    def __init__(self, workdir: Path, aggregation: bool = False):
        self.workdir = workdir
        # API aggregation (front-proxy CA and client certificate, client CA): needed by KEDA's metrics adapter.
        self.aggregation = aggregation
        self._controllers: list[subprocess.Popen] = []
        self.etcd_port, self.etcd_peer_port, self.port = free_port(), free_port(), free_port()
        self.server = f"https://127.0.0.1:{self.port}"
        self.kubeconfig = workdir / "kubeconfig"
        self.ca_file = workdir / "serving.crt"
        self._etcd: subprocess.Popen | None = None
        self._apiserver: subprocess.Popen | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> "ControlPlane":
        """Starts etcd and the API server, writes the admin kubeconfig, applies KEDA's CRDs."""
        self._write_credentials()
        self._start_etcd()
        self.start_apiserver()
        self.kubeconfig.write_text(yaml.safe_dump(self.kubeconfig_for("admin", ADMIN_TOKEN)))
        self.kubectl("apply", "--server-side", *sum((["-f", str(p)] for p in crd_files()), []))
        for crd in ("scaledobjects.keda.sh", "triggerauthentications.keda.sh", "servicemonitors.monitoring.coreos.com"):
            wait_for(lambda crd=crd: self.kubectl(
                "get", f"crd/{crd}", "-o", "jsonpath={.status.conditions[?(@.type=='Established')].status}",
                check=False).stdout == "True", 60, interval=0.3, what=f"CRD {crd} established")
        return self

    def stop(self) -> None:
        """Stops both processes (the temp dir is removed by the caller)."""
        for proc in self._controllers:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._controllers.clear()
        self.stop_apiserver()
        if self._etcd is not None:
            self._etcd.terminate()
            self._etcd.wait(timeout=20)
            self._etcd = None

    def _write_credentials(self) -> None:
        w = self.workdir
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                 "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                 "-keyout", str(w / "serving.key"), "-out", str(self.ca_file))
        _openssl("genrsa", "-out", str(w / "sa.key"), "2048")
        _openssl("rsa", "-in", str(w / "sa.key"), "-pubout", "-out", str(w / "sa.pub"))
        (w / "tokens.csv").write_text(f'{ADMIN_TOKEN},asya-admin,asya-admin-uid,"system:masters"\n')
        if self.aggregation:
            self.front_proxy_ca = make_ca(w, "front-proxy-ca")
            sign_cert(self.front_proxy_ca, w / "front-proxy-client.crt", w / "front-proxy-client.key",
                      "front-proxy-client", usage="clientAuth")
            self.client_ca = make_ca(w, "client-ca")

    def _start_etcd(self) -> None:
        log = open(self.workdir / "etcd.log", "ab")
        self._etcd = subprocess.Popen(
            [shutil.which("etcd") or "etcd", "--data-dir", str(self.workdir / "etcd"),
             "--listen-client-urls", f"http://127.0.0.1:{self.etcd_port}",
             "--advertise-client-urls", f"http://127.0.0.1:{self.etcd_port}",
             "--listen-peer-urls", f"http://127.0.0.1:{self.etcd_peer_port}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.etcd_peer_port}",
             "--initial-cluster", f"default=http://127.0.0.1:{self.etcd_peer_port}",
             "--unsafe-no-fsync", "--quota-backend-bytes", str(2 * 1024**3),
             # etcd 3.4: without progress notifications, watches without a resourceVersion (KEDA's
             # controller-runtime informers) fail with 504 "Too large resource version".
             "--experimental-watch-progress-notify-interval=1s"],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "ETCD_UNSUPPORTED_ARCH": "amd64"},
        )
        wait_for(lambda: self._etcd_post("/v3/kv/range", {"key": "L2E="}) is not None, 30, what="etcd")

    def start_apiserver(self) -> None:
        """Starts kube-apiserver (again) and waits for /readyz."""
        w = self.workdir
        log = open(w / "apiserver.log", "ab")
        self._apiserver = subprocess.Popen(
            [str(apiserver_binary()),
             f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
             "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={self.port}",
             f"--tls-cert-file={self.ca_file}", f"--tls-private-key-file={w / 'serving.key'}",
             f"--cert-dir={w / 'certs'}",
             f"--token-auth-file={w / 'tokens.csv'}", "--authorization-mode=RBAC",
             "--service-account-issuer=https://kubernetes.default.svc",
             f"--service-account-key-file={w / 'sa.pub'}",
             f"--service-account-signing-key-file={w / 'sa.key'}",
             "--service-cluster-ip-range=10.96.0.0/24", "--endpoint-reconciler-type=none",
             "--enable-priority-and-fairness=false", "--profiling=false", "--v=1", *self._aggregation_flags()],
            stdout=log, stderr=subprocess.STDOUT,
        )
        wait_for(self._ready, 90, interval=0.5, what=f"kube-apiserver /readyz (log: {w / 'apiserver.log'})")

    def _aggregation_flags(self) -> list[str]:
        if not self.aggregation:
            return []
        w = self.workdir
        return [f"--client-ca-file={self.client_ca[0]}", f"--requestheader-client-ca-file={self.front_proxy_ca[0]}",
                "--requestheader-allowed-names=front-proxy-client", "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group", "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--proxy-client-cert-file={w / 'front-proxy-client.crt'}",
                f"--proxy-client-key-file={w / 'front-proxy-client.key'}"]

    def start_controllers(self, hpa_sync_period: str = "15s") -> None:
        """Starts kube-controller-manager (Deployment, ReplicaSet, HPA and garbage collector controllers
        only; no node lifecycle controller, so a test Node is never tainted) and kube-scheduler."""
        w = self.workdir
        for name, args in (
            ("kube-controller-manager", [
                "--controllers=deployment-controller,replicaset-controller,horizontal-pod-autoscaler-controller,"
                "garbage-collector-controller", "--use-service-account-credentials=false",
                f"--horizontal-pod-autoscaler-sync-period={hpa_sync_period}"]),
            ("kube-scheduler", []),
        ):
            log = open(w / f"{name}.log", "ab")
            self._controllers.append(subprocess.Popen(
                [str(kube_binary(name)), f"--kubeconfig={self.kubeconfig}", "--leader-elect=false",
                 "--bind-address=127.0.0.1", f"--secure-port={free_port()}", f"--cert-dir={w / name}", "--v=1",
                 *args], stdout=log, stderr=subprocess.STDOUT))

    def stop_apiserver(self) -> None:
        """Kills the API server (SIGKILL: open watches break without a goodbye)."""
        if self._apiserver is not None:
            self._apiserver.kill()
            self._apiserver.wait(timeout=20)
            self._apiserver = None

    def restart_apiserver(self, down_seconds: float = 0.0) -> None:
        """Kills and restarts the API server on the same port."""
        self.stop_apiserver()
        time.sleep(down_seconds)
        self.start_apiserver()

    def _ready(self) -> bool:
        if self._apiserver is not None and self._apiserver.poll() is not None:
            raise RuntimeError(
                f"kube-apiserver exited with {self._apiserver.returncode}; see {self.workdir}/apiserver.log")
        try:
            req = urllib.request.Request(f"{self.server}/readyz", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
            import ssl

            ctx = ssl.create_default_context(cafile=str(self.ca_file))
            with urllib.request.urlopen(req, context=ctx, timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    # -- etcd ------------------------------------------------------------------------------
    def _etcd_post(self, path: str, body: dict) -> dict | None:
        req = urllib.request.Request(f"http://127.0.0.1:{self.etcd_port}{path}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return json.loads(resp.read())
        except OSError:
            return None

    def compact_etcd(self) -> int:
        """Compacts etcd at its current revision (older resourceVersions become 410 Gone); returns it."""
        revision = int(self._etcd_post("/v3/kv/range", {"key": "L2E="})["header"]["revision"])
        result = self._etcd_post("/v3/kv/compaction", {"revision": revision, "physical": True})
        assert result is not None, "etcd compaction failed"
        return revision

    # -- clients ---------------------------------------------------------------------------
    def kubeconfig_for(self, user: str, token: str, namespace: str = "default") -> dict:
        """A kubeconfig dict that authenticates as ``user`` with a bearer ``token``."""
        return {
            "apiVersion": "v1", "kind": "Config", "current-context": "test",
            "clusters": [{"name": "test",
                          "cluster": {"server": self.server, "certificate-authority": str(self.ca_file)}}],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": user, "namespace": namespace}}],
        }

    def write_kubeconfig(self, name: str, user: str, token: str, namespace: str = "default") -> Path:
        """Writes :meth:`kubeconfig_for` to a file in the work dir and returns its path."""
        path = self.workdir / f"kubeconfig-{name}"
        path.write_text(yaml.safe_dump(self.kubeconfig_for(user, token, namespace)))
        return path

    def kubectl(self, *args: str, kubeconfig: Path | None = None, input: str | None = None,
                check: bool = True) -> subprocess.CompletedProcess:
        """Runs kubectl against this cluster (admin unless ``kubeconfig`` is given)."""
        proc = subprocess.run(["kubectl", f"--kubeconfig={kubeconfig or self.kubeconfig}", *args],
                              capture_output=True, text=True, input=input, timeout=120)
        if check and proc.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc

    def service_account_token(self, namespace: str, name: str, seconds: int = 3600) -> str:
        """A bound token for ServiceAccount ``namespace/name`` (TokenRequest API)."""
        out = self.kubectl("create", "token", name, "-n", namespace, f"--duration={seconds}s")
        return out.stdout.strip()
