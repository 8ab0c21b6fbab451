"""``asya replay ID``: sends a failed envelope back to the actor that failed it, with fresh attempts.

Error-end keeps the original envelope (payload, headers, route) and the error record; replay strips the
error, puts the envelope back in front of the failed actor and publishes it to that actor's queue. A
body that was never an envelope cannot be replayed as one; its bytes stay in the record for a person.
"""

from __future__ import annotations

from typing import Any

from asya_common import envelope as env
from asya_common.status_store import FAILED, StatusStore
from asya_cli.status_cmd import PREVIOUS_FAILURES


class ReplayError(ValueError):
    """The record cannot be replayed; the message says why."""


def replay_envelope(store: StatusStore, envelope_id: str) -> tuple[str, dict[str, Any]]:
    """Builds the envelope to republish for a failed record.

    Returns:
        ``(actor, envelope)``: the actor whose queue gets it, and the envelope addressed to it.

    Raises:
        ReplayError: Unknown id, not failed, or a malformed body.
    """
    found = store.stored_envelope(envelope_id)
    if found is None:
        raise ReplayError(f"no envelope with id {envelope_id!r}")
    status, envelope = found
    if status != FAILED or envelope is None:
        raise ReplayError(f"envelope {envelope_id!r} is {status}, only failed envelopes can be replayed")
    error = envelope.get("headers", {}).get(env.H_ERROR) or {}
    if error.get("type") == "MalformedEnvelope" or env.H_RAW_BODY in (envelope.get("headers") or {}):
        raise ReplayError(f"envelope {envelope_id!r} was never a valid envelope ({error.get('message')}); its raw "
                          f"bytes are kept in header {env.H_RAW_BODY} (base64) of `asya status` for a person to fix")
    actor = error.get("actor")
    if not actor:
        raise ReplayError(f"envelope {envelope_id!r} has no failed actor recorded")
    route = envelope["route"]
    prev = list(route.get("prev", []))
    if prev and prev[-1] == actor:
        prev.pop()
    envelope["route"] = {"prev": prev, "curr": actor, "next": list(route.get("next", []))}
    history = envelope["headers"].get(PREVIOUS_FAILURES)  # `asya status` shows the earlier runs' errors
    envelope["headers"][PREVIOUS_FAILURES] = [*(history if isinstance(history, list) else []), error]
    for header in (env.H_ERROR, env.H_ATTEMPT, env.H_ATTEMPT_ERRORS, env.H_NOT_BEFORE, env.H_SENT_AT):
        envelope["headers"].pop(header, None)
    return actor, env.validate(envelope)
