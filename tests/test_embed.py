"""The embedding API (actors/embed.py) and its example program."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pykka
import pytest

from actors import embed
from actors.embed import (Alert, ConfigError, DeliverySettled, DeliveryStatus, IllegalTransition, IncidentChanged,
                          IncidentManager, IncidentState, IncidentType, InvalidArgument, NotFound, OutcomeKind,
                          ResolutionMethod, Severity, TransportFault, Unavailable)
from actors.domain.models import EventKind
from protos import incidents_pb2
from tests.support.http_receiver import HttpReceiver
from tests.support.server import TIMEOUT, client_for

ROOT = Path(__file__).resolve().parent.parent


def config(tmp_path: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {"server": {"host": "127.0.0.1", "grpc_port": 0},
                            "state": {"path": str(tmp_path / "store.db")}}
    for section, values in sections.items():
        data[section] = {**data.get(section, {}), **values}
    return data


def webhook(url: str, **more: Any) -> dict[str, Any]:
    return {"webhook_enabled": True, "default_webhook_url": url + "/hook", "retry_backoff_secs": 0.01, **more}


@pytest.fixture
def im(tmp_path):
    with IncidentManager(config(tmp_path)) as manager:
        yield manager


@pytest.fixture
def receiver():
    with HttpReceiver() as rx:
        yield rx


def test_the_example_program_runs_and_reports_what_happened():
    done = subprocess.run([sys.executable, "examples/embedded.py"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "opened: state=DETECTED severity=P1 new=True" in out
    assert "resolved: state=RESOLVED by=oncall@example.com" in out
    assert "delivery incident.detected -> webhook/default: delivered (HTTP 200)" in out
    assert "delivery incident.resolved -> webhook/default: delivered (HTTP 200)" in out
    assert "timeline states: DETECTED -> RESOLVED" in out
    assert "webhook receiver got 2 requests" in out
    assert out.rstrip().endswith("OK")


def test_a_context_manager_starts_everything_and_leaves_no_actor_behind(tmp_path):
    manager = IncidentManager(config(tmp_path))
    assert not manager.running and manager.grpc_port is None
    with pytest.raises(Unavailable, match="start"):
        manager.submit_alert("t", "s", "P1", "DATA")
    with manager as im:
        assert im is manager and im.running
        assert pykka.ActorRegistry.get_all()
        result = im.submit_alert("Disk full", "monitor", "p2", "infrastructure")
        assert result.new_incident and not result.duplicate
    assert not manager.running
    assert pykka.ActorRegistry.get_all() == []
    with pytest.raises(Unavailable):
        manager.get_incident(result.incident_id)
    manager.stop()  # a second stop is harmless
    with manager:  # and it starts again on the same store
        assert manager.get_incident(result.incident_id).title == "Disk full"
    assert pykka.ActorRegistry.get_all() == []


def test_with_grpc_a_real_client_reads_what_the_program_wrote(tmp_path):
    with IncidentManager(config(tmp_path), grpc=True) as im:
        assert im.grpc_port
        result = im.submit_alert("High latency", "sentinel", Severity.P0, IncidentType.PERFORMANCE)
        with client_for(im.grpc_port) as client:
            got = client.incidents.GetIncident(incidents_pb2.GetIncidentRequest(id=result.incident_id),
                                               timeout=TIMEOUT)
        assert (got.title, got.severity, got.state) == ("High latency", incidents_pb2.P0, incidents_pb2.DETECTED)
    assert im.grpc_port is None
    assert pykka.ActorRegistry.get_all() == []


def test_configuration_is_validated_like_toml_and_names_the_bad_key(tmp_path):
    with pytest.raises(ConfigError) as info:
        IncidentManager(config(tmp_path, state={"bogus": 1}))
    assert info.value.key == "state.bogus"
    toml = tmp_path / "config.toml"
    toml.write_text('[notifications]\nqueue_size = "big"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        IncidentManager(toml)
    assert info.value.key == "notifications.queue_size"
    toml.write_text(f'[state]\npath = "{tmp_path / "from-toml.db"}"\n', encoding="utf-8")
    assert IncidentManager(str(toml)).settings.state.path == str(tmp_path / "from-toml.db")
    assert IncidentManager().settings.state.path == "./data/incidents.db"
    with pytest.raises(ConfigError) as info:
        IncidentManager(config(tmp_path, state={"path": ":memory:"}))
    assert info.value.key == "state.path"


def test_a_missing_secret_fails_start_naming_the_key_and_nothing_keeps_running(tmp_path):
    im = IncidentManager(config(tmp_path, notifications=webhook("http://127.0.0.1:9",
                                                                 webhook_secret_env="HOOK_SECRET")),
                         environ={})
    with pytest.raises(ConfigError) as info:
        im.start()
    assert info.value.key == "notifications.webhook_secret_env" and "HOOK_SECRET" in str(info.value)
    assert not im.running and pykka.ActorRegistry.get_all() == []


def test_a_grpc_port_in_use_fails_start_and_stops_the_engine_again(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        im = IncidentManager(config(tmp_path, server={"grpc_port": taken.getsockname()[1]}), grpc=True)
        with pytest.raises((OSError, RuntimeError)):
            im.start()
    assert not im.running and im.grpc_port is None
    assert pykka.ActorRegistry.get_all() == []


def test_subscribers_receive_incident_changes_and_settled_deliveries(tmp_path, receiver):
    with IncidentManager(config(tmp_path, notifications=webhook(receiver.url))) as im:
        everything = im.subscribe()
        only_deliveries = im.subscribe(incidents=False)
        first = im.submit_alert("CPU hot", "monitor", "P1", "PERFORMANCE")
        only_first = im.subscribe(deliveries=False, incident_id=first.incident_id)
        second = im.submit_alert("Disk full", "monitor", "P1", "INFRASTRUCTURE")
        im.add_note(first.incident_id, "alice", "looking")

        seen: list[Any] = []
        while not (sum(isinstance(e, DeliverySettled) for e in seen) == 2
                   and sum(isinstance(e, IncidentChanged) for e in seen) == 3):
            event = everything.get(timeout=TIMEOUT)
            assert event is not None, f"only got {seen}"
            seen.append(event)
        created = [e for e in seen if isinstance(e, IncidentChanged) and e.event.kind is EventKind.CREATED]
        assert {e.incident.id for e in created} == {first.incident_id, second.incident_id}
        settled = [e for e in seen if isinstance(e, DeliverySettled)]
        assert {(e.delivery.event_type, e.status, e.outcome.kind) for e in settled} == {
            ("incident.detected", "delivered", OutcomeKind.DELIVERED)}

        deliveries = [only_deliveries.get(timeout=TIMEOUT) for _ in range(2)]
        assert all(isinstance(e, DeliverySettled) for e in deliveries)
        note = only_first.get(timeout=TIMEOUT)
        assert isinstance(note, IncidentChanged) and note.event.kind is EventKind.NOTE_ADDED
        assert note.incident.id == first.incident_id
        with pytest.raises(InvalidArgument):
            im.subscribe(incidents=False, deliveries=False)
    assert everything.get(timeout=TIMEOUT) is None and everything.closed  # stop ends subscriptions


def test_callbacks_run_on_their_own_thread_and_survive_a_failing_callback(tmp_path, receiver):
    with IncidentManager(config(tmp_path, notifications=webhook(receiver.url))) as im:
        calls: list[tuple[str, str]] = []
        second = threading.Event()
        incident_seen = threading.Event()

        def on_delivery(event: DeliverySettled) -> None:
            calls.append((event.delivery.event_type, threading.current_thread().name))
            if len(calls) == 1:
                raise RuntimeError("a bug in the host program's callback")
            second.set()

        delivery_watcher = im.on_delivery(on_delivery)
        incident_watcher = im.on_incident(lambda event: incident_seen.set())
        incident = im.create_incident("Manual", "P2", "SECURITY", assignees=["bob"])
        im.resolve(incident.id, "bob", "automated")
        assert second.wait(TIMEOUT) and incident_seen.wait(TIMEOUT)
        assert [c[0] for c in calls] == ["incident.detected", "incident.resolved"]
        assert all(name == "on-delivery" for _, name in calls)
        delivery_watcher.close()
        assert not delivery_watcher.alive and incident_watcher.alive
    assert incident_watcher.join(TIMEOUT)  # stop ends every watcher


def test_bad_input_is_invalid_argument_naming_the_field(tmp_path):
    with IncidentManager(config(tmp_path, processing={"max_field_bytes": 100})) as im:
        good = dict(title="t", source="s", severity="P1", type="DATA")
        cases = [
            ({"title": "  "}, "title"),
            ({"source": ""}, "source"),
            ({"severity": "P9"}, "severity"),
            ({"severity": 2}, "severity"),
            ({"type": "nope"}, "type"),
            ({"description": "x" * 101}, "description"),
            ({"title": "t" * 1001}, "title"),
            ({"labels": {"": "v"}}, "labels[]"),
            ({"affected_services": "checkout"}, "affected_services"),
            ({"alert_id": "a\x00b"}, "alert_id"),
        ]
        for fields, field in cases:
            with pytest.raises(InvalidArgument) as info:
                im.submit_alert(**{**good, **fields})
            assert info.value.field == field, fields
        incident = im.create_incident("t", Severity.P3, IncidentType.DATA)
        for call, field in [
            (lambda: im.transition(incident.id, "SLEEPING", "me"), "state"),
            (lambda: im.resolve(incident.id, " "), "resolved_by"),
            (lambda: im.add_note(incident.id, "me", " "), "text"),
            (lambda: im.resolve(incident.id, "me", method="sometimes"), "method"),
            (lambda: im.get_incident(""), "id"),
            (lambda: im.list_incidents(limit=0), "limit"),
            (lambda: im.list_incidents(state=7), "state"),
            (lambda: im.notifications(status="lost"), "status"),
            (lambda: im.submit_alerts([Alert("", "s", "", "", Severity.P1, IncidentType.DATA)]), "alerts[0].title"),
        ]:
            with pytest.raises(InvalidArgument) as info:
                call()
            assert info.value.field == field
        assert pykka.ActorRegistry.get_all()  # nothing crashed


def test_lifecycle_reads_and_errors(im):
    result = im.submit_alert("Latency", "monitor", Severity.P2, IncidentType.APPLICATION, alert_id="a-1",
                             labels={"team": "web"}, affected_services=["api"])
    assert im.submit_alert("Latency", "monitor", "P2", "APPLICATION", alert_id="a-1").duplicate
    incident_id = result.incident_id
    assert im.assign(incident_id, ["alice", "bob"]).assignees == ("alice", "bob")
    assert im.transition(incident_id, IncidentState.TRIAGED, "alice", "looking").state is IncidentState.TRIAGED
    assert im.update_incident(incident_id, severity="P1").severity is Severity.P1
    im.add_note(incident_id, "alice", text="restarted the pods")
    resolved = im.resolve(incident_id, "alice", ResolutionMethod.AUTO_ASSISTED_MANUAL, root_cause="leak")
    assert resolved.state is IncidentState.RESOLVED and resolved.resolution.root_cause == "leak"
    with pytest.raises(IllegalTransition):
        im.resolve(incident_id, "alice")
    with pytest.raises(NotFound):
        im.get_incident("no-such-incident")
    with pytest.raises(NotFound):
        im.timeline("no-such-incident")
    kinds = [e.kind for e in im.timeline(incident_id)]
    assert kinds == [EventKind.CREATED, EventKind.ASSIGNMENT_CHANGED, EventKind.STATE_CHANGED, EventKind.UPDATED,
                     EventKind.NOTE_ADDED, EventKind.STATE_CHANGED]
    assert [i.id for i in im.list_incidents(state="resolved", source="monitor")] == [incident_id]
    assert im.list_incidents(state=["DETECTED", IncidentState.TRIAGED]) == []
    assert im.notifications(incident_id=incident_id) == []  # no channel enabled
    stats = im.stats()
    assert {a.name for a in stats.actors} >= {"router", "processor"} and all(a.alive for a in stats.actors)
    with pytest.raises(NotFound, match="not enabled"):
        im.send_test("slack")


def test_list_incidents_follows_page_tokens_up_to_the_limit(im, monkeypatch):
    monkeypatch.setattr(embed, "MAX_PAGE", 2)
    results = im.submit_alerts([Alert("", "monitor", f"Problem {n}", "", Severity.P3, IncidentType.DATA)
                                for n in range(5)])
    assert len({r.incident_id for r in results}) == 5
    everything = im.list_incidents()
    assert sorted(i.id for i in everything) == sorted(r.incident_id for r in results)
    assert [i.id for i in im.list_incidents(limit=3)] == [i.id for i in everything[:3]]
    assert [i.id for i in im.list_incidents(severity="P3", limit=5)] == [i.id for i in everything]
    assert im.list_incidents(severity=[Severity.P0]) == []


def test_fault_injection_and_notification_history_through_the_embedding_api(tmp_path, receiver):
    with IncidentManager(config(tmp_path, notifications=webhook(receiver.url))) as im:
        assert im.faults is im.engine.faults and im.channel_faults is im.engine.channel_faults
        settled = im.subscribe(incidents=False)
        im.channel_faults.fail_next("webhook", 1, TransportFault("http_status", 503, retry_after="0"))
        result = im.submit_alert("Flaky", "monitor", "P1", "AVAILABILITY")
        event = settled.get(timeout=TIMEOUT)
        assert isinstance(event, DeliverySettled) and event.status == "delivered"
        [record] = im.notifications(incident_id=result.incident_id, status=DeliveryStatus.DELIVERED)
        assert record.attempts == 2
        detail, attempts = im.notification(record.id)
        assert [a.status_code for a in attempts] == [503, 200]
        destination, outcome = im.send_test("webhook")
        assert destination == "default" and outcome.kind is OutcomeKind.DELIVERED
        receiver.wait_for(2)


def test_an_embedding_program_reads_why_each_receiver_heard_or_not(tmp_path, receiver):
    routes = {"receiver": "default", "routes": [{"name": "quiet", "matchers": ['team="batch"'], "receiver": "nobody"}]}
    with IncidentManager({**config(tmp_path, notifications=webhook(receiver.url)), "receivers": {"nobody": {}},
                          "route": routes}, grpc=False) as im:
        loud = im.submit_alert("Disk full", "monitor", "P2", "infrastructure")
        im.submit_alert("Batch late", "monitor", "P2", "data", labels={"team": "batch"})
        receiver.wait_for(1)
        (record,) = im.notifications()
        decisions = im.routing(record.id)
    assert record.incident_id == loud.incident_id
    assert [(d.receiver, d.verdict, d.reason) for d in decisions] == [
        ("default", embed.Verdict.ROUTED, "route root")]
