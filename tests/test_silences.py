"""Silences and inhibition end to end: a webhook receiver on loopback, through a real gRPC
server. Held notifications are rows recorded ``silenced``/``inhibited`` naming what held them,
explained by GetNotification; a silence's end notifies what it held that is still open."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from actors.domain.changes import Change, PendingEvent, Suppression
from actors.domain.models import (DeliveryStatus, EventKind, Incident, IncidentState, IncidentType,
                                  Severity)
from actors.domain.routing import Receiver
from actors.domain.silences import Silence
from actors.store.sqlite import SqliteStore
from protos import alerts_pb2, incidents_pb2, notifications_pb2
from tests.support.http_receiver import HttpReceiver
from tests.support.server import TIMEOUT, make_settings, running
from tests.support.waiting import wait_until
from tests.test_cli import engine_logs_kept_off_stdout, runner  # noqa: F401 (a fixture, used by name)

N = notifications_pb2


def settings(tmp_path, url: str, **sections):
    return make_settings(tmp_path, notifications={"webhook_enabled": True, "default_webhook_url": url,
                                                  "retry_backoff_secs": 0.05}, **sections)


def alert(alert_id: str, severity: int = 2, *services: str) -> alerts_pb2.AlertRequest:
    return alerts_pb2.AlertRequest(alert_id=alert_id, source="sentinel", title=f"alert {alert_id}",
                                   severity=severity, type=5, affected_services=services)


def stamp(moment: datetime) -> Timestamp:
    result = Timestamp()
    result.FromDatetime(moment)
    return result


def silence(client, *matchers: str, starts: timedelta | None = None, ends: timedelta = timedelta(hours=1)):
    now = datetime.now(timezone.utc)
    return client.notifications.CreateSilence(N.CreateSilenceRequest(
        matchers=matchers, starts_at=stamp(now + starts) if starts else None, ends_at=stamp(now + ends),
        created_by="alice", comment="db maintenance"), timeout=TIMEOUT)


def notifications_of(client, incident_id: str):
    return client.notifications.ListNotifications(N.ListNotificationsRequest(incident_id=incident_id),
                                                   timeout=TIMEOUT).notifications


def timeline_of(client, incident_id: str):
    return client.incidents.GetTimeline(incidents_pb2.GetTimelineRequest(id=incident_id), timeout=TIMEOUT).entries


def delivered_ids(receiver: HttpReceiver) -> list[str]:
    return [request.json()["incident"]["id"] for request in receiver.requests]


def test_a_silence_holds_notifications_and_expiring_it_notifies_what_is_still_open(tmp_path):
    with HttpReceiver() as rx, running(settings(tmp_path, rx.url)) as (_, _, client):
        held = silence(client, 'service="db"')
        assert (held.state, held.created_by, list(held.matchers)) == ("active", "alice", ['service="db"'])
        open_id = client.alerts.SubmitAlert(alert("a-1", 2, "db"), timeout=TIMEOUT).incident_id
        resolved_id = client.alerts.SubmitAlert(alert("a-2", 3, "db", "api"), timeout=TIMEOUT).incident_id
        client.incidents.ResolveIncident(incidents_pb2.ResolveIncidentRequest(id=resolved_id, resolved_by="bob"),
                                         timeout=TIMEOUT)
        web_id = client.alerts.SubmitAlert(alert("a-3", 2, "web"), timeout=TIMEOUT).incident_id
        rx.wait_for(1)
        (silenced,) = notifications_of(client, open_id)
        detail = client.notifications.GetNotification(N.GetNotificationRequest(id=silenced.id), timeout=TIMEOUT)
        held_entries = [e for e in timeline_of(client, open_id) if e.kind == "notification_silenced"]
        by_status = client.notifications.ListNotifications(N.ListNotificationsRequest(status=N.SILENCED),
                                                           timeout=TIMEOUT).notifications
        stats = client.notifications.GetStats(N.StatsRequest(), timeout=TIMEOUT)

        expired = client.notifications.ExpireSilence(N.ExpireSilenceRequest(id=held.id[:8]), timeout=TIMEOUT)
        (renotified,) = rx.wait_for(2)[1:]
        wait_until(lambda: [n.status for n in notifications_of(client, open_id)] == [N.SILENCED, N.DELIVERED])
        resolved_rows = notifications_of(client, resolved_id)
        ended = [e for e in timeline_of(client, open_id) if e.kind == "silence_ended"]
        listed = client.notifications.ListSilences(N.ListSilencesRequest(), timeout=TIMEOUT).silences
        every = client.notifications.ListSilences(N.ListSilencesRequest(include_expired=True), timeout=TIMEOUT)
    assert (silenced.status, silenced.suppressed_by, silenced.attempts) == (N.SILENCED, held.id, 0)
    assert [(d.verdict, d.by, d.route) for d in detail.routing] == [("silenced", held.id, "root")]
    assert detail.routing[0].reason == f"route root matched, but silence {held.id} held it"
    assert len(held_entries) == 1 and json.loads(held_entries[0].detail_json)["silence_id"] == held.id
    assert sorted(n.incident_id for n in by_status) == sorted([open_id, resolved_id, resolved_id])
    assert [(c.silenced, c.inhibited) for c in stats.channels] == [(3, 0)]
    assert delivered_ids(rx)[0] == web_id
    assert expired.state == "expired"
    assert renotified.json()["incident"]["id"] == open_id
    assert {n.status for n in resolved_rows} == {N.SILENCED}  # resolved while held: nothing to tell
    assert len(ended) == 1 and json.loads(ended[0].detail_json)["silence_id"] == held.id
    assert listed == [] and [s.id for s in every.silences] == [held.id]


def test_a_silence_that_reaches_its_end_notifies_what_it_held(tmp_path):
    with HttpReceiver() as rx, running(settings(tmp_path, rx.url)) as (_, _, client):
        silence(client, 'severity="P1"', ends=timedelta(seconds=1))
        incident_id = client.alerts.SubmitAlert(alert("a-1", 2), timeout=TIMEOUT).incident_id
        assert [n.status for n in notifications_of(client, incident_id)] == [N.SILENCED]
        (request,) = rx.wait_for(1)
    assert request.json()["incident"]["id"] == incident_id


def test_a_future_start_silence_applies_only_from_its_start(tmp_path):
    with HttpReceiver() as rx, running(settings(tmp_path, rx.url)) as (_, _, client):
        window = silence(client, 'service="db"', starts=timedelta(seconds=1))
        before = client.alerts.SubmitAlert(alert("a-1", 2, "db"), timeout=TIMEOUT).incident_id
        start = window.starts_at.ToDatetime(timezone.utc)
        wait_until(lambda: datetime.now(timezone.utc) >= start)
        during = client.alerts.SubmitAlert(alert("a-2", 2, "db"), timeout=TIMEOUT).incident_id
        rx.wait_for(1)
        wait_until(lambda: [n.status for n in notifications_of(client, before)] == [N.DELIVERED])
        during_rows = notifications_of(client, during)
    assert window.state == "pending"
    assert delivered_ids(rx) == [before]
    assert [n.status for n in during_rows] == [N.SILENCED]


def test_an_active_source_inhibits_its_targets_until_it_is_resolved(tmp_path):
    rules = [{"source_matchers": ['severity="P0"'], "target_matchers": ['severity=~"P2|P3"'], "equal": ["service"]}]
    with HttpReceiver() as rx, running(settings(tmp_path, rx.url, inhibit_rules=rules)) as (_, _, client):
        source = client.alerts.SubmitAlert(alert("a-1", 1, "db"), timeout=TIMEOUT).incident_id
        target = client.alerts.SubmitAlert(alert("a-2", 3, "db"), timeout=TIMEOUT).incident_id
        elsewhere = client.alerts.SubmitAlert(alert("a-3", 3, "web"), timeout=TIMEOUT).incident_id
        rx.wait_for(2)
        (inhibited,) = notifications_of(client, target)
        detail = client.notifications.GetNotification(N.GetNotificationRequest(id=inhibited.id), timeout=TIMEOUT)
        entries = [e for e in timeline_of(client, target) if e.kind == "notification_inhibited"]
        client.incidents.ResolveIncident(incidents_pb2.ResolveIncidentRequest(id=source, resolved_by="bob"),
                                         timeout=TIMEOUT)
        client.incidents.TransitionIncident(incidents_pb2.TransitionIncidentRequest(
            id=target, to_state=incidents_pb2.TRIAGED), timeout=TIMEOUT)
        rx.wait_for(4)
        wait_until(lambda: [n.status for n in notifications_of(client, target)] == [N.INHIBITED, N.DELIVERED])
    assert (inhibited.status, inhibited.suppressed_by) == (N.INHIBITED, source)
    assert [(d.verdict, d.by, d.rule) for d in detail.routing] == [("inhibited", source, "inhibit_rules[0]")]
    assert detail.routing[0].reason == f"route root matched, but active incident {source} inhibited it (inhibit_rules[0])"
    assert len(entries) == 1 and json.loads(entries[0].detail_json) == {
        "inhibited_by": source, "rule": "inhibit_rules[0]", "event_type": "incident.detected",
        "destinations": ["default/webhook"]}
    assert sorted(delivered_ids(rx)) == sorted([source, elsewhere, source, target])


def test_silences_survive_a_restart(tmp_path):
    with HttpReceiver() as rx:
        with running(settings(tmp_path, rx.url)) as (_, _, client):
            kept = silence(client, 'service="db"', 'severity!="P0"')
        with running(settings(tmp_path, rx.url)) as (_, _, client):
            listed = client.notifications.ListSilences(N.ListSilencesRequest(), timeout=TIMEOUT).silences
            incident_id = client.alerts.SubmitAlert(alert("a-1", 2, "db"), timeout=TIMEOUT).incident_id
            (held,) = notifications_of(client, incident_id)
    assert [(s.id, list(s.matchers), s.comment) for s in listed] == [
        (kept.id, ['service="db"', 'severity!="P0"'], "db maintenance")]
    assert (held.status, held.suppressed_by) == (N.SILENCED, kept.id)


def test_a_silence_that_ended_while_the_server_was_down_is_acted_on_at_start(tmp_path):
    """The store as a server left it: an open incident held by a silence that has ended since."""
    ended_at = datetime.now(timezone.utc) - timedelta(minutes=1)
    held = Silence("s-gone", ('service="db"',), ended_at - timedelta(hours=1), ended_at, "alice", "why",
                   ended_at, ended_at)
    now = datetime.now(timezone.utc)
    incident = Incident("i-held", "fp", "held", "", Severity.P1, IncidentType.DATA, IncidentState.DETECTED,
                        "sentinel", now, now, now, affected_services=("db",))
    store = SqliteStore(tmp_path / "store.db")
    store.save_silence(held)
    store.apply([Change(incident, True, (PendingEvent(
        EventKind.CREATED, now, "sentinel", {}, incident.state.event_type,
        suppressed=(Receiver("webhook", "default"),), suppression=Suppression(DeliveryStatus.SILENCED, held.id)),))])
    store.close()
    with HttpReceiver() as rx, running(settings(tmp_path, rx.url)) as (_, _, client):
        (request,) = rx.wait_for(1)
        ended = [e for e in timeline_of(client, "i-held") if e.kind == "silence_ended"]
        listed = client.notifications.ListSilences(N.ListSilencesRequest(include_expired=True), timeout=TIMEOUT)
    assert request.json()["incident"]["id"] == "i-held"
    assert len(ended) == 1 and json.loads(ended[0].detail_json)["silence_id"] == "s-gone"
    assert [(s.id, s.state) for s in listed.silences] == [("s-gone", "expired")]


def test_a_silence_updated_to_end_now_is_released_and_an_ended_one_cannot_change(tmp_path):
    with HttpReceiver() as rx, running(settings(tmp_path, rx.url)) as (_, _, client):
        held = silence(client, 'service="db"')
        incident_id = client.alerts.SubmitAlert(alert("a-1", 2, "db"), timeout=TIMEOUT).incident_id
        updated = client.notifications.UpdateSilence(N.UpdateSilenceRequest(
            id=held.id, comment="done early", ends_at=stamp(datetime.now(timezone.utc) + timedelta(seconds=0.2))),
            timeout=TIMEOUT)
        (request,) = rx.wait_for(1)
        wait_until(lambda: client.notifications.GetSilence(N.GetSilenceRequest(id=held.id),
                                                           timeout=TIMEOUT).state == "expired")
        wait_until(lambda: not client.notifications.ListSilences(N.ListSilencesRequest(), timeout=TIMEOUT).silences)
        with pytest.raises(grpc.RpcError) as refused:
            client.notifications.ExpireSilence(N.ExpireSilenceRequest(id=held.id), timeout=TIMEOUT)
    assert updated.comment == "done early" and list(updated.matchers) == ['service="db"']
    assert request.json()["incident"]["id"] == incident_id
    assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION


@pytest.mark.parametrize("request_fields, field", [
    ({"matchers": [], "comment": "x"}, "matchers"),
    ({"matchers": ['service=~".*"'], "comment": "x"}, "matchers"),  # matches every incident
    ({"matchers": ['severity="P9"'], "comment": "x"}, "matchers"),
    ({"matchers": ['service="db'], "comment": "x"}, "matchers"),
    ({"matchers": ['service="db"'], "comment": ""}, "comment"),
    ({"matchers": ['service="db"'], "comment": "x", "ends": None}, "ends_at"),
    ({"matchers": ['service="db"'], "comment": "x", "ends": timedelta(hours=-1)}, "ends_at"),
])
def test_bad_silences_are_refused_naming_the_field(tmp_path, request_fields, field):
    now = datetime.now(timezone.utc)
    ends = request_fields.get("ends", timedelta(hours=1))
    with running(make_settings(tmp_path)) as (_, _, client):
        with pytest.raises(grpc.RpcError) as refused:
            client.notifications.CreateSilence(N.CreateSilenceRequest(
                matchers=request_fields["matchers"], comment=request_fields["comment"],
                ends_at=stamp(now + ends) if ends is not None else None), timeout=TIMEOUT)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details().startswith(f"{field}:")


def test_imctl_adds_queries_and_expires_silences(tmp_path, capsys):
    with running(make_settings(tmp_path)) as (_, api, _client):
        imctl = runner(f"127.0.0.1:{api.port}", capsys)
        added = imctl("--json", "silence", "add", 'service="db"', "severity=~P2|P3", "--duration", "2h",
                      "--comment", "db upgrade", "--author", "alice")
        window = imctl("silence", "add", "team=web", "--start", "2099-01-01T00:00:00Z",
                       "--end", "2099-01-01T02:00:00+00:00", "--comment", "later")
        bad = imctl("silence", "add", "team=web", "--duration", "soon", "--comment", "x")
        listed = imctl("silence", "query")
        moved = imctl("silence", "update", window.out.split()[1], "--comment", "much later",
                      "--end", "2099-01-02T00:00:00Z")
        unchanged = imctl("silence", "update", window.out.split()[1])
        shown = imctl("silence", "get", window.out.split()[1][:8])
        expired = imctl("silence", "expire", added.json()["id"][:8])
        after = imctl("--json", "silence", "query", "--expired")
    assert added.code == 0 and added.json()["matchers"] == ['service="db"', 'severity=~"P2|P3"']
    assert added.json()["created_by"] == "alice" and added.json()["state"] == "active"
    assert window.code == 0 and " pending until 2099-01-01T02:00:00Z" in window.out
    assert bad.code == 2 and "not a duration" in bad.err
    assert listed.code == 0 and "db upgrade" in listed.out and "later" in listed.out
    assert moved.code == 0 and "pending until 2099-01-02T00:00:00Z" in moved.out
    assert unchanged.code == 2 and "nothing to change" in unchanged.err
    assert shown.code == 0 and "much later" in shown.out and "team=\"web\"" in shown.out
    assert expired.code == 0 and expired.out.strip() == f"silence {added.json()['id']} expired"
    assert {s["comment"]: s["state"] for s in after.json()["silences"]} == {"db upgrade": "expired",
                                                                           "much later": "pending"}
