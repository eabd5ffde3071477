"""The Supervisor on its own: start/stop order, strategies, restart types, intensity."""
from __future__ import annotations

import threading

import pykka
import pytest
import structlog

from actors import supervision
from actors.directory import ActorDirectory
from actors.domain.errors import StoreUnavailable
from actors.supervision import ChildSpec, GetStatus, Restart, Strategy, SupervisedActor, Supervisor, outage_backoff
from tests.support.waiting import wait_until

TIMEOUT = 10.0


class Worker(SupervisedActor):
    """Records its starts and stops in a shared journal; "crash" raises."""

    def __init__(self, supervisor, name, journal):
        super().__init__(supervisor, name)
        self.journal = journal

    def started(self):
        self.journal.append(("start", self.name))

    def cleanup(self):
        self.journal.append(("stop", self.name))

    def receive(self, message):
        if message == "crash":
            raise RuntimeError("boom")
        return super().receive(message)


@pytest.fixture
def tree():
    directory = ActorDirectory()
    journal: list[tuple[str, str]] = []
    escalated = threading.Event()
    refs = []

    def make(strategy: Strategy, restarts=(Restart.PERMANENT,) * 3, max_restarts: int = 5):
        specs = [ChildSpec(name, lambda parent, n: Worker.start(parent, n, journal), restart)
                 for name, restart in zip(("a", "b", "c"), restarts)]
        top = Supervisor.start(None, "top", specs, strategy, max_restarts, 30, directory,
                               on_escalate=lambda reason: escalated.set())
        refs.append(top)
        wait_until(lambda: len(journal) == 3 and all(directory.lookup(name) for name in "abc"))
        return top

    yield make, directory, journal, escalated
    for ref in refs:
        if ref.is_alive():
            ref.stop(block=True, timeout=TIMEOUT)


def crash(directory: ActorDirectory, name: str) -> pykka.ActorRef:
    old = directory.get(name)
    old.tell("crash")
    return old


def test_children_start_in_order_and_stop_in_reverse(tree):
    make, _, journal, _ = tree
    top = make(Strategy.ONE_FOR_ONE)
    top.stop(block=True, timeout=TIMEOUT)
    assert journal == [("start", "a"), ("start", "b"), ("start", "c"),
                       ("stop", "c"), ("stop", "b"), ("stop", "a")]


@pytest.mark.parametrize("strategy, restarted", [
    (Strategy.ONE_FOR_ONE, ["b"]),
    (Strategy.ONE_FOR_ALL, ["a", "b", "c"]),
    (Strategy.REST_FOR_ONE, ["b", "c"]),
])
def test_each_strategy_restarts_exactly_its_set_of_children(tree, strategy, restarted):
    make, directory, journal, _ = tree
    make(strategy)
    journal.clear()
    old = crash(directory, "b")
    wait_until(lambda: directory.lookup("b") not in (None, old) and
               sum(1 for event, _ in journal if event == "start") == len(restarted))
    assert sorted(name for event, name in journal if event == "start") == restarted


@pytest.mark.parametrize("restart, crashed_is_restarted, stopped_is_restarted", [
    (Restart.PERMANENT, True, True),
    (Restart.TRANSIENT, True, False),
    (Restart.TEMPORARY, False, False),
])
def test_restart_types(tree, restart, crashed_is_restarted, stopped_is_restarted):
    make, directory, journal, _ = tree
    make(Strategy.ONE_FOR_ONE, restarts=(restart, restart, Restart.PERMANENT))
    old_a = crash(directory, "a")
    old_b = directory.get("b")
    old_b.stop(block=True, timeout=TIMEOUT)
    old_c = crash(directory, "c")  # a permanent child: its restart proves the reports were handled
    wait_until(lambda: directory.lookup("c") not in (None, old_c))
    assert (directory.lookup("a") not in (None, old_a)) is crashed_is_restarted
    assert (directory.lookup("b") not in (None, old_b)) is stopped_is_restarted


def test_too_many_restarts_stop_every_child_and_escalate(tree):
    make, directory, journal, escalated = tree
    make(Strategy.ONE_FOR_ONE, max_restarts=2)
    for _ in range(3):
        old = crash(directory, "a")
        wait_until(lambda: escalated.is_set() or directory.lookup("a") not in (None, old))
    assert escalated.wait(TIMEOUT)
    wait_until(lambda: not any(ref.is_alive() for ref in pykka.ActorRegistry.get_all()))


class Exiting(Worker):
    """A worker whose handler raises SystemExit on "exit": no Exception, so pykka would stop
    every actor of the process; here only this one ends, as a crash."""

    def receive(self, message):
        if message == "exit":
            raise SystemExit("bye")
        return super().receive(message)


@pytest.mark.parametrize("asked", [False, True])
def test_a_base_exception_in_a_handler_restarts_only_that_child(asked):
    directory, journal = ActorDirectory(), []
    specs = [ChildSpec(name, lambda parent, n: Exiting.start(parent, n, journal)) for name in "abc"]
    top = Supervisor.start(None, "top", specs, Strategy.ONE_FOR_ONE, 5, 30, directory)
    try:
        wait_until(lambda: all(directory.lookup(name) for name in "abc"))
        before = {name: directory.get(name) for name in "abc"}
        if asked:
            with pytest.raises(pykka.ActorDeadError, match="SystemExit"):
                before["b"].ask("exit", timeout=TIMEOUT)
        else:
            before["b"].tell("exit")
        wait_until(lambda: directory.lookup("b") not in (None, before["b"]))
        status = {s.name: s for s in top.ask(GetStatus(), timeout=TIMEOUT)}
        assert status["b"].restarts == 1 and "SystemExit('bye')" in status["b"].last_failure
        assert ("stop", "b") in journal  # its clean-up ran
        assert directory.get("a") is before["a"] and directory.get("c") is before["c"]
        assert all(s.alive for s in status.values()) and top.is_alive()
    finally:
        top.stop(block=True, timeout=TIMEOUT)


class InterruptedOnce(Worker):
    """A worker whose first start raises KeyboardInterrupt, which passes pykka's start
    handling (it catches Exception only) and ends the thread with no report of its own."""

    interrupted = threading.Event()

    def started(self):
        if not self.interrupted.is_set():
            self.interrupted.set()
            raise KeyboardInterrupt
        super().started()


def test_a_thread_ended_by_a_base_exception_in_start_is_reported_and_restarted():
    directory, journal = ActorDirectory(), []
    InterruptedOnce.interrupted.clear()
    top = Supervisor.start(None, "top", [ChildSpec("a", lambda parent, n: InterruptedOnce.start(parent, n, journal))],
                           Strategy.ONE_FOR_ONE, 5, 30, directory)
    try:
        # nothing polls: the dying thread itself reports (there is no liveness timer to notice it)
        wait_until(lambda: top.ask(GetStatus(), timeout=TIMEOUT)[0].restarts == 1)
        status = top.ask(GetStatus(), timeout=TIMEOUT)[0]
        assert status.alive and "KeyboardInterrupt" in status.last_failure
        assert journal == [("start", "a")]
    finally:
        top.stop(block=True, timeout=TIMEOUT)


# -- the store's outage ---------------------------------------------------------------------
class StoreDown(Worker):
    """A worker that ends by StoreUnavailable while ``outage`` is set: on "store" and in start."""

    def __init__(self, supervisor, name, journal, outage):
        super().__init__(supervisor, name, journal)
        self.outage = outage

    def started(self):
        super().started()
        if self.outage.is_set():
            raise StoreUnavailable("the store's database cannot be reached")

    def receive(self, message):
        if message == "store" and self.outage.is_set():
            raise StoreUnavailable("the store's database cannot be reached")
        return super().receive(message)


@pytest.fixture
def quick_outage_backoff(monkeypatch):
    monkeypatch.setattr(supervision, "OUTAGE_BACKOFF_SECS", 0.01)
    monkeypatch.setattr(supervision, "OUTAGE_BACKOFF_MAX_SECS", 0.05)


def test_the_wait_after_an_outage_doubles_up_to_its_cap():
    waits = [outage_backoff(tries) for tries in range(8)] + [outage_backoff(10_000)]
    assert waits[:3] == [supervision.OUTAGE_BACKOFF_SECS * 2 ** n for n in range(3)]
    assert waits == sorted(waits) and waits[-1] == supervision.OUTAGE_BACKOFF_MAX_SECS


def test_exits_by_an_unreachable_store_never_escalate_and_the_child_runs_again_once_it_is_back(
        quick_outage_backoff):
    directory, journal, escalated, outage = ActorDirectory(), [], threading.Event(), threading.Event()
    specs = [ChildSpec("a", lambda parent, n: StoreDown.start(parent, n, journal, outage))]
    top = Supervisor.start(None, "top", specs, Strategy.ONE_FOR_ONE, 1, 30, directory,
                           on_escalate=lambda reason: escalated.set())
    try:
        wait_until(lambda: directory.lookup("a") is not None)
        with structlog.testing.capture_logs() as logs:
            outage.set()
            directory.get("a").tell("store")
            wait_until(lambda: journal.count(("start", "a")) >= 6)  # five failed restarts: max_restarts is 1
            [status] = top.ask(GetStatus())
            assert "waiting for the store" in status.last_failure and not escalated.is_set()
            outage.clear()
            wait_until(lambda: directory.lookup("a") is not None and directory.lookup("a").is_alive())
        assert directory.get("a").ask("ping") is None  # it runs: an unexpected message is only logged
        waiting = [entry for entry in logs if entry["event"] == "actor_waiting_for_store"]
        assert [entry["log_level"] for entry in waiting[:2]] == ["warning", "debug"]  # once per outage
        assert not [entry for entry in logs if entry["event"] == "actor_exited"]
        crash(directory, "a")  # a crash of its own still counts toward the intensity
        wait_until(lambda: journal.count(("start", "a")) >= 8)
        crash(directory, "a")
        assert escalated.wait(TIMEOUT)
    finally:
        top.stop(block=True, timeout=TIMEOUT)
