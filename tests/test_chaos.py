"""Chaos: hundreds of actor crashes and transport failures under load lose nothing.

(a) In process: a steady load of alerts and lifecycle transitions while two chaos lanes crash
    the router, the processor and the senders (sometimes failing the restart too, sometimes
    stopping them from outside instead), and transports fail at random. Afterwards every owed
    notification was delivered exactly once, in order per incident; no alert was recorded
    twice; and every restart is accounted for by an injected crash or stop.
(b) The real server, through the admin service: crashing the router more often than
    ``max_restarts`` makes the process log why and exit 1.
(c) The real server, through the admin service: deliveries waiting on retry timers when the
    process is killed with SIGKILL are delivered after a restart (test_process covers a
    kill -9 of plain queued deliveries).
"""
from __future__ import annotations

import random
import threading
import time
import traceback
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Callable, TypeVar

import grpc
import pykka

from actors.channels.faults import TransportFault
from actors.domain.commands import TransitionIncident
from actors.domain.errors import Overloaded, Unavailable
from actors.domain.models import Alert, DeliveryStatus, EventKind, IncidentState, IncidentType, Severity
from actors.engine import Engine
from protos import admin_pb2, admin_pb2_grpc, alerts_pb2, notifications_pb2
from tests.support.http_receiver import HttpReceiver
from tests.support.process import ServerProcess, write_config
from tests.support.server import TIMEOUT, client_for, make_settings

T = TypeVar("T")

INCIDENTS = 60
ALERTS_PER_INCIDENT = 5                      # one opens the incident, four join it
LIFECYCLE = [IncidentState.TRIAGED, IncidentState.INVESTIGATING, IncidentState.REMEDIATING,
             IncidentState.RESOLVED, IncidentState.CLOSED]
EVENT_ORDER = {state.event_type: n for n, state in enumerate(IncidentState)}
SUBMITTERS = 4
POOL = 4
MIN_CRASHES = 200
SENDERS = [f"sender:webhook:{n}" for n in range(POOL)]
TRANSPORT_FAULTS = [
    TransportFault("timeout"),
    TransportFault("connection_refused"),
    TransportFault("http_status", 503),
    TransportFault("http_status", 429, retry_after="0"),
    TransportFault("slow", delay_ms=5),
]


@dataclass(frozen=True, slots=True)
class Poke:
    """A message no actor handles: it only gives an armed crash a message to fire on."""


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def wait_until(self, predicate: Callable[[], bool], what: str, poll: float = 0.002) -> None:
        """Poll ``predicate`` until it holds; AssertionError naming ``what`` past the deadline."""
        while not predicate():
            if time.monotonic() > self.end:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(poll)

    @staticmethod
    def pause(seconds: float) -> None:
        """Pacing between blows and back-off between retries: a deliberate pause that waits
        for nothing (what the test waits for goes through :meth:`wait_until`)."""
        time.sleep(seconds)


def chaos_settings(tmp_path, url: str):
    return make_settings(
        tmp_path,
        notifications={"webhook_enabled": True, "default_webhook_url": url + "/hook", "worker_threads": POOL,
                       "retry_backoff_secs": 0.005, "retry_max_backoff_secs": 0.02, "max_retries": 1000,
                       # hundreds of sender restarts: in-process sends, so each restart is cheap
                       # (test_post_worker.py kills worker processes under load)
                       "webhook_worker_processes": False},
        # high enough never to escalate: every crash here is meant to be survived
        supervision={"max_restarts": 100_000, "within_secs": 1})


class Load:
    """Submits every incident's alerts and transitions from several threads, retrying a
    command that got Unavailable (processor crashed or restarting) with the same ids."""

    def __init__(self, engine: Engine, deadline: Deadline) -> None:
        self.engine = engine
        self.deadline = deadline
        self.incident_of: dict[int, str] = {}
        self.results: dict[str, object] = {}
        self.retries = Counter[str]()
        self.errors: list[BaseException] = []
        self.threads = [threading.Thread(target=self._run, args=(k,), name=f"load-{k}") for k in range(SUBMITTERS)]

    def start(self) -> "Load":
        for thread in self.threads:
            thread.start()
        return self

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self.threads)

    def join(self) -> None:
        for thread in self.threads:
            thread.join(max(0.0, self.deadline.end - time.monotonic()))
        assert not self.running, "the load did not finish in time"
        assert not self.errors, "".join(traceback.format_exception(self.errors[0]))

    def _retrying(self, kind: str, call: Callable[[], T]) -> T:
        while True:
            try:
                return call()
            except (Unavailable, Overloaded):
                self.retries[kind] += 1
                if time.monotonic() > self.deadline.end:
                    raise
                self.deadline.pause(0.001)

    def _run(self, k: int) -> None:
        try:
            for i in range(k, INCIDENTS, SUBMITTERS):
                for n in range(ALERTS_PER_INCIDENT):
                    alert = Alert(f"alert-{i}-{n}", "chaos", f"incident {i}", "", Severity.P2, IncidentType.APPLICATION)
                    result = self._retrying("alert", lambda: self.engine.submit_alert(alert))
                    self.results[alert.alert_id] = result
                    self.incident_of.setdefault(i, result.incident_id)
                for state in LIFECYCLE:
                    self._retrying("transition", lambda: self.engine.transition(TransitionIncident(self.incident_of[i], state, "chaos")))
        except BaseException as error:  # reported by join()
            self.errors.append(error)


class ActorChaos:
    """One lane: strike one actor at a time — a crash on its next message (75%), that plus a
    failing restart (10%: the on_start path), or a stop from outside (15%: the on_stop path)
    — then wait until its supervisor has restarted it (one_for_one: only it) before the next
    blow, so every restart is attributable. Lanes for actors of independent supervisors run
    side by side."""

    def __init__(self, engine: Engine, actors: list[str], seed: int, deadline: Deadline,
                 keep_going: Callable[[], bool], transport: bool = False) -> None:
        self.engine = engine
        self.actors = actors
        self.rng = random.Random(seed)
        self.deadline = deadline
        self.keep_going = keep_going
        self.transport = transport
        self.crashes = Counter[str]()  # injected crashes that fired (message and start)
        self.exits = Counter[str]()    # every exit its supervisor had to handle
        self.transport_planned = 0
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, name=f"chaos-{seed}")

    def expected_restarts(self, actor: str) -> int:
        return self.exits[actor]  # one_for_one: nothing else restarts with it

    def _run(self) -> None:
        try:
            while self.keep_going():
                self._blow(self.rng.choice(self.actors))
                if self.transport:
                    self._transport_fault()
                self.deadline.pause(0.002)  # let the load make progress
        except BaseException as error:
            self.errors.append(error)

    def _blow(self, actor: str) -> None:
        engine, old = self.engine, self.engine.directory.get(actor)  # running: we waited last time
        roll = self.rng.random()
        if roll < 0.15:
            old.stop(block=False)
            self.exits[actor] += 1
        else:
            if roll < 0.25:
                engine.faults.crash_on_start(actor)  # the restart after this crash fails too
                self.crashes[actor] += 1
                self.exits[actor] += 1
            engine.faults.crash_next_message(actor)
            self.crashes[actor] += 1
            self.exits[actor] += 1

            def fired() -> bool:
                if old.is_alive():
                    try:
                        old.tell(Poke())  # or a real message gets there first; either fires it
                    except pykka.ActorDeadError:
                        pass
                return not old.is_alive()
            self.deadline.wait_until(fired, f"the crash of {actor}")
        affected = [actor]

        def restarted() -> bool:
            statuses = {s.name: s for s in engine.actor_statuses()}
            return all(name in statuses and statuses[name].alive
                       and statuses[name].restarts >= self.expected_restarts(name) for name in affected)
        self.deadline.wait_until(restarted, f"{affected} to be restarted")
        self.deadline.wait_until(lambda: engine.directory.lookup(actor) is not None, f"{actor} to be registered")

    def _transport_fault(self) -> None:
        faults = self.engine.channel_faults
        if self.transport_planned - faults.injected < 4:  # keep a few queued, never a flood
            times = self.rng.randint(1, 3)
            faults.fail_next("webhook", times, self.rng.choice(TRANSPORT_FAULTS))
            self.transport_planned += times


def owed_rows(engine: Engine, status: str = "") -> list:
    rows, token = [], ""
    while True:
        page, token = engine.notifications(status=status, page_size=500, page_token=token)
        rows += page
        if not token:
            return rows


def test_hundreds_of_crashes_and_transport_failures_under_load_lose_and_duplicate_nothing(tmp_path):
    deadline = Deadline(60)
    with HttpReceiver() as rx, Engine(chaos_settings(tmp_path, rx.url)) as engine:
        load = Load(engine, deadline).start()

        def keep_going() -> bool:
            return load.running or sum(top.crashes.values()) + sum(pool.crashes.values()) < MIN_CRASHES

        top = ActorChaos(engine, ["router", "processor"], seed=1, deadline=deadline, keep_going=keep_going)
        pool = ActorChaos(engine, SENDERS, seed=2, deadline=deadline, keep_going=keep_going, transport=True)
        for lane in (top, pool):
            lane.thread.start()
        load.join()
        during_load = sum(top.crashes.values()) + sum(pool.crashes.values())
        for lane in (top, pool):
            lane.thread.join(max(0.0, deadline.end - time.monotonic()))
            assert not lane.thread.is_alive() and not lane.errors, lane.errors
        engine.channel_faults.clear()  # a few planned failures may be left unconsumed

        expected = INCIDENTS * (1 + len(LIFECYCLE))
        deadline.wait_until(lambda: len(rx.requests) >= expected and not owed_rows(engine, "queued")
                            and not owed_rows(engine, "retrying"), "every owed notification to settle", poll=0.02)
        rows = owed_rows(engine)
        statuses = {s.name: s for s in engine.actor_statuses()}
        crashes, exits = top.crashes + pool.crashes, top.exits + pool.exits
        incidents = {i: engine.incident(incident_id) for i, incident_id in load.incident_of.items()}
        timelines = {i: engine.timeline(incident_id) for i, incident_id in load.incident_of.items()}
        injected, transport_consumed = engine.faults.injected_crashes, engine.channel_faults.injected
        assert not engine.failed.is_set(), engine.failure_reason

    # the chaos really happened
    assert sum(crashes.values()) >= MIN_CRASHES and transport_consumed > 50
    assert min(crashes[a] for a in ["router", "processor", *SENDERS]) > 0
    # every restart is explained, and one_for_one restarts nothing but the actor that exited
    assert injected == sum(crashes.values())
    restarts = {name: s.restarts for name, s in statuses.items()}
    assert restarts == {"pool:webhook": 0, "retention": 0, "router": exits["router"], "processor": exits["processor"],
                        **{s: exits[s] for s in SENDERS}}, (crashes, exits)
    assert all(s.alive for s in statuses.values())

    # client idempotency: retried alerts were recorded once
    assert len(load.results) == INCIDENTS * ALERTS_PER_INCIDENT
    for i, incident in incidents.items():
        assert incident.alert_count == ALERTS_PER_INCIDENT and incident.state is IncidentState.CLOSED
        kinds = Counter(event.kind for event in timelines[i])
        assert (kinds[EventKind.ALERT_JOINED], kinds[EventKind.STATE_CHANGED]) == (ALERTS_PER_INCIDENT - 1,
                                                                                     len(LIFECYCLE))

    # every owed notification was delivered, in lifecycle order per incident, and exactly once:
    # injected transport faults never reach the receiver and injected crashes strike between
    # messages, never inside a send, so here even a same-id repeat would be a bug
    assert len(rows) == expected and {r.status for r in rows} == {DeliveryStatus.DELIVERED}
    received = [(r.headers["webhook-id"], r.json()) for r in rx.requests]
    assert all(header == body["notification_id"] for header, body in received)
    times_received = Counter(body["notification_id"] for _, body in received)
    repeated = {nid: n for nid, n in times_received.items() if n > 1}
    assert not repeated, f"{len(repeated)} notifications were delivered more than once"
    assert set(times_received) == {r.id for r in rows}
    per_incident = defaultdict(list)
    for _, body in received:
        per_incident[body["incident"]["id"]].append(EVENT_ORDER[body["event_type"]])
    out_of_order = [order for order in per_incident.values() if order != sorted(order)]
    assert not out_of_order, f"{len(out_of_order)} incidents' events arrived out of order, e.g. {out_of_order[0]}"
    print(f"\nchaos: {sum(crashes.values())} injected crashes ({during_load} under load) {dict(crashes)}, "
          f"{sum(exits.values())} exits, {transport_consumed} transport faults, client retries {dict(load.retries)}")


# -- the real server, through the admin service -------------------------------------------
def admin_config(tmp_path, url: str, extra: str = ""):
    return write_config(tmp_path / "c.toml", tmp_path / "store.db", url + "/hook", extra,
                        server="admin_enabled = true")


def alert(n: int) -> alerts_pb2.AlertRequest:
    return alerts_pb2.AlertRequest(alert_id=f"a-{n}", source="sentinel", title=f"alert {n}", severity=2, type=2)


def submit(client, request: alerts_pb2.AlertRequest, deadline: Deadline) -> None:
    """Submit, retrying UNAVAILABLE (while a crashed processor restarts)."""
    while True:
        try:
            client.alerts.SubmitAlert(request, timeout=TIMEOUT)
            return
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline.end:
                raise
            deadline.pause(0.01)


def restarted(stub, times: int) -> bool:
    """The router is running again after ``times`` restarts, and the processor never restarted
    with it (one_for_one)."""
    actors = {a.name: a for a in stub.ListActors(admin_pb2.ListActorsRequest(), timeout=TIMEOUT).actors}
    return ((actors["router"].restarts, actors["router"].alive) == (times, True)
            and actors["processor"].restarts == 0)


def test_crashing_the_router_more_often_than_max_restarts_makes_the_server_exit_1_saying_why(tmp_path):
    with HttpReceiver() as rx:
        server = ServerProcess(admin_config(tmp_path, rx.url, "\n[supervision]\nmax_restarts = 3\nwithin_secs = 30\n"))
        try:
            server.start()
            deadline = Deadline(30)
            with client_for(server.port) as client:
                admin = admin_pb2_grpc.AdminServiceStub(client.channel)
                for n in range(3):  # within the intensity: each crash is survived
                    admin.InjectActorFault(admin_pb2.InjectActorFaultRequest(
                        actor="router", kind=admin_pb2.CRASH_NEXT_MESSAGE), timeout=TIMEOUT)
                    submit(client, alert(n), deadline)  # its Wake (or the router's own poll) fires the crash
                    deadline.wait_until(lambda: restarted(admin, n + 1), f"restart {n + 1}", poll=0.02)
                admin.InjectActorFault(admin_pb2.InjectActorFaultRequest(
                    actor="router", kind=admin_pb2.CRASH_NEXT_MESSAGE), timeout=TIMEOUT)
                try:
                    client.alerts.SubmitAlert(alert(3), timeout=TIMEOUT)
                except grpc.RpcError:
                    pass  # the server may already be going down
                assert server.wait(timeout=TIMEOUT) == 1
        finally:
            server.stop()
    log = "".join(server.output)
    assert "supervision_gave_up" in log and "more than 3 restarts in 30s" in log and "router" in log


def test_deliveries_waiting_to_retry_survive_kill_minus_nine_and_are_delivered_once_after_restart(tmp_path):
    count = 40
    with HttpReceiver() as rx:
        server = ServerProcess(admin_config(tmp_path, rx.url, "max_retries = 10"))
        try:
            server.start()
            deadline = Deadline(30)
            with client_for(server.port) as client:
                admin = admin_pb2_grpc.AdminServiceStub(client.channel)
                admin.InjectTransportFault(admin_pb2.InjectTransportFaultRequest(
                    channel="webhook", times=10_000, kind=admin_pb2.HTTP_STATUS, code=503, retry_after="1"),
                    timeout=TIMEOUT)
                for n in range(count):
                    client.alerts.SubmitAlert(alert(n), timeout=TIMEOUT)

                def retrying() -> int:
                    return len(client.notifications.ListNotifications(notifications_pb2.ListNotificationsRequest(
                        status=notifications_pb2.RETRYING, page_size=500), timeout=TIMEOUT).notifications)
                deadline.wait_until(lambda: retrying() == count, "every delivery to wait on a retry", poll=0.02)
                stats = admin.GetFaultStats(admin_pb2.FaultStatsRequest(), timeout=TIMEOUT)
                assert stats.injected_transport_faults >= count
            server.proc.kill()
            server.wait()
            assert rx.requests == []  # every attempt so far failed (injected)
            server.start()  # injected faults lived in the killed process only
            rx.wait_for(count, timeout=TIMEOUT)
            with client_for(server.port) as client:
                listed = client.notifications.ListNotifications(
                    notifications_pb2.ListNotificationsRequest(page_size=500), timeout=TIMEOUT).notifications
                details = [client.notifications.GetNotification(
                    notifications_pb2.GetNotificationRequest(id=n.id), timeout=TIMEOUT) for n in listed]
        finally:
            server.stop()
    assert sorted(r.headers["webhook-id"] for r in rx.requests) == sorted(n.id for n in listed)
    for detail in details:
        outcomes = [(a.outcome, a.status_code) for a in detail.attempts]
        assert outcomes[0] == ("retry", 503) and outcomes[-1] == ("delivered", 200)
        assert [a.number for a in detail.attempts] == list(range(1, len(outcomes) + 1))
