"""ProcessorActor: the single writer of incidents.

It validates nothing about the wire (the API did) but everything about the domain: alert
idempotency, fingerprint deduplication, the state machine, routing, silences and inhibition.
Each command is one store transaction holding the incident change, its timeline events and
the outbox rows it owes; only after the commit does the reply go back. Being the only writer
makes the dedup check-and-save atomic, and lets it keep bounded indexes of recent alert ids and active
fingerprints in memory (the store answers only what they cannot). The deliveries a commit
owes go to the router with the news, so nobody reads them back.

Silences live here too (loaded at start, changed by commands through this actor), so a
routed event asks them in memory whether its notifications are held back: recorded
``silenced`` or ``inhibited``, with a timeline entry saying by what. When a silence ends (a
timer, or an expire command), each incident it held that is still open is notified of its
current state, with a ``silence_ended`` entry on its timeline saying why.

Where replicas share the store (:attr:`Store.shared`) each replica's processor is one writer
among several: the store answers every lookup (the indexes would be stale), each batch is
written with a :class:`~.store.base.Guard` of the incidents it read, and when another replica
wrote first (Conflict: an incident changed, an alert id or a fingerprint's open incident taken)
the command is decided again on what the store holds now, up to ``CONFLICT_RETRIES`` times.
Its deliveries are leased to nobody: any replica's router takes them from the store, in order.
Its silences and inhibition sources follow the store: the relay (actors/replicas.py) tells it
of every silence any replica changed (:class:`SilenceChanged`: it reads that silence again)
and of the incidents other replicas changed (:class:`ChangedElsewhere`); a command on a
silence reads it from the store; and a silence's end is acted on by the replica whose release
commits first (the others find it released: :class:`StaleSilence`), so what it held is
notified once. A batch held back by a silence released before the news of it arrived is
StaleSilence too: the silence is taken as the store has it and the batch decided again.

Commands arrive by ``ask``: a DomainError raised here travels back in the caller's future
and the actor keeps running (pykka semantics); only a bug in a *told* message crashes it.
"""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any, Callable

import pykka
import structlog

from .directory import ActorDirectory
from .domain.changes import Change, PendingEvent, Suppression
from .domain.config import ProcessingSettings
from .domain.dedup import fingerprint, joins_incident, legacy_fingerprint
from .domain.errors import IllegalTransition, InvalidArgument, OutcomeUnknown, Unavailable
from .domain.grouping import GroupSlot
from .domain.indexes import ActiveIncidents, RecentAlerts
from .domain.models import (Alert, DeliveryStatus, EventKind, Incident, IncidentState, Resolution,
                             ResolutionMethod, TimelineEvent, new_id, utc_now)
from .domain.inhibition import InhibitRule, Inhibitors
from .domain.routing import Routing
from .domain.silences import ActiveSilences, Silence, check_window, ended
from .domain.suppression import VERDICTS, Suppressor
from .domain.state_machine import check_transition
from .faults import ActorFaults
from .events import EventHub, IncidentChanged
from .lease import RouterLease
from .domain.commands import (AddNote, AlertResult, CreateIncident, CreateSilence, ExpireSilence,
                              ResolveIncident, TransitionIncident, UpdateIncident, UpdateSilence)
from .messages import ChangedElsewhere, GroupsDue, Owed, Reload, SilenceChanged, SilenceEnds, SubmitAlerts
from .scheduler import Scheduler, TimerHandle
from .store.base import Conflict, Guard, StaleSilence, Store
from .supervision import SupervisedActor

log = structlog.get_logger(__name__)

ROUTER = "router"
#: Who the timeline names for what silences and inhibition did.
SILENCES_ACTOR = "silences"
#: Alert ids remembered for idempotency without a store read (the store answers older ones).
RECENT_ALERT_IDS = 50_000
#: Active incidents indexed by fingerprint; beyond this, misses are checked in the store.
ACTIVE_INCIDENTS = 20_000
#: Times a command is decided again when another replica wrote first, before it is refused.
CONFLICT_RETRIES = 8


class ProcessorActor(SupervisedActor):
    def __init__(self, supervisor: pykka.ActorRef | None, name: str, store: Store,
                 settings: ProcessingSettings, routing: Routing,
                 directory: ActorDirectory, hub: EventHub, lease: RouterLease, scheduler: Scheduler,
                 inhibit_rules: tuple[InhibitRule, ...] = (),
                 clock: Callable[[], datetime] = utc_now, faults: ActorFaults | None = None) -> None:
        super().__init__(supervisor, name, faults)
        self.store = store
        self.settings = settings
        self.routing = routing
        self.directory = directory
        self.hub = hub
        self.lease = lease
        self.clock = clock
        self.recent_alerts = RecentAlerts(RECENT_ALERT_IDS)
        self.active = ActiveIncidents(ACTIVE_INCIDENTS)
        self.legacy_active = True  # until started() has looked
        self.scheduler = scheduler
        self.suppressor = Suppressor(ActiveSilences(), Inhibitors(inhibit_rules))
        self._silence_timers: dict[str, TimerHandle] = {}
        self.shared = store.shared
        #: The incidents the command being handled read (shared store: what its batch rests on).
        self.read: dict[str, Incident] = {}
        #: fingerprint → its active incident, asked for the whole batch at once (shared store).
        self.prefetched: dict[str, Incident | None] = {}

    def started(self) -> None:
        """Index every active incident when they all fit; otherwise start empty and let the
        store answer misses (loading some would cost memory without sparing those reads).
        A shared store answers every lookup: the index is not used."""
        if not self.shared and self.store.count_active_incidents(ACTIVE_INCIDENTS + 1) <= ACTIVE_INCIDENTS:
            self.active.load(self.store.active_incidents(ACTIVE_INCIDENTS), complete=True)
        else:
            self.active.load([], complete=False)
        self._load_sources()
        self._load_silences()
        # New incidents always get the current fingerprint, so once none is active under the
        # legacy one (the usual case), no alert needs a second lookup.
        self.legacy_active = self.store.has_active_legacy_fingerprints()

    def _load_sources(self) -> None:
        """The inhibition sources among the (first ACTIVE_INCIDENTS) active incidents."""
        if self.suppressor.inhibitors.rules:
            for incident in self.store.active_incidents(ACTIVE_INCIDENTS):
                self.suppressor.inhibitors.observe(incident)

    def _load_silences(self) -> None:
        """Hold every silence the store has not released (one that ended while nobody heard is
        released at once) and drop those held that it has."""
        stored = self.store.silences(unreleased_only=True)
        for gone in {silence.id for silence in self.suppressor.silences} - {silence.id for silence in stored}:
            self._forget(gone)
        for silence in stored:
            self._hold(silence)

    def cleanup(self) -> None:
        for timer in self._silence_timers.values():
            timer.cancel()

    def receive(self, message: Any) -> Any:
        handler = self._handlers.get(type(message))
        if handler is None:
            return super().receive(message)
        for _ in range(CONFLICT_RETRIES):
            self.read, self.prefetched = {}, {}
            try:
                return handler(self, message)
            except Conflict as conflict:  # only a shared store raises it
                log.info("decided_again", actor=self.name, reason=str(conflict))
            except StaleSilence as stale:  # a silence it rested on was released elsewhere (a shared store)
                log.info("decided_again", actor=self.name, reason=str(stale))
                self._adopt(self.store.silence(stale.silence_id))
            except OutcomeUnknown as unknown:  # the indexes may lack what was committed: a restart reloads them
                self._crash(message, unknown)
        raise Unavailable(f"other replicas kept changing what this command rests on ({CONFLICT_RETRIES} tries); "
                          "try again")

    # -- alerts ------------------------------------------------------------------------
    def _submit_alerts(self, command: SubmitAlerts) -> list[AlertResult]:
        results: list[AlertResult] = []
        changes: list[Change] = []
        pending: dict[str, Incident] = {}      # fingerprint → incident changed in this batch
        seen: dict[str, str] = {}              # alert_id → incident id, within this batch
        now = self.clock()
        recorded = self._recorded_alerts([alert.alert_id for alert in command.alerts])
        if self.shared:  # the store answers: every fingerprint of the batch in one query
            self._prefetch({fingerprint(alert) for alert in command.alerts if alert.alert_id not in recorded})
        for alert in command.alerts:
            known = seen.get(alert.alert_id) or recorded.get(alert.alert_id)
            if known:
                results.append(AlertResult(alert.alert_id, known, duplicate=True, new_incident=False))
                continue
            fp = fingerprint(alert)
            current = pending.get(fp) or self._active_incident(fp)
            if current is None and self.legacy_active:  # opened before fingerprint v2
                current = self._active_incident(legacy_fingerprint(alert))
            if joins_incident(current, now, self.settings.deduplication_window_secs,
                              self.settings.deduplication_enabled):
                assert current is not None
                change = self._join(current, alert, now)
            else:
                change = self._open(alert, fp, now)
            pending[fp] = change.incident
            seen[alert.alert_id] = change.incident.id
            changes.append(change)
            results.append(AlertResult(alert.alert_id, change.incident.id, False, change.is_new))
        self._commit(changes)
        return results

    def _recorded_alerts(self, alert_ids: list[str]) -> dict[str, str]:
        """alert_id → incident for the ids recorded before: from memory, the rest in one query."""
        if self.shared:
            return self.store.incidents_for_alerts(alert_ids)
        recorded, unknown = {}, []
        for alert_id in alert_ids:
            incident_id = self.recent_alerts.get(alert_id)
            if incident_id is None:
                unknown.append(alert_id)
            else:
                recorded[alert_id] = incident_id
        if unknown:
            recorded.update(self.store.incidents_for_alerts(unknown))
        return recorded

    def _prefetch(self, fingerprints: set[str]) -> None:
        """Ask the store for these fingerprints' active incidents at once (shared store)."""
        found = self.store.active_incidents_by_fingerprint(sorted(fingerprints))
        self.prefetched = {fp: found.get(fp) for fp in fingerprints}

    def _active_incident(self, fp: str) -> Incident | None:
        if self.shared:
            incident = self.prefetched[fp] if fp in self.prefetched else self.store.active_incident(fp)
            if incident is not None:
                self.read[incident.id] = incident
            return incident
        incident, known = self.active.lookup(fp)
        if not known:
            incident = self.store.active_incident(fp)
            self.active.found(fp, incident)
        return incident

    def _incident(self, incident_id: str) -> Incident:
        """The incident from the store (NotFound if none), remembered as read."""
        incident = self.read[incident_id] = self.store.incident(incident_id)
        return incident

    def _join(self, incident: Incident, alert: Alert, now: datetime) -> Change:
        updated = incident.joined(now)
        event = PendingEvent(EventKind.ALERT_JOINED, now, alert.source,
                             {"alert_id": alert.alert_id, "severity": alert.severity.name,
                              "alert_count": updated.alert_count})
        return Change(updated, False, (event,), alert, keeps_state=True)

    def _open(self, alert: Alert, fp: str, now: datetime) -> Change:
        incident = Incident(
            id=new_id(), fingerprint=fp, title=alert.title, description=alert.description,
            severity=alert.severity, type=alert.type, state=IncidentState.DETECTED, source=alert.source,
            created_at=now, updated_at=now, last_alert_at=now, labels=dict(alert.labels),
            affected_services=alert.affected_services)
        return Change(incident, True, self._lifecycle_events(incident, EventKind.CREATED, now, alert.source,
                                                             {"alert_id": alert.alert_id}), alert)

    def _lifecycle_events(self, incident: Incident, kind: EventKind, now: datetime, actor: str,
                          detail: dict[str, Any]) -> tuple[PendingEvent, ...]:
        """The event, owing the notifications routing says; when a silence or an inhibiting
        incident holds them back, it owes none, records them held, and a second entry says by what."""
        routed = self.routing.route(incident)
        groups = tuple(GroupSlot.of(receiver.channel, receiver.destination, path, grouping, incident)
                       for receiver, path, grouping in routed.grouped)
        event = PendingEvent(kind, now, actor, detail, incident.state.event_type, routed.owed, routed.record, groups)
        suppression = self.suppressor.suppression(incident, now) if routed.owed or groups else None
        if suppression is None:
            return (event,)
        held = routed.held(VERDICTS[suppression.status], suppression.by, suppression.rule)
        owed = routed.owed + tuple(receiver for receiver, _, _ in routed.grouped)  # a group's share is held too
        return (replace(event, receivers=(), groups=(), routing=held.record, suppressed=owed, suppression=suppression),
                PendingEvent(_HELD_KINDS[suppression.status], now, SILENCES_ACTOR, _held_detail(
                    suppression, incident.state.event_type, owed)))

    # -- incident commands -------------------------------------------------------------
    def _create(self, command: CreateIncident) -> Incident:
        now = self.clock()
        alert_like = Alert("", command.source, command.title, command.description, command.severity,
                           command.type, affected_services=command.affected_services)
        incident = Incident(
            id=new_id(), fingerprint=fingerprint(alert_like), title=command.title,
            description=command.description, severity=command.severity, type=command.type,
            state=IncidentState.DETECTED, source=command.source, created_at=now, updated_at=now,
            last_alert_at=now, alert_count=0, labels=dict(command.labels),
            affected_services=command.affected_services, assignees=command.assignees)
        if self.shared:  # it takes its fingerprint's alerts from the open incident (read: it lets go)
            self._active_incident(incident.fingerprint)
        self._commit([Change(incident, True, self._lifecycle_events(incident, EventKind.CREATED, now,
                                                                    command.actor, {"manual": True}))])
        return incident

    def _update(self, command: UpdateIncident) -> Incident:
        incident = self._incident(command.incident_id)
        if incident.state is IncidentState.CLOSED:
            raise IllegalTransition(f"incident {incident.id} is CLOSED and can no longer be changed")
        now = self.clock()
        changed = {name: value for name, value in (
            ("title", command.title), ("description", command.description), ("severity", command.severity),
            ("labels", command.labels)) if value is not None and value != getattr(incident, name)}
        events = []
        if changed:
            events.append(PendingEvent(EventKind.UPDATED, now, command.actor, {
                name: (value.name if hasattr(value, "name") else value) for name, value in changed.items()}))
        if command.assignees is not None and command.assignees != incident.assignees:
            changed["assignees"] = command.assignees
            events.append(PendingEvent(EventKind.ASSIGNMENT_CHANGED, now, command.actor, {
                "from": list(incident.assignees), "to": list(command.assignees)}))
        if not events:
            return incident
        updated = incident.evolve(updated_at=now, **changed)
        self._commit([Change(updated, False, tuple(events))])
        return updated

    def _transition(self, command: TransitionIncident) -> Incident:
        if command.to_state is IncidentState.RESOLVED:
            return self._resolve(ResolveIncident(command.incident_id, command.actor,
                                                 ResolutionMethod.MANUAL, notes=command.note))
        incident = self._incident(command.incident_id)
        check_transition(incident.state, command.to_state)
        now = self.clock()
        updated = incident.evolve(state=command.to_state, updated_at=now,
                                  resolution=None if command.to_state.is_active else incident.resolution)
        return self._commit_transition(incident, updated, now, command.actor, {"note": command.note})

    def _resolve(self, command: ResolveIncident) -> Incident:
        incident = self._incident(command.incident_id)
        if not incident.state.is_active:
            raise IllegalTransition(f"incident {incident.id} is already {incident.state.name}")
        check_transition(incident.state, IncidentState.RESOLVED)
        now = self.clock()
        resolution = Resolution(command.resolved_by, command.method, command.notes, command.root_cause, now)
        updated = incident.evolve(state=IncidentState.RESOLVED, updated_at=now, resolution=resolution)
        return self._commit_transition(incident, updated, now, command.resolved_by,
                                       {"method": command.method.name, "notes": command.notes,
                                        "root_cause": command.root_cause})

    def _commit_transition(self, before: Incident, after: Incident, now: datetime, actor: str,
                           detail: dict[str, Any]) -> Incident:
        events = self._lifecycle_events(after, EventKind.STATE_CHANGED, now, actor,
                                        {"from": before.state.name, "to": after.state.name, **detail})
        self._commit([Change(after, False, events)])
        return after

    def _add_note(self, command: AddNote) -> TimelineEvent:
        incident = self._incident(command.incident_id)
        now = self.clock()
        event = PendingEvent(EventKind.NOTE_ADDED, now, command.author, {"text": command.text})
        return self._commit([Change(incident.evolve(updated_at=now), False, (event,), keeps_state=True)])[0][0]

    # -- commit ------------------------------------------------------------------------
    def _commit(self, changes: list[Change], releases: Silence | None = None) -> list[list[TimelineEvent]]:
        """Write the changes and hand on what they owe. ``releases`` (a shared store only): the
        ended silence they act on, released with them (StaleSilence when it was not)."""
        if not changes and releases is None:
            return []
        if self.shared:
            applied = self.store.apply(changes, "", Guard(self.read, self.settings.deduplication_enabled,
                                                             self.lease.instance, releases))
        else:
            with self.lease.current() as lease:
                applied = self.store.apply(changes, lease)
        for change in changes:
            self.suppressor.inhibitors.observe(change.incident)
        if not self.shared:  # a shared store's changes are not indexed: it answers every lookup
            for change in changes:
                self.active.put(change.incident)
                if change.alert is not None:
                    self.recent_alerts.add(change.alert.alert_id, change.incident.id)
        if applied.deliveries:  # a router that is restarting finds them in the store instead
            self.directory.tell(ROUTER, Owed(tuple(applied.deliveries), applied.deliveries[0].lease))
        if applied.groups_due:  # a router that is restarting finds them in the store, and pulls them when due
            self.directory.tell(ROUTER, GroupsDue(tuple(applied.groups_due)))
        for change, events in zip(changes, applied.events):
            for event in events:
                self.hub.publish(IncidentChanged(change.incident, event))
        return applied.events

    # -- silences ----------------------------------------------------------------------
    def _create_silence(self, command: CreateSilence) -> Silence:
        now = self.clock()
        if command.ends_at <= now:
            raise InvalidArgument("ends_at", "must be in the future")
        silence = Silence(new_id(), command.matchers, command.starts_at, command.ends_at, command.created_by,
                          command.comment, now, now)
        self.store.save_silence(silence)
        self._hold(silence)
        log.info("silence_created", silence_id=silence.id, matchers=list(silence.matchers),
                 starts_at=silence.starts_at.isoformat(), ends_at=silence.ends_at.isoformat())
        return silence

    def _update_silence(self, command: UpdateSilence) -> Silence:
        silence = self._unreleased(command.silence_id)
        now = self.clock()
        updated = replace(silence, matchers=command.matchers or silence.matchers,
                          starts_at=command.starts_at or silence.starts_at, ends_at=command.ends_at or silence.ends_at,
                          comment=command.comment or silence.comment, updated_at=now)
        check_window(updated.starts_at, updated.ends_at)
        if not self.store.save_silence(updated):
            raise _ended(silence.id)
        self._hold(updated)  # an end moved into the past releases it at once
        log.info("silence_updated", silence_id=silence.id, actor=command.actor)
        return updated

    def _expire_silence(self, command: ExpireSilence) -> Silence:
        silence = ended(self._unreleased(command.silence_id), self.clock())
        if not self.store.save_silence(silence):
            raise _ended(silence.id)
        log.info("silence_expired", silence_id=silence.id, actor=command.actor)
        return self._release(silence)

    def _unreleased(self, silence_id: str) -> Silence:
        """The silence held in memory (read from a shared store, which other replicas change);
        NotFound, or IllegalTransition for one that ended."""
        if self.shared:
            stored = self.store.silence(silence_id)  # NotFound when there is none
            silence = None if stored.released else stored
        else:
            silence = self.suppressor.silences.get(silence_id)
            if silence is None:
                self.store.silence(silence_id)  # NotFound when there is no such silence at all
        if silence is None:
            raise _ended(silence_id)
        return silence

    def _adopt(self, silence: Silence) -> Silence:
        """Hold the silence as the store has it: until its end, or not at all once released."""
        if silence.released:
            self._forget(silence.id)
        else:
            self._hold(silence)
        return silence

    def _forget(self, silence_id: str) -> None:
        self.suppressor.silences.drop(silence_id)
        timer = self._silence_timers.pop(silence_id, None)
        if timer is not None:
            timer.cancel()

    def _hold(self, silence: Silence) -> None:
        """Keep the silence in force until its end, when :meth:`_silence_ends` releases it."""
        self.suppressor.silences.put(silence)
        timer = self._silence_timers.pop(silence.id, None)
        if timer is not None:
            timer.cancel()
        ref, message = self.actor_ref, SilenceEnds(silence.id)

        def tell() -> None:  # straight to this instance: at start-up it is not in the directory yet
            try:
                ref.tell(message)
            except pykka.ActorDeadError:
                pass  # replaced: the instance after it holds timers of its own

        self._silence_timers[silence.id] = self.scheduler.call_later(
            (silence.ends_at - self.clock()).total_seconds(), tell)

    def _silence_ends(self, message: SilenceEnds) -> None:
        silence = self.suppressor.silences.get(message.silence_id)
        if silence is None:
            return  # released already (expired by hand, or ended by an update before this timer)
        if self.clock() < silence.ends_at:  # its end moved, or the timer ran early: wait again
            self._hold(silence)
            return
        self._release(silence)

    def _release(self, silence: Silence) -> Silence:
        """Notify each still-open incident the ended silence held of its current state (unless
        another silence or an inhibition holds it now), mark it released and drop it. On a
        shared store that is one transaction, made only if no replica released it first (that
        one notified them): otherwise the silence is held as the store has it now."""
        self.suppressor.silences.put(silence)  # ended: no longer in force, held until released
        now = self.clock()
        changes = []
        for incident_id in self.store.held_by(silence.id):
            incident = self._incident(incident_id)
            if incident.state.is_active:
                changes.append(Change(incident, False, self._lifecycle_events(
                    incident, EventKind.SILENCE_ENDED, now, SILENCES_ACTOR,
                    {"silence_id": silence.id, "reason": "a silence that held this open incident's notifications "
                                                         "ended: its current state is notified now"})))
        released = replace(silence, released=True)
        if self.shared:
            try:
                self._commit(changes, releases=silence)
            except StaleSilence as stale:
                if stale.silence_id != silence.id:
                    raise  # another silence its events rested on: decided again
                log.info("silence_released_elsewhere", silence_id=silence.id)
                return self._adopt(self.store.silence(silence.id))
        else:
            self._commit(changes)
            self.store.save_silence(released)
        self._forget(silence.id)
        log.info("silence_released", silence_id=silence.id, notified=len(changes))
        return released

    # -- news from other replicas (a shared store) ---------------------------------------
    def _silence_changed(self, message: SilenceChanged) -> None:
        self._adopt(self.store.silence(message.silence_id))

    def _changed_elsewhere(self, message: ChangedElsewhere) -> None:
        """Bring the inhibition sources up to date with incidents other replicas changed; one
        the news would change is read again (the news may be older than this actor's own
        latest commit of it)."""
        inhibitors = self.suppressor.inhibitors
        for incident in message.incidents:
            if inhibitors.would_change(incident):
                inhibitors.observe(self.store.incident(incident.id))

    def _reload(self, message: Reload) -> None:
        self.suppressor.inhibitors = Inhibitors(self.suppressor.inhibitors.rules)
        self._load_sources()
        self._load_silences()

    _handlers: dict[type, Callable[["ProcessorActor", Any], Any]] = {
        SubmitAlerts: _submit_alerts,
        CreateIncident: _create,
        UpdateIncident: _update,
        TransitionIncident: _transition,
        ResolveIncident: _resolve,
        AddNote: _add_note,
        CreateSilence: _create_silence,
        UpdateSilence: _update_silence,
        ExpireSilence: _expire_silence,
        SilenceEnds: _silence_ends,
        SilenceChanged: _silence_changed,
        ChangedElsewhere: _changed_elsewhere,
        Reload: _reload,
    }


def _ended(silence_id: str) -> IllegalTransition:
    return IllegalTransition(f"silence {silence_id} has ended and can no longer be changed")


#: The timeline entry saying an event's notifications were held back.
_HELD_KINDS = {DeliveryStatus.SILENCED: EventKind.NOTIFICATION_SILENCED,
               DeliveryStatus.INHIBITED: EventKind.NOTIFICATION_INHIBITED}


def _held_detail(suppression: Suppression, event_type: str, receivers: tuple[Any, ...]) -> dict[str, Any]:
    why = ({"silence_id": suppression.by} if suppression.status is DeliveryStatus.SILENCED
           else {"inhibited_by": suppression.by, "rule": suppression.rule})
    return {**why, "event_type": event_type, "destinations": [f"{r.destination}/{r.channel}" for r in receivers]}
