"""Retry policy: exponential backoff with full jitter, Retry-After honoured, capped."""
from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``max_retries`` retries after the first attempt, then the delivery is dead.

    The delay before retry *n* (1-based) is uniform in ``[0, min(cap, base * 2**(n-1))]``
    (full jitter); a destination's Retry-After is a floor, clamped to ``max_retry_after_secs``.
    """

    max_retries: int = 3
    base_secs: float = 5.0
    cap_secs: float = 300.0
    max_retry_after_secs: float = 3600.0

    def gives_up_after(self, attempt: int) -> bool:
        """True when attempt number ``attempt`` (1-based) was the last one allowed."""
        return attempt > self.max_retries

    def delay(self, attempt: int, retry_after: float | None = None,
              rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt ``attempt`` before the next one."""
        ceiling = min(self.cap_secs, self.base_secs * (2 ** (attempt - 1)))
        backoff = (rng or random).uniform(0.0, ceiling)
        if retry_after is None:
            return backoff
        return max(min(retry_after, self.max_retry_after_secs), backoff)
