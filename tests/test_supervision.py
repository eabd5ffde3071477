"""Supervision: every way an actor dies is noticed, it is replaced, and no work is lost."""
from __future__ import annotations

import threading

import pykka
import structlog.testing
import pytest

from actors.domain.errors import ConfigError, Unavailable
from actors.domain.models import Alert, IncidentType, ResolutionMethod, Severity
from actors.domain.commands import ResolveIncident
from tests.support.http_receiver import HttpReceiver, Recorded, Reply
from tests.support.server import TIMEOUT, make_settings
from actors.engine import Engine
from tests.support.waiting import wait_until


def settings(tmp_path, url: str, max_restarts: int = 10):
    return make_settings(tmp_path, notifications={"webhook_enabled": True, "default_webhook_url": url,
                                                  "worker_threads": 1, "retry_backoff_secs": 0.05},
                         supervision={"max_restarts": max_restarts, "within_secs": 30})


def alert(n: int) -> Alert:
    return Alert(f"a-{n}", "sentinel", f"title {n}", "", Severity.P1, IncidentType.APPLICATION)


def status(engine: Engine, name: str):
    return next(s for s in engine.actor_statuses() if s.name == name)


def test_a_sender_that_crashes_on_a_delivery_is_replaced_and_the_delivery_is_recovered(tmp_path):
    with HttpReceiver() as rx, Engine(settings(tmp_path, rx.url)) as engine:
        engine.faults.crash_next_message("sender:webhook:0")
        result = engine.submit_alert(alert(1))
        body = rx.wait_for(1)[0].json()
        wait_until(lambda: status(engine, "sender:webhook:0").restarts == 1)
        assert body["incident"]["id"] == result.incident_id
        assert "injected crash" in status(engine, "sender:webhook:0").last_failure
        engine.submit_alert(alert(2))
        rx.wait_for(2)
    assert len(rx.requests) == 2


def test_a_failing_on_start_is_detected_and_retried(tmp_path):
    with HttpReceiver() as rx, Engine(settings(tmp_path, rx.url)) as engine:
        engine.faults.crash_on_start("sender:webhook:0")
        engine.faults.crash_next_message("sender:webhook:0")
        engine.submit_alert(alert(1))
        rx.wait_for(1)
        wait_until(lambda: status(engine, "sender:webhook:0").restarts == 2)
        assert status(engine, "sender:webhook:0").alive
        assert engine.faults.injected_crashes == 2


def test_an_actor_stopped_from_outside_is_restarted_with_a_new_ref(tmp_path):
    with HttpReceiver() as rx, Engine(settings(tmp_path, rx.url)) as engine:
        old = engine.directory.get("router")
        old.stop()
        wait_until(lambda: engine.directory.lookup("router") not in (None, old))
        engine.submit_alert(alert(1))
        rx.wait_for(1)
        assert status(engine, "router").restarts == 1
        assert status(engine, "processor").restarts == 0  # one_for_one: intake never noticed
        assert status(engine, "sender:webhook:0").restarts == 0


def test_a_crashed_processor_answers_unavailable_then_recovers(tmp_path):
    with HttpReceiver() as rx, Engine(settings(tmp_path, rx.url)) as engine:
        engine.directory.get("processor").tell("not a command")  # an unexpected message is only logged
        engine.faults.crash_next_message("processor")
        engine.directory.get("processor").tell("boom")
        wait_until(lambda: status(engine, "processor").restarts == 1)
        assert engine.submit_alert(alert(1)).new_incident
        rx.wait_for(1)


def test_exceeding_the_restart_intensity_escalates_to_the_top(tmp_path):
    with HttpReceiver() as rx:
        engine = Engine(settings(tmp_path, rx.url, max_restarts=2)).start()
        try:
            for _ in range(3):
                engine.faults.crash_next_message("router")
                router = engine.directory.get("router")
                router.tell("crash")
                wait_until(lambda: engine.failed.is_set() or engine.directory.lookup("router") not in (None, router))
            assert engine.failed.wait(TIMEOUT)
            assert "more than 2 restarts" in engine.failure_reason
            assert not engine.accepting
        finally:
            engine.stop(grace_secs=0)
    assert not [ref for ref in pykka.ActorRegistry.get_all() if ref.is_alive()]


def test_a_start_that_fails_on_a_missing_secret_leaves_nothing_running(tmp_path):
    broken = make_settings(tmp_path, notifications={"pagerduty_enabled": True,
                                                    "pagerduty_integration_key_env": "UNSET_PD_KEY"})
    with pytest.raises(ConfigError, match="UNSET_PD_KEY"):
        Engine(broken, environ={}).start()
    assert not pykka.ActorRegistry.get_all()


def test_a_crash_injected_into_an_asked_message_crashes_the_actor_and_the_asker_sees_it_restarting(tmp_path):
    with HttpReceiver() as rx, Engine(settings(tmp_path, rx.url)) as engine:
        engine.faults.crash_next_message("processor")
        with pytest.raises(Unavailable):
            engine.submit_alert(alert(1))
        wait_until(lambda: status(engine, "processor").restarts == 1 and status(engine, "processor").alive)
        assert engine.submit_alert(alert(1)).new_incident  # the crashed attempt recorded nothing
        engine.faults.crash_next_message("router")
        assert engine.stats().in_flight == {}  # its InFlightCounts ask hit the crash
        wait_until(lambda: status(engine, "router").restarts == 1 and status(engine, "router").alive)
        assert status(engine, "processor").restarts == 1 and engine.faults.injected_crashes == 2
        rx.wait_for(1)


def test_after_a_router_restart_what_a_sender_still_holds_is_not_sent_again(tmp_path):
    """The new router re-leases every owed delivery, including those a sender holds in its
    mailbox or on a retry timer; the sender must not act on those twice (a repeated trigger
    could even arrive after its resolve)."""
    entered, release = threading.Event(), threading.Event()

    def respond(request: Recorded) -> Reply:
        title, event = request.json()["incident"]["title"], request.json()["event_type"]
        if title == "title 1":
            entered.set()
            release.wait(TIMEOUT)  # holds the only sender while deliveries queue up behind it
        elif (title, event) == ("title 2", "incident.detected") and len(rx.requests) == 1:
            return Reply(503, "busy", {"Retry-After": "0"})
        return Reply()

    with HttpReceiver(respond) as rx, Engine(settings(tmp_path, rx.url)) as engine:
        engine.submit_alert(alert(1))
        assert entered.wait(TIMEOUT)
        incident = engine.submit_alert(alert(2)).incident_id
        wait_until(lambda: engine.stats().in_flight.get("webhook") == (2, 0))
        engine.resolve(ResolveIncident(incident, "ana", ResolutionMethod.MANUAL))  # owed behind its trigger
        old = engine.directory.get("router")
        engine.faults.crash_next_message("router")
        old.tell("crash")
        wait_until(lambda: engine.directory.lookup("router") not in (None, old)
                   and engine.stats().in_flight.get("webhook") == (2, 0))  # the new router re-sent both
        release.set()
        wait_until(lambda: len(engine.notifications(status="delivered")[0]) == 3)
    seen = [(r.json()["incident"]["title"], r.json()["event_type"]) for r in rx.requests]
    assert seen == [("title 1", "incident.detected"), ("title 2", "incident.detected"),
                    ("title 2", "incident.detected"), ("title 2", "incident.resolved")]


def test_the_engine_notices_when_its_whole_tree_is_stopped_from_outside(tmp_path):
    with HttpReceiver() as rx, Engine(settings(tmp_path, rx.url)) as engine:
        pykka.ActorRegistry.stop_all(block=True, timeout=TIMEOUT)
        assert engine.failed.wait(TIMEOUT)
        assert "top supervisor stopped" in engine.failure_reason
        assert not engine.accepting


def test_a_normal_stop_is_not_a_failure(tmp_path):
    with HttpReceiver() as rx:
        engine = Engine(settings(tmp_path, rx.url)).start()
        engine.stop(grace_secs=0)
    assert not engine.failed.is_set()


def test_a_crash_while_sending_is_logged_with_the_incident_and_notification_ids(tmp_path):
    with structlog.testing.capture_logs() as logs:
        with HttpReceiver() as rx, Engine(settings(tmp_path, rx.url)) as engine:
            engine.faults.crash_next_message("sender:webhook:0")
            result = engine.submit_alert(alert(1))
            rx.wait_for(1)
    (crash,) = [line for line in logs if line["event"] == "actor_exited" and line["abnormal"]]
    assert crash["incident_id"] == result.incident_id and crash["notification_id"]
    assert crash["actor"] == "sender:webhook:0" and crash["log_level"] == "error"


def test_start_returns_only_once_every_actor_has_finished_starting(tmp_path):
    """A sender's start-up (its worker process coming up, say) is part of the engine's start:
    the first delivery never waits for it."""
    from actors.domain.models import Outcome
    entered, release, returned = threading.Event(), threading.Event(), threading.Event()

    class SlowToOpen:
        name, destinations, needs_state = "webhook", ("default",), False

        def open(self) -> None:
            entered.set()
            release.wait(TIMEOUT)

        def deliver(self, delivery):
            return Outcome.delivered("HTTP 200", 200)

        def close(self) -> None:
            pass

    engine = Engine(settings(tmp_path, "http://127.0.0.1:9"), channel_factory=lambda name: SlowToOpen())
    starting = threading.Thread(target=lambda: (engine.start(), returned.set()))
    starting.start()
    try:
        assert entered.wait(TIMEOUT)
        assert not returned.wait(0.3)  # a sender is still in its start-up
        release.set()
        assert returned.wait(TIMEOUT)
    finally:
        release.set()
        starting.join(TIMEOUT)
        engine.stop(grace_secs=0)
