"""alerts.AlertIngestion/SubmitAlerts: many alerts in, one ack per alert out, in order, one commit."""
from __future__ import annotations

import threading

import grpc
import pytest

from protos import alerts_pb2
from tests.support.http_receiver import HttpReceiver
from tests.support.server import make_settings, running
from tests.support.waiting import wait_until

from actors.api.alerts import MAX_CALL_BATCH

TIMEOUT = 10.0


def alert(n: int, **changes: object) -> alerts_pb2.AlertRequest:
    fields: dict[str, object] = dict(alert_id=f"a-{n}", source="sentinel", title=f"alert {n}", severity=2, type=2)
    fields.update(changes)
    return alerts_pb2.AlertRequest(**fields)  # type: ignore[arg-type]


@pytest.fixture
def server(tmp_path):
    with HttpReceiver() as rx, running(make_settings(tmp_path, notifications={
            "webhook_enabled": True, "default_webhook_url": rx.url + "/hook"})) as (engine, _, client):
        yield engine, client, rx


def test_mixed_valid_invalid_and_duplicate_alerts_get_one_ack_each_in_order(server):
    engine, client, rx = server
    client.alerts.SubmitAlert(alert(0), timeout=TIMEOUT)
    batch = [alert(1), alert(2, title=""), alert(0), alert(3, title="alert 1"), alert(1)]
    acks = client.alerts.SubmitAlerts(alerts_pb2.AlertBatch(alerts=batch), timeout=TIMEOUT).acks
    assert [a.alert_id for a in acks] == ["a-1", "a-2", "a-0", "a-3", "a-1"]
    assert [a.status for a in acks] == [alerts_pb2.ACCEPTED, alerts_pb2.REJECTED, alerts_pb2.DUPLICATE,
                                        alerts_pb2.ACCEPTED, alerts_pb2.DUPLICATE]
    assert "title" in acks[1].reason
    assert acks[0].new_incident and not acks[3].new_incident          # a-3 joined a-1's incident
    assert acks[3].incident_id == acks[0].incident_id == acks[4].incident_id
    rx.wait_for(2)  # a-0's incident and a-1's: one notification each


def test_one_call_is_one_store_commit(server):
    engine, client, _ = server
    commits: list[int] = []
    apply = engine.store.apply

    def counting_apply(changes, lease=""):
        commits.append(len(changes))
        return apply(changes, lease)
    engine.store.apply = counting_apply  # type: ignore[method-assign]
    acks = client.alerts.SubmitAlerts(alerts_pb2.AlertBatch(alerts=[alert(n) for n in range(64)]),
                                      timeout=TIMEOUT).acks
    assert all(a.status == alerts_pb2.ACCEPTED for a in acks) and len(acks) == 64
    assert commits == [64]


def test_more_alerts_than_the_call_limit_is_invalid_argument_naming_the_field(server):
    _, client, _ = server
    with pytest.raises(grpc.RpcError) as raised:
        client.alerts.SubmitAlerts(alerts_pb2.AlertBatch(alerts=[alert(n) for n in range(MAX_CALL_BATCH + 1)]),
                                   timeout=TIMEOUT)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "alerts" in raised.value.details()
    acks = client.alerts.SubmitAlerts(alerts_pb2.AlertBatch(alerts=[alert(n) for n in range(MAX_CALL_BATCH)]),
                                      timeout=TIMEOUT).acks
    assert len(acks) == MAX_CALL_BATCH  # nothing of the refused call was recorded: all new here
    assert all(a.status == alerts_pb2.ACCEPTED for a in acks)


def test_stream_alerts_maps_an_unexpected_error_like_the_unary_call(server, monkeypatch):
    engine, client, _ = server

    def broken(alerts):
        raise RuntimeError("a bug")
    monkeypatch.setattr(engine, "submit_alerts", broken)
    with pytest.raises(grpc.RpcError) as raised:
        list(client.alerts.StreamAlerts(iter([alert(1)]), timeout=TIMEOUT))
    assert raised.value.code() == grpc.StatusCode.INTERNAL  # not UNKNOWN


def test_a_stream_cancelled_while_its_reader_waits_on_a_full_queue_leaves_no_reader_behind(server):
    """The reader thread queues what the client sends. When the client goes away while that
    queue is full, nobody takes from it any more: the reader must not wait for ever."""
    engine, client, _ = server
    sent = [0]

    def requests():
        for n in range(3000):
            sent[0] += 1
            yield alert(n)
    engine.faults.delay_messages("processor", 5000)  # the first batch's commit holds everything up
    call = client.alerts.StreamAlerts(requests(), timeout=TIMEOUT)
    wait_until(lambda: sent[0] >= 1400)  # the first batch is in, the reader's queue (1,024) is full
    call.cancel()
    engine.faults.clear("processor")
    wait_until(lambda: not any(t.name == "stream-reader" for t in threading.enumerate()))


def test_an_alert_joins_an_incident_still_open_under_its_pre_v2_fingerprint(server):
    """Incidents opened before fingerprints were length-prefixed keep their old fingerprint;
    an alert of theirs still joins them."""
    from actors.domain.changes import Change, PendingEvent
    from actors.domain.dedup import legacy_fingerprint
    from actors.domain.models import Alert, EventKind, Incident, IncidentState, IncidentType, Severity, utc_now
    engine, client, _ = server
    old = Alert("old", "sentinel", "alert 1", "", Severity.P1, IncidentType.APPLICATION)
    now = utc_now()
    incident = Incident("i-old", legacy_fingerprint(old), old.title, "", old.severity, old.type,
                        IncidentState.DETECTED, old.source, now, now, now)
    engine.store.apply([Change(incident, True, (PendingEvent(EventKind.CREATED, now, "t", {}),))])
    engine.directory.get("processor").stop(block=True, timeout=TIMEOUT)  # restarts and reloads its index
    wait_until(lambda: any(a.name == "processor" and a.alive and a.restarts == 1 for a in engine.actor_statuses()))
    ack = client.alerts.SubmitAlert(alert(1), timeout=TIMEOUT)
    assert (ack.incident_id, ack.new_incident) == ("i-old", False)
    assert engine.incident("i-old").alert_count == 2
