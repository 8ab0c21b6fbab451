"""How many messages a sidecar holds at once: ``ASYA_PREFETCH``, or automatic from the handler's speed.

A sidecar holds more messages than the handler runs (``ASYA_CONCURRENCY``) so that receiving,
parsing, publishing and acking overlap the next handler call: for a fast handler this is most of
the throughput (docs/configuration.md). For a slow handler it buys nothing and costs fairness: a
message held by a busy replica is one a newly scaled replica cannot take. So by default the extra
messages cover about :data:`AUTO_WINDOW_SECONDS` of handler work, at least one and at most
``max(32, 4 x concurrency)`` held in all, from a moving average of the handler's call time. Until the
first call has been timed the sidecar holds one extra message.
"""

from __future__ import annotations

AUTO_WINDOW_SECONDS = 0.02  # handler time worth of messages held beyond the ones being handled
_SMOOTHING = 0.2  # weight of the newest call in the moving average


class HeldLimit:
    """The number of messages to hold now.

    Args:
        concurrency: Handler calls at once.
        prefetch: A fixed number (``ASYA_PREFETCH``); 0 for automatic.
    """

    def __init__(self, concurrency: int, prefetch: int = 0):
        self._concurrency, self._fixed = concurrency, prefetch
        self._most = prefetch or max(32, 4 * concurrency)
        self._average: float | None = None

    @property
    def most(self) -> int:
        """The largest value :attr:`current` can take."""
        return self._most

    def observe(self, seconds: float) -> None:
        """Feeds the duration of one handler call."""
        self._average = seconds if self._average is None else self._average + _SMOOTHING * (seconds - self._average)

    @property
    def current(self) -> int:
        """Messages to hold now: the fixed prefetch, or concurrency plus enough to cover the window."""
        if self._fixed:
            return self._fixed
        if self._average is None:
            return self._concurrency + 1
        extra = int(AUTO_WINDOW_SECONDS * self._concurrency / max(self._average, 1e-6))
        return min(self._concurrency + max(extra, 1), self._most)
