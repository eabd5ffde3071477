"""The gRPC API end to end: a real server on a loopback port, real clients."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from actors.domain.models import utc_now
from protos import alerts_pb2, incidents_pb2, notifications_pb2
from tests.support.server import TIMEOUT, make_settings, running


@pytest.fixture
def api(tmp_path):
    with running(make_settings(tmp_path)) as (engine, server, client):
        yield client


def alert(alert_id: str, title: str = "High Latency", **fields) -> alerts_pb2.AlertRequest:
    values = dict(alert_id=alert_id, source="sentinel", title=title, severity=1, type=5)
    values.update(fields)
    return alerts_pb2.AlertRequest(**values)


def code_of(call, *args) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call(*args, timeout=TIMEOUT)
    return info.value.code(), info.value.details()


def test_the_originals_grpc_examples_work_verbatim(api):
    submit = json_format.Parse(
        '{"alert_id": "alert-001", "source": "sentinel", "title": "High Latency", "severity": 1, "type": 5}',
        alerts_pb2.AlertRequest())
    ack = api.alerts.SubmitAlert(submit, timeout=TIMEOUT)
    assert ack.status == alerts_pb2.ACCEPTED and ack.new_incident
    resolve = json_format.Parse(
        '{"id": "%s", "resolved_by": "oncall@example.com", "method": 1, "notes": "Fixed"}' % ack.incident_id,
        incidents_pb2.ResolveIncidentRequest())
    incident = api.incidents.ResolveIncident(resolve, timeout=TIMEOUT)
    assert incident.state == incidents_pb2.RESOLVED
    assert incident.resolution.method == incidents_pb2.AUTOMATED
    assert incident.resolution.resolved_by == "oncall@example.com"
    assert incident.severity == incidents_pb2.P0 and incident.type == incidents_pb2.PERFORMANCE


def test_alerts_with_one_fingerprint_join_one_incident_and_a_resent_alert_id_counts_once(api):
    first = api.alerts.SubmitAlert(alert("a-1"), timeout=TIMEOUT)
    joined = api.alerts.SubmitAlert(alert("a-2"), timeout=TIMEOUT)
    replay = api.alerts.SubmitAlert(alert("a-2"), timeout=TIMEOUT)
    other = api.alerts.SubmitAlert(alert("a-3", title="Disk full"), timeout=TIMEOUT)
    assert (joined.status, joined.new_incident, joined.incident_id) == (alerts_pb2.ACCEPTED, False, first.incident_id)
    assert (replay.status, replay.incident_id) == (alerts_pb2.DUPLICATE, first.incident_id)
    assert other.new_incident and other.incident_id != first.incident_id
    incident = api.incidents.GetIncident(incidents_pb2.GetIncidentRequest(id=first.incident_id), timeout=TIMEOUT)
    assert incident.alert_count == 2
    kinds = [e.kind for e in api.incidents.GetTimeline(
        incidents_pb2.GetTimelineRequest(id=first.incident_id), timeout=TIMEOUT).entries]
    assert kinds == ["created", "alert_joined"]


@pytest.mark.parametrize("fields, field_name", [
    ({"title": "  "}, "title"),
    ({"source": ""}, "source"),
    ({"severity": 9}, "severity"),
    ({"severity": 0}, "severity"),
    ({"type": 42}, "type"),
    ({"description": "x" * 70_000}, "description"),
    ({"title": "t" * 1001}, "title"),
    ({"labels": {"": "v"}}, "labels"),
])
def test_bad_alerts_are_invalid_argument_naming_the_field(api, fields, field_name):
    code, details = code_of(api.alerts.SubmitAlert, alert("bad", **fields))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith(field_name)


def test_a_message_over_four_mebibytes_is_resource_exhausted_and_the_server_lives_on(api):
    code, _ = code_of(api.alerts.SubmitAlert, alert("huge", description="x" * (4 * 1024 * 1024 + 1)))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert api.alerts.SubmitAlert(alert("after"), timeout=TIMEOUT).status == alerts_pb2.ACCEPTED


def test_unknown_ids_are_not_found(api):
    assert code_of(api.incidents.GetIncident, incidents_pb2.GetIncidentRequest(id="nope"))[0] == grpc.StatusCode.NOT_FOUND
    assert code_of(api.notifications.GetNotification,
                   notifications_pb2.GetNotificationRequest(id="nope"))[0] == grpc.StatusCode.NOT_FOUND


def test_illegal_transitions_are_failed_precondition(api):
    incident_id = api.alerts.SubmitAlert(alert("a-1"), timeout=TIMEOUT).incident_id
    resolve = incidents_pb2.ResolveIncidentRequest(id=incident_id, resolved_by="me", method=2)
    api.incidents.ResolveIncident(resolve, timeout=TIMEOUT)
    code, details = code_of(api.incidents.ResolveIncident, resolve)
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "already RESOLVED" in details
    api.incidents.TransitionIncident(incidents_pb2.TransitionIncidentRequest(id=incident_id, to_state=6), timeout=TIMEOUT)
    for target in (incidents_pb2.INVESTIGATING, incidents_pb2.DETECTED):
        code, _ = code_of(api.incidents.TransitionIncident,
                          incidents_pb2.TransitionIncidentRequest(id=incident_id, to_state=target))
        assert code == grpc.StatusCode.FAILED_PRECONDITION


def test_update_changes_only_present_fields_and_records_assignment_changes(api):
    incident_id = api.alerts.SubmitAlert(alert("a-1"), timeout=TIMEOUT).incident_id
    updated = api.incidents.UpdateIncident(incidents_pb2.UpdateIncidentRequest(
        id=incident_id, severity=incidents_pb2.P2, assignees=incidents_pb2.AssigneeList(values=["ana", "bo"]),
        actor="lead"), timeout=TIMEOUT)
    assert (updated.title, updated.severity, list(updated.assignees)) == ("High Latency", incidents_pb2.P2, ["ana", "bo"])
    api.incidents.AddNote(incidents_pb2.AddNoteRequest(id=incident_id, author="ana", text="looking"), timeout=TIMEOUT)
    entries = api.incidents.GetTimeline(incidents_pb2.GetTimelineRequest(id=incident_id), timeout=TIMEOUT).entries
    assert [e.kind for e in entries] == ["created", "updated", "assignment_changed", "note_added"]
    assert '"severity": "P2"' in entries[1].detail_json and entries[3].actor == "ana"


def test_list_filters_by_state_severity_and_source_and_pages_with_tokens(api):
    ids = [api.alerts.SubmitAlert(alert(f"a-{i}", title=f"t{i}", severity=1 + i % 2), timeout=TIMEOUT).incident_id
           for i in range(7)]
    api.incidents.ResolveIncident(incidents_pb2.ResolveIncidentRequest(id=ids[0], resolved_by="x"), timeout=TIMEOUT)
    seen, token = [], ""
    while True:
        page = api.incidents.ListIncidents(incidents_pb2.ListIncidentsRequest(page_size=3, page_token=token),
                                           timeout=TIMEOUT)
        seen += [i.id for i in page.incidents]
        token = page.next_page_token
        if not token:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == 7
    p1 = api.incidents.ListIncidents(incidents_pb2.ListIncidentsRequest(severities=[2]), timeout=TIMEOUT)
    assert len(p1.incidents) == 3
    resolved = api.incidents.ListIncidents(incidents_pb2.ListIncidentsRequest(states=[5]), timeout=TIMEOUT)
    assert [i.id for i in resolved.incidents] == [ids[0]]
    none = api.incidents.ListIncidents(incidents_pb2.ListIncidentsRequest(source="elsewhere"), timeout=TIMEOUT)
    assert not none.incidents
    window = incidents_pb2.ListIncidentsRequest()
    window.created_after.FromDatetime(utc_now())
    assert not api.incidents.ListIncidents(window, timeout=TIMEOUT).incidents
    assert code_of(api.incidents.ListIncidents, incidents_pb2.ListIncidentsRequest(page_token="garbage!"))[0] \
        == grpc.StatusCode.INVALID_ARGUMENT


def test_stream_alerts_acks_each_alert_in_order_and_rejects_bad_ones_without_ending(api):
    requests = [alert("s-1"), alert("s-2", title=""), alert("s-1"), alert("s-3", title="other")]
    acks = list(api.alerts.StreamAlerts(iter(requests), timeout=TIMEOUT))
    assert [a.status for a in acks] == [alerts_pb2.ACCEPTED, alerts_pb2.REJECTED, alerts_pb2.DUPLICATE,
                                        alerts_pb2.ACCEPTED]
    assert acks[1].reason.startswith("title")


def test_watch_streams_matching_incident_events(api):
    stream = api.incidents.WatchIncidents(incidents_pb2.WatchIncidentsRequest(states=[incidents_pb2.RESOLVED]),
                                          timeout=TIMEOUT)
    stream.initial_metadata()  # the server sends it once the watch is subscribed
    received = ThreadPoolExecutor(1).submit(lambda: next(iter(stream)))
    incident_id = api.alerts.SubmitAlert(alert("w-1"), timeout=TIMEOUT).incident_id
    api.incidents.ResolveIncident(incidents_pb2.ResolveIncidentRequest(id=incident_id, resolved_by="me"),
                                  timeout=TIMEOUT)
    event = received.result(timeout=TIMEOUT)
    assert event.incident.id == incident_id and event.entry.kind == "state_changed"
    stream.cancel()


def test_watching_an_unknown_kind_is_invalid_argument_listing_the_known_ones(api):
    stream = api.incidents.WatchIncidents(incidents_pb2.WatchIncidentsRequest(kinds=["note"]), timeout=TIMEOUT)
    with pytest.raises(grpc.RpcError) as info:
        next(iter(stream))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "note_added" in info.value.details()


def test_watching_delivery_kinds_is_invalid_argument_saying_they_are_not_streamed(api):
    stream = api.incidents.WatchIncidents(incidents_pb2.WatchIncidentsRequest(
        kinds=["created", "notification_delivered"]), timeout=TIMEOUT)
    with pytest.raises(grpc.RpcError) as info:
        next(iter(stream))
    details = info.value.details()
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "['notification_delivered']" in details and "does not stream (GetTimeline shows them)" in details
    assert "notification_dead" not in details.split("streamed:")[1]


def test_health_reports_serving_and_unknown_services_are_not_found(api):
    health = health_pb2_grpc.HealthStub(api.channel)
    assert health.Check(health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT).status == \
        health_pb2.HealthCheckResponse.SERVING
    assert health.Check(health_pb2.HealthCheckRequest(service="alerts.AlertIngestion"), timeout=TIMEOUT).status == \
        health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as info:
        health.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=TIMEOUT)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_reflection_lists_the_services_so_clients_need_no_proto_files(api):
    stub = reflection_pb2_grpc.ServerReflectionStub(api.channel)
    responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                          timeout=TIMEOUT)
    names = {s.name for s in next(responses).list_services_response.service}
    assert {"alerts.AlertIngestion", "incidents.IncidentService", "notifications.NotificationService",
            "grpc.health.v1.Health"} <= names


def test_intake_over_its_bound_is_resource_exhausted(tmp_path):
    release = threading.Event()
    entered = threading.Event()

    def blocking_clock():
        entered.set()
        release.wait(TIMEOUT)
        return utc_now()

    settings = make_settings(tmp_path, processing={"intake_limit": 1})
    with running(settings, clock=blocking_clock) as (engine, server, client):
        pending = client.alerts.SubmitAlert.future(alert("held"), timeout=TIMEOUT)
        assert entered.wait(TIMEOUT)
        code, details = code_of(client.alerts.SubmitAlert, alert("over"))
        stream_ack = next(client.alerts.StreamAlerts(iter([alert("over-2")]), timeout=TIMEOUT))
        release.set()
        assert pending.result().status == alerts_pb2.ACCEPTED
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "intake" in details
    assert stream_ack.status == alerts_pb2.RATE_LIMITED
