"""Polling with a deadline, for state that no event announces (restart counts, liveness)."""
from __future__ import annotations

import threading
from typing import Callable

TIMEOUT = 10.0


def wait_until(predicate: Callable[[], bool], timeout: float = TIMEOUT, poll: float = 0.01) -> None:
    """Return once ``predicate()`` is true; raise AssertionError after ``timeout`` seconds."""
    tick = threading.Event()  # never set: waited on to pause between polls
    for _ in range(max(1, int(timeout / poll))):
        if predicate():
            return
        tick.wait(poll)
    raise AssertionError("condition not reached in time")
