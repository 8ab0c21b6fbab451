"""A single-process stand-in for the mesh, for fast checks of compiled flows against their Python oracle.

It moves envelopes with the sidecar's own routing functions (``route_outputs``, ``failed_envelope``,
``error_routes.caught_envelope``), calls the generated routers and the real fan-in handler, and calls
payload actors directly. The property test on a real ``asya dev`` mesh is the end-to-end proof; this
one runs thousands of inputs in seconds.
"""

from __future__ import annotations

import copy
import importlib.util
from collections import deque
from pathlib import Path
from typing import Any, Callable

from asya_common import envelope as env
from asya_sidecar import error_routes, routing


def load_routers(compiled_dir: Path, module: str) -> Any:
    spec = importlib.util.spec_from_file_location(module, compiled_dir / f"{module}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class Sim:
    """Runs envelopes to happy-end / error-end; fan-in state lives in a real status-store file."""

    def __init__(self, compiled: list, compiled_dir: Path, actors: dict[str, Callable], store_path: Path):
        from asya_common.settings import Duration
        from asya_crew import fanin

        # the real handler on its own store, without touching os.environ (subprocesses of later tests inherit it)
        fanin._settings = fanin.FanInSettings(status_db=str(store_path), timeout=Duration(600.0))
        fanin._store = fanin.FanInStore(str(store_path))
        self.fan_in = fanin.fan_in
        self.handlers: dict[str, tuple[str, Callable]] = {n: ("payload", f) for n, f in actors.items()}
        for flow in compiled:
            mod = load_routers(compiled_dir, flow.module)
            for router in flow.routes["routers"]:
                self.handlers[router["name"]] = ("envelope", getattr(mod, router["handler"].rsplit(".", 1)[1]))
        self.handlers["fan-in"] = ("envelope", self.fan_in)

    def run(self, route: list[str], payload: Any, envelope_id: str) -> tuple[str, Any]:
        """Returns ("succeeded", payload) or ("failed", error type) for the root envelope."""
        queue = deque([env.make_envelope(route, copy.deepcopy(payload), envelope_id=envelope_id)])
        pending: list[dict[str, Any]] = []  # parent carriers waiting for their children
        root: tuple[str, Any] | None = None
        while queue or pending:
            if not queue:
                queue.extend(pending)
                pending.clear()
            envelope = queue.popleft()
            curr = envelope["route"]["curr"]
            if curr in env.TERMINAL_ACTORS:
                if envelope["id"] == envelope_id:
                    root = (("succeeded", envelope["payload"]) if curr == env.HAPPY_END
                            else ("failed", envelope["headers"][env.H_ERROR]["type"]))
                continue
            mode, fn = self.handlers[curr]
            try:
                if mode == "payload":
                    result = fn(copy.deepcopy(envelope["payload"]))
                    outputs = [] if result is None else [{**copy.deepcopy(envelope), "payload": r}
                                                         for r in (result if isinstance(result, list) else [result])]
                else:
                    result = fn(copy.deepcopy(envelope))
                    outputs = [] if result is None else (result if isinstance(result, list) else [result])
            except Exception as exc:  # noqa: BLE001 - the sidecar's view of a failed call
                if type(exc).__name__ == "FanInPending":
                    pending.append(envelope)
                    continue
                error = {"type": type(exc).__name__, "message": str(exc),
                         "mro": [c.__name__ for c in type(exc).__mro__ if c not in (object, BaseException)]}
                caught = error_routes.caught_envelope(envelope, error, curr)
                queue.append(caught or routing.failed_envelope(envelope, error, 1, curr))
                continue
            queue.extend(routing.route_outputs(envelope, outputs))
        assert root is not None
        return root
