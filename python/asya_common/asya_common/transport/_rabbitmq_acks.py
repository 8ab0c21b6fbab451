"""Acks of one turn of the event loop leave as one ``basic.ack(multiple=True)`` where that is safe.

Without this every ack is its own ``basic.ack`` frame (a pamqp marshal, a trip through aiormq's write queue,
a ``send``), and on a quorum queue its own settle command in RabbitMQ. With concurrency and prefetch, several
messages of a consumer usually finish in the same turn (a batch of publisher confirms arrives in one read).

:class:`Acks` keeps, per consumer channel, the delivery tags received and not yet settled, in delivery order
(RabbitMQ numbers a channel's deliveries 1, 2, 3...). ``ack`` marks its tag done and one loop turn later the
flush sends ONE ``multiple=True`` ack for the longest run of done tags from the OLDEST unsettled one, and a
single ack for every other done tag: nothing waits for another message to finish. What keeps it safe:

* a tag is done only once ``ack`` was called for it, and a multiple ack ends at a done tag and covers only
  tags that are done or already settled: a message still being processed, held, or being returned
  (``nack`` in flight) stops the run, and so does a tag that never reached the consumer (a gap in the
  numbering, which should not happen; after one, no multiple ack crosses it);
* ``nack`` is sent at once and on its own, and its tag is forgotten only after its frame was written, so no
  multiple ack can reach the broker before it;
* one flush at a time per channel, so frames leave in the order they were decided;
* every caller of ``ack`` waits for the flush that carries its tag and gets its error (a closed channel
  raises ``ChannelInvalidStateError`` as before); a closed channel takes its pending tags with it (the
  broker requeues those messages).
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import aiormq.exceptions

from asya_common.transport._rabbitmq_guard import guarded


class Acks:
    """The unsettled deliveries of one consumer channel, and the acks waiting for the next flush."""

    def __init__(self, channel: Any):
        self.channel = channel
        self._unsettled: dict[int, bool] = {}  # delivery tag -> done (ack called), in delivery order
        self._last = 0  # the highest tag delivered
        self._gap = math.inf  # the lowest tag that never reached the consumer: no multiple ack covers it
        self._pending: list[int] = []  # done since the last flush
        self._waiters: list[asyncio.Future] = []
        self._flushing: asyncio.Task | None = None

    def delivered(self, tag: int) -> None:
        """Records a delivery (called in delivery order, before anyone can settle it)."""
        if tag > self._last + 1:
            self._gap = min(self._gap, self._last + 1)
        self._last = max(self._last, tag)
        self._unsettled[tag] = False

    def ack(self, tag: int) -> asyncio.Future:
        """Marks ``tag`` done; the returned future ends when the frame that acks it was written.

        Raises:
            aiormq.exceptions.ChannelInvalidStateError: The channel is closed (the broker requeued the
                delivery); the returned future fails the same way if it closes before the flush.
        """
        if self.channel.is_closed:
            raise aiormq.exceptions.ChannelInvalidStateError(f"{self.channel!r} is closed")
        if tag in self._unsettled:
            self._unsettled[tag] = True
        self._pending.append(tag)
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        if self._flushing is None:  # its first step runs one loop turn later, with every ack of this turn
            self._flushing = asyncio.get_running_loop().create_task(self._flush())
        return waiter

    async def nack(self, tag: int) -> None:
        """Returns ``tag`` to its queue now, on its own (``basic.nack``, requeue).

        Raises:
            aiormq.exceptions.ChannelInvalidStateError: The channel is closed, or closed while the frame waited.
        """
        await guarded(self.channel, self.channel.basic_nack(tag, requeue=True))
        self._unsettled.pop(tag, None)  # only now: until its frame is out, no multiple ack may cover it

    def _frames(self, pending: list[int]) -> list[tuple[int, bool]]:
        """Decides the acks for ``pending`` and forgets their tags: ``(delivery_tag, multiple)`` in sending order."""
        frames: list[tuple[int, bool]] = []
        run: list[int] = []
        for tag, done in self._unsettled.items():  # from the oldest unsettled tag
            if not done or tag >= self._gap:
                break
            run.append(tag)
        for tag in run:
            del self._unsettled[tag]
        if run:
            frames.append((run[-1], len(run) > 1))
        covered = set(run)
        for tag in pending:
            if tag not in covered:  # done, but something older is not: acked on its own
                self._unsettled.pop(tag, None)  # (a tag never recorded is acked on its own too, as before)
                frames.append((tag, False))
        return frames

    async def _flush(self) -> None:
        try:
            while self._pending:
                pending, waiters = self._pending, self._waiters
                self._pending, self._waiters = [], []
                try:
                    for tag, multiple in self._frames(pending):
                        await guarded(self.channel, self.channel.basic_ack(tag, multiple=multiple))
                except BaseException as exc:
                    error = exc if isinstance(exc, Exception) else aiormq.exceptions.ChannelInvalidStateError(
                        f"{self.channel!r}: acks interrupted")
                    for waiter in waiters + self._waiters:
                        if not waiter.done():
                            waiter.set_exception(error)
                    self._pending, self._waiters = [], []
                    if not isinstance(exc, Exception):
                        raise
                    return
                for waiter in waiters:
                    if not waiter.done():  # a caller cancelled meanwhile has a cancelled future
                        waiter.set_result(None)
        finally:
            self._flushing = None
