"""Issue 10, item 5: nobody but the mesh's owner reaches an ``asya dev`` mesh.

Before the fix the state dir's databases, logs and ``dev.json`` were created 0644 (world-readable
envelopes), ``dev.json`` held ``amqp://user:password@...`` in clear, sockets whose path was too long
went to ``/tmp/asya-<sha1 of the state dir>/``, a predictable directory another user could create
first (and own), and the sidecars' metrics/health servers listened on every interface.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

from asya_cli import dev, local_access
from tests.support.require import wait_for


def _modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.lstat().st_mode) for p in [root, *root.rglob("*")]}


def test_every_file_of_a_running_mesh_is_owner_only(hmesh):
    hmesh.send(["echo"], {"n": 1})
    wait_for(lambda: any(p.name.endswith("-wal") for p in hmesh.state.glob("*.sqlite3-wal")), 30, what="WAL files")
    modes = _modes(hmesh.state)
    assert any(name.startswith("status.sqlite3") for name in modes) and "dev.json" in modes
    wide = {name: oct(mode) for name, mode in modes.items() if mode & 0o077}
    assert not wide, f"readable or writable by others: {wide}"


def test_dev_json_holds_no_credentials_and_verbs_take_them_from_their_environment():
    recorded = local_access.redact({"ASYA_TRANSPORT": "rabbitmq",
                                    "ASYA_RABBITMQ_URL": "amqp://asya:s3cret@broker:5672/vh",
                                    "ASYA_QUEUE_PREFIX": "asya-"})
    assert "s3cret" not in json.dumps(recorded)
    assert recorded["transport"]["ASYA_RABBITMQ_URL"] == "amqp://asya:***@broker:5672/vh"
    url = "amqp://asya:s3cret@broker:5672/vh"
    assert local_access.restore(recorded, {"ASYA_RABBITMQ_URL": url})["ASYA_RABBITMQ_URL"] == url
    try:
        local_access.restore(recorded, {})
    except KeyError as exc:
        assert "ASYA_RABBITMQ_URL" in exc.args[0]
    else:
        raise AssertionError("a redacted URL of the mesh's own broker must be asked for")


def test_the_running_meshs_dev_json_has_no_password(hmesh):
    text = (hmesh.state / "dev.json").read_text()
    assert not re.search(r"//[^/:@]+:(?!\*\*\*@)[^@/]+@", text), text  # the default guest:guest URL included


def test_a_long_state_dir_gets_a_fresh_private_socket_dir_never_a_guessable_one(tmp_path):
    long_dir = tmp_path / ("x" * 120)
    first, second = dev.socket_path(long_dir, "a"), dev.socket_path(long_dir, "a")
    assert Path(first).parent != Path(second).parent  # fresh every time: nothing to plant in advance
    for path in (first, second):
        info = os.lstat(Path(path).parent)
        assert info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) == 0o700
        assert len(path) < 108
        os.rmdir(Path(path).parent)


def test_sidecar_metrics_listen_on_loopback_only(hmesh):
    port = wait_for(lambda: next((json.loads(line)["metrics_port"] for line in hmesh.log("echo", "sidecar").splitlines()
                                  if '"sidecar ready"' in line), None), 30, what="the echo sidecar's metrics port")
    listening = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                listening.append(address)
    assert listening and all(a in ("0100007F", "00000000000000000000000001000000") for a in listening), listening
