"""Delay before retry attempt N under the actor's policy: exponential or constant, capped, jittered."""

from __future__ import annotations

import random

from asya_sidecar.settings import RetryPolicy


def retry_delay(policy: RetryPolicy, failed_attempt: int, rng: random.Random | None = None) -> float:
    """Seconds to wait after ``failed_attempt`` (1-based) before the next attempt.

    Exponential: ``initial * 2 ** (failed_attempt - 1)`` capped at ``max_interval``; constant:
    ``initial``. Then spread by +/- ``jitter`` so retries of many messages do not arrive in lockstep,
    never above ``max_interval``.
    """
    base = policy.initial_interval
    if policy.backoff == "exponential":
        base = policy.initial_interval * (2 ** max(0, failed_attempt - 1))
    base = min(base, policy.max_interval)
    spread = (rng or random).uniform(-policy.jitter, policy.jitter) if policy.jitter else 0.0
    return max(0.0, min(policy.max_interval, base * (1 + spread)))
