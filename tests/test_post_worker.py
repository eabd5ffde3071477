"""Webhook sends in worker processes: pipelined in order, and a worker that dies or hangs is a
supervised failure that loses nothing (actors/channels/post_worker.py)."""
from __future__ import annotations

import os
import signal
import threading
from collections import Counter
from concurrent.futures import Future

from actors.channels.keepalive import Reply as HttpReply
from actors.channels.post_worker import ProcessPoster, WorkerDied
from actors.domain.models import Alert, IncidentType, Severity
from actors.engine import Engine
from actors.sender import PIPELINE_DEPTH
from tests.support.http_receiver import HttpReceiver, Recorded, Reply
from tests.support.server import TIMEOUT, make_settings
from tests.support.waiting import wait_until


def worker_pids() -> set[int]:
    """This test process's webhook worker processes."""
    pids = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat, open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
                command = cmdline.read()
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
        if parent == os.getpid() and b"actors.channels.post_worker" in command:
            pids.add(int(entry))
    return pids


def test_answers_come_back_in_order_while_later_requests_are_already_queued():
    arrived: list[bytes] = []

    def respond(request: Recorded) -> Reply:
        arrived.append(request.body)
        return Reply(200, request.body)

    with HttpReceiver(respond) as rx:
        poster = ProcessPoster([rx.url + "/hook"], timeout=5)
        answers: list[Future] = [Future() for _ in range(20)]
        try:
            for n, answer in enumerate(answers):  # none of these waits for an answer
                poster.submit(f"body {n}".encode(), {"Content-Type": "text/plain"}, answer.set_result)
                if n % 7 == 6:
                    poster.flush()  # several requests in one write, and several writes
            poster.flush()
            replies = [answer.result(TIMEOUT) for answer in answers]
        finally:
            poster.close()
    assert [r.text for r in replies] == [f"body {n}" for n in range(20)]
    assert all(isinstance(r, HttpReply) and r.status == 200 for r in replies)


def test_the_answers_of_one_batch_come_back_together_when_held_long_enough(monkeypatch):
    import actors.channels.post_worker as post_worker
    frames: list[int] = []
    real_loads = post_worker.pickle.loads

    def counting_loads(data: bytes):
        loaded = real_loads(data)
        if isinstance(loaded, list):  # a frame of answers, as the reader thread unpickles it
            frames.append(len(loaded))
        return loaded

    monkeypatch.setattr(post_worker.pickle, "loads", counting_loads)
    with HttpReceiver() as rx:
        for hold, expected in ((60.0, [8]), (0.0, [1] * 8)):
            frames.clear()
            poster = ProcessPoster([rx.url + "/hook"], timeout=5, answer_hold=hold)
            answers: list[Future] = [Future() for _ in range(8)]
            try:
                for n, answer in enumerate(answers):
                    poster.submit(f"body {n}".encode(), {}, answer.set_result)
                poster.flush()  # one batch of eight
                assert all(isinstance(answer.result(TIMEOUT), HttpReply) for answer in answers)
            finally:
                poster.close()
            assert frames == expected, hold


def test_the_url_never_appears_on_the_worker_command_line():
    with HttpReceiver() as rx:
        url = rx.url + "/secret-path-0123456789"
        poster = ProcessPoster([url], timeout=5, secrets=[url])
        try:
            poster.open()
            with open(f"/proc/{poster.pid}/cmdline", "rb") as cmdline:
                assert b"secret-path" not in cmdline.read()
        finally:
            poster.close()


def test_a_killed_worker_answers_every_pending_request_with_worker_died():
    entered, release = threading.Event(), threading.Event()

    def respond(request: Recorded) -> Reply:
        entered.set()
        release.wait(TIMEOUT)
        return Reply()

    with HttpReceiver(respond) as rx:
        poster = ProcessPoster([rx.url + "/hook"], timeout=5)
        answers: list[Future] = [Future() for _ in range(3)]
        try:
            for answer in answers:
                poster.submit(b"{}", {}, answer.set_result)
            poster.flush()
            assert entered.wait(TIMEOUT)
            pid = poster.pid
            os.kill(pid, signal.SIGKILL)
            died = [answer.result(TIMEOUT) for answer in answers]
        finally:
            release.set()
            poster.close()
    assert all(isinstance(d, WorkerDied) and f"process {pid} exited with -9" in str(d) for d in died)


def test_a_replaced_worker_whose_reader_finds_out_late_answers_only_its_own_requests(monkeypatch):
    import actors.channels.post_worker as post_worker
    replaced, noticing = threading.Event(), threading.Event()
    real_how_it_ended = post_worker._how_it_ended

    def slow_to_notice(proc, error):  # the old reader, held until the new worker is serving
        noticing.set()
        assert replaced.wait(TIMEOUT)
        return real_how_it_ended(proc, error)

    monkeypatch.setattr(post_worker, "_how_it_ended", slow_to_notice)
    with HttpReceiver() as rx:
        poster = ProcessPoster([rx.url + "/hook"], timeout=5)
        old, new = Future(), Future()
        try:
            poster.open()
            poster.submit(b"old", {}, old.set_result)  # never flushed: the close ends it unsent
            poster.close()
            assert noticing.wait(TIMEOUT)
            poster.submit(b"new", {}, new.set_result)  # starts the replacement
            poster.flush()
            replaced.set()
            assert isinstance(old.result(TIMEOUT), WorkerDied)
            assert isinstance(new.result(TIMEOUT), HttpReply) and new.result().status == 200
        finally:
            replaced.set()
            poster.close()
    assert [r.body for r in rx.requests] == [b"new"]


def test_a_worker_silent_past_its_timeout_is_ended_and_its_requests_fail():
    with HttpReceiver() as rx:
        poster = ProcessPoster([rx.url + "/hook"], timeout=0.2, answer_margin=0.3)
        answer: Future = Future()
        try:
            poster.open()
            os.kill(poster.pid, signal.SIGSTOP)  # alive, but answers nothing
            poster.submit(b"{}", {}, answer.set_result)
            poster.flush()
            died = answer.result(TIMEOUT)
        finally:
            poster.close()
    assert isinstance(died, WorkerDied)


def test_a_worker_killed_mid_burst_is_a_restart_and_every_notification_arrives_with_its_id(tmp_path):
    gate = threading.Semaphore(0)

    def respond(request: Recorded) -> Reply:
        gate.acquire(timeout=TIMEOUT)  # the test lets requests through a few at a time
        return Reply()

    count = 120
    with HttpReceiver(respond) as rx:
        settings = make_settings(tmp_path, notifications={"webhook_enabled": True, "worker_threads": 2,
                                                          "default_webhook_url": rx.url + "/hook"})
        with Engine(settings) as engine:
            results = engine.submit_alerts([Alert(f"a-{n}", "sentinel", f"alert {n}", "", Severity.P2,
                                                  IncidentType.DATA) for n in range(count)])
            for _ in range(10):
                gate.release()
            wait_until(lambda: len(rx.requests) >= 10)
            (victim, *_) = sorted(worker_pids())
            os.kill(victim, signal.SIGKILL)
            for _ in range(3 * count):
                gate.release()
            wait_until(lambda: len({r.json()["notification_id"] for r in list(rx.requests)}) == count)
            senders = [s for s in engine.actor_statuses() if s.name.startswith("sender:")]
    by_incident = {}
    for request in rx.requests:
        body = request.json()
        by_incident.setdefault(body["incident"]["id"], set()).add(body["notification_id"])
    assert set(by_incident) == {r.incident_id for r in results}
    assert all(len(ids) == 1 for ids in by_incident.values())  # a repeat carries the same id
    sends = Counter(r.json()["notification_id"] for r in rx.requests)
    assert sum(n - 1 for n in sends.values()) <= PIPELINE_DEPTH  # what was in the dead worker's pipe, at most
    (restarted,) = [s for s in senders if s.restarts]  # shown in GetStats' actors
    assert restarted.restarts == 1 and f"webhook worker process {victim} exited with -9" in restarted.last_failure
