"""Resuming and expiring paused envelopes: used by ``asya paused resume``, the gateway and the expirer.

Both helpers follow the store's claim protocol: validate, claim (one winner), write the ``resumed``
event (before anything of the next actor can happen), publish the envelope to its next queue, then
``finish_pause``. A failed publish releases the claim, so the pause is still
there to retry; a taker killed between publish and finish leaves a claim that another taker may
take over after the claim lease (at-least-once, like every hop of the mesh).
"""

from __future__ import annotations

import time
from typing import Any

from asya_common import envelope as env
from asya_common.status.model import PAUSE_EXPIRED, PAUSE_RESUMED, PAUSE_WAITING, PauseConflict, PauseInputInvalid, \
    PauseNotFound
from asya_common.status.spec import merge_input

PAUSE_TIMEOUT = "PauseTimeout"


def validate_input(spec: dict[str, Any], value: Any) -> None:
    """Checks resume input against the pause's JSON Schema (no schema: anything goes).

    Raises:
        PauseInputInvalid: Lists every schema violation with its JSON path.
    """
    schema = spec.get("schema")
    if schema is None:
        return
    import jsonschema  # only resumers need it (CLI, gateway); never the runtime

    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    if errors:
        problems = [f"{e.json_path}: {e.message}" for e in errors]
        raise PauseInputInvalid("resume input does not match the pause's schema: " + "; ".join(problems), problems)


def check_resumable(store: Any, envelope_id: str) -> dict[str, Any]:
    """The waiting pause of ``envelope_id``; raises PauseNotFound / PauseConflict otherwise."""
    pause = store.get_pause(envelope_id)
    if pause is None:
        raise PauseNotFound(f"no paused envelope with id {envelope_id!r}")
    if pause["status"] != PAUSE_WAITING:
        raise PauseConflict(f"pause {envelope_id!r} is already {pause['status']}")
    return pause


async def _publish(transport: Any, envelope: dict[str, Any], queue_prefix: str) -> str:
    actor = envelope["route"]["curr"]
    envelope.setdefault("headers", {})[env.H_SENT_AT] = time.time()
    await transport.send(env.queue_name(actor, queue_prefix), env.dumps(envelope))
    return actor


async def resume_paused(store: Any, transport: Any, envelope_id: str, value: Any, *,
                        queue_prefix: str = env.DEFAULT_QUEUE_PREFIX) -> dict[str, Any]:
    """Validates ``value``, claims the pause, merges ``value`` at its ``into`` and publishes to the next actor.

    Args:
        store: The status store.
        transport: A connected transport.
        envelope_id: The paused envelope.
        value: The person's input (any JSON value).
        queue_prefix: Queue name prefix of the mesh.

    Returns:
        The published envelope.

    Raises:
        PauseNotFound: Unknown id (HTTP 404).
        PauseConflict: Already resumed/expired/canceled, or being resumed right now (409).
        PauseInputInvalid: ``value`` breaks the schema; the pause stays waiting (422).
        TransportError: The publish failed; the pause stays waiting.
    """
    validate_input(check_resumable(store, envelope_id)["spec"], value)
    pause = store.claim_pause(envelope_id)
    envelope = merge_input(pause["envelope"], pause["spec"]["into"], value)
    await _publish_resumed(store, transport, envelope_id, envelope, queue_prefix,
                           {"outcome": PAUSE_RESUMED, "into": pause["spec"]["into"], "input": value})
    store.finish_pause(envelope_id, PAUSE_RESUMED, actor=envelope["route"]["curr"], resumed=True, event=False)
    return envelope


async def _publish_resumed(store: Any, transport: Any, envelope_id: str, envelope: dict[str, Any],
                           queue_prefix: str, data: dict[str, Any]) -> None:
    """``resumed`` event, then the publish; a failed publish puts the claim back (and says so in the events)."""
    store.note_resumed(envelope_id, envelope["route"]["curr"], data)
    try:
        await _publish(transport, envelope, queue_prefix)
    except BaseException as exc:
        store.release_pause(envelope_id, reason=f"{type(exc).__name__}: {exc}")
        raise


def timeout_envelope(pause: dict[str, Any]) -> dict[str, Any]:
    """The error-end envelope of an expired pause whose ``on_timeout`` is ``fail``.

    The failure is recorded at the pausing actor with the route as it was before the pause, so
    ``asya replay ID`` runs that actor again (and so asks again).
    """
    parked = env.copy_envelope(pause["envelope"])
    route = parked["route"]
    prev = list(route.get("prev", []))
    actor = pause["actor"] or (prev[-1] if prev else route["curr"])
    if prev and prev[-1] == actor:
        prev.pop()
    next_actors = [route["curr"], *route.get("next", [])] if route["curr"] not in env.TERMINAL_ACTORS \
        else list(route.get("next", []))
    parked["route"] = {"prev": prev, "curr": actor, "next": next_actors}
    spec = pause["spec"]
    error = {"actor": actor, "type": PAUSE_TIMEOUT,
             "message": f"no input within {spec.get('timeout')} (paused at {actor}: {spec.get('prompt')!r})",
             "traceback": "", "attempts": []}
    return env.to_error_end(parked, error)


async def expire_pauses(store: Any, transport: Any, *, queue_prefix: str = env.DEFAULT_QUEUE_PREFIX,
                        now: float | None = None) -> list[str]:
    """Ends every expired pause exactly once across replicas (call it periodically).

    ``on_timeout: fail`` sends the envelope to error-end with a ``PauseTimeout`` error (replayable);
    ``on_timeout: resume`` merges the spec's ``defaults`` at ``into`` and continues.

    Returns:
        The ids handled by this caller.
    """
    handled = []
    for pause in store.claim_expired(now):
        spec = pause["spec"]
        resume = spec.get("on_timeout") == "resume"
        envelope = merge_input(pause["envelope"], spec["into"], spec.get("defaults")) if resume \
            else timeout_envelope(pause)
        data = {"outcome": PAUSE_EXPIRED, "into": spec["into"], "input": spec.get("defaults"), "timeout": True}
        if resume:
            await _publish_resumed(store, transport, pause["id"], envelope, queue_prefix, data)
        else:
            try:
                await _publish(transport, envelope, queue_prefix)
            except BaseException:
                store.release_pause(pause["id"])
                raise
        store.finish_pause(pause["id"], PAUSE_EXPIRED, actor=envelope["route"]["curr"], resumed=resume, event=False)
        handled.append(pause["id"])
    return handled
