"""Keeps the leases of in-flight messages alive while a handler works on them.

A broker hands a message back when its lease (visibility timeout, ack deadline) runs out, so a
handler that runs longer than ``ASYA_LEASE_SECONDS`` would see its message processed twice. One
task for all held messages extends each lease every third of the period; it stops when nothing is
held and starts again with the next message.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from asya_common.transport import ReceivedMessage, Transport, TransportError


class LeaseKeeper:
    """Extends the leases of the messages between :meth:`hold` and :meth:`release`.

    Args:
        transport: The connected transport.
        lease_seconds: The lease period.
        log: Bound structlog logger.
    """

    def __init__(self, transport: Transport, lease_seconds: float, log: Any):
        self._transport, self._lease, self._log = transport, lease_seconds, log
        self._held: dict[int, tuple[ReceivedMessage, float]] = {}
        self._task: asyncio.Task | None = None

    def hold(self, message: ReceivedMessage) -> None:
        """Keeps ``message``'s lease alive until :meth:`release`."""
        self._held[id(message)] = (message, time.monotonic())
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._keep(), name="lease-keeper")

    def release(self, message: ReceivedMessage) -> None:
        """Stops extending ``message``'s lease (it was acked, nacked or parked)."""
        self._held.pop(id(message), None)

    async def _keep(self) -> None:
        lease = self._lease
        while self._held:
            await asyncio.sleep(lease / 6)
            now = time.monotonic()
            for key, (message, extended_at) in list(self._held.items()):
                if now - extended_at < lease / 3 or key not in self._held:
                    continue
                try:
                    await self._transport.extend_lease(message, lease)
                    if key in self._held:
                        self._held[key] = (message, time.monotonic())
                except TransportError as exc:
                    self._log.warning("lease extension failed", error=str(exc), message_id=message.message_id)
