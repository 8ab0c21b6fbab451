"""A real PostgreSQL on loopback for the test suites (status store, gateway, crew).

One server per test session, started as a plain process in a temp dir (``initdb`` + ``pg_ctl`` as
the ``postgres`` user when the tests run as root), listening on 127.0.0.1 and a free port, unless
one is reachable through ``ASYA_TEST_POSTGRES_URL`` (a superuser URL). Each test gets a fresh
database from the ``postgres_url`` fixture (dropped afterwards). ``store_url`` is parametrized over
``sqlite`` and ``postgres`` so a store test runs on both backends.

A missing ``initdb`` skips the test on a laptop and fails it under ``CI=true``
(:mod:`tests.support.require`). Register with ``pytest_plugins`` (done in ``tests/conftest.py``).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.support.require import free_port, port_open, require, wait_for

PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
STARTUP_TIMEOUT = 60.0


def pg_tool(name: str) -> str | None:
    """Path of a PostgreSQL server tool (Debian keeps them under /usr/lib/postgresql/<v>/bin)."""
    for folder in PG_BIN_DIRS:
        if (folder / name).exists():
            return str(folder / name)
    return shutil.which(name)


class PostgresServer:
    """One PostgreSQL cluster we created; ``stop`` ends it (and only it) and removes its files."""

    def __init__(self) -> None:
        self.port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="asya-pg-"))
        self.data = self.workdir / "data"
        self.user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name

    def _run(self, argv: list[str]) -> subprocess.CompletedProcess:
        if os.geteuid() == 0:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        return subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=self.workdir)

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.workdir, "postgres", "postgres")
        os.chmod(self.workdir, 0o700)
        done = self._run([pg_tool("initdb"), "-D", str(self.data), "-U", self.user, "--auth=trust",
                          "--no-sync", "-E", "UTF8", "--locale=C"])
        if done.returncode:
            raise RuntimeError(f"initdb failed: {done.stderr[-2000:]}")
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.workdir} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        done = self._run([pg_tool("pg_ctl"), "-D", str(self.data), "-l", str(self.workdir / "postgres.log"),
                          "-o", options, "-w", "-t", str(int(STARTUP_TIMEOUT)), "start"])
        if done.returncode:
            log = (self.workdir / "postgres.log")
            raise RuntimeError(f"pg_ctl start failed: {done.stderr[-1000:]} {log.read_text()[-2000:] if log.exists() else ''}")
        wait_for(lambda: port_open(self.port), STARTUP_TIMEOUT, 0.1, f"postgres on 127.0.0.1:{self.port}")

    def stop(self) -> None:
        if self.data.exists():
            self._run([pg_tool("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"])
        shutil.rmtree(self.workdir, ignore_errors=True)


def _admin(url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql)


@pytest.fixture(scope="session")
def postgres_server_url():
    """Superuser URL of the session's PostgreSQL (external or started here)."""
    external = os.environ.get("ASYA_TEST_POSTGRES_URL")
    if external:
        yield external
        return
    require(pg_tool("initdb") is not None and pg_tool("pg_ctl") is not None,
            "PostgreSQL server tools (initdb, pg_ctl) not installed (apt-get install postgresql)")
    server = PostgresServer()
    try:
        server.start()
    except Exception:
        server.stop()
        raise
    yield server.url
    server.stop()


@pytest.fixture
def postgres_url(postgres_server_url):
    """URL of a fresh, empty database for this test (dropped afterwards)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        require(False, "psycopg not installed (pip install 'asya-common[postgres]')")
    name = f"t_{uuid.uuid4().hex[:16]}"
    _admin(postgres_server_url, f"CREATE DATABASE {name}")
    base, _, _ = postgres_server_url.rpartition("/")
    yield f"{base}/{name}"
    _admin(postgres_server_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request, tmp_path):
    """A status store location on each backend: a fresh SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "status.sqlite3")
    return request.getfixturevalue("postgres_url")
