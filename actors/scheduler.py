"""One timer thread for every actor's timers (retries, pacing, polls).

A thread per ``threading.Timer`` would not scale to thousands of pending retries; here a
single daemon thread keeps a heap of due callbacks. Callbacks must be quick and must not
raise (every one in this project only tells an actor a message, so actor state changes in
the actor's own thread); one that raises is logged and skipped.

A cancelled timer leaves the heap soon, not when it would have been due: cancelled entries
are counted, and once they are more than half of the heap it is rebuilt without them (each
cancel costs O(1) amortised), so cancelling many far-future retries frees them at once.
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

    __slots__ = ("due", "callback", "cancelled", "taken", "_scheduler")

    def __init__(self, due: float, callback: Callable[[], None], scheduler: "Scheduler") -> None:
        self.due = due
        self.callback = callback
        self.cancelled = False
        self.taken = False  # out of the heap: running or run
        self._scheduler = scheduler

    def cancel(self) -> None:
        self._scheduler._cancel(self)


class Scheduler:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, TimerHandle]] = []
        self._cancelled_in_heap = 0
        self._counter = itertools.count()
        self._wakeup = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="scheduler", daemon=True)
        self._thread.start()

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        handle = TimerHandle(time.monotonic() + max(0.0, delay), callback, self)
        with self._wakeup:
            heapq.heappush(self._heap, (handle.due, next(self._counter), handle))
            self._wakeup.notify()
        return handle

    @property
    def held(self) -> int:
        """Timers in the heap: those pending plus cancelled ones not yet swept out."""
        with self._wakeup:
            return len(self._heap)

    def stop(self) -> None:
        """Stop the thread; callbacks not yet due never run."""
        with self._wakeup:
            self._stopped = True
            self._wakeup.notify()
        self._thread.join(timeout=5)

    def _cancel(self, handle: TimerHandle) -> None:
        with self._wakeup:
            if handle.cancelled:
                return
            handle.cancelled = True
            if handle.taken:
                return  # no longer in the heap
            self._cancelled_in_heap += 1
            if self._cancelled_in_heap * 2 > len(self._heap):
                self._heap = [entry for entry in self._heap if not entry[2].cancelled]
                heapq.heapify(self._heap)
                self._cancelled_in_heap = 0
                self._wakeup.notify()  # the earliest entry may have changed

    def _run(self) -> None:
        while True:
            with self._wakeup:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._wakeup.wait(timeout)
                if self._stopped:
                    return
                _, _, handle = heapq.heappop(self._heap)
                handle.taken = True
                if handle.cancelled:
                    self._cancelled_in_heap -= 1
                    continue
            try:
                handle.callback()
            except Exception:  # a timer callback bug must not kill every other timer
                log.exception("timer_callback_failed")
