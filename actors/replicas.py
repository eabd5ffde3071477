"""This server's liveness among replicas sharing a PostgreSQL store (``[state] replicas``).

Every replica has a row in the store's ``replicas`` table saying until when it is alive (by the
database's clock), renewed every third of ``replica_lease_secs`` with its :class:`Report`. The
deliveries a replica's router holds stay its own while that row is alive; once it lapses (the
replica was killed, hung, or lost the database) the other replicas' routers take them over. So
a dead replica's work is resumed after at most ``replica_lease_secs``, and a repeat is only ever
the same notification, with the same id, sent again.

What another replica commits reaches this one (:class:`EventRelay`): each commit NOTIFYs the
store's channel with its timeline ids, and the relay reads those back and publishes them to the
local EventHub, and hands the incidents they changed to the processor's inhibition sources;
each change of a silence NOTIFYs another channel with its id, and the processor holds that
silence again as the store holds it. So silences and inhibition are one truth across replicas,
each replica's copy in memory behind the store by the time a NOTIFY takes (milliseconds).
"""
from __future__ import annotations

import json
import threading
from dataclasses import asdict
from typing import Any, Callable, NamedTuple

import structlog

from .directory import ActorDirectory
from .events import EventHub, IncidentChanged
from .messages import ChangedElsewhere, Reload, SilenceChanged
from .supervision import ChildStatus

log = structlog.get_logger(__name__)


class Report(NamedTuple):
    """What a replica tells the others with each heartbeat: its actors' statuses and, per
    channel, its deliveries (being sent, on a retry timer) — for GetStats on any replica."""

    actors: list[ChildStatus]
    in_flight: dict[str, tuple[int, int]]

    def to_json(self) -> str:
        return json.dumps({"actors": [asdict(status) for status in self.actors], "in_flight": self.in_flight})

    @classmethod
    def from_json(cls, instance: str, text: str) -> "Report":
        """The report replica ``instance`` wrote, each actor naming it (``{}``: none yet)."""
        data = json.loads(text)
        return cls([ChildStatus(**{**status, "replica": instance}) for status in data.get("actors", [])],
                   {channel: (counts[0], counts[1]) for channel, counts in data.get("in_flight", {}).items()})


class Heartbeat:
    """Keeps replica ``instance`` alive in ``store`` (a shared PostgresStore) from a thread of
    its own, from :meth:`start` to :meth:`stop`, with its ``report``."""

    def __init__(self, store: Any, instance: str, lease_secs: float, report: Callable[[], Report]) -> None:
        self.store = store
        self.instance = instance
        self.lease_secs = lease_secs
        self._report = report
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{instance}", daemon=True)

    def start(self) -> None:
        """The first beat now, reporting nothing yet (the store's error propagates: a replica
        that cannot say it is alive must not take work), then one every third of the lease."""
        self.store.beat(self.instance, self.lease_secs, "{}")
        self._thread.start()

    def stop(self) -> None:
        """Stop beating and leave: what this replica still holds is free to the others at once
        (a failure to say so is logged; the lease then lapses by itself)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        try:
            self.store.leave(self.instance)
        except Exception as error:  # the database is gone: the row lapses on its own
            log.warning("replica_leave_failed", instance=self.instance, error=str(error))

    def beat_now(self) -> None:
        """Say it is alive now, with its report as it is. Raises the store's error."""
        self.store.beat(self.instance, self.lease_secs, self._report().to_json())

    def _run(self) -> None:
        """Beat until stopped; a beat that fails is tried again at the next one (if they keep
        failing for a whole lease, the others take this replica's work over). The first
        failure of a row is logged, the others at debug level, and the first beat after them."""
        failed = 0
        while not self._stop.wait(self.lease_secs / 3):
            try:
                self.beat_now()
            except Exception as error:
                failed += 1
                (log.warning if failed == 1 else log.debug)(
                    "replica_heartbeat_failed", instance=self.instance, error=str(error))
                continue
            if failed:
                log.info("replica_heartbeat_back", instance=self.instance, failed_beats=failed)
                failed = 0


#: Seconds before listening again after the listening connection was lost.
RELISTEN_SECS = 1.0
#: Seconds a start waits for the relay to listen.
LISTEN_WAIT_SECS = 10.0
#: The actor that holds the silences and the inhibition sources.
PROCESSOR = "processor"


class EventRelay:
    """Brings what the other replicas commit to this one, from a thread of its own, from
    :meth:`start` to :meth:`stop`: their timeline entries to ``hub``'s watchers, every change
    of a silence to the processor (:class:`SilenceChanged`) and, when there are inhibit rules
    (``inhibition``), the incidents they changed to the processor (:class:`ChangedElsewhere`).
    A message to a processor that is restarting is dropped: the new one loads both from the
    store."""

    def __init__(self, store: Any, instance: str, hub: EventHub, directory: ActorDirectory,
                 inhibition: bool) -> None:
        self.store = store
        self.instance = instance
        self.hub = hub
        self.directory = directory
        self.inhibition = inhibition
        self._stop = threading.Event()
        self._listening = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"events-{instance}", daemon=True)

    def start(self) -> None:
        """Start listening; returns once it listens (or after ``LISTEN_WAIT_SECS``, the
        connection failing: it is tried again meanwhile and the failure logged)."""
        self._thread.start()
        self._listening.wait(LISTEN_WAIT_SECS)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        """Listen until stopped; a lost connection is logged and listened to again (what was
        committed in between reaches no watcher: they read it back with GetTimeline; the
        processor reloads its silences and inhibition sources once the relay listens again)."""
        while not self._stop.is_set():
            try:
                self.store.listen(self.instance, self._publish, self._silence_changed, self._stop, self._listens)
            except Exception as error:
                log.warning("replica_events_lost", instance=self.instance, error=str(error))
                self._stop.wait(RELISTEN_SECS)

    def _listens(self) -> None:
        if self._listening.is_set():  # again: what was missed meanwhile is in the store
            self.directory.tell(PROCESSOR, Reload())
        self._listening.set()

    def _publish(self, timeline_ids: list[int]) -> None:
        changes = self.store.changes_of(timeline_ids)
        for incident, event in changes:
            self.hub.publish(IncidentChanged(incident, event))
        if self.inhibition and changes:
            latest = {incident.id: incident for incident, _ in changes}
            self.directory.tell(PROCESSOR, ChangedElsewhere(tuple(latest.values())))

    def _silence_changed(self, silence_id: str) -> None:
        self.directory.tell(PROCESSOR, SilenceChanged(silence_id))
