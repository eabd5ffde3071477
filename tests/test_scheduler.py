"""The shared timer thread: due callbacks run, cancelled ones never run and leave at once."""
from __future__ import annotations

import threading

import pytest

from actors.scheduler import Scheduler

TIMEOUT = 10.0


@pytest.fixture
def scheduler():
    scheduler = Scheduler()
    yield scheduler
    scheduler.stop()


def test_cancelled_far_future_timers_leave_the_heap_at_once(scheduler):
    handles = [scheduler.call_later(3600, lambda: None) for _ in range(10_000)]
    assert scheduler.held == 10_000
    for handle in handles:
        handle.cancel()
    assert scheduler.held == 0


def test_a_cancelled_timer_never_runs_and_the_others_still_do(scheduler):
    ran: list[int] = []
    done = threading.Event()
    keep = scheduler.call_later(0.05, lambda: (ran.append(1), done.set()))
    dropped = [scheduler.call_later(0.01, lambda: ran.append(0)) for _ in range(5)]
    for handle in dropped:
        handle.cancel()
    assert done.wait(TIMEOUT)
    assert ran == [1] and scheduler.held == 0
    keep.cancel()  # after it ran: nothing to do, nothing miscounted
    late = threading.Event()
    scheduler.call_later(0, late.set)
    assert late.wait(TIMEOUT)
