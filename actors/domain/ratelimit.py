"""Token-bucket pacing (pure; the caller passes the clock reading)."""
from __future__ import annotations


class TokenBucket:
    """``rate`` sends per second with bursts of up to ``burst``.

    :meth:`reserve` takes a token and returns how long to wait before using it (0 when one
    is available now), so a caller can schedule instead of sleeping.
    """

    def __init__(self, rate: float, burst: float = 1.0) -> None:
        if rate <= 0:
            raise ValueError("rate must be greater than 0")
        self.rate = rate
        self.burst = max(1.0, burst)
        self._tokens = self.burst
        self._updated: float | None = None

    def reserve(self, now: float) -> float:
        if self._updated is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate
