"""The envelope: the JSON message that carries a payload and its own route through the mesh.

This module is the single place that knows the wire format (docs/handlers.md, "Envelope mode"):
parsing and validating bodies, serialising, advancing the route after a successful call, fan-out
ids, the route operations handlers may yield (``SET .route.next``, ``SET .headers.<key>``), and
the shape of the error envelopes the sidecar sends to ``error-end``.

Standard library only: the runtime imports it inside the user's image.
"""

from __future__ import annotations

import base64
import copy
import uuid
from typing import Any

from asya_common import strictjson

HAPPY_END = "happy-end"
ERROR_END = "error-end"
TERMINAL_ACTORS = (HAPPY_END, ERROR_END)
DEFAULT_QUEUE_PREFIX = "asya-"
SIDECAR_HEADER_PREFIX = "x-asya-"
DLQ_SUFFIX = "-dlq"  # <prefix><actor>-dlq: never an actor's name, never a route target
# A queue name is <prefix><actor>-dlq; RabbitMQ and Pub/Sub refuse names over 255 bytes.
MAX_ACTOR_NAME_BYTES = 200

# Headers the sidecar owns (all under the reserved ``x-asya-`` prefix).
H_ATTEMPT = "x-asya-attempt"  # 1-based number of the attempt this message is for
H_ATTEMPT_ERRORS = "x-asya-attempt-errors"  # errors of the earlier failed attempts
H_NOT_BEFORE = "x-asya-not-before"  # unix time before which a retry must not run
H_ERROR = "x-asya-error"  # final error record on envelopes sent to error-end
H_RAW_BODY = "x-asya-raw-body"  # undecodable body kept for inspection and replay
H_SENT_AT = "x-asya-sent-at"  # unix time the envelope was published to its current queue
H_PAUSE = "x-asya-pause"  # pause spec on a handler's output: the sidecar parks it instead of publishing


class EnvelopeError(ValueError):
    """A body is not a valid envelope. ``reason`` names the problem in one line."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class RouteError(ValueError):
    """A handler asked for a route change the contract forbids (bad op, prev/curr rewrite)."""


def route_target_problem(actor: Any) -> str | None:
    """Why ``actor`` cannot be a route target (None when it can): empty, a DLQ, or too long for a queue name."""
    if not isinstance(actor, str) or not actor:
        return f"route entries must be non-empty strings, got {actor!r:.80}"
    if actor.endswith(DLQ_SUFFIX):
        return f"{actor[:80]!r} names a dead-letter queue; routes never target a DLQ"
    if len(actor.encode("utf-8", "surrogatepass")) > MAX_ACTOR_NAME_BYTES:
        return (f"actor name {actor[:40]!r}... is {len(actor.encode('utf-8', 'surrogatepass'))} bytes; "
                f"the limit is {MAX_ACTOR_NAME_BYTES} (queue names are at most 255 bytes)")
    return None


def actor_name_problem(name: Any) -> str | None:
    """Why ``name`` cannot name a user actor (None when it can): reserved, a DLQ name, or too long."""
    if name in TERMINAL_ACTORS:
        return f"{name!r} is reserved for the crew (happy-end / error-end)"
    problem = route_target_problem(name)
    if problem and isinstance(name, str) and name.endswith(DLQ_SUFFIX):
        return f"{name!r} ends in {DLQ_SUFFIX!r}: that is the name of another actor's dead-letter queue"
    return problem


def queue_name(actor: str, prefix: str = DEFAULT_QUEUE_PREFIX) -> str:
    """Returns the queue name of ``actor`` (``<prefix><actor>``)."""
    return f"{prefix}{actor}"


def dlq_name(actor: str, prefix: str = DEFAULT_QUEUE_PREFIX) -> str:
    """Returns the dead-letter queue name of ``actor`` (``<prefix><actor>-dlq``)."""
    return f"{prefix}{actor}-dlq"


def new_id() -> str:
    """Returns a fresh envelope id (uuid4 hex)."""
    return uuid.uuid4().hex


def make_envelope(
    route: list[str],
    payload: Any,
    *,
    headers: dict[str, Any] | None = None,
    envelope_id: str | None = None,
) -> dict[str, Any]:
    """Builds a new envelope that starts at ``route[0]`` and continues with ``route[1:]``.

    Args:
        route: Actor names in order; must not be empty or name a terminal actor.
        payload: Any JSON value.
        headers: Headers to carry across every hop.
        envelope_id: Stable id; a new uuid when omitted.
    """
    if not route:
        raise RouteError("a route needs at least one actor")
    for actor in route:
        if actor in TERMINAL_ACTORS:
            raise RouteError(f"{actor!r} is a terminal actor and is never written in a route")
        problem = route_target_problem(actor)
        if problem:
            raise RouteError(problem)
    return {
        "id": envelope_id or new_id(),
        "route": {"prev": [], "curr": route[0], "next": list(route[1:])},
        "headers": dict(headers or {}),
        "payload": payload,
    }


def validate(obj: Any) -> dict[str, Any]:
    """Checks that ``obj`` is an envelope and normalises optional parts.

    Returns:
        The same dict, with ``headers`` defaulted to ``{}`` and ``route.prev``/``route.next`` to ``[]``.

    Raises:
        EnvelopeError: The reason names the first problem found.
    """
    if not isinstance(obj, dict):
        raise EnvelopeError(f"envelope must be a JSON object, got {type(obj).__name__}")
    envelope_id = obj.get("id")
    if not isinstance(envelope_id, str) or not envelope_id:
        raise EnvelopeError("envelope has no 'id' (a non-empty string is required)")
    route = obj.get("route")
    if not isinstance(route, dict):
        raise EnvelopeError("envelope has no 'route' object")
    curr = route.get("curr")
    if not isinstance(curr, str) or not curr:
        raise EnvelopeError("envelope 'route.curr' must be a non-empty string")
    for key in ("prev", "next"):
        value = route.setdefault(key, [])
        if not isinstance(value, list) or not all(isinstance(a, str) and a for a in value):
            raise EnvelopeError(f"envelope 'route.{key}' must be a list of actor names")
    for actor in [curr, *route["next"]]:
        problem = route_target_problem(actor)
        if problem:
            raise EnvelopeError(f"envelope route: {problem}")
    headers = obj.setdefault("headers", {})
    if not isinstance(headers, dict):
        raise EnvelopeError("envelope 'headers' must be an object")
    if "parent_id" in obj and not isinstance(obj["parent_id"], str):
        raise EnvelopeError("envelope 'parent_id' must be a string")
    obj.setdefault("payload", None)
    return obj


def loads(body: bytes | str) -> dict[str, Any]:
    """Parses and validates a message body.

    Raises:
        EnvelopeError: The body is not UTF-8, not strict JSON (NaN, Infinity, a lone surrogate,
            nesting deeper than ``strictjson.MAX_DEPTH``), or not an envelope.
    """
    try:
        obj = strictjson.loads(body, what="body")
    except strictjson.NotStrictJSON as exc:
        raise EnvelopeError(exc.reason) from None
    return validate(obj)


def dumps(envelope: dict[str, Any]) -> bytes:
    """Serialises an envelope to compact UTF-8 strict JSON bytes (raises ``NotStrictJSON`` for NaN...)."""
    return strictjson.dumps(envelope)


def fanout_id(envelope_id: str, index: int) -> str:
    """Returns the id of output ``index`` of one input: the id itself for 0, ``<id>-<i>`` after."""
    return envelope_id if index == 0 else f"{envelope_id}-{index}"


def advance(envelope: dict[str, Any]) -> dict[str, Any]:
    """Moves the envelope one hop forward, in place: ``curr`` joins ``prev``, ``next[0]`` becomes ``curr``.

    When ``next`` is empty the new ``curr`` is ``happy-end``.
    """
    route = envelope["route"]
    route["prev"] = [*route.get("prev", []), route["curr"]]
    remaining = list(route.get("next", []))
    route["curr"] = remaining.pop(0) if remaining else HAPPY_END
    route["next"] = remaining
    return envelope


def apply_set(envelope: dict[str, Any], path: str, value: Any) -> None:
    """Applies one ``("SET", path, value)`` route operation, in place.

    Supported paths: ``.route.next`` (a list of actor names) and ``.headers.<key>``.

    Raises:
        RouteError: Unknown path or a value of the wrong shape.
    """
    if path == ".route.next":
        if not isinstance(value, list) or not all(isinstance(a, str) and a for a in value):
            raise RouteError(f"SET .route.next needs a list of actor names, got {value!r}")
        bad = [a for a in value if a in TERMINAL_ACTORS]
        if bad:
            raise RouteError(f"SET .route.next may not name terminal actors {bad}")
        for actor in value:
            problem = route_target_problem(actor)
            if problem:
                raise RouteError(f"SET .route.next: {problem}")
        envelope["route"]["next"] = list(value)
        return
    if path.startswith(".headers.") and len(path) > len(".headers."):
        envelope.setdefault("headers", {})[path[len(".headers.") :]] = value
        return
    raise RouteError(f"unsupported SET path {path!r} (use '.route.next' or '.headers.<key>')")


def check_route_rewrite(before: dict[str, Any], after: dict[str, Any]) -> None:
    """Raises RouteError when an envelope-mode handler changed ``route.prev`` or ``route.curr``."""
    if not isinstance(after.get("route"), dict):
        raise RouteError("handler returned an envelope without a 'route' object")
    for key in ("prev", "curr"):
        if after["route"].get(key, [] if key == "prev" else None) != before["route"].get(key):
            raise RouteError(
                f"handler changed route.{key} from {before['route'].get(key)!r} to "
                f"{after['route'].get(key)!r}; only route.next may be rewritten"
            )


def copy_envelope(envelope: dict[str, Any]) -> dict[str, Any]:
    """Deep copy, so outputs never share mutable state with their input.

    Envelopes are JSON trees: dicts and lists are rebuilt, str/int/float/bool/None are immutable and
    shared; anything else (a handler's own object) goes through ``copy.deepcopy``. Several times
    faster than ``deepcopy`` of the whole tree, which tracks a memo of every object it visits.
    """
    return _copy_json(envelope)


_IMMUTABLE = (str, int, float, bool, type(None))


def _copy_json(value: Any) -> Any:
    kind = type(value)
    if kind is dict:
        return {key: item if type(item) in _IMMUTABLE else _copy_json(item) for key, item in value.items()}
    if kind is list:
        return [item if type(item) in _IMMUTABLE else _copy_json(item) for item in value]
    if kind in _IMMUTABLE:
        return value
    return copy.deepcopy(value)


def to_error_end(envelope: dict[str, Any], error: dict[str, Any]) -> dict[str, Any]:
    """Returns a copy of ``envelope`` addressed to ``error-end`` with ``error`` under ``x-asya-error``.

    The payload, headers and unknown keys are kept so the failure can be inspected and replayed.
    """
    failed = copy_envelope(envelope)
    route = failed["route"]
    route["prev"] = [*route.get("prev", []), route["curr"]] if route.get("curr") not in TERMINAL_ACTORS else route.get("prev", [])
    route["next"] = list(route.get("next", []))
    route["curr"] = ERROR_END
    failed.setdefault("headers", {})[H_ERROR] = error
    return failed


def wrap_malformed(body: bytes, reason: str, *, actor: str, message_id: str | None = None,
                   error_type: str = "MalformedEnvelope") -> dict[str, Any]:
    """Wraps an undecodable body into an error-end envelope that keeps the raw bytes (base64).

    Args:
        body: The raw message body as received.
        reason: One line naming the problem (from :class:`EnvelopeError`).
        actor: The actor whose queue held the body.
        message_id: The transport's message id, reused as envelope id when available.
        error_type: ``x-asya-error.type`` (``MalformedEnvelope``, or why a valid body could not be handled).
    """
    recovered_id = None
    try:
        maybe = strictjson.loads(body)
        if isinstance(maybe, dict) and isinstance(maybe.get("id"), str) and maybe["id"]:
            recovered_id = maybe["id"]
    except strictjson.NotStrictJSON:
        pass
    if not isinstance(message_id, str) or strictjson._SURROGATE.search(message_id):
        message_id = None
    return {
        "id": recovered_id or message_id or new_id(),
        "route": {"prev": [actor], "curr": ERROR_END, "next": []},
        "headers": {
            H_ERROR: {"actor": actor, "type": error_type, "message": reason, "attempts": []},
            H_RAW_BODY: {"encoding": "base64", "data": base64.b64encode(body).decode("ascii")},
        },
        "payload": None,
    }


def raw_body(envelope: dict[str, Any]) -> bytes | None:
    """Returns the original bytes kept by :func:`wrap_malformed`, or None."""
    kept = envelope.get("headers", {}).get(H_RAW_BODY)
    if not isinstance(kept, dict) or kept.get("encoding") != "base64":
        return None
    return base64.b64decode(kept["data"])
