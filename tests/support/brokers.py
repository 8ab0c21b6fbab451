"""Real brokers on loopback for the test suites: RabbitMQ, ElasticMQ (SQS) and the Pub/Sub emulator.

Each broker is started once per test session, as a plain local process in a temp dir (never the
system service), unless one is already reachable through ``ASYA_TEST_RABBITMQ_URL`` /
``ASYA_TEST_SQS_ENDPOINT_URL`` / ``ASYA_TEST_PUBSUB_EMULATOR_HOST``. The fixtures
``rabbitmq_settings``, ``sqs_settings`` and ``pubsub_settings`` hand out a ready
:class:`TransportSettings`; any suite can use them after registering this module as a plugin
(``pytest_plugins = ["tests.support.brokers"]`` in ``tests/conftest.py``).

A missing server binary skips the test on a laptop and fails it under ``CI=true`` (see
:mod:`tests.support.require`). ``python -m tests.support.brokers fetch-elasticmq`` downloads the
ElasticMQ server and its dependencies from Maven Central into ``$ASYA_TOOLS_CACHE`` (``make``
calls it).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from asya_common.transport import TransportSettings
from tests.support.require import free_port, port_open, require, wait_for

ELASTICMQ_VERSION = "1.6.14"
TOOLS_CACHE = Path(os.environ.get("ASYA_TOOLS_CACHE", Path.home() / ".cache" / "asya-tools"))
ELASTICMQ_LIB = TOOLS_CACHE / f"elasticmq-{ELASTICMQ_VERSION}" / "lib"
RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
RABBITMQCTL = Path("/usr/lib/rabbitmq/bin/rabbitmqctl")
STARTUP_TIMEOUT = 90.0

_ELASTICMQ_POM = f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>sh.asya</groupId><artifactId>elasticmq-bundle</artifactId><version>1</version>
  <dependencies><dependency><groupId>org.elasticmq</groupId><artifactId>elasticmq-server_2.13</artifactId>
    <version>{ELASTICMQ_VERSION}</version></dependency></dependencies>
</project>
"""


def fetch_elasticmq() -> Path:
    """Downloads ElasticMQ and its dependency jars into the tools cache (no-op when present).

    Returns:
        The folder holding every jar of the server's classpath.
    """
    if ELASTICMQ_LIB.is_dir() and any(ELASTICMQ_LIB.glob("elasticmq-server_*.jar")):
        return ELASTICMQ_LIB
    if not shutil.which("mvn"):
        raise RuntimeError("mvn is needed to download ElasticMQ from Maven Central (apt-get install maven)")
    with tempfile.TemporaryDirectory(prefix="asya-elasticmq-") as work:
        (Path(work) / "pom.xml").write_text(_ELASTICMQ_POM)
        partial = ELASTICMQ_LIB.with_name("lib.partial")
        shutil.rmtree(partial, ignore_errors=True)
        subprocess.run(
            ["mvn", "-q", "-B", "dependency:copy-dependencies", f"-DoutputDirectory={partial}"],
            cwd=work,
            check=True,
        )
        partial.rename(ELASTICMQ_LIB)
    return ELASTICMQ_LIB


class _Server:
    """One broker process we started; ``stop`` ends it (and only it)."""

    def __init__(self, name: str, workdir: Path):
        self.name, self.workdir = name, workdir
        self.process: subprocess.Popen | None = None

    def _spawn(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        log = open(self.workdir / f"{self.name}.log", "ab")
        self.process = subprocess.Popen(
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )

    def _wait_port(self, port: int) -> None:
        def ready() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}; see {self.log_tail()}")
            return port_open(port)

        wait_for(ready, STARTUP_TIMEOUT, 0.2, f"{self.name} on 127.0.0.1:{port}")

    def log_tail(self) -> str:
        path = self.workdir / f"{self.name}.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else "(no log)"

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)


class RabbitMQServer(_Server):
    """A single RabbitMQ node with its own mnesia/log dirs, ports, node name and cookie."""

    def __init__(self, workdir: Path):
        super().__init__("rabbitmq", workdir)
        self.amqp_port, self.dist_port, self.http_port, self.epmd_port = (free_port() for _ in range(4))
        home = workdir / "home"
        home.mkdir(parents=True, exist_ok=True)
        (workdir / "rabbitmq.conf").write_text(
            "loopback_users = none\n"
            f"listeners.tcp.default = 127.0.0.1:{self.amqp_port}\n"
            f"management.tcp.port = {self.http_port}\n"
            "management.tcp.ip = 127.0.0.1\n"
            "collect_statistics_interval = 500\n"
            "log.console = false\n"
        )
        (workdir / "enabled_plugins").write_text("[rabbitmq_management].\n")
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("RABBITMQ_")},
            "HOME": str(home),
            "RABBITMQ_HOME": "/usr/lib/rabbitmq",
            "RABBITMQ_NODENAME": f"asya-test-{self.amqp_port}@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_MNESIA_BASE": str(workdir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(workdir / "log"),
            "RABBITMQ_CONFIG_FILE": str(workdir / "rabbitmq"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(workdir / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(workdir / "rabbitmq.pid"),
        }

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/?management_port={self.http_port}"

    def settings(self) -> TransportSettings:
        """Transport settings that reach this node."""
        return TransportSettings(kind="rabbitmq", rabbitmq_url=self.url)

    def start(self) -> None:
        self._spawn([str(RABBITMQ_SERVER)], self.env)
        self._wait_port(self.amqp_port)
        self._wait_port(self.http_port)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        subprocess.run([str(RABBITMQCTL), "stop"], env=self.env, capture_output=True, timeout=60)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            super().stop()
        # epmd was started by this node on its own port: end that one daemon.
        subprocess.run(["epmd", "-port", str(self.epmd_port), "-kill"], env=self.env, capture_output=True)

    def restart(self) -> None:
        """Stops the node and starts it again on the same data dir (messages must survive)."""
        subprocess.run([str(RABBITMQCTL), "stop"], env=self.env, capture_output=True, timeout=60)
        if self.process is not None:
            self.process.wait(60)
        self.start()


class ElasticMQServer(_Server):
    """ElasticMQ (SQS-compatible), in-memory, with strict SQS limits."""

    def __init__(self, workdir: Path):
        super().__init__("elasticmq", workdir)
        self.port = free_port()
        (workdir / "elasticmq.conf").write_text(
            'include classpath("application.conf")\n'
            f'node-address {{ protocol = http, host = 127.0.0.1, port = {self.port}, context-path = "" }}\n'
            f'rest-sqs {{ enabled = true, bind-port = {self.port}, bind-hostname = "127.0.0.1", sqs-limits = strict }}\n'
            "rest-stats { enabled = false }\n"
            "generate-node-address = false\n"
        )

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def settings(self) -> TransportSettings:
        """Transport settings that reach this server (clients need some AWS credentials: dummy ones)."""
        use_dummy_aws_credentials()
        return TransportSettings(kind="sqs", sqs_endpoint_url=self.endpoint, sqs_region="us-east-1")

    def start(self) -> None:
        lib = fetch_elasticmq()
        java = shutil.which("java") or "java"
        self._spawn(
            [java, "-Xmx256m", f"-Dconfig.file={self.workdir / 'elasticmq.conf'}", "-cp", f"{lib}/*",
             "org.elasticmq.server.Main"]
        )
        self._wait_port(self.port)


def pubsub_emulator_binary() -> Path | None:
    """The emulator shipped with the Google Cloud CLI, or None."""
    gcloud = shutil.which("gcloud")
    if not gcloud:
        return None
    root = Path(gcloud).resolve().parent.parent
    candidate = root / "platform" / "pubsub-emulator" / "bin" / "cloud-pubsub-emulator"
    return candidate if candidate.exists() else None


class PubSubEmulator(_Server):
    """The Google Cloud Pub/Sub emulator (in-memory)."""

    def __init__(self, workdir: Path):
        super().__init__("pubsub", workdir)
        self.port = free_port()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def settings(self, project: str = "asya-test") -> TransportSettings:
        """Transport settings that reach this emulator."""
        return TransportSettings(kind="pubsub", pubsub_project=project, pubsub_emulator_host=self.host)

    def start(self) -> None:
        binary = pubsub_emulator_binary()
        assert binary is not None
        self._spawn([str(binary), "--host=127.0.0.1", f"--port={self.port}"])
        self._wait_port(self.port)


LOCAL_SERVERS = {"rabbitmq": RabbitMQServer, "sqs": ElasticMQServer, "pubsub": PubSubEmulator}


def use_dummy_aws_credentials() -> None:
    """ElasticMQ ignores credentials, but botocore refuses to sign without some."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "asya-test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "asya-test")


def start_local(kind: str, workdir: Path) -> tuple[_Server, TransportSettings]:
    """Starts a local server for broker ``kind`` in ``workdir`` (benchmarks); the caller stops it."""
    workdir.mkdir(parents=True, exist_ok=True)
    server = LOCAL_SERVERS[kind](workdir)
    server.start()
    return server, server.settings()


def _start_or_skip(server: _Server, available: bool, reason: str) -> _Server:
    require(available, reason)
    try:
        server.start()
    except Exception as exc:  # noqa: BLE001 - reported as the skip/fail reason
        server.stop()
        require(False, f"{server.name} did not start: {exc}\n{server.log_tail()}")
    return server


@pytest.fixture(scope="session")
def broker_tmp(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("brokers")


@pytest.fixture(scope="session")
def rabbitmq_server(broker_tmp):
    """A RabbitMQ node we started (None when ``ASYA_TEST_RABBITMQ_URL`` points at an existing one)."""
    if os.environ.get("ASYA_TEST_RABBITMQ_URL"):
        yield None
        return
    workdir = broker_tmp / "rabbitmq"
    workdir.mkdir()
    server = RabbitMQServer(workdir)
    _start_or_skip(server, RABBITMQ_SERVER.exists(), "rabbitmq-server is not installed (make system-deps)")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def rabbitmq_settings(rabbitmq_server) -> TransportSettings:
    if os.environ.get("ASYA_TEST_RABBITMQ_URL"):
        return TransportSettings(kind="rabbitmq", rabbitmq_url=os.environ["ASYA_TEST_RABBITMQ_URL"])
    return rabbitmq_server.settings()


def _external_or_local(broker_tmp: Path, kind: str, external: TransportSettings | None, available: bool,
                       reason: str):
    """Yields ``external`` settings when given, else those of a local server started (and stopped) here."""
    if external is not None:
        yield external
        return
    workdir = broker_tmp / kind
    workdir.mkdir()
    server = _start_or_skip(LOCAL_SERVERS[kind](workdir), available, reason)
    try:
        yield server.settings()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def sqs_settings(broker_tmp):
    use_dummy_aws_credentials()
    endpoint = os.environ.get("ASYA_TEST_SQS_ENDPOINT_URL")
    external = TransportSettings(kind="sqs", sqs_endpoint_url=endpoint, sqs_region="us-east-1") if endpoint else None
    yield from _external_or_local(broker_tmp, "sqs", external, bool(shutil.which("java")),
                                  "java is needed to run ElasticMQ")


@pytest.fixture(scope="session")
def pubsub_settings(broker_tmp):
    host = os.environ.get("ASYA_TEST_PUBSUB_EMULATOR_HOST")
    external = TransportSettings(kind="pubsub", pubsub_project="asya-test", pubsub_emulator_host=host) if host else None
    yield from _external_or_local(broker_tmp, "pubsub", external, pubsub_emulator_binary() is not None,
                                  "the Google Cloud CLI Pub/Sub emulator is missing")


if __name__ == "__main__":
    if sys.argv[1:] == ["fetch-elasticmq"]:
        print(fetch_elasticmq())
    else:
        sys.exit("usage: python -m tests.support.brokers fetch-elasticmq")
