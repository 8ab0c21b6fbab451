"""Turns a runtime answer into the envelopes to publish, and failures into retry or error-end envelopes.

Pure functions over envelopes (no I/O), so the routing rules (docs/handlers.md, docs/design.md) are
tested directly: route advance, fan-out ids, ``None`` to happy-end, retry headers, error records.
"""

from __future__ import annotations

import time
from typing import Any

from asya_common import envelope as env

# Sidecar headers that describe the attempts at one actor; they never travel to the next actor.
ATTEMPT_HEADERS = (env.H_ATTEMPT, env.H_ATTEMPT_ERRORS, env.H_NOT_BEFORE)


def attempt_of(envelope: dict[str, Any]) -> int:
    """The 1-based attempt number carried by the envelope (1 when absent or malformed)."""
    value = envelope.get("headers", {}).get(env.H_ATTEMPT, 1)
    return value if isinstance(value, int) and value >= 1 else 1


def not_before(envelope: dict[str, Any]) -> float:
    """Unix time before which this (retry) envelope must not be processed; 0 when unrestricted."""
    value = envelope.get("headers", {}).get(env.H_NOT_BEFORE, 0)
    return float(value) if isinstance(value, (int, float)) else 0.0


def _clean(envelope: dict[str, Any]) -> dict[str, Any]:
    headers = envelope.setdefault("headers", {})
    for key in ATTEMPT_HEADERS:
        headers.pop(key, None)
    return envelope


def route_outputs(source: dict[str, Any], outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Assigns fan-out ids and advances each output one hop.

    Args:
        source: The input envelope the runtime was called with.
        outputs: Envelopes returned by the runtime (``route.curr`` still this actor). Empty means the
            handler returned None: the input itself goes to happy-end.

    Returns:
        Envelopes ready to publish to the queue of their new ``route.curr``.
    """
    if not outputs:
        finished = _clean(env.copy_envelope(source))
        finished["route"]["prev"] = [*finished["route"]["prev"], finished["route"]["curr"]]
        finished["route"]["curr"] = env.HAPPY_END
        return [finished]
    routed = []
    for index, output in enumerate(outputs):
        output = _clean(output)
        output["id"] = env.fanout_id(source["id"], index)
        if index >= 1:
            output["parent_id"] = source["id"]
        elif "parent_id" in source:
            output["parent_id"] = source["parent_id"]
        env.advance(output)
        curr = output["route"]["curr"]
        problem = None if curr in env.TERMINAL_ACTORS else env.route_target_problem(curr)
        if problem:  # a runtime of another version, or a handler that bypassed the checks
            raise env.RouteError(problem)
        routed.append(output)
    return routed


def error_record(error: dict[str, Any], attempt: int) -> dict[str, Any]:
    """One attempt's error as stored in ``x-asya-attempt-errors``."""
    return {
        "attempt": attempt,
        "type": error.get("type", "Error"),
        "message": error.get("message", ""),
        "traceback": error.get("traceback", ""),
        "at": time.time(),
    }


def retry_envelope(source: dict[str, Any], error: dict[str, Any], attempt: int, delay: float) -> dict[str, Any]:
    """A copy of ``source`` for attempt ``attempt + 1``, carrying every error so far."""
    retry = env.copy_envelope(source)
    headers = retry.setdefault("headers", {})
    history = list(headers.get(env.H_ATTEMPT_ERRORS) or [])
    history.append(error_record(error, attempt))
    headers[env.H_ATTEMPT] = attempt + 1
    headers[env.H_ATTEMPT_ERRORS] = history
    headers[env.H_NOT_BEFORE] = time.time() + delay
    return retry


def failed_envelope(source: dict[str, Any], error: dict[str, Any], attempt: int, actor: str) -> dict[str, Any]:
    """The envelope sent to error-end when attempts are exhausted (or the failure is not retryable)."""
    history = list(source.get("headers", {}).get(env.H_ATTEMPT_ERRORS) or [])
    history.append(error_record(error, attempt))
    final = {
        "actor": actor,
        "type": error.get("type", "Error"),
        "message": error.get("message", ""),
        "traceback": error.get("traceback", ""),
        "attempts": history,
    }
    return _clean(env.to_error_end(source, final))
