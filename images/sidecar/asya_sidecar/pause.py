"""PAUSE in the sidecar: find the pause a handler asked for, and end expired pauses in the background.

A payload-mode handler yields ``("PAUSE", {...})``; the runtime puts the spec in the ``x-asya-pause``
header of the call's single output. An envelope-mode handler sets that header on the envelope it
returns. Either way the sidecar pops the header after routing, parks the advanced envelope in the
status store and only then acks (see ``MessageProcessor``). Nothing is published: the envelope
continues when a person resumes it (``asya paused resume``, the gateway) or its timeout passes.
"""

from __future__ import annotations

import asyncio
from typing import Any

from asya_common.status import PauseSpecError
from asya_common.status.spec import H_PAUSE, normalize_spec


class PauseUnavailable(RuntimeError):
    """The handler paused but this sidecar has no status store (``ASYA_STATUS_DB``)."""


def take(routed: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Pops the pause spec from the routed outputs; None when the handler did not pause.

    Raises:
        PauseSpecError: A malformed spec, or a pause together with fan-out (one output may pause).
    """
    specs = [o.get("headers", {}).pop(H_PAUSE) for o in routed if H_PAUSE in o.get("headers", {})]
    if not specs:
        return None
    if len(routed) != 1:
        raise PauseSpecError(f"PAUSE needs exactly one output to park, the handler produced {len(routed)}")
    return normalize_spec(specs[0])


async def expire_loop(events: Any, transport: Any, queue_prefix: str, interval: float, log: Any) -> None:
    """Every ``interval`` seconds, ends the store's expired pauses (claims are atomic across replicas)."""
    while True:
        await asyncio.sleep(interval)
        try:
            for envelope_id in await events.expire(transport, queue_prefix):
                log.info("pause timed out", envelope_id=envelope_id)
        except Exception as exc:  # noqa: BLE001 - next round retries
            log.warning("expiring pauses failed; retrying", error=str(exc))
