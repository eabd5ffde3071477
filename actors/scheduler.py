"""One timer thread for every actor's timers (retries, pacing, polls).

A thread per ``threading.Timer`` would not scale to thousands of pending retries; here a
single daemon thread keeps a heap of due callbacks. Callbacks must be quick and must not
raise (they typically ``tell`` an actor); one that raises is logged and skipped.
"""
from __future__ import annotations

import heapq
import itertools
import threading
import time
from typing import Callable

import structlog

log = structlog.get_logger(__name__)


class TimerHandle:
    """A scheduled callback; ``cancel()`` makes it a no-op if it has not run yet."""

    __slots__ = ("due", "callback", "cancelled")

    def __init__(self, due: float, callback: Callable[[], None]) -> None:
        self.due = due
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Scheduler:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, TimerHandle]] = []
        self._counter = itertools.count()
        self._wakeup = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="scheduler", daemon=True)
        self._thread.start()

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        handle = TimerHandle(time.monotonic() + max(0.0, delay), callback)
        with self._wakeup:
            heapq.heappush(self._heap, (handle.due, next(self._counter), handle))
            self._wakeup.notify()
        return handle

    def stop(self) -> None:
        """Stop the thread; callbacks not yet due never run."""
        with self._wakeup:
            self._stopped = True
            self._wakeup.notify()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._wakeup:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._wakeup.wait(timeout)
                if self._stopped:
                    return
                _, _, handle = heapq.heappop(self._heap)
            if handle.cancelled:
                continue
            try:
                handle.callback()
            except Exception:  # a timer callback bug must not kill every other timer
                log.exception("timer_callback_failed")
