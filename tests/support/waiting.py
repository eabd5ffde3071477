"""Polling with a deadline, for state that no event announces (restart counts, liveness)."""
from __future__ import annotations

import time
from typing import Callable

TIMEOUT = 10.0


def wait_until(predicate: Callable[[], bool], timeout: float = TIMEOUT, poll: float = 0.01) -> None:
    """Return once ``predicate()`` is true; raise AssertionError after ``timeout`` seconds.

    Polls every ``poll`` seconds: this helper exists to poll, so its pause is a plain sleep."""
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError("condition not reached in time")
        time.sleep(poll)
