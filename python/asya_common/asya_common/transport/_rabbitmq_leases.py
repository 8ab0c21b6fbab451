"""Client-side leases for RabbitMQ, which has none of its own.

A RabbitMQ delivery stays with its consumer until it is acked or the connection drops. To give
``receive(lease_seconds=...)`` the meaning it has on SQS and Pub/Sub, :class:`LeaseBook` keeps a
deadline per handed-out delivery and, when one lapses, returns the message to its queue
(``basic.nack`` with requeue: a redelivery that raises ``x-delivery-count``). Leases taken on a
connection that has since been replaced are void: the broker already requeued those deliveries.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from asya_common.transport.base import LeaseLost, ReceivedMessage

REAP_INTERVAL = 0.1


@dataclass
class Lease:
    """One handed-out delivery (an aiormq ``DeliveredMessage``) and its deadline (``time.monotonic``)."""

    incoming: Any
    acks: Any  # the ``_rabbitmq_acks.Acks`` of the delivery's channel: every ack and nack goes through it
    generation: int
    deadline: float
    lost: bool = False


class LeaseBook:
    """The leases of one transport; a background task returns lapsed ones."""

    def __init__(self, channel_errors: tuple[type[BaseException], ...]):
        self._channel_errors = channel_errors
        self._leases: dict[int, Lease] = {}
        self._reaper: asyncio.Task | None = None
        self.generation = 0

    def start(self) -> None:
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.get_running_loop().create_task(self._reap())

    def stop(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        self.new_generation()

    def new_generation(self) -> None:
        """Voids every lease (their connection is gone) and starts counting a new connection."""
        for lease in self._leases.values():
            lease.lost = True
        self._leases.clear()
        self.generation += 1

    def grant(self, incoming: Any, acks: Any, seconds: float) -> Lease:
        lease = Lease(incoming, acks, self.generation, time.monotonic() + seconds)
        self._leases[id(lease)] = lease
        return lease

    def live(self, message: ReceivedMessage) -> Lease:
        """The message's lease if it still holds.

        Raises:
            LeaseLost: It lapsed, was settled, or its connection was replaced.
        """
        lease: Lease = message.handle
        if lease.lost or lease.generation != self.generation or time.monotonic() > lease.deadline:
            raise LeaseLost.expired(message)
        return lease

    def release(self, lease: Lease) -> None:
        """Forgets a lease that is being settled (acked or returned)."""
        self._leases.pop(id(lease), None)
        lease.lost = True

    async def _reap(self) -> None:
        while True:
            await asyncio.sleep(REAP_INTERVAL)
            now = time.monotonic()
            for lease in [lease for lease in self._leases.values() if lease.deadline < now]:
                self.release(lease)
                try:  # a closed channel raises at once (the broker requeued the delivery already)
                    await lease.acks.nack(lease.incoming.delivery_tag)
                except self._channel_errors:
                    pass  # the channel is gone: the broker requeues the delivery by itself
