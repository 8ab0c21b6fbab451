"""The sidecar's last line of defence: every message ends in one decision, whatever it contains.

Three things once left a message with no final state (the message task crashed, the lease ran out,
the broker redelivered it until its DLQ took it while the status store said ``running``):

* an exception anywhere in handling a message: :func:`unhandled_record` turns it into an error-end
  record that keeps the raw body (the caller acks only after publishing it);
* an error-end envelope over the broker's size limit: :func:`fit_final` shrinks it to a record that
  keeps the first bytes of the body, marked truncated, with the error saying so;
* a retry time (``x-asya-not-before``) no retry policy can have written: :func:`not_before_problem`.
"""

from __future__ import annotations

import base64
import math
import time
import traceback
from typing import Any

from asya_common import envelope as env

H_TRUNCATED = "x-asya-truncated"  # set on error-end records shrunk to fit the broker's size limit
NOT_BEFORE_SLACK_SECONDS = 60.0
_KEEP_HEADERS = ("traceparent", "tracestate")


def is_final(envelope: dict[str, Any], actor: str) -> bool:
    """True for an envelope addressed to error-end (or a crew actor's own DLQ): the end of the line."""
    return envelope.get("route", {}).get("curr") == env.ERROR_END or actor in env.TERMINAL_ACTORS


def unhandled_record(body: bytes, exc: BaseException, *, actor: str, message_id: str | None) -> dict[str, Any]:
    """An error-end envelope for a message whose handling raised ``exc``: raw body kept, nothing lost."""
    reason = f"the sidecar could not handle this message: {type(exc).__name__}: {str(exc)[:500]}"
    record = env.wrap_malformed(body, reason, actor=actor, message_id=message_id, error_type="UnhandledMessage")
    record["headers"][env.H_ERROR]["traceback"] = "".join(traceback.format_exception(exc))[-4000:]
    return record


def not_before_problem(envelope: dict[str, Any], max_interval: float, now: float | None = None) -> str | None:
    """Why the envelope's ``x-asya-not-before`` cannot be honoured (None when it can).

    A retry time further ahead than the policy's largest backoff (plus a minute of slack) was not
    written by any sidecar; waiting for it would park the message for years.
    """
    value = (envelope.get("headers") or {}).get(env.H_NOT_BEFORE)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return f"header {env.H_NOT_BEFORE} must be a unix time, got {value!r:.60}"
    ahead = value - (time.time() if now is None else now)
    if ahead > max_interval + NOT_BEFORE_SLACK_SECONDS:
        return (f"header {env.H_NOT_BEFORE}={value!r:.40} is {ahead:.0f}s ahead; no retry waits longer than "
                f"maxInterval={max_interval:g}s")
    return None


def fit_final(envelope: dict[str, Any], body: bytes, limit: int) -> bytes:
    """Shrinks an error-end envelope ``body`` (over ``limit`` bytes) into a record that fits.

    Payload and headers are dropped (trace context kept); ``x-asya-raw-body`` keeps the first bytes of
    the original raw body (or of the oversized envelope), ``truncated: true``; the error message and
    ``x-asya-truncated`` say what was cut.
    """
    headers = envelope.get("headers") or {}
    kept_raw = env.raw_body(envelope)
    source = kept_raw if kept_raw is not None else body
    error = dict(headers.get(env.H_ERROR) or {"type": "Error", "message": ""})
    error["traceback"] = str(error.get("traceback", ""))[-4000:]
    attempts = error.get("attempts") if isinstance(error.get("attempts"), list) else []
    error["attempts"] = [{k: (str(v)[-1000:] if k in ("message", "traceback") else v) for k, v in a.items()}
                         for a in attempts[-20:] if isinstance(a, dict)]
    message = str(error.get("message", ""))[:2000]
    slim: dict[str, Any] = {"id": envelope.get("id") or env.new_id(), "route": envelope.get("route"), "payload": None}
    if isinstance(envelope.get("parent_id"), str):
        slim["parent_id"] = envelope["parent_id"]
    slim_headers = {k: headers[k] for k in _KEEP_HEADERS if isinstance(headers.get(k), str) and len(headers[k]) < 1024}
    slim["headers"] = slim_headers
    keep = len(source)
    squeeze = 0  # once no body byte is left: shorten the error text itself, step by step
    while True:
        note = (f" [error-end record truncated: the envelope was {len(body)} bytes, over the broker's limit of "
                f"{limit}; payload and headers dropped, {env.H_RAW_BODY} keeps the first {keep} of "
                f"{len(source)} bytes]")
        error["message"] = message + note
        slim_headers[env.H_ERROR] = error
        slim_headers[H_TRUNCATED] = {"original_bytes": len(body), "limit": limit, "kept_bytes": keep}
        slim_headers[env.H_RAW_BODY] = {"encoding": "base64", "truncated": True, "original_bytes": len(source),
                                        "data": base64.b64encode(source[:keep]).decode("ascii")}
        out = env.dumps(slim)
        if len(out) <= limit or squeeze > 6:
            return out
        if keep == 0:  # even the error record is too big for this limit: keep its head only
            squeeze += 1
            message = message[: max(40, len(message) // 2)]
            error["traceback"] = error["traceback"][-max(0, len(error["traceback"]) // 4):] if squeeze < 4 else ""
            error["attempts"] = error["attempts"][-max(0, 4 - squeeze):] if squeeze < 4 else []
            continue
        over = len(out) - int(limit * 0.95)
        keep = max(0, min(keep - 1, keep - (over * 3 // 4) - 64))
