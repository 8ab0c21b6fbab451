"""The pause spec a handler yields (``("PAUSE", {...})``) and where resume input lands.

Standard library only: the runtime checks a spec when the handler yields it, so a mistake fails
inside the handler's call with a clear message; the sidecar checks it again for envelope-mode
handlers, which set the ``x-asya-pause`` header themselves.
"""

from __future__ import annotations

import copy
from typing import Any

from asya_common.envelope import H_PAUSE  # noqa: F401 - the header carrying a pause spec (re-exported)
from asya_common.settings import parse_duration
from asya_common.status.model import PauseSpecError

ON_TIMEOUT = ("fail", "resume")
_KEYS = {"prompt", "schema", "into", "timeout", "on_timeout", "defaults"}


def normalize_spec(raw: Any) -> dict[str, Any]:
    """Checks a pause spec and fills in defaults.

    Args:
        raw: ``{"prompt": str, "schema": {JSON Schema}, "into": ".payload.x", "timeout": "24h",
            "on_timeout": "fail" | "resume", "defaults": {...}}``; every key is optional.

    Returns:
        The spec with ``into`` (default ``.payload``), ``on_timeout`` (default ``fail``) and
        ``timeout_seconds`` (None: never expires).

    Raises:
        PauseSpecError: Names the first problem found.
    """
    if not isinstance(raw, dict):
        raise PauseSpecError(f"PAUSE takes a dict spec: ('PAUSE', {{'prompt': ...}}), got {type(raw).__name__}")
    unknown = sorted(set(raw) - _KEYS - {"timeout_seconds"})
    if unknown:
        raise PauseSpecError(f"unknown PAUSE spec keys {unknown}; allowed: {sorted(_KEYS)}")
    spec = copy.deepcopy(raw)
    if not isinstance(spec.setdefault("prompt", ""), str):
        raise PauseSpecError("PAUSE 'prompt' must be a string")
    schema = spec.setdefault("schema", None)
    if schema is not None and not isinstance(schema, (dict, bool)):
        raise PauseSpecError("PAUSE 'schema' must be a JSON Schema object")
    into = spec.setdefault("into", ".payload")
    if not isinstance(into, str) or not (into == ".payload" or into.startswith(".payload.")) or ".." in into \
            or into.endswith("."):
        raise PauseSpecError(f"PAUSE 'into' must be '.payload' or a path like '.payload.review', got {into!r}")
    if spec.setdefault("on_timeout", "fail") not in ON_TIMEOUT:
        raise PauseSpecError(f"PAUSE 'on_timeout' must be one of {list(ON_TIMEOUT)}, got {spec['on_timeout']!r}")
    timeout = spec.setdefault("timeout", None)
    try:
        spec["timeout_seconds"] = None if timeout is None else parse_duration(timeout)
    except (ValueError, TypeError) as exc:
        raise PauseSpecError(f"PAUSE 'timeout': {exc}") from None
    spec.setdefault("defaults", None)
    return spec


def merge_input(envelope: dict[str, Any], into: str, value: Any) -> dict[str, Any]:
    """Returns a copy of ``envelope`` with ``value`` placed at ``into``.

    ``.payload`` merges a dict input into a dict payload (replaces anything else);
    ``.payload.a.b`` sets that key, creating the dicts on the way.
    """
    result = copy.deepcopy(envelope)
    keys = into.split(".")[2:]
    if not keys:
        if isinstance(result.get("payload"), dict) and isinstance(value, dict):
            result["payload"].update(copy.deepcopy(value))
        else:
            result["payload"] = copy.deepcopy(value)
        return result
    if not isinstance(result.get("payload"), dict):
        result["payload"] = {} if result.get("payload") is None else {"value": result["payload"]}
    target = result["payload"]
    for key in keys[:-1]:
        if not isinstance(target.get(key), dict):
            target[key] = {}
        target = target[key]
    target[keys[-1]] = copy.deepcopy(value)
    return result
