"""`asya dlq list` on RabbitMQ (which cannot list queues) shows the dev mesh's actors without being told.

A dev mesh runs on a real RabbitMQ; `asya dlq list` with no actor names finds them in the mesh's
``dev.json``; `asya dlq show` of an empty DLQ says it is empty.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace

from tests.support.mesh import Mesh


def asya(*args, state, broker_url):
    environ = {**os.environ, "ASYA_RABBITMQ_URL": broker_url}  # the user's shell, as for `asya dev`
    return subprocess.run([sys.executable, "-m", "asya_cli.main", *args, "--state-dir", str(state)],
                          capture_output=True, text=True, timeout=120, env=environ)


def test_dlq_list_and_show_on_rabbitmq_name_the_dev_mesh_actors(tmp_path, rabbitmq_settings):
    settings = replace(rabbitmq_settings, queue_prefix=f"fd{os.getpid()}-")
    mesh = Mesh(tmp_path, [{"name": "echo", "handler": "mesh_handlers.echo"}], transport=settings).start(timeout=120)
    try:
        listed = asya("dlq", "list", state=mesh.state, broker_url=settings.rabbitmq_url)
        assert listed.returncode == 0, listed.stderr
        rows = {line.split()[0]: line.split()[1:] for line in listed.stdout.splitlines()[1:]}
        assert {"echo", "happy-end", "error-end"} <= set(rows), listed.stdout
        assert rows["echo"][0] == "0"
        shown = asya("dlq", "show", "echo", state=mesh.state, broker_url=settings.rabbitmq_url)
        assert shown.returncode == 0 and "the DLQ of echo is empty" in shown.stdout, shown.stdout + shown.stderr
    finally:
        mesh.stop()
