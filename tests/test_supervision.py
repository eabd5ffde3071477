"""Supervision: every way an actor dies is noticed, it is replaced, and no work is lost."""
from __future__ import annotations

import threading

import pykka
import pytest

from actors.domain.errors import ConfigError
from actors.domain.models import Alert, IncidentType, Severity
from tests.support.http_receiver import HttpReceiver
from tests.support.server import TIMEOUT, make_settings
from actors.engine import Engine


def settings(tmp_path, url: str, max_restarts: int = 10):
    return make_settings(tmp_path, notifications={"webhook_enabled": True, "default_webhook_url": url,
                                                  "worker_threads": 1, "retry_backoff_secs": 0.05},
                         supervision={"max_restarts": max_restarts, "within_secs": 30})


def alert(n: int) -> Alert:
    return Alert(f"a-{n}", "sentinel", f"title {n}", "", Severity.P1, IncidentType.APPLICATION)


def status(engine: Engine, name: str):
    return next(s for s in engine.actor_statuses() if s.name == name)


def wait_until(predicate, timeout: float = TIMEOUT) -> None:
    tick = threading.Event()
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return
        tick.wait(0.02)
    raise AssertionError("condition not reached in time")


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
        engine.submit_alert(alert(1))  # the processor (restarted after the router) works too
        rx.wait_for(1)
        assert status(engine, "router").restarts == 1
        assert status(engine, "processor").restarts == 1  # rest_for_one: it holds the router's name


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
