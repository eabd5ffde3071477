"""Transport fault injection goes through the real classifiers and the real retry path."""
from __future__ import annotations

import pytest

from actors.channels.faults import TransportFault, injected_outcome
from actors.domain.models import Alert, DeliveryStatus, IncidentType, OutcomeKind, Severity
from actors.engine import Engine
from actors.events import DeliverySettled
from tests.support.http_receiver import HttpReceiver
from tests.support.server import TIMEOUT, make_settings


@pytest.mark.parametrize("fault, kind, code", [
    (TransportFault("timeout"), OutcomeKind.RETRY, None),
    (TransportFault("connection_refused"), OutcomeKind.RETRY, None),
    (TransportFault("http_status", 503), OutcomeKind.RETRY, 503),
    (TransportFault("http_status", 404), OutcomeKind.FAILED, 404),
    (TransportFault("smtp_code", 451), OutcomeKind.RETRY, 451),
    (TransportFault("smtp_code", 550), OutcomeKind.FAILED, 550),
])
def test_each_injected_fault_becomes_the_outcome_a_real_peer_would_cause(fault, kind, code):
    outcome = injected_outcome(fault)
    assert (outcome.kind, outcome.status_code) == (kind, code)


def test_a_fault_with_an_impossible_code_is_refused_with_a_clear_error():
    with pytest.raises(ValueError, match="kind must be one of"):
        TransportFault("meteor")
    with pytest.raises(ValueError, match="HTTP status"):
        TransportFault("http_status", 42)


def test_injected_failures_are_retried_then_the_real_send_happens(tmp_path):
    with HttpReceiver() as rx:
        settings = make_settings(tmp_path, notifications={"retry_backoff_secs": 0.01, "webhook_enabled": True,
                                                          "default_webhook_url": rx.url + "/hook"})
        with Engine(settings) as engine:
            settled = engine.subscribe(lambda e: isinstance(e, DeliverySettled))
            engine.channel_faults.fail_next("webhook", 1, TransportFault("http_status", 503, retry_after="0"))
            engine.channel_faults.fail_next("webhook", 1, TransportFault("timeout"))
            engine.channel_faults.fail_next("webhook", 1, TransportFault("slow", delay_ms=50))
            engine.submit_alert(Alert("a-1", "s", "t", "", Severity.P1, IncidentType.DATA))
            event = settled.get(timeout=TIMEOUT)
            record, attempts = engine.notification(event.delivery.notification_id)
    assert record.status is DeliveryStatus.DELIVERED
    assert [(a.outcome, a.status_code) for a in attempts] == [
        (OutcomeKind.RETRY, 503), (OutcomeKind.RETRY, None), (OutcomeKind.DELIVERED, 200)]
    assert len(rx.requests) == 1 and engine.channel_faults.injected == 3
