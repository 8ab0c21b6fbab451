"""Acks of one turn of the event loop leave as one ``basic.ack(multiple=True)`` where that is safe.

Without this every ack is its own ``basic.ack`` frame (a pamqp marshal, a trip through aiormq's write queue,
a ``send``), and on a quorum queue its own settle command in RabbitMQ. With concurrency and prefetch, several
messages of a consumer usually finish in the same turn (a batch of publisher confirms arrives in one read).

:class:`Acks` keeps, per consumer channel, the delivery tags received and not yet settled, in delivery order
(RabbitMQ numbers a channel's deliveries 1, 2, 3...). ``ack`` marks its tag done; the first ack of a loop turn
yields once and then sends, for every ack of that turn, ONE ``multiple=True`` ack for the longest run of done
tags from the OLDEST unsettled one, and a single ack for every other done tag: nothing waits for another message
to finish, and no Task is created. Acks that come while a batch is being sent form the next batch, sent by the
first of them. The frames go into aiormq's write queue without waiting for each write (``wait=False``): the
writer sends them in order. What keeps it safe:

* a tag is done only once ``ack`` was called for it, and a multiple ack ends at a done tag and covers only
  tags that are done or already settled: a message still being processed, held, or being returned
  (``nack`` in flight) stops the run, and so does a tag that never reached the consumer (a gap in the
  numbering, which should not happen; after one, no multiple ack crosses it);
* ``nack`` is sent at once and on its own, and its tag is forgotten only after its frame was written, so no
  multiple ack can reach the broker before it;
* one batch at a time per channel, so frames leave in the order they were decided;
* every caller of ``ack`` waits for the batch that carries its tag and gets its error: a closed channel raises
  ``ChannelInvalidStateError`` as before (also when it closes while a frame waits for room in the write
  queue); a closed channel takes its unsent acks with it (the broker requeues those messages). An ack whose
  caller is cancelled is still sent; a cancelled caller that was to send the next batch passes that on, and
  one cancelled while its batch waited for room in the write queue leaves the rest of the batch to a task.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from typing import Any

import aiormq.exceptions

from asya_common.transport._rabbitmq_guard import guarded

_LEAD = object()  # what a waiting ack is woken with when it is to send the next batch


class Acks:
    """The unsettled deliveries of one consumer channel, and the acks waiting for the next batch."""

    def __init__(self, channel: Any):
        self.channel = channel
        self._unsettled: dict[int, bool] = {}  # delivery tag -> done (ack called), in delivery order
        self._last = 0  # the highest tag delivered
        self._gap = math.inf  # the lowest tag that never reached the consumer: no multiple ack covers it
        self._pending: list[int] = []  # done, for the next batch
        self._waiters: list[asyncio.Future] = []  # callers of the next batch
        self._busy = False  # a batch is being sent; the next waits for it (one batch at a time)
        self._orphans: asyncio.Task | None = None

    def delivered(self, tag: int) -> None:
        """Records a delivery (called in delivery order, before anyone can settle it)."""
        if tag > self._last + 1:
            self._gap = min(self._gap, self._last + 1)
        self._last = max(self._last, tag)
        self._unsettled[tag] = False

    async def ack(self, tag: int) -> None:
        """Marks ``tag`` done and returns once the frame that acks it is in aiormq's write queue.

        The first caller of a loop turn leads: it yields once, so that every ack of this turn joins, and
        sends them; acks that come while it sends wait, and the first of them leads the next batch.

        Raises:
            aiormq.exceptions.ChannelInvalidStateError: The channel is closed, or closed while the frame
                waited for room in the write queue (the broker requeues the delivery).
        """
        if self.channel.is_closed:
            raise aiormq.exceptions.ChannelInvalidStateError(f"{self.channel!r} is closed")
        if tag in self._unsettled:
            self._unsettled[tag] = True
        self._pending.append(tag)
        if self._busy:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                role = await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled() and waiter.exception() is None and waiter.result() is _LEAD:
                    self._hand_off()  # cancelled after it was made the leader: pass the lead on
                raise
            if role is not _LEAD:
                return
        else:
            self._busy = True
            try:
                await asyncio.sleep(0)  # one loop turn: the acks of this turn join this batch
            except BaseException:
                self._hand_off()
                raise
        await self._send()

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

    async def _send(self) -> None:
        """Sends every pending ack (the caller leads), then passes the lead to a caller of the next batch."""
        pending, waiters = self._pending, self._waiters
        self._pending, self._waiters = [], []
        frames = self._frames(pending)
        try:
            await self._write(frames)
        except asyncio.CancelledError:
            # The caller's own cancel, while a frame waited for room in the write queue (so it is not queued):
            # a task sends the rest, then the next batch may go.
            self._orphans = asyncio.get_running_loop().create_task(self._finish(frames, waiters))
            raise
        except BaseException as exc:  # the channel is closed: every ack of this batch fails with it
            self._resolve(waiters, exc)
            self._hand_off()
            raise
        self._resolve(waiters, None)
        self._hand_off()

    async def _write(self, frames: list[tuple[int, bool]]) -> None:
        """Queues the frames in order (nothing waits unless the queue is full), removing each once it is queued."""
        while frames:
            tag, multiple = frames[0]
            await guarded(self.channel, self.channel.basic_ack(tag, multiple=multiple, wait=False))
            del frames[0]

    async def _finish(self, frames: list[tuple[int, bool]], waiters: list[asyncio.Future]) -> None:
        error: BaseException | None = None
        try:
            await self._write(frames)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting callers
            error = exc
        self._resolve(waiters, error)
        self._hand_off()

    def _resolve(self, waiters: list[asyncio.Future], error: BaseException | None) -> None:
        if error is not None and not isinstance(error, Exception):
            error = aiormq.exceptions.ChannelInvalidStateError(f"{self.channel!r}: acks interrupted")
        for waiter in waiters:
            if waiter.done():  # a caller cancelled meanwhile
                continue
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)

    def _hand_off(self) -> None:
        while self._waiters:
            waiter = self._waiters.pop(0)
            if not waiter.done():
                waiter.set_result(_LEAD)
                return
        if self._pending:  # only acks whose callers were cancelled while they waited: sent all the same
            self._orphans = asyncio.get_running_loop().create_task(self._send_orphans())
            return
        self._busy = False

    async def _send_orphans(self) -> None:
        with contextlib.suppress(Exception):
            await self._send()
