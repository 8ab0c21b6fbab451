"""Route-level error branches: an envelope whose call failed for good continues on its ``on_error`` route.

The Flow DSL compiles ``try: ... except ValueError: ...`` into entries of the envelope's top-level
``on_error`` list (any producer may write them)::

    "on_error": [{"errors": ["ValueError"], "hops": [3, 5], "next": ["fallback", "store"]}]

When a call ends in error-end (attempts exhausted, or not retryable), the sidecar looks for the first
entry whose hop window ``[from, to)`` holds the failing hop (``len(route.prev)``: which step of the
route failed) and whose ``errors`` name the error's class or one of its base classes (``Exception``
catches every error). A match sends the envelope to ``next`` instead of error-end: the failed actor
joins ``route.prev``, the payload is the one the failed call received, the ``on_error`` list is
dropped (the branch's own route sets new entries), and header ``x-asya-caught`` records what was
caught. Pure functions, no I/O.
"""

from __future__ import annotations

from typing import Any, Optional

from asya_common import envelope as env
from asya_sidecar.routing import ATTEMPT_HEADERS

ON_ERROR = "on_error"
H_CAUGHT = "x-asya-caught"
CATCH_ALL = ("Exception", "BaseException")


def _classes(error: dict[str, Any]) -> list[str]:
    names = [str(error.get("type") or "")]
    mro = error.get("mro")
    if isinstance(mro, list):
        names += [n for n in mro if isinstance(n, str)]
    return [n for n in names if n]


def _matches(entry: str, name: str) -> bool:
    return entry == name or name.endswith("." + entry) or name.rsplit(".", 1)[-1] == entry


def matching_entry(envelope: dict[str, Any], error: dict[str, Any]) -> Optional[dict[str, Any]]:
    """The first well-formed ``on_error`` entry that covers this failure, or None."""
    entries = envelope.get(ON_ERROR)
    if not isinstance(entries, list):
        return None
    hop = len(envelope.get("route", {}).get("prev") or [])
    classes = _classes(error)
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        hops, errors, nxt = entry.get("hops"), entry.get("errors"), entry.get("next")
        if not (isinstance(hops, list) and len(hops) == 2 and all(isinstance(h, int) for h in hops)
                and isinstance(errors, list) and isinstance(nxt, list)
                and all(isinstance(a, str) and a and a not in env.TERMINAL_ACTORS for a in nxt)):
            continue
        if not hops[0] <= hop < hops[1]:
            continue
        if any(e in CATCH_ALL for e in errors) or any(_matches(str(e), c) for e in errors for c in classes):
            return entry
    return None


def caught_envelope(envelope: dict[str, Any], error: dict[str, Any], actor: str) -> Optional[dict[str, Any]]:
    """The envelope to publish on the except branch instead of error-end, or None when nothing catches it.

    Args:
        envelope: The input envelope whose call failed (its payload is what the branch continues with).
        error: The error frame (``type``, ``message``, optional ``mro``).
        actor: This sidecar's actor (the one that failed).
    """
    entry = matching_entry(envelope, error)
    if entry is None:
        return None
    caught = env.copy_envelope(envelope)
    caught.pop(ON_ERROR, None)
    headers = caught.setdefault("headers", {})
    for key in ATTEMPT_HEADERS:
        headers.pop(key, None)
    headers[H_CAUGHT] = {"actor": actor, "type": error.get("type", "Error"), "message": error.get("message", "")}
    route = caught["route"]
    remaining = list(entry["next"])
    route["prev"] = [*route.get("prev", []), route["curr"]]
    route["curr"] = remaining.pop(0) if remaining else env.HAPPY_END
    route["next"] = remaining
    return caught
