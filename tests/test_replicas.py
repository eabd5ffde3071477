"""Replicas sharing one PostgreSQL store (``[state] replicas = true``): the store's unique keys
decide deduplication and alert idempotency across them, a batch resting on an incident another
replica changed is decided again, a replica's leases are its own while it is alive and free to
the others once it lapses, and order per (incident, destination) holds whichever replica
committed which event. Each test has a schema of its own on the real server."""
from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import grpc

import pytest

from actors.domain.changes import Change, IncidentQuery, PendingEvent
from actors.domain.commands import CreateIncident, ResolveIncident
from actors.domain.config import settings_from_mapping
from actors.domain.errors import ConfigError, Unavailable
from actors.domain.models import (Alert, DeliveryStatus, EventKind, IncidentType, Outcome, ResolutionMethod, Severity,
                                  utc_now)
from actors.engine import Engine
from actors.processor import CONFLICT_RETRIES
from actors.replicas import Report
from actors.store.base import AttemptRecord, Conflict, Guard
from actors.store.lock import StoreInUse
from actors.store.opening import open_store
from actors.supervision import ChildStatus
from tests.support import postgres
from protos import alerts_pb2, incidents_pb2
from tests.support.http_receiver import HttpReceiver, Recorded, Reply
from tests.support.process import ROOT, ServerProcess
from tests.support.server import TIMEOUT, Client, client_for, make_settings, running
from tests.support.waiting import wait_until
from tests.test_cli import ALERT, runner
from tests.test_postgres import change


@pytest.fixture
def url():
    with postgres.fresh_schema() as schema_url:
        yield schema_url


def replica_state(url: str, **more):
    return settings_from_mapping({"state": {"url": url, "replicas": True, **more}}).state


@pytest.fixture
def stores(url):
    """Two shared stores on one schema, as two replicas open it."""
    opened = [open_store(replica_state(url), {}) for _ in range(2)]
    yield [o.store for o in opened]
    for o in opened:
        o.store.close()
        o.lock.release()


def alert(alert_id: str, title: str) -> Alert:
    return Alert(alert_id, "mon", title, "", Severity.P2, IncidentType.APPLICATION)


# -- sharing the store -----------------------------------------------------------------------------
def test_replicas_share_a_store_and_a_lone_server_shares_it_with_nobody(url):
    first, second = (open_store(replica_state(url), {}) for _ in range(2))
    try:
        with pytest.raises(StoreInUse, match="unless every one of them sets \\[state\\] replicas = true"):
            open_store(settings_from_mapping({"state": {"url": url}}).state, {})
    finally:
        for opened in (first, second):
            opened.store.close()
            opened.lock.release()
    lone = open_store(settings_from_mapping({"state": {"url": url}}).state, {})
    try:
        with pytest.raises(StoreInUse, match="without \\[state\\] replicas = true"):
            open_store(replica_state(url), {})
    finally:
        lone.store.close()
        lone.lock.release()


def test_replicas_need_a_postgresql_store():
    with pytest.raises(ConfigError) as error:
        settings_from_mapping({"state": {"replicas": True}})
    assert error.value.key == "state.replicas"


# -- one truth ----------------------------------------------------------------------------------------
def test_a_stale_read_or_a_taken_key_is_a_conflict_and_writes_nothing(stores):
    a, b = stores
    (opened,) = a.apply([change("i-1")], "", Guard({}, True)).events
    incident = a.incident("i-1")
    later = incident.evolve(updated_at=utc_now())
    b.apply([Change(later, False, ())], "", Guard({incident.id: incident}, True))  # b changes it first
    with pytest.raises(Conflict, match="changed since it was read"):
        a.apply([Change(incident.evolve(title="stale"), False, ())], "", Guard({incident.id: incident}, True))
    assert a.incident("i-1").title == "title"
    twin = change("i-2")  # a second new incident for the fingerprint i-1 claims
    with pytest.raises(Conflict, match="incidents_dedup_key"):
        b.apply([Change(twin.incident.evolve(fingerprint="fp-i-1"), True, twin.events)], "", Guard({}, True))
    with pytest.raises(Exception):
        a.incident("i-2")


def test_an_incident_superseded_by_a_new_one_lets_go_of_its_fingerprint(stores):
    a, b = stores
    a.apply([change("i-1")], "", Guard({}, True))
    old = a.incident("i-1")
    newer = change("i-2")
    newer = Change(newer.incident.evolve(fingerprint="fp-i-1"), True, newer.events)
    b.apply([newer], "", Guard({old.id: old}, True))  # b read i-1, declined to join it: opens i-2
    assert b.active_incident("fp-i-1").id == "i-2"


def test_the_same_fingerprint_on_two_replicas_at_once_opens_one_incident(tmp_path, url):
    settings = make_settings(tmp_path, state={"url": url, "replicas": True})
    with Engine(settings) as one, Engine(settings) as two:
        replicas = [one, two]
        titles = [f"disk full {n}" for n in range(10)]

        def submit(index: int) -> list:
            return replicas[index % 2].submit_alerts([alert(f"a-{index}-{t}", t) for t in titles])

        with ThreadPoolExecutor(8) as pool:
            results = [r for batch in pool.map(submit, range(16)) for r in batch]
        incidents, _ = one.incidents(IncidentQuery(), page_size=100)
    assert sorted(i.title for i in incidents) == sorted(titles)
    assert all(i.alert_count == 16 for i in incidents)
    assert sum(r.new_incident for r in results) == len(titles)
    assert {r.incident_id for r in results} == {i.id for i in incidents}


def test_an_alert_id_sent_to_two_replicas_at_once_is_recorded_once(tmp_path, url):
    settings = make_settings(tmp_path, state={"url": url, "replicas": True})
    with Engine(settings) as one, Engine(settings) as two:
        start = threading.Barrier(2)

        def submit(engine: Engine) -> list:
            start.wait(5)
            return engine.submit_alerts([alert(f"same-{n}", f"t{n % 3}") for n in range(30)])

        with ThreadPoolExecutor(2) as pool:
            first, second = pool.map(submit, (one, two))
        incidents, _ = one.incidents(IncidentQuery(), page_size=100)
    for ours, theirs in zip(first, second):
        assert ours.incident_id == theirs.incident_id
        assert ours.duplicate != theirs.duplicate  # exactly one of them recorded it
    assert sum(i.alert_count for i in incidents) == 30


# -- leases ---------------------------------------------------------------------------------------------
def test_a_live_replicas_leases_are_its_own_and_a_lapsed_ones_are_taken_over(stores):
    a, b = stores
    a.beat("a", 60, "{}")
    b.beat("b", 60, "{}")
    (owed,) = a.apply([change("i-1")], "", Guard({}, True)).deliveries
    now = time.time() + 1
    (held,) = a.lease_due("webhook", "default", now, 10, "a:1")
    assert b.lease_due("webhook", "default", now, 10, "b:1") == []
    assert a.lease_due("webhook", "default", now, 10, "a:2") != []  # a's next router epoch: its own
    a.beat("a", -1, "{}")  # a lapsed (it was killed and stopped beating)
    (taken,) = b.lease_due("webhook", "default", now, 10, "b:1")
    assert taken.notification_id == held.notification_id == owed.notification_id
    assert [r[0] for r in b.replicas()] == ["b"]


def test_a_retry_owed_by_a_lapsed_replica_is_made_by_another_when_due(stores):
    a, b = stores
    a.beat("a", 60, "{}")
    b.beat("b", 60, "{}")
    a.apply([change("i-1")], "", Guard({}, True))
    (first,) = a.lease_due("webhook", "default", time.time() + 1, 10, "a:1")
    due = time.time() + 30  # a's sender holds the timer in memory; the store holds the due time
    assert a.record_attempts([AttemptRecord(first, Outcome.failed("HTTP 503", 503), DeliveryStatus.RETRYING,
                                            time.time(), 1.0, due)]) == [True]
    a.beat("a", -1, "{}")  # a dies before the retry is due
    assert b.lease_due("webhook", "default", due - 1, 10, "b:1") == []  # not due yet
    (retry,) = b.lease_due("webhook", "default", due + 1, 10, "b:1")
    assert (retry.notification_id, retry.attempt) == (first.notification_id, 2)


def test_a_later_event_waits_behind_an_earlier_one_another_replica_holds(stores):
    a, b = stores
    a.beat("a", 60, "{}")
    b.beat("b", 60, "{}")
    a.apply([change("i-1")], "", Guard({}, True))
    incident = a.incident("i-1")
    resolved = PendingEvent(EventKind.STATE_CHANGED, utc_now(), "t", {}, "incident.resolved",
                            change("x").events[0].receivers)
    b.apply([Change(incident.evolve(updated_at=utc_now()), False, (resolved,))], "",
            Guard({incident.id: incident}, True))
    now = time.time() + 1
    (trigger,) = a.lease_due("webhook", "default", now, 10, "a:1")
    assert trigger.event_type == "incident.detected"
    assert b.lease_due("webhook", "default", now, 10, "b:1") == []  # the resolve waits for it


def test_replicas_deliver_every_owed_notification_once(tmp_path, url):
    with HttpReceiver() as rx:
        settings = make_settings(tmp_path, state={"url": url, "replicas": True},
                                 notifications={"webhook_enabled": True, "default_webhook_url": rx.url + "/hook"})
        with Engine(settings) as one, Engine(settings) as two:
            for n in range(20):
                incident = (one if n % 2 else two).submit_alert(alert(f"a{n}", f"t{n}"))
                (two if n % 2 else one).resolve(ResolveIncident(incident.incident_id, "t", ResolutionMethod.MANUAL))
            requests = rx.wait_for(40)
    ids = [r.json()["notification_id"] for r in requests]
    assert len(ids) == len(set(ids)) == 40
    order: dict[str, list[str]] = {}
    for r in requests:
        order.setdefault(r.json()["incident"]["id"], []).append(r.json()["event_type"])
    assert all(events == ["incident.detected", "incident.resolved"] for events in order.values())


# -- events and stats -----------------------------------------------------------------------------------
def test_a_watcher_on_one_replica_sees_what_another_commits(tmp_path, url):
    settings = make_settings(tmp_path, state={"url": url, "replicas": True})
    with Engine(settings) as one, Engine(settings) as two:
        watching = one.subscribe()
        try:
            result = two.submit_alert(alert("a-1", "seen elsewhere"))
            event = watching.get(timeout=10)
        finally:
            watching.close()
    assert event.incident.id == result.incident_id and event.incident.title == "seen elsewhere"
    assert event.event.kind is EventKind.CREATED and event.event.id is not None


def test_imctl_spreads_calls_over_replicas_whose_stats_show_every_replicas_actors(tmp_path, url, capsys):
    settings = make_settings(tmp_path, state={"url": url, "replicas": True},
                             observability={"log_level": "warning"})
    with running(settings) as (one, api_one, _), running(settings) as (two, api_two, _):
        calls: Counter[str] = Counter()
        for name, engine in (("one", one), ("two", two)):
            submit = engine.submit_alert
            engine.submit_alert = lambda alert, submit=submit, name=name: (calls.update([name]), submit(alert))[1]
        imctl = runner(f"127.0.0.1:{api_one.port},127.0.0.1:{api_two.port}", capsys)
        for n in range(20):  # each run starts at a random address: all on one is 2 in 2**20
            assert imctl(*ALERT[:2], f"spread {n}", *ALERT[3:]).code == 0
        assert calls["one"] >= 1 and calls["two"] >= 1 and sum(calls.values()) == 20
        for engine in (one, two):  # their actors' statuses as they are, without waiting for a beat
            engine._heartbeat.beat_now()
        stats = imctl("--json", "notifications", "stats")
    actors = stats.json()["actors"]
    assert {a["replica"] for a in actors} == {one.lease.instance, two.lease.instance}
    assert {a["name"] for a in actors if a["replica"] == two.lease.instance} >= {"router", "processor"}


# -- three replica processes --------------------------------------------------------------------------
FINGERPRINTS = 150
BURST_ALERTS = 450  # each fingerprint three times, in batches sent at once to different replicas
BATCH = 15


def replica_config(path: Path, url: str, webhook_url: str) -> Path:
    path.write_text(f"""
[server]
host = "127.0.0.1"
grpc_port = 0
shutdown_grace_secs = 5

[state]
url = "{url}"
replicas = true
replica_lease_secs = 2

[observability]
log_level = "warning"

[notifications]
webhook_enabled = true
default_webhook_url = "{webhook_url}"
retry_backoff_secs = 0.05
worker_threads = 1
""", encoding="utf-8")
    return path


class Replicas:
    """Three server processes on one store, and a client that sends a batch to one of them and,
    should it fail (the replica is gone), to the next (the same alert ids: idempotent)."""

    def __init__(self, config: Path) -> None:
        self.servers = [ServerProcess(config) for _ in range(3)]
        self._lock = threading.Lock()
        self._clients: dict[int, Client] = {}  # by port
        self._closing = contextlib.ExitStack()

    def __enter__(self) -> "Replicas":
        for server in self.servers:
            server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing.close()
        for server in self.servers:
            server.stop()

    def call(self, first: int, rpc: Callable[[Client], Any]) -> Any:
        for attempt in range(30):
            with self._lock:
                server = self.servers[(first + attempt) % 3]
                port = server.port if server.proc and server.proc.poll() is None else 0
                if port and port not in self._clients:
                    self._clients[port] = self._closing.enter_context(client_for(port))
                client = self._clients.get(port)
            if client is not None:
                try:
                    return rpc(client)
                except grpc.RpcError:
                    pass
            time.sleep(0.05)
        raise AssertionError("no replica answered")

    def restart(self, index: int) -> None:
        with self._lock:
            server = self.servers[index]
        server.proc.send_signal(signal.SIGTERM)
        assert server.wait() == 0
        with self._lock:
            server.start()


def test_three_replica_processes_survive_a_kill_and_a_restart_mid_burst(tmp_path, url):
    import psycopg  # installed wherever the url fixture did not skip

    answered: Counter[str] = Counter()  # 2xx answers per notification id
    delivered_at: dict[str, float] = {}
    failed: set[str] = set()
    lock = threading.Lock()
    gate = threading.Event()  # cleared: the receiver holds every request (deliveries stay out)
    gate.set()
    held_at_gate: list[str] = []

    def respond(request: Recorded) -> Reply:
        nid = request.json()["notification_id"]
        if not gate.is_set():
            held_at_gate.append(nid)
            gate.wait(30)
        if zlib.crc32(nid.encode()) % 7 == 0 and nid not in failed:
            failed.add(nid)  # its first attempt fails: a retry, owed by whichever replica holds it
            return Reply(503)
        time.sleep(0.003)  # a slow receiver, so deliveries are in flight when a replica dies
        with lock:
            answered[nid] += 1
            delivered_at.setdefault(nid, request.arrived)
        return Reply()

    with HttpReceiver(respond) as rx, Replicas(replica_config(tmp_path / "c.toml", url, rx.url + "/hook")) as replicas, \
            psycopg.connect(url, autocommit=True) as db:
        # the replicas by start, as servers[] holds them
        instances = [row[0] for row in db.execute("SELECT instance FROM replicas ORDER BY started_at")]
        killed: dict[str, Any] = {}

        def kill_one_holding_deliveries() -> None:
            """kill -9, while the receiver holds what is out, a replica that holds some; note what
            it held when it died (its leases, frozen until they lapse)."""
            gate.clear()
            wait_until(lambda: held_at_gate, timeout=10, poll=0.01)
            holders = {row[0] for row in db.execute("SELECT DISTINCT split_part(lease, ':', 1) FROM notifications "
                                                     "WHERE due_at IS NOT NULL AND lease IS NOT NULL")}
            index = next(i for i, instance in enumerate(instances) if instance in holders)
            replicas.servers[index].proc.send_signal(signal.SIGKILL)  # no drain, no leave: its leases lapse
            replicas.servers[index].wait()
            killed["index"] = index
            killed["held"] = {row[0] for row in db.execute(
                "SELECT id FROM notifications WHERE due_at IS NOT NULL AND split_part(lease, ':', 1) = %s",
                (instances[index],))}
            gate.set()

        def send(batch: int) -> list:
            if batch == BURST_ALERTS // BATCH // 3:
                kill_one_holding_deliveries()
            if batch == 2 * BURST_ALERTS // BATCH // 3:
                replicas.restart((killed["index"] + 1) % 3)
            alerts = [alerts_pb2.AlertRequest(alert_id=f"a-{n}", source="mon", title=f"t{n % FINGERPRINTS}",
                                              severity=2, type=2)
                      for n in range(batch * BATCH, (batch + 1) * BATCH)]
            return list(replicas.call(batch, lambda c: c.alerts.SubmitAlerts(
                alerts_pb2.AlertBatch(alerts=alerts), timeout=TIMEOUT)).acks)

        with ThreadPoolExecutor(3) as pool:
            acks = [ack for acks in pool.map(send, range(BURST_ALERTS // BATCH)) for ack in acks]
        incidents = {ack.incident_id for ack in acks}
        assert len(acks) == BURST_ALERTS and len(incidents) == FINGERPRINTS  # one incident per fingerprint
        for n, incident_id in enumerate(sorted(incidents)):
            replicas.call(n, lambda c: c.incidents.ResolveIncident(incidents_pb2.ResolveIncidentRequest(
                id=incident_id, resolved_by="t", method=incidents_pb2.ResolutionMethod.Value("MANUAL")),
                timeout=TIMEOUT))
        wait_until(lambda: len(delivered_at) >= 2 * FINGERPRINTS, timeout=60, poll=0.05)
    assert killed["held"] and killed["held"] <= delivered_at.keys()  # what the dead one held was taken over
    by_event: dict[tuple[str, str], set[str]] = {}
    for request in rx.requests:
        body = request.json()
        by_event.setdefault((body["incident"]["id"], body["event_type"]), set()).add(body["notification_id"])
    assert {incident for incident, _ in by_event} == incidents
    assert all(len(ids) == 1 for ids in by_event.values())  # no notification with two ids
    for incident in incidents:  # a resolve never overtakes its trigger
        (trigger,), (resolve,) = by_event[(incident, "incident.detected")], by_event[(incident, "incident.resolved")]
        assert delivered_at[trigger] < delivered_at[resolve]
    repeated = {nid for nid, count in answered.items() if count > 1}
    assert repeated <= killed["held"]  # repeats only of what the dead replica had out, with the same id


def test_port_flag_serves_on_another_port_and_refuses_one_out_of_range(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(f'[server]\nhost = "127.0.0.1"\ngrpc_port = 0\n[state]\npath = "{tmp_path / "s.db"}"\n',
                      encoding="utf-8")
    refused = subprocess.run([sys.executable, "server.py", "--config", str(config), "--port", "70000"], cwd=ROOT,
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "--port" in refused.stderr
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    served = ServerProcess(config, args=("--port", str(port)))
    try:
        assert served.start().port == port
    finally:
        served.stop()


def test_the_newest_active_incident_of_each_fingerprint_in_one_read(stores):
    a, _ = stores
    a.apply([change("i-1")], "", Guard({}, False))
    newer = change("i-2")
    a.apply([Change(newer.incident.evolve(fingerprint="fp-i-1"), True, newer.events)], "", Guard({}, False))
    a.apply([change("i-3")], "", Guard({}, False))
    found = a.active_incidents_by_fingerprint(["fp-i-1", "fp-i-3", "fp-none"])
    assert {fp: i.id for fp, i in found.items()} == {"fp-i-1": "i-2", "fp-i-3": "i-3"}


def test_stats_add_up_every_live_replicas_deliveries_in_flight_and_list_its_actors(tmp_path, url):
    settings = make_settings(tmp_path, state={"url": url, "replicas": True},
                             notifications={"webhook_enabled": True, "default_webhook_url": "http://127.0.0.1:9/hook"})
    with Engine(settings) as one:
        other = Report([ChildStatus("router", True, 2, "boom")], {"webhook": (3, 1)})
        one.store.beat("other", 60, other.to_json())
        one.store.beat("gone", -1, Report([ChildStatus("router", True, 0, "")], {"webhook": (5, 5)}).to_json())
        stats = one.stats()
    assert stats.in_flight["webhook"] == (3, 1)  # its own: none; a lapsed replica's: not counted
    assert ChildStatus("router", True, 2, "boom", replica="other") in stats.actors
    assert {a.replica for a in stats.actors} == {one.lease.instance, "other"}


def test_a_command_other_replicas_keep_conflicting_with_is_refused_after_its_tries(tmp_path, url, monkeypatch):
    settings = make_settings(tmp_path, state={"url": url, "replicas": True})
    with Engine(settings) as one:
        tries = []

        def always_first(*args, **kwargs):
            tries.append(args)
            raise Conflict("another replica wrote first")

        monkeypatch.setattr(one.store, "apply", always_first)
        with pytest.raises(Unavailable, match="other replicas kept changing"):
            one.submit_alert(alert("a-1", "contended"))
    assert len(tries) == CONFLICT_RETRIES


def test_an_incident_created_by_hand_supersedes_the_open_one_of_its_fingerprint_as_on_one_server(tmp_path, url):
    settings = make_settings(tmp_path, state={"url": url, "replicas": True})
    with Engine(settings) as one, Engine(settings) as two:
        first = one.submit_alert(alert("a-1", "disk full"))
        by_hand = two.create_incident(CreateIncident("disk full", "", Severity.P2, IncidentType.APPLICATION, "mon"))
        joined = one.submit_alert(alert("a-2", "disk full"))
    assert joined.incident_id == by_hand.id != first.incident_id
