"""imctl end to end: main() in-process against a real in-process server on a loopback port."""
from __future__ import annotations

import ast
import contextlib
import json
import os
import signal
import socket
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import structlog

from actors.cli import main
from actors.domain.models import utc_now
from actors.engine import Engine
from actors.events import DeliverySettled
from actors import processor
from actors.cli import prometheus, render
from protos import alerts_pb2, incidents_pb2, notifications_pb2
from tests.support import exposition
from tests.support.http_receiver import HttpReceiver, Recorded, Reply
from tests.support.server import TIMEOUT, Client, make_settings, running

ALERT = ["alert", "--title", "High Latency", "--source", "sentinel", "--severity", "P1", "--type", "availability"]


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Server:
    engine: Engine
    client: Client
    address: str


Imctl = Callable[..., Result]


@contextlib.contextmanager
def serve(tmp_path: Path, notifications: dict[str, Any] | None = None, **engine_kwargs: Any) -> Iterator[Server]:
    settings = make_settings(tmp_path, **({"notifications": notifications} if notifications else {}))
    with running(settings, **engine_kwargs) as (engine, api, client):
        yield Server(engine, client, f"127.0.0.1:{api.port}")


@pytest.fixture(autouse=True)
def engine_logs_kept_off_stdout():
    """Unconfigured structlog prints the engine's logs to stdout, where capsys would mix them
    with imctl's output; send them to the real stderr (pytest still shows them on failure)."""
    saved = structlog.get_config()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.__stderr__))
    yield
    structlog.configure(**saved)


def runner(address: str, capsys: pytest.CaptureFixture[str]) -> Imctl:
    def run(*args: str) -> Result:
        capsys.readouterr()
        code = main(["--server", address, *args])
        out, err = capsys.readouterr()
        return Result(code, out, err)
    return run


@pytest.fixture
def server(tmp_path):
    with serve(tmp_path) as running_server:
        yield running_server


@pytest.fixture
def imctl(server, capsys) -> Imctl:
    return runner(server.address, capsys)


def open_incident(imctl: Imctl, title: str = "High Latency") -> str:
    result = imctl("--json", *ALERT[:2], title, *ALERT[3:])
    assert result.code == 0, result.err
    return result.json()["incident_id"]


def watch_subscriptions(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Set once the server has subscribed a watcher, so events produced afterwards reach it."""
    subscribed = threading.Event()
    original = engine.subscribe

    def spy(*args: Any, **kwargs: Any):
        subscription = original(*args, **kwargs)
        subscribed.set()
        return subscription

    monkeypatch.setattr(engine, "subscribe", spy)
    return subscribed


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# -- alerts -------------------------------------------------------------------------------

def test_an_alert_opens_a_new_incident_and_prints_its_id(server, imctl):
    result = imctl(*ALERT, "--alert-id", "a-1", "--label", "region=eu", "--service", "api", "web")
    assert result.code == 0 and result.err == ""
    assert result.out.startswith("accepted: alert a-1 opened new incident ")
    incident_id = result.out.split()[-1]
    incident = server.client.incidents.GetIncident(incidents_pb2.GetIncidentRequest(id=incident_id), timeout=TIMEOUT)
    assert (incident.severity, incident.type) == (incidents_pb2.P1, incidents_pb2.AVAILABILITY)
    assert dict(incident.labels) == {"region": "eu"} and list(incident.affected_services) == ["api", "web"]


def test_the_same_alert_sent_twice_joins_the_incident_the_first_one_opened(imctl):
    first = imctl(*ALERT).out.split()[-1]
    second = imctl(*ALERT)
    assert second.code == 0
    assert "joined incident" in second.out and second.out.split()[-1] == first


def test_a_resent_alert_id_is_reported_as_a_duplicate_of_the_same_incident(imctl):
    first = imctl(*ALERT, "--alert-id", "once").out.split()[-1]
    again = imctl(*ALERT, "--alert-id", "once")
    assert again.code == 0 and again.out.startswith("duplicate: alert once") and first in again.out


def test_enum_names_are_case_insensitive_and_a_type_may_be_its_wire_number(imctl):
    by_name = imctl("--json", "alert", "--title", "t1", "--source", "s", "--severity", "p0", "--type", "SECURITY")
    by_number = imctl("--json", "alert", "--title", "t2", "--source", "s", "--severity", "P0", "--type", "3")
    first, second = (imctl("--json", "incidents", "get", r.json()["incident_id"]).json() for r in (by_name, by_number))
    assert (first["severity"], first["type"]) == (second["severity"], second["type"]) == ("P0", "SECURITY")


@pytest.mark.parametrize("argv", [
    [*ALERT[:6], "1", *ALERT[7:]],
    ["incidents", "list", "--severity", "2"],
    ["incidents", "create", "--title", "t", "--severity", "0", "--type", "data"],
    ["incidents", "update", "some-id", "--severity", "3"],
    ["watch", "--min-severity", "1"],
])
def test_a_bare_number_as_severity_is_refused_with_a_hint(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "P0 (most severe) .. P4" in err and "on the wire 1 means P0" in err


# -- incidents ------------------------------------------------------------------------------

def test_incidents_list_shows_a_table_with_readable_names_and_filters_by_state(imctl):
    incident_id = open_incident(imctl)
    listed = imctl("incidents", "list")
    header, row = listed.out.splitlines()
    assert header.split()[:5] == ["ID", "SEV", "STATE", "TYPE", "ALERTS"]
    assert row.split()[:5] == [incident_id, "P1", "DETECTED", "Availability", "1"] and "High Latency" in row
    assert imctl("incidents", "list", "--state", "triaged", "resolved").out.strip() == "no incidents"
    assert incident_id in imctl("incidents", "list", "--state", "Detected", "--severity", "P0", "P1").out


def test_incidents_list_stops_at_limit_and_follows_page_tokens_with_all(server, imctl):
    for n in range(53):
        server.client.alerts.SubmitAlert(alerts_pb2.AlertRequest(
            source="bulk", title=f"incident {n}", severity=3, type=1), timeout=TIMEOUT)
    one_page = imctl("incidents", "list")
    assert len(one_page.out.splitlines()) == 1 + 50 and "--all" in one_page.err
    first_three = imctl("incidents", "list", "--limit", "3", "--json").json()
    rest = imctl("incidents", "list", "--page-token", first_three["next_page_token"], "--json").json()
    everything = imctl("incidents", "list", "--all", "--json").json()
    assert len({i["id"] for i in everything["incidents"]}) == 53 and everything["next_page_token"] == ""
    assert [i["id"] for i in first_three["incidents"] + rest["incidents"]] == [
        i["id"] for i in everything["incidents"]]


def test_incidents_get_shows_the_incidents_fields(imctl):
    incident_id = open_incident(imctl)
    shown = imctl("incidents", "get", incident_id).out
    fields = dict(line.split(None, 1) for line in shown.splitlines() if not line.startswith(("last", "resolved")))
    assert fields["id"] == incident_id and fields["title"] == "High Latency"
    assert (fields["severity"], fields["state"], fields["type"]) == ("P1", "DETECTED", "Availability")


def test_getting_an_unknown_incident_exits_1_with_not_found(imctl):
    result = imctl("incidents", "get", "no-such-incident")
    assert result.code == 1 and result.out == "" and result.err.startswith("error: NOT_FOUND: ")


def test_transition_moves_the_incident_and_an_illegal_one_fails_with_failed_precondition(imctl):
    incident_id = open_incident(imctl)
    moved = imctl("incidents", "transition", incident_id, "triaged", "--actor", "ana", "--note", "looking")
    assert moved.code == 0 and moved.out.strip() == f"incident {incident_id} is now TRIAGED"
    illegal = imctl("incidents", "transition", incident_id, "DETECTED")
    assert illegal.code == 1 and "error: FAILED_PRECONDITION: " in illegal.err and "TRIAGED" in illegal.err


def test_resolve_records_who_and_how_and_resolving_twice_fails_with_failed_precondition(imctl):
    incident_id = open_incident(imctl)
    resolved = imctl("incidents", "resolve", incident_id, "--by", "ana", "--method", "automated",
                     "--notes", "restarted", "--root-cause", "leak")
    assert resolved.code == 0 and resolved.out.strip() == \
        f"incident {incident_id} is now RESOLVED (resolved by ana, automated)"
    shown = imctl("incidents", "get", incident_id).out
    assert "root cause   leak" in shown and "notes        restarted" in shown
    again = imctl("incidents", "resolve", incident_id, "--by", "ana")
    assert again.code == 1 and again.out == "" and again.err.startswith("error: FAILED_PRECONDITION: ")


def test_a_note_is_added_to_the_timeline_by_its_author(imctl):
    incident_id = open_incident(imctl)
    noted = imctl("incidents", "note", incident_id, "customer called", "--author", "bo")
    assert noted.code == 0 and f"added to incident {incident_id} by bo" in noted.out


def test_assign_replaces_the_assignees(imctl):
    incident_id = open_incident(imctl)
    assert imctl("incidents", "assign", incident_id, "ana", "bo").out.strip() == \
        f"incident {incident_id} assigned to ana, bo"
    assert imctl("--json", "incidents", "assign", incident_id, "cy").json()["assignees"] == ["cy"]


def test_create_opens_an_incident_without_an_alert(server, imctl):
    created = imctl("incidents", "create", "--title", "DB down", "--severity", "p0", "--type", "data",
                    "--label", "team=db", "--service", "pg", "--assignee", "ana", "bo", "--actor", "cy")
    assert created.code == 0 and created.out.startswith("created incident ") and created.out.endswith(
        " (P0, DETECTED)\n")
    incident_id = created.out.split()[2]
    incident = server.client.incidents.GetIncident(incidents_pb2.GetIncidentRequest(id=incident_id), timeout=TIMEOUT)
    assert (incident.title, incident.severity, incident.type, incident.source) == (
        "DB down", incidents_pb2.P0, incidents_pb2.DATA, "manual")
    assert (dict(incident.labels), list(incident.affected_services), list(incident.assignees)) == (
        {"team": "db"}, ["pg"], ["ana", "bo"])


def test_update_changes_only_what_is_given(server, imctl):
    incident_id = open_incident(imctl)
    updated = imctl("incidents", "update", incident_id, "--title", "Higher Latency", "--severity", "P0",
                    "--label", "region=eu", "team=web")
    assert updated.code == 0 and updated.out.strip() == f"incident {incident_id} updated: title, severity, labels"
    incident = server.client.incidents.GetIncident(incidents_pb2.GetIncidentRequest(id=incident_id), timeout=TIMEOUT)
    assert (incident.title, incident.severity, incident.description, dict(incident.labels)) == (
        "Higher Latency", incidents_pb2.P0, "", {"region": "eu", "team": "web"})
    assert imctl("--json", "incidents", "update", incident_id, "--no-labels").json()["labels"] == {}
    assert imctl("--json", "incidents", "update", incident_id, "--description", "slow").json()["title"] == \
        "Higher Latency"


def test_update_with_nothing_to_change_exits_2(imctl):
    incident_id = open_incident(imctl)
    nothing = imctl("incidents", "update", incident_id)
    assert nothing.code == 2 and nothing.out == "" and nothing.err.startswith("error: nothing to change")
    both = imctl("incidents", "update", incident_id, "--label", "a=1", "--no-labels")
    assert both.code == 2 and "not allowed with argument" in both.err


def test_get_with_timeline_shows_the_incident_and_then_its_timeline(imctl):
    incident_id = open_incident(imctl)
    imctl("incidents", "note", incident_id, "customer called", "--author", "bo")
    incident_part, timeline_part = imctl("incidents", "get", incident_id, "--timeline").out.split("\n\n")
    assert incident_part.splitlines()[0].split() == ["id", incident_id]
    lines = timeline_part.splitlines()
    assert lines[0].split() == ["#", "AT", "KIND", "ACTOR", "DETAIL"]
    assert [line.split()[2] for line in lines[1:]] == ["created", "note_added"]
    both = imctl("--json", "incidents", "get", incident_id, "--timeline").json()
    assert both["incident"]["id"] == incident_id
    assert [e["kind"] for e in both["timeline"]["entries"]] == ["created", "note_added"]


def test_ack_moves_the_incident_to_investigating_and_acking_twice_fails(imctl):
    incident_id = open_incident(imctl)
    acked = imctl("incidents", "ack", incident_id, "--actor", "ana", "--note", "on it")
    assert acked.code == 0 and acked.out.strip() == f"incident {incident_id} is now INVESTIGATING"
    change = imctl("--json", "incidents", "timeline", incident_id).json()["entries"][-1]
    assert (change["kind"], change["actor"]) == ("state_changed", "ana") and "on it" in change["detail_json"]
    again = imctl("incidents", "ack", incident_id)
    assert again.code == 1 and again.err.startswith("error: FAILED_PRECONDITION: ")


def test_the_timeline_lists_creation_state_changes_and_notes_in_order(imctl):
    incident_id = open_incident(imctl)
    imctl("incidents", "transition", incident_id, "investigating", "--actor", "ana")
    imctl("incidents", "note", incident_id, "found it", "--author", "bo")
    lines = imctl("incidents", "timeline", incident_id).out.splitlines()
    assert lines[0].split() == ["#", "AT", "KIND", "ACTOR", "DETAIL"]
    kinds = [line.split()[2] for line in lines[1:]]
    assert kinds[0] == "created" and kinds.index("state_changed") < kinds.index("note_added")
    assert "found it" in lines[-1] and " bo " in lines[-1]


# -- watch ----------------------------------------------------------------------------------

def test_watch_prints_an_event_from_a_concurrently_submitted_alert_and_exits_after_count(
        server, imctl, monkeypatch):
    subscribed = watch_subscriptions(server.engine, monkeypatch)
    with ThreadPoolExecutor(1) as pool:
        watching = pool.submit(imctl, "watch", "--count", "1", "--min-severity", "P1", "--duration", str(TIMEOUT))
        assert subscribed.wait(TIMEOUT)
        ack = server.client.alerts.SubmitAlert(alerts_pb2.AlertRequest(
            source="sentinel", title="Watched", severity=2, type=6), timeout=TIMEOUT)
        result = watching.result(timeout=TIMEOUT)
    assert result.code == 0 and result.err == ""
    (line,) = result.out.splitlines()
    assert line.split()[1:5] == [ack.incident_id, "P1", "DETECTED", "created"] and line.endswith("Watched")


def test_watch_with_json_prints_one_json_object_per_event(server, imctl, monkeypatch):
    subscribed = watch_subscriptions(server.engine, monkeypatch)
    incident_id = open_incident(imctl)
    with ThreadPoolExecutor(1) as pool:
        watching = pool.submit(imctl, "watch", "--incident", incident_id, "--count", "2", "--json",
                               "--duration", str(TIMEOUT))
        assert subscribed.wait(TIMEOUT)
        server.client.incidents.TransitionIncident(incidents_pb2.TransitionIncidentRequest(
            id=incident_id, to_state=incidents_pb2.TRIAGED), timeout=TIMEOUT)
        server.client.incidents.AddNote(incidents_pb2.AddNoteRequest(id=incident_id, text="hi"), timeout=TIMEOUT)
        result = watching.result(timeout=TIMEOUT)
    events = [json.loads(line) for line in result.out.splitlines()]
    assert [e["entry"]["kind"] for e in events] == ["state_changed", "note_added"]
    assert {e["incident"]["id"] for e in events} == {incident_id}


def test_ctrl_c_ends_watch_quietly_with_status_0(server, imctl, monkeypatch):
    subscribed = watch_subscriptions(server.engine, monkeypatch)
    interrupted = threading.Event()

    def press_ctrl_c() -> None:
        if subscribed.wait(TIMEOUT):
            interrupted.set()
            os.kill(os.getpid(), signal.SIGINT)

    presser = threading.Thread(target=press_ctrl_c)
    # A shell that starts CI in the background may have SIGINT ignored: use Python's default.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        presser.start()
        result = imctl("watch", "--duration", str(TIMEOUT))
        presser.join(TIMEOUT)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert interrupted.is_set()
    assert (result.code, result.out, result.err) == (0, "", "")


# -- notifications ---------------------------------------------------------------------------

def webhook(url: str) -> dict[str, Any]:
    return {"webhook_enabled": True, "default_webhook_url": url + "/hook", "retry_backoff_secs": 0.05,
            "max_retries": 2}


def test_notification_stats_list_and_get_show_a_delivered_webhook(tmp_path, capsys):
    with HttpReceiver() as rx, serve(tmp_path, webhook(rx.url)) as server:
        imctl = runner(server.address, capsys)
        settled = server.engine.subscribe(lambda event: isinstance(event, DeliverySettled))
        incident_id = open_incident(imctl)
        assert settled.get(timeout=TIMEOUT) is not None
        stats = imctl("notifications", "stats")
        listed = imctl("notifications", "list", "--incident", incident_id)
        notification_id = imctl("--json", "notifications", "list", "--channel", "webhook").json()[
            "notifications"][0]["id"]
        detail = imctl("notifications", "get", notification_id)
    channel_header, webhook_row = stats.out.splitlines()[:2]
    assert stats.code == 0 and channel_header.split()[:5] == ["CHANNEL", "QUEUED", "IN_FLIGHT", "RETRYING", "DELIVERED"]
    assert webhook_row.split()[:5] == ["webhook", "0", "0", "0", "1"] and "ACTOR" in stats.out
    assert listed.code == 0 and notification_id in listed.out and "delivered" in listed.out
    assert detail.code == 0 and "incident.detected" in detail.out
    head, attempts, routing = (part.splitlines() for part in detail.out.split("\n\n"))
    assert attempts[0].split()[:4] == ["#", "AT", "OUTCOME", "STATUS_CODE"]
    assert attempts[1].split()[2:4] == ["delivered", "200"]
    assert head[-1].split() == ["route", "root"]  # no [route]: every receiver at the root
    assert routing == ["routing of this event:", "RECEIVER  CHANNEL  DECISION", "default   webhook  route root"]


def test_a_dead_notification_is_listed_by_status_and_can_be_requeued(tmp_path, capsys):
    with HttpReceiver(lambda request: Reply(400, "bad")) as rx, serve(tmp_path, webhook(rx.url)) as server:
        imctl = runner(server.address, capsys)
        settled = server.engine.subscribe(lambda event: isinstance(event, DeliverySettled))
        open_incident(imctl)
        assert settled.get(timeout=TIMEOUT).status == "dead"
        dead = imctl("--json", "notifications", "list", "--status", "DEAD").json()["notifications"]
        requeued = imctl("notifications", "requeue", dead[0]["id"])
        nothing_queued = imctl("notifications", "list", "--status", "delivered")
    assert len(dead) == 1 and dead[0]["status"] == "DEAD" and "400" in dead[0]["last_error"]
    assert requeued.code == 0 and requeued.out.strip() == f"notification {dead[0]['id']} requeued (now queued)"
    assert nothing_queued.out.strip() == "no notifications"


def test_a_test_notification_delivered_to_the_webhook_exits_0(tmp_path, capsys):
    with HttpReceiver() as rx, serve(tmp_path, webhook(rx.url)) as server:
        result = runner(server.address, capsys)("notifications", "test", "webhook")
        (request,) = rx.wait_for(1)
    assert result.code == 0 and result.out.strip() == "webhook -> default: delivered (HTTP 200: ok)"
    assert request.path == "/hook"


def test_a_test_notification_that_is_not_delivered_exits_1(tmp_path, capsys):
    def refuse(request: Recorded) -> Reply:
        return Reply(503, "down")

    with HttpReceiver(refuse) as rx, serve(tmp_path, webhook(rx.url)) as server:
        result = runner(server.address, capsys)("--json", "notifications", "test", "webhook")
    assert result.code == 1 and result.json()["outcome"] == "retry" and result.json()["status_code"] == 503


def test_a_test_notification_to_a_disabled_channel_exits_1_with_not_found(imctl):
    result = imctl("notifications", "test", "slack")
    assert result.code == 1 and result.err.startswith("error: NOT_FOUND: ") and "not enabled" in result.err


def test_notifications_are_listed_newest_first_unless_oldest_first_is_asked(tmp_path, capsys):
    with HttpReceiver() as rx, serve(tmp_path, webhook(rx.url)) as server:
        imctl = runner(server.address, capsys)
        opened = [open_incident(imctl, title=f"incident {n}") for n in range(3)]
        table = imctl("notifications", "list")
        newest = imctl("--json", "notifications", "list").json()["notifications"]
        oldest = imctl("--json", "notifications", "list", "--oldest-first").json()["notifications"]
        first_two = imctl("--json", "notifications", "list", "--limit", "2").json()
        rest = imctl("--json", "notifications", "list", "--page-token", first_two["next_page_token"]).json()
    assert [row.split()[1] for row in table.out.splitlines()[1:]] == opened[::-1]
    assert [n["incident_id"] for n in newest] == opened[::-1]
    assert [n["incident_id"] for n in oldest] == opened
    assert [n["incident_id"] for n in first_two["notifications"] + rest["notifications"]] == opened[::-1]
    assert rest["next_page_token"] == ""


def test_stats_in_the_prometheus_format_parse_line_by_line_and_match_get_stats(tmp_path, capsys):
    with HttpReceiver() as rx, serve(tmp_path, webhook(rx.url)) as server:
        imctl = runner(server.address, capsys)
        settled = server.engine.subscribe(lambda event: isinstance(event, DeliverySettled))
        open_incident(imctl)
        assert settled.get(timeout=TIMEOUT).status == "delivered"
        result = imctl("notifications", "stats", "--format", "prometheus")
        stats = server.client.notifications.GetStats(notifications_pb2.StatsRequest(), timeout=TIMEOUT)
    assert result.code == 0 and result.err == ""
    parsed = exposition.parse(result.out)
    assert parsed.types == {"incident_manager_notifications": "gauge",
                            "incident_manager_notification_latency_seconds": "gauge",
                            "incident_manager_actor_up": "gauge", "incident_manager_actor_restarts_total": "counter",
                            "incident_manager_store_up": "gauge"}
    assert set(parsed.helps) == set(parsed.types) and all(parsed.helps.values())
    (webhook_stats,) = stats.channels
    assert {status: parsed.value("incident_manager_notifications", channel="webhook", status=status)
            for status in prometheus.STATUSES} == {
        "queued": 0, "in_flight": 0, "retrying": 0, "delivered": 1, "skipped": 0, "dead": 0, "silenced": 0,
        "inhibited": 0}
    assert parsed.value("incident_manager_notification_latency_seconds", channel="webhook", quantile="0.99") == \
        pytest.approx(webhook_stats.latency_p99_ms / 1000) != 0
    assert {a.name for a in stats.actors} == {labels["actor"] for labels in parsed.series("incident_manager_actor_up")}
    assert all(parsed.value("incident_manager_actor_up", actor=a.name) == 1 and
               parsed.value("incident_manager_actor_restarts_total", actor=a.name) == 0 for a in stats.actors)


def test_prometheus_label_values_are_escaped_and_a_dead_actor_is_down():
    odd = 'sender:"odd"\\name\nnext'
    stats = notifications_pb2.Stats(
        channels=[notifications_pb2.ChannelStats(channel='web"hook', dead=3, latency_p50_ms=1.5)],
        actors=[notifications_pb2.ActorStatus(name=odd, alive=False, restarts=4, last_failure="boom\n")])
    parsed = exposition.parse(prometheus.exposition(stats))
    assert parsed.value("incident_manager_notifications", channel='web"hook', status="dead") == 3
    assert parsed.value("incident_manager_notification_latency_seconds", channel='web"hook', quantile="0.5") == 0.0015
    assert (parsed.value("incident_manager_actor_up", actor=odd),
            parsed.value("incident_manager_actor_restarts_total", actor=odd)) == (0, 4)


def test_stats_show_what_silences_and_inhibition_held_in_the_table_and_the_prometheus_format():
    stats = notifications_pb2.Stats(channels=[notifications_pb2.ChannelStats(
        channel="webhook", delivered=7, silenced=3, inhibited=2, enabled=True, destinations=["default"])])
    header, row = render.stats(stats).splitlines()[:2]
    assert dict(zip(header.split(), row.split())) == {
        "CHANNEL": "webhook", "QUEUED": "0", "IN_FLIGHT": "0", "RETRYING": "0", "DELIVERED": "7", "SKIPPED": "0",
        "DEAD": "0", "SILENCED": "3", "INHIBITED": "2", "P50_MS": "0.0", "P99_MS": "0.0", "DESTINATIONS": "1"}
    parsed = exposition.parse(prometheus.exposition(stats))
    assert (parsed.value("incident_manager_notifications", channel="webhook", status="silenced"),
            parsed.value("incident_manager_notifications", channel="webhook", status="inhibited")) == (3, 2)


def test_the_exposition_reader_refuses_what_the_format_forbids():
    for broken in ['m{a="x} 1\n', 'm{a="\\q"} 1\n', "m 1 1700000000\n", "m 1", "m one\n",
                   "# TYPE m gauge\n# TYPE m gauge\n", "# TYPE m gauges\n", "a 1\nb 1\na 2\n", "m 1\nm 2\n"]:
        with pytest.raises(AssertionError):
            exposition.parse(broken)


# -- id prefixes ----------------------------------------------------------------------------

def test_a_unique_id_prefix_of_8_characters_works_wherever_an_id_is_asked_for(tmp_path, capsys, monkeypatch):
    with HttpReceiver(lambda request: Reply(400, "bad")) as rx, serve(tmp_path, webhook(rx.url)) as server:
        imctl = runner(server.address, capsys)
        settled = server.engine.subscribe(lambda event: isinstance(event, DeliverySettled))
        incident_id = open_incident(imctl)
        other_id = open_incident(imctl, title="Another one")
        assert {settled.get(timeout=TIMEOUT).status for _ in range(2)} == {"dead"}
        short = incident_id[:8]
        (dead,) = imctl("--json", "notifications", "list", "--incident", short).json()["notifications"]
        shown = imctl("notifications", "get", dead["id"][:8])
        requeued = imctl("notifications", "requeue", dead["id"][:8])
        subscribed = watch_subscriptions(server.engine, monkeypatch)
        with ThreadPoolExecutor(1) as pool:
            watching = pool.submit(imctl, "watch", "--incident", short, "--count", "1", "--duration", str(TIMEOUT))
            assert subscribed.wait(TIMEOUT)
            server.client.incidents.AddNote(incidents_pb2.AddNoteRequest(id=other_id, text="not this"),
                                            timeout=TIMEOUT)
            server.client.incidents.AddNote(incidents_pb2.AddNoteRequest(id=incident_id, text="this"),
                                            timeout=TIMEOUT)
            watched = watching.result(timeout=TIMEOUT)
        results = [imctl("incidents", "get", short), imctl("incidents", "update", short, "--title", "Renamed"),
                   imctl("incidents", "note", short, "hello"), imctl("incidents", "assign", short, "ana"),
                   imctl("incidents", "ack", short), imctl("incidents", "transition", short, "remediating"),
                   imctl("incidents", "resolve", short, "--by", "ana"), imctl("incidents", "timeline", short)]
    assert shown.code == 0 and shown.out.splitlines()[0].split() == ["id", dead["id"]]
    assert requeued.out.strip() == f"notification {dead['id']} requeued (now queued)"
    assert watched.out.split()[1] == incident_id and watched.out.strip().endswith("High Latency")
    assert [r.code for r in results] == [0] * len(results), [r.err for r in results]
    assert results[0].out.splitlines()[0].split() == ["id", incident_id]
    assert all(incident_id in r.out for r in results[1:7])
    assert "now RESOLVED" in results[6].out
    kinds = [line.split()[2] for line in results[-1].out.splitlines()[1:]]
    assert [kind for kind in kinds if not kind.startswith("notification_")] == [
        "created", "note_added", "updated", "note_added", "assignment_changed"] + ["state_changed"] * 3


def test_a_too_short_or_unknown_id_prefix_is_not_found(imctl):
    incident_id = open_incident(imctl)
    too_short = imctl("incidents", "get", incident_id[:7])
    assert too_short.code == 1 and too_short.err.strip() == (
        f"error: NOT_FOUND: incident '{incident_id[:7]}' not found (an id prefix needs at least 8 characters)")
    unknown = imctl("notifications", "get", "zzzzzzzz")
    assert unknown.code == 1 and unknown.err.strip() == "error: NOT_FOUND: notification 'zzzzzzzz' not found"


def test_an_ambiguous_id_prefix_is_refused_naming_the_matches(server, imctl, monkeypatch):
    shared = [f"feedface-0000-4000-8000-00000000000{n}" for n in (1, 2)]
    real_new_id = processor.new_id
    monkeypatch.setattr(processor, "new_id", lambda: shared.pop(0) if shared else real_new_id())
    made = [imctl("incidents", "create", "--title", f"t{n}", "--severity", "P2", "--type", "data").out.split()[2]
            for n in (1, 2)]
    assert made == ["feedface-0000-4000-8000-000000000001", "feedface-0000-4000-8000-000000000002"]
    ambiguous = imctl("incidents", "transition", "feedface-0000", "triaged")
    assert ambiguous.code == 1 and ambiguous.err.strip() == (
        "error: INVALID_ARGUMENT: id: 'feedface-0000' is the start of more than one incident id "
        f"({made[0]}, {made[1]}); give more characters")
    assert imctl("--json", "incidents", "get", made[1]).json()["title"] == "t2"


# -- errors, options and output -------------------------------------------------------------

def test_an_unreachable_server_exits_1_with_unavailable_and_a_hint(capsys):
    address = f"127.0.0.1:{free_port()}"
    result = runner(address, capsys)("incidents", "list")
    assert result.code == 1 and result.out == ""
    assert result.err.startswith("error: UNAVAILABLE: ") and f"is the server running at {address}?" in result.err


def test_a_call_slower_than_timeout_exits_1_with_deadline_exceeded(tmp_path, capsys):
    hold, release = threading.Event(), threading.Event()

    def clock():
        if hold.is_set():
            release.wait(TIMEOUT)
        return utc_now()

    with serve(tmp_path, clock=clock) as server:
        hold.set()
        try:
            result = runner(server.address, capsys)("--timeout", "0.2", *ALERT)
        finally:
            release.set()
    assert result.code == 1 and result.err.startswith("error: DEADLINE_EXCEEDED: ") and "--timeout" in result.err


@pytest.mark.parametrize("argv, message", [
    (["alert", "--title", "t", "--source", "s", "--severity", "P5", "--type", "data"], "invalid severity 'P5'"),
    (["alert", "--title", "t", "--source", "s", "--severity", "P1", "--type", "weather"], "invalid type 'weather'"),
    (["alert", "--title", "t", "--source", "s", "--severity", "P1", "--type", "data", "--label", "novalue"],
     "expected KEY=VALUE"),
    (["incidents", "transition", "i-1", "sleeping"], "invalid state 'sleeping'"),
    (["incidents", "resolve", "i-1"], "--by"),
    (["notifications", "list", "--status", "lost"], "invalid status 'lost'"),
    (["--server", "no-port", "incidents", "list"], "expected HOST:PORT"),
    (["--timeout", "0", "incidents", "list"], "positive number"),
    (["--json", "notifications", "stats", "--format", "prometheus"], "--json and --format prometheus exclude"),
    (["notifications", "stats", "--format", "xml"], "invalid choice: 'xml'"),
    (["watch", "--count", "0"], "positive whole number"),
    (["incidents"], "required"),
])
def test_bad_command_line_input_exits_2_with_a_message_naming_the_problem(capsys, argv, message):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_the_server_comes_from_imctl_server_when_not_given(server, capsys, monkeypatch):
    monkeypatch.setenv("IMCTL_SERVER", server.address)
    assert main(["incidents", "list"]) == 0
    assert capsys.readouterr().out.strip() == "no incidents"


def test_json_output_parses_and_global_options_may_follow_the_command(imctl):
    incident_id = open_incident(imctl)
    ack = imctl(*ALERT, "--json").json()
    listed = imctl("incidents", "list", "--json").json()
    assert ack == {"alert_id": ack["alert_id"], "status": "ACCEPTED", "incident_id": incident_id,
                   "new_incident": False, "reason": ""}
    assert listed["incidents"][0]["id"] == incident_id and listed["incidents"][0]["alert_count"] == 2
    assert json.loads(imctl("incidents", "timeline", incident_id, "--json").out)["entries"][0]["kind"] == "created"


def test_control_characters_from_alert_text_are_escaped_in_readable_output(imctl):
    incident_id = open_incident(imctl, title="evil \x1b[31mred")
    row = imctl("incidents", "list").out.splitlines()[1]
    assert incident_id in row and "\x1b" not in row and "evil \\x1b[31mred" in row


def test_the_cli_imports_only_grpc_protos_protobuf_and_the_standard_library():
    allowed = {"grpc", "protos", "google"} | set(sys.stdlib_module_names)
    package = Path(__file__).resolve().parents[1] / "actors" / "cli"
    for source in package.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                roots = {(node.module or "").split(".")[0]}
            else:
                continue
            assert roots <= allowed, f"{source.name} imports {roots - allowed}"


def test_the_cli_calls_every_rpc_but_the_bulk_intake_ones_and_each_call_passes_a_deadline():
    """StreamAlerts and SubmitAlerts are for monitoring tools sending many alerts; an operator
    sends one with ``imctl alert``."""
    source = Path(__file__).resolve().parents[1] / "actors" / "cli" / "commands.py"
    stubs = {"alerts", "incidents", "notifications"}
    calls = [node for node in ast.walk(ast.parse(source.read_text()))
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
             and isinstance(node.func.value, ast.Attribute) and node.func.value.attr in stubs]
    every_rpc = {method.name for module in (alerts_pb2, incidents_pb2, notifications_pb2)
                 for service in module.DESCRIPTOR.services_by_name.values() for method in service.methods}
    assert {call.func.attr for call in calls} == every_rpc - {"StreamAlerts", "SubmitAlerts"}
    assert all("timeout" in {keyword.arg for keyword in call.keywords} for call in calls)


def test_stats_say_when_the_store_cannot_be_read_in_the_table_and_the_prometheus_format():
    reason = "the store's database cannot be reached: no connection within 10 s; try again"
    down = notifications_pb2.Stats(actors=[notifications_pb2.ActorStatus(name="router", alive=False)],
                                   store=notifications_pb2.StoreStats(unavailable=reason))
    assert render.stats(down).endswith(f"store unavailable: {reason}")
    assert exposition.parse(prometheus.exposition(down)).value("incident_manager_store_up") == 0
    up = notifications_pb2.Stats(store=notifications_pb2.StoreStats(size_bytes=4096))
    assert "store size" in render.stats(up)
    assert exposition.parse(prometheus.exposition(up)).value("incident_manager_store_up") == 1
