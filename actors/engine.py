"""The engine: store, channels and the supervised actor tree, behind one gateway object.

``Engine`` is what the gRPC servicers call and what embedding programs use. Its calls are
plain blocking methods (no asyncio); each raises a DomainError subclass for expected
failures: InvalidArgument, NotFound, IllegalTransition, Overloaded (intake over its
bound), Unavailable (starting, draining or restarting).

Tree (one_for_one at every level, started in this order, stopped in reverse)::

    top ─┬─ pool:webhook ─ sender:webhook:0 … N
         ├─ pool:slack / pool:email / pool:pagerduty (when enabled)
         ├─ router
         ├─ processor
         └─ retention (prunes the store off the hot path)

one_for_one because no part keeps state another needs: each recovers from the store on its
own. A restarted router starts a new lease epoch (every owed row is free to it, and senders
drop what they already hold); a restarted sender or pool has what it held released by the
router; a restarted processor reloads its indexes. So a channel's trouble never costs another
channel its retry timers, and a router crash never interrupts intake. An actor that the
store's outage ended (StoreUnavailable) is restarted after a growing wait that does not count
toward the restart intensity, so the engine outlives an outage of any length.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Callable, Mapping

import pykka
import structlog

from .channels.base import Channel
from .channels.faults import ChannelFaults, TransportFault
from .channels.redact import redactor
from .channels.registry import build_channel, enabled_channels, log_destination_warnings
from .directory import ActorDirectory
from .domain.changes import ChannelCounts, IncidentQuery, NotificationRecord, StoreUsage
from .domain.channel_setup import unusable_channel
from .domain.commands import (AddNote, AlertResult, CreateIncident, CreateSilence, ExpireSilence, ResolveIncident,
                              TransitionIncident, UpdateIncident, UpdateSilence)
from .domain.config import Settings
from .domain.errors import InvalidArgument, NotFound, Overloaded, OutcomeUnknown, StoreUnavailable, Unavailable
from .domain.models import (Alert, Attempt, Delivery, Incident, IncidentState, IncidentType, Outcome,
                            Severity, TimelineEvent, utc_now)
from .domain.inhibition import compile_rules
from .domain.routing import Decision, Routing, routing_warnings
from .domain.silences import Silence
from .domain.retry import RetryPolicy
from .events import Event, EventHub, Subscription
from .faults import ActorFaults
from .formatting.templates import Rendered, compile_receivers, preview
from .intake import GroupCommit
from .messages import Drain, InFlightCounts, SenderRestarted, SubmitAlerts, Wake
from .lease import RouterLease
from .replicas import EventRelay, Heartbeat, Report
from .processor import ProcessorActor
from .retention import RetentionActor
from .router import RouterActor, sender_name
from .scheduler import Scheduler
from .sender import SenderActor
from .store.opening import Lock, describe, open_store
from .supervision import LAST_CHANCE, ChildSpec, ChildStatus, Fencing, GetStatus, Started, Strategy, Supervisor

#: TransportFault is re-exported for the gRPC edge, which may not import actors.channels.
__all__ = ["ChannelFactory", "Engine", "NotificationStats", "TransportFault"]

log = structlog.get_logger(__name__)

#: Builds one channel instance by name (the default reads settings and the environment).
ChannelFactory = Callable[[str], Channel]


@dataclass(frozen=True, slots=True)
class NotificationStats:
    channels: list[ChannelCounts]
    in_flight: dict[str, tuple[int, int]]
    actors: list[ChildStatus]
    store: StoreUsage
    #: Why the store could not be read (its database cannot be reached): channels and store
    #: are then empty; "" when it could.
    store_unavailable: str = ""


class Engine:
    """Start with :meth:`start` (or ``with Engine(settings) as engine:``); stop with :meth:`stop`."""

    def __init__(self, settings: Settings, environ: Mapping[str, str] | None = None,
                 channel_factory: ChannelFactory | None = None, ask_timeout: float = 30.0,
                 clock: Callable[[], datetime] = utc_now) -> None:
        self.settings = settings
        self.environ = dict(os.environ if environ is None else environ)
        self.channel_faults = ChannelFaults()
        self.channel_factory: ChannelFactory = channel_factory or (
            lambda name: build_channel(name, settings.notifications, self.environ, settings.receivers))
        #: Keeps the configured secrets out of crash reasons (logs, GetStats' last_failure).
        self.redact = redactor(settings.notifications, self.environ, settings.receivers)
        self.ask_timeout = ask_timeout
        self.clock = clock
        self.hub = EventHub()
        self.faults = ActorFaults()
        self.directory = ActorDirectory()
        self.failed = threading.Event()
        self.failure_reason = ""
        #: Set with :attr:`failed` when another server took the store while this one had lost
        #: its lock (PostgreSQL): the server exits as it does when it finds the store in use.
        self.store_taken = False
        self._intake = threading.BoundedSemaphore(settings.processing.intake_limit)
        self._accepting = False
        self._top: pykka.ActorRef | None = None
        self._store_lock: Lock | None = None
        self._heartbeat: Heartbeat | None = None
        self._relay: EventRelay | None = None
        self.lease = RouterLease()
        self.scheduler: Scheduler | None = None
        #: How long the tree's supervisors wait for a child to stop before fencing it.
        self.fencing = Fencing()
        self._stopping = False
        self._probes: dict[str, Channel] = {}
        self._test_lock = threading.Lock()
        self._group_commit = GroupCommit(lambda alerts: self._ask_processor(SubmitAlerts(tuple(alerts))))

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> "Engine":
        """Compile the routing, lock and open the store, build every enabled channel (a bad
        route or a missing secret raises ConfigError here), and start the actor tree. Raises
        ConfigError naming ``state.path`` or ``state.url`` for an unusable store, StoreInUse
        when another server holds it (before anything of it is read or recovered), or whatever
        else failed; nothing is left running."""
        #: Who hears about what: the routing tree, every destination, each channel's floor.
        self.routing = Routing.of(self.settings)
        #: Every destination, as (channel, receiver) with the channel's floor.
        self.receivers = self.routing.destinations
        #: Every receiver's templates, for previews (each channel compiles its own to send).
        self.templates = compile_receivers(self.settings.receivers)
        self.store, self._store_lock = open_store(self.settings.state, self.environ)
        self._store_lock.watch(self._store_lock_retaken, self._store_lock_lost)
        try:
            if self.settings.state.replicas:  # alive among the replicas before any lease is taken
                self._heartbeat = Heartbeat(self.store, self.lease.instance, self.settings.state.replica_lease_secs,
                                            self._report)
                self._heartbeat.start()
                self._relay = EventRelay(self.store, self.lease.instance, self.hub, self.directory,
                                         inhibition=bool(self.settings.inhibit_rules))
                self._relay.start()
            self._start_tree()
        except BaseException:
            self._teardown()
            raise
        self._accepting = True
        log.info("engine_started", channels=list(self._probes), receivers=len(self.receivers),
                 store=describe(self.settings.state))
        log_destination_warnings(self.settings.notifications, self.settings.receivers)
        for warning in routing_warnings(self.settings):
            log.warning("route_warning", problem=warning)
        return self

    def _start_tree(self) -> None:
        n = self.settings.notifications
        self._probes = {name: self.channel_factory(name) for name in enabled_channels(n)}
        self.scheduler = Scheduler()
        policy = RetryPolicy(n.max_retries, n.retry_backoff_secs, n.retry_max_backoff_secs)
        sup = self.settings.supervision
        specs = [self._pool_spec(name, policy) for name in self._probes]
        specs.append(ChildSpec("router", lambda parent, name: RouterActor.start(
            parent, name, self.store, self.receivers, {c: n.pool_size(c) for c in self._probes},
            self.directory, self.scheduler, self.lease, n.queue_size, n.per_destination_limit,
            faults=self.faults)))
        specs.append(ChildSpec("processor", lambda parent, name: ProcessorActor.start(
            parent, name, self.store, self.settings.processing, self.routing, self.directory, self.hub,
            self.lease, self.scheduler, compile_rules(self.settings.inhibit_rules), self.clock, faults=self.faults)))
        specs.append(ChildSpec("retention", lambda parent, name: RetentionActor.start(
            parent, name, self.store, self.settings.state.retention_days, self.scheduler, faults=self.faults)))
        self._top = Supervisor.start(None, "top", specs, Strategy.ONE_FOR_ONE, sup.max_restarts,
                                     sup.within_secs, self.directory,
                                     on_restart=self._restarted, on_escalate=self._escalated,
                                     fencing=self.fencing, redact=self.redact)
        self._wait_until_running(expected=3 + sum(1 + n.pool_size(c) for c in self._probes))

    def _wait_until_running(self, expected: int, timeout: float = 30.0) -> None:
        """Block until every actor of the tree has started and finished its start-up (a
        sender's worker process is ready, say; supervisors start children in their own
        threads). Raises Unavailable if that takes longer than ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            statuses = self.actor_statuses()
            if len(statuses) == expected and all(s.alive for s in statuses) and all(
                    self._started(s.name, deadline) for s in statuses):
                return
            self.failed.wait(0.01)
        raise Unavailable("the actor tree did not start in time")

    def _started(self, name: str, deadline: float) -> bool:
        ref = self.directory.lookup(name)
        try:
            return ref is not None and ref.ask(Started(), timeout=max(0.0, deadline - time.monotonic()))
        except (pykka.ActorDeadError, pykka.Timeout):
            return False

    def _pool_spec(self, channel: str, policy: RetryPolicy) -> ChildSpec:
        n = self.settings.notifications
        size = n.pool_size(channel)
        rate = n.rate(channel)
        member_rate = rate / size if rate else None

        def start_sender(parent: pykka.ActorRef, name: str) -> pykka.ActorRef:
            return SenderActor.start(parent, name, self.channel_factory(channel), self.store, self.directory,
                                     self.scheduler, self.hub, policy, self.channel_faults, member_rate,
                                     faults=self.faults)

        members = [ChildSpec(sender_name(channel, i), start_sender) for i in range(size)]
        sup = self.settings.supervision

        def start_pool(parent: pykka.ActorRef, name: str) -> pykka.ActorRef:
            return Supervisor.start(parent, name, members, Strategy.ONE_FOR_ONE, sup.max_restarts,
                                    sup.within_secs, self.directory, on_restart=self._restarted,
                                    fencing=self.fencing, redact=self.redact)
        return ChildSpec(f"pool:{channel}", start_pool)

    def _restarted(self, name: str) -> None:
        """A sender or a whole pool was replaced: the router lets go of what it held."""
        if name.startswith(("sender:", "pool:")):
            self.directory.tell("router", SenderRestarted(name))

    def _escalated(self, reason: str) -> None:
        """The actor tree gave up (or its top ended unasked): stop taking work, say why."""
        if self._stopping:
            return  # our own stop() ends the tree; that is no failure
        self.failure_reason = reason
        self._accepting = False
        self.failed.set()

    def _store_lock_retaken(self, reason: str) -> None:
        log.warning("store_lock_retaken", reason=reason)

    def _store_lock_lost(self, reason: str) -> None:
        """Another server owns the store now: stop taking work and say so (the server exits 4)."""
        log.critical("store_lock_lost", reason=reason)
        self.store_taken = True
        self._escalated(reason)

    def stop_intake(self) -> None:
        """From now on every command answers Unavailable; deliveries go on."""
        self._accepting = False

    def stop(self, grace_secs: float | None = None) -> None:
        """Stop intake, let in-flight sends finish for up to ``grace_secs``, then stop every
        actor; returns within the grace plus a moment. A send still running then is abandoned
        (its sender fenced: nothing is recorded for it); it stays owed in the store with
        everything else, and the next start sends it again with the same id."""
        if self._top is None:
            return
        self._accepting = False
        grace = self.settings.server.shutdown_grace_secs if grace_secs is None else grace_secs
        deadline = time.monotonic() + grace
        try:
            while (self.directory.get("router").ask(Drain(), timeout=max(deadline - time.monotonic(), LAST_CHANCE))
                   > 0 and time.monotonic() < deadline):
                self.failed.wait(0.05)
        except (Unavailable, pykka.ActorDeadError, pykka.Timeout):
            pass
        self.fencing.stop_by(deadline)
        self._teardown()
        log.info("engine_stopped")

    def _teardown(self) -> None:
        """Stop whatever :meth:`start` got running, in reverse order."""
        self._stopping = True
        if self._top is not None:
            try:
                self._top.stop(block=True, timeout=30)
            except (pykka.ActorDeadError, pykka.Timeout):
                pass
            self._top = None
        if self.scheduler is not None:
            self.scheduler.stop()
            self.scheduler = None
        if self._relay is not None:
            self._relay.stop()
            self._relay = None
        self.hub.close_all()
        for channel in self._probes.values():
            channel.close()
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None
        self.store.close()
        if self._store_lock is not None:
            self._store_lock.release()
            self._store_lock = None

    def __enter__(self) -> "Engine":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def accepting(self) -> bool:
        return self._accepting

    # -- commands (through the processor) ----------------------------------------------
    def _admitted(self) -> threading.BoundedSemaphore:
        """The intake permit to hold while a command is outstanding; raises Unavailable when
        not accepting work and Overloaded when over the intake bound."""
        if not self._accepting:
            raise Unavailable("the engine is not accepting work (starting or shutting down)")
        if not self._intake.acquire(blocking=False):
            raise Overloaded("intake is over its bound; retry later")
        return self._intake

    def _ask_processor(self, command: Any) -> Any:
        try:
            return self.directory.get("processor").ask(command, timeout=self.ask_timeout)
        except (pykka.ActorDeadError, pykka.Timeout) as error:
            if isinstance(error.__cause__, OutcomeUnknown):  # it restarts to read the store again
                raise error.__cause__ from None
            raise Unavailable("the processor is restarting; retry") from None

    def _ask(self, command: Any) -> Any:
        permit = self._admitted()
        try:
            return self._ask_processor(command)
        finally:
            permit.release()

    def submit_alerts(self, alerts: list[Alert]) -> list[AlertResult]:
        """Record alerts, deduplicated into incidents; committed before this returns.
        Concurrent callers are grouped into one store transaction (see actors/intake.py)."""
        permit = self._admitted()
        try:
            return self._group_commit.submit(alerts)
        finally:
            permit.release()

    def submit_alert(self, alert: Alert) -> AlertResult:
        return self.submit_alerts([alert])[0]

    # Commands arrive checked by their ``checked`` constructors (actors/domain/commands.py).
    def create_incident(self, command: CreateIncident) -> Incident:
        return self._ask(command)

    def update_incident(self, command: UpdateIncident) -> Incident:
        return self._ask(command)

    def transition(self, command: TransitionIncident) -> Incident:
        return self._ask(command)

    def resolve(self, command: ResolveIncident) -> Incident:
        return self._ask(command)

    def add_note(self, command: AddNote) -> TimelineEvent:
        return self._ask(command)

    def create_silence(self, command: CreateSilence) -> Silence:
        return self._ask(command)

    def update_silence(self, command: UpdateSilence) -> Silence:
        """IllegalTransition for a silence that has ended; NotFound for none."""
        return self._ask(command)

    def expire_silence(self, command: ExpireSilence) -> Silence:
        """End it now and notify what it held that is still open; IllegalTransition if it has ended."""
        return self._ask(command)

    # -- reads (straight from the store) -----------------------------------------------
    def incident(self, incident_id: str) -> Incident:
        return self.store.incident(incident_id)

    def incidents(self, query: IncidentQuery, page_size: int = 50, page_token: str = "") -> tuple[list[Incident], str]:
        return self.store.list_incidents(query, page_size, page_token)

    def timeline(self, incident_id: str) -> list[TimelineEvent]:
        return self.store.timeline(incident_id)

    def notifications(self, incident_id: str = "", channel: str = "", status: str = "", page_size: int = 50,
                      page_token: str = "", newest_first: bool = False) -> tuple[list[NotificationRecord], str]:
        return self.store.list_notifications(incident_id, channel, status, page_size, page_token, newest_first)

    def silence(self, silence_id: str) -> Silence:
        return self.store.silence(silence_id)

    def silences(self) -> list[Silence]:
        """Every silence kept, newest first (ended ones too)."""
        return self.store.silences()

    def ids_starting_with(self, kind: str, prefix: str, limit: int) -> list[str]:
        """Up to ``limit`` ids of ``kind`` ("incident" or "notification") starting with ``prefix``."""
        return self.store.ids_starting_with(kind, prefix, limit)

    def notification(self, notification_id: str) -> tuple[NotificationRecord, list[Attempt]]:
        return self.store.notification(notification_id), self.store.attempts(notification_id)

    def routing_of(self, notification_id: str) -> tuple[Decision, ...]:
        """What routing decided, for every destination, about the event that owed this
        notification (none for one owed before routing was recorded); NotFound if no such
        notification."""
        return self.store.routing_of(notification_id)

    def requeue(self, notification_id: str) -> NotificationRecord:
        """Owe a dead notification again; IllegalTransition unless it is dead."""
        record = self.store.requeue(notification_id, time.time())
        self.directory.tell("router", Wake())
        return record

    def stats(self) -> NotificationStats:
        """The store's counts; this server's actors and deliveries in flight — where replicas
        share the store, every live replica's (the others' as of their last heartbeat), each
        actor naming its replica. When the store's database cannot be reached: this server's
        actors and deliveries, and why the store's counts are missing."""
        ours = self._report()
        actors = [replace(s, replica=self.lease.instance) for s in ours.actors] if self._heartbeat else ours.actors
        try:
            return self._stats_from_the_store(ours.in_flight, actors)
        except StoreUnavailable as error:
            return NotificationStats([], ours.in_flight, actors, StoreUsage(0, 0, None), str(error))

    def _stats_from_the_store(self, in_flight: dict[str, tuple[int, int]],
                              actors: list[ChildStatus]) -> NotificationStats:
        """Stats with the store's counts (and the other replicas' reports) added to this
        server's ``in_flight`` and ``actors``. StoreUnavailable when it cannot be read."""
        if self._heartbeat is None:
            return NotificationStats(self.store.channel_counts(), in_flight, actors, self.store.usage())
        actors = list(actors)
        totals = {channel: list(counts) for channel, counts in in_flight.items()}
        for instance, _, _, text in self.store.replicas():
            if instance != self.lease.instance:
                theirs = Report.from_json(instance, text)
                actors += theirs.actors
                for channel, counts in theirs.in_flight.items():
                    total = totals.setdefault(channel, [0, 0])
                    total[0] += counts[0]
                    total[1] += counts[1]
        return NotificationStats(self.store.channel_counts(), {c: (t[0], t[1]) for c, t in totals.items()},
                                 actors, self.store.usage())

    def _report(self) -> Report:
        """This server's actors and, per channel, its deliveries (being sent, on a retry timer)."""
        try:
            in_flight = self.directory.get("router").ask(InFlightCounts(), timeout=5)
        except (Unavailable, pykka.ActorDeadError, pykka.Timeout):
            in_flight = {}
        return Report(self.actor_statuses(), in_flight)

    def actor_statuses(self) -> list[ChildStatus]:
        """Every supervised actor's liveness, restart count and last failure."""
        statuses: list[ChildStatus] = []
        supervisors = ["top"]
        while supervisors:
            name = supervisors.pop(0)
            ref = self._top if name == "top" else self.directory.lookup(name)
            if ref is None:
                continue
            try:
                children = ref.ask(GetStatus(), timeout=5)
            except (pykka.ActorDeadError, pykka.Timeout):
                continue
            statuses.extend(children)
            supervisors.extend(c.name for c in children if c.name.startswith("pool:"))
        return statuses

    def render_templates(self, receiver: str, incident_id: str, channel: str = "",
                         event_type: str = "") -> list[Rendered]:
        """Preview ``receiver``'s templates (on ``channel``, or every channel it templates)
        for the incident as it is now, announcing ``event_type`` (default: its current
        state's). Raises NotFound for an unknown receiver or incident, or a receiver without
        templates there, and InvalidArgument for an event type that is no state's."""
        if receiver not in self.settings.receivers:
            known = ", ".join(self.settings.receivers) or "none"
            raise NotFound(f"there is no receiver {receiver!r} with templates ([receivers.<name>]: {known})")
        chosen = {key: templates for key, templates in self.templates.items()
                  if key[0] == receiver and channel in ("", key[1])}
        if not chosen:
            raise NotFound(f"receiver {receiver!r} has no templates{f' on {channel}' if channel else ''}: "
                           f"set [receivers.{receiver}.<channel>] <field>_template")
        incident = self.store.incident(incident_id)
        event_type = event_type or incident.state.event_type
        if event_type not in {state.event_type for state in IncidentState}:
            raise InvalidArgument("event_type", f"must be one of {', '.join(s.event_type for s in IncidentState)}")
        now = self.clock()
        return [rendered for (_, name), templates in chosen.items() for rendered in preview(
            templates, Delivery(f"preview-{int(now.timestamp() * 1000)}", incident.id, name, receiver,
                                event_type, now, incident))]

    # -- subscriptions and test sends ---------------------------------------------------
    def subscribe(self, accept: Callable[[Event], bool] = lambda event: True, bound: int = 10_000) -> Subscription:
        """Receive IncidentChanged and DeliverySettled events until ``close()``."""
        return self.hub.subscribe(accept, bound)

    def send_test(self, channel: str, destination: str = "") -> tuple[str, Outcome]:
        """Send a clearly marked sample to one configured channel now and report the outcome.
        Raises NotFound for a channel that is not enabled or an unknown destination, and
        NotConfigured for an enabled channel without destinations (both name the keys to set)."""
        probe = self._probes.get(channel)
        if probe is None or not probe.destinations:
            raise unusable_channel(self.settings.notifications, channel)
        destination = destination or probe.destinations[0]
        if destination not in probe.destinations:
            raise NotFound(f"channel {channel!r} has no destination {destination!r}")
        now = utc_now()
        sample = Incident(id="test-" + now.strftime("%Y%m%d%H%M%S"), fingerprint="test",
                          title="Test notification from LLM Incident Manager",
                          description="This is a test. No incident is open.", severity=Severity.P2,
                          type=IncidentType.APPLICATION, state=IncidentState.DETECTED,
                          source="llm-incident-manager", created_at=now, updated_at=now, last_alert_at=now)
        delivery = Delivery(f"test-{int(now.timestamp() * 1000)}", sample.id, channel, destination,
                            "incident.detected", now, sample, is_test=True)
        with self._test_lock:
            return destination, probe.deliver(delivery)
