"""Is an ``asya dev`` mesh running for this state dir? Asked before ``asya send`` publishes.

``asya dev`` records its pid in ``dev.json``; a send to the embedded queue while no mesh runs would
sit in a queue nobody reads (and ``--wait`` would wait for nothing), so it is refused with a message
that says so. Sends to a broker named by ``--transport`` / ``ASYA_TRANSPORT`` with no dev mesh are
left alone: that mesh may be a Kubernetes one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from asya_cli.common import CliError
from asya_cli.dev import read_dev_file


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def require_running_mesh(state_dir: Path, transport_kind: str) -> None:
    """Raises CliError when the state dir's dev mesh is not running (see the module docstring).

    Args:
        state_dir: ``--state-dir``.
        transport_kind: The broker the verb is about to use (``sqlite`` for the embedded queue).
    """
    recorded = read_dev_file(state_dir)
    if recorded is None:
        if transport_kind == "sqlite":
            raise CliError(f"no mesh is running: no `asya dev` ever ran with state dir {state_dir} "
                           "(start one with `asya dev actors/*.yaml`, or pass --state-dir)")
        return
    if "pid" in recorded and not _alive(recorded["pid"]):
        raise CliError(f"no mesh is running: the `asya dev` of state dir {state_dir} (pid {recorded['pid']}) "
                       "has stopped; start it again with `asya dev actors/*.yaml`")
