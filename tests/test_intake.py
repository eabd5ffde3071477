"""Group commit: concurrent submitters share store transactions, each gets its own results."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from actors.domain.models import Alert, IncidentType, Severity
from actors.intake import GroupCommit
from actors.domain.commands import AlertResult
from tests.support.waiting import wait_until


def alert(n: int) -> Alert:
    return Alert(f"a-{n}", "s", f"t{n}", "", Severity.P1, IncidentType.DATA)


def test_waiting_submitters_are_flushed_together_in_capped_batches_and_get_their_own_results():
    first_flush_entered, release = threading.Event(), threading.Event()
    flushes: list[list[str]] = []

    def flush(alerts):
        flushes.append([a.alert_id for a in alerts])
        if len(flushes) == 1:
            first_flush_entered.set()
            release.wait(10)
        return [AlertResult(a.alert_id, "inc-" + a.alert_id, False, True) for a in alerts]

    group = GroupCommit(flush, max_batch=4)
    with ThreadPoolExecutor(8) as pool:
        leader = pool.submit(group.submit, [alert(0)])
        assert first_flush_entered.wait(10)
        followers = [pool.submit(group.submit, [alert(n), alert(n + 100)]) for n in range(1, 7)]
        # all six are queued behind the leader (queuing announces itself to nobody: poll)
        wait_until(lambda: sum(len(a) for a, _ in group._pending) == 12, poll=0.001)
        release.set()
        results = [f.result(10) for f in followers]
    assert leader.result(10)[0].incident_id == "inc-a-0"
    assert [len(f) for f in flushes] == [1, 4, 4, 4]
    for n, result in zip(range(1, 7), results):
        assert [r.alert_id for r in result] == [f"a-{n}", f"a-{n + 100}"]


def test_a_failed_flush_fails_every_submitter_in_that_batch():
    def flush(alerts):
        raise RuntimeError("store is gone")

    with pytest.raises(RuntimeError, match="store is gone"):
        GroupCommit(flush).submit([alert(1)])
