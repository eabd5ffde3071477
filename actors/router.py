"""RouterActor: moves owed deliveries to the sender pools, from memory when it can.

The processor hands it every delivery it commits (:class:`Owed`, already leased to this
router's epoch), so on the hot path nothing is read back from the store. The router sends at
most ``max_in_flight`` at once and at most ``per_destination_limit`` per destination (counting
those its senders hold on timers), so a dead destination cannot take every slot; the rest wait
in memory, up to ``PARKED_PER_SLOT × max_in_flight`` of them, and beyond that on disk. A
delivery waiting in memory goes out only while nothing of its (incident, destination) is out,
so a resolve never overtakes its trigger. Two can be out at once all the same: a pull from the
store hands out the next one as soon as the store shows the earlier one finished, which can be
before that one's ``Settled`` arrives; so the router counts what is out per (incident,
destination) rather than marking it. A delivery always goes to the same pool member (stable
hash of the incident).

A destination is served from the store instead — pulled in order with ``lease_due`` — while
the store may hold deliveries for it that no live router holds: after a start (recovery),
after a sender was replaced, after a re-queue, or once memory overflowed. It goes back to
memory when the store has nothing free left for it.

A group notification (actors/domain/grouping.py) is never handed over from memory: it waits
free in the store until due (``GroupsDue`` says when, from the processor that opened it or the
sender that opened a reminder), and its destination is served from the store meanwhile.

Where replicas share the store every destination is served from it, always: another
replica's processor may have committed an earlier delivery of the same (incident, destination),
which only the store's order shows; and a row another replica holds is free only once that
replica is no longer alive (actors/store/postgres.py).

The router keeps nothing that is not also in the store: if it dies, the next epoch finds every
owed row free (its lease names the old epoch) and pulls it; senders drop a re-sent delivery
they already hold or have just finished. So a store it cannot reach (StoreUnavailable, from a
pull or a release) simply ends it: its supervisor restarts it once the outage may be over,
however long that takes, without counting it as a crash (actors/supervision.py).
"""
from __future__ import annotations

import time
import zlib
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import pykka
import structlog

from .directory import ActorDirectory
from .domain.models import Delivery
from .domain.routing import Receiver
from .faults import ActorFaults
from .lease import RouterLease
from .messages import (Drain, GroupsDue, InFlightCounts, Owed, Poll, Pull, Released, Send, SenderRestarted,
                       Settled, TimerFired, TimerSet, Wake)
from .scheduler import Scheduler, TimerHandle
from .store.base import Store
from .supervision import SupervisedActor, tell_quietly

log = structlog.get_logger(__name__)

#: Owed deliveries kept in memory per sending slot (``max_in_flight``) before they wait on disk.
PARKED_PER_SLOT = 10

Destination = tuple[str, str]


def sender_name(channel: str, index: int) -> str:
    return f"sender:{channel}:{index}"


@dataclass(slots=True)
class _Tracked:
    destination: Destination
    incident_id: str
    sender: str
    on_timer: bool = False


class RouterActor(SupervisedActor):
    def __init__(self, supervisor: pykka.ActorRef | None, name: str, store: Store,
                 receivers: tuple[Receiver, ...], pool_sizes: dict[str, int], directory: ActorDirectory,
                 scheduler: Scheduler, lease: RouterLease, max_in_flight: int, per_destination_limit: int,
                 poll_interval: float = 1.0, clock: Callable[[], float] = time.time,
                 faults: ActorFaults | None = None) -> None:
        super().__init__(supervisor, name, faults)
        self.store = store
        self.destinations: list[Destination] = sorted({(r.channel, r.destination) for r in receivers})
        self.pool_sizes = pool_sizes
        self.directory = directory
        self.scheduler = scheduler
        self.lease = lease
        self.max_in_flight = max_in_flight
        self.per_destination_limit = per_destination_limit
        self.max_parked = PARKED_PER_SLOT * max_in_flight
        self.poll_interval = poll_interval
        self.pull_batch = max(1, min(per_destination_limit, max_in_flight) // 4)
        self.clock = clock
        self.token = ""
        self.tracked: dict[str, _Tracked] = {}
        self.per_destination: Counter[Destination] = Counter()
        self.busy: Counter[tuple[str, Destination]] = Counter()  # (incident, destination) → how many out
        self.sending = 0
        self.parked: dict[Destination, deque[Delivery]] = {key: deque() for key in self.destinations}
        self.parked_count = 0
        self.from_store: set[Destination] = set(self.destinations)
        self._pull_requested = False
        self._draining = False
        self._poll_timer: TimerHandle | None = None
        #: Sends decided while handling one message, told at its end: one Send per sender.
        self._outgoing: dict[tuple[str, bool], list[Delivery]] = {}

    def started(self) -> None:
        # Reachable by name before the epoch begins: a delivery the processor leases to this
        # epoch must never find the name missing (or still naming our dead predecessor), or
        # no Owed would tell us of it while we trust our memory for its destination.
        self.directory.register(self.name, self.actor_ref)
        self.token = self.lease.new_epoch()  # every row leased by an earlier epoch is free to us
        given_up = self.store.give_up_unrouted(set(self.destinations), self.clock())
        if given_up:
            log.warning("deliveries_given_up", actor=self.name, count=given_up,
                        reason="their channel or destination is no longer configured")
        self._request_pull()
        self._schedule_poll()

    def cleanup(self) -> None:
        if self._poll_timer:
            self._poll_timer.cancel()

    def _schedule_poll(self) -> None:
        ref = self.actor_ref
        self._poll_timer = self.scheduler.call_later(self.poll_interval, lambda: tell_quietly(ref, Poll()))

    def context_of(self, message: Any) -> dict[str, str]:
        if isinstance(message, (TimerSet, TimerFired)):
            return {"notification_id": message.notification_id}
        if isinstance(message, (Settled, Released)):
            return {"notification_id": ",".join(message.notification_ids)}
        return {}

    def receive(self, message: Any) -> Any:
        try:
            return self._receive(message)
        finally:
            self._flush_sends()

    def _receive(self, message: Any) -> Any:
        if isinstance(message, Owed):
            self._owed(message)
        elif isinstance(message, Settled):
            self._settled(message.notification_ids)
        elif isinstance(message, Released):
            self._let_go(message.notification_ids)
        elif isinstance(message, TimerSet):
            self._set_on_timer(message.notification_id, True)
        elif isinstance(message, TimerFired):
            self._set_on_timer(message.notification_id, False)
        elif isinstance(message, Pull):
            self._pull_requested = False
            self._pull()
        elif isinstance(message, Poll):
            self._pull()
            self._schedule_poll()
        elif isinstance(message, GroupsDue):
            self._groups_due(message.due)
        elif isinstance(message, Wake):
            self.from_store.update(self.destinations)
            self._request_pull()
        elif isinstance(message, SenderRestarted):
            self._recover(message.sender)
        elif isinstance(message, InFlightCounts):
            return self._counts()
        elif isinstance(message, Drain):
            self._draining = True
            return self.sending
        else:
            return super().receive(message)
        return None

    # -- deliveries from the processor ---------------------------------------------------
    def _owed(self, message: Owed) -> None:
        if message.lease != self.token:  # leased to an epoch before ours: free in the store
            self._to_store({(d.channel, d.destination) for d in message.deliveries})
            return
        to_release: list[str] = []
        touched: set[Destination] = set()
        for delivery in message.deliveries:
            key = (delivery.channel, delivery.destination)
            if key in self.from_store or key not in self.parked:
                to_release.append(delivery.notification_id)
            elif self.parked_count >= self.max_parked:
                to_release.append(delivery.notification_id)
                self._to_store([key], release=to_release)
            else:
                self.parked[key].append(delivery)
                self.parked_count += 1
                touched.add(key)
        if to_release:
            self.store.release(to_release)
            self._request_pull()
        for key in touched:
            self._dispatch(key)

    def _to_store(self, keys: Iterable[Destination], release: list[str] | None = None) -> None:
        """Serve these destinations from the store from now on; what waited for them in memory
        is let go of in the store (appended to ``release``, or released now)."""
        freed: list[str] = []
        for key in keys:
            self.from_store.add(key)
            queue = self.parked.get(key)
            while queue:
                freed.append(queue.popleft().notification_id)
                self.parked_count -= 1
        if release is not None:
            release.extend(freed)
        else:
            if freed:
                self.store.release(freed)
            self._request_pull()

    def _dispatch(self, key: Destination) -> None:
        """Send what waits in memory for ``key`` while there is room, oldest first, skipping
        incidents that already have a delivery out (their later ones keep waiting, in order)."""
        queue = self.parked[key]
        room = self._room(key)
        if not queue or room <= 0 or self._draining:
            return
        kept: list[Delivery] = []  # waiting behind an earlier delivery of the same incident
        blocked: set[str] = set()
        while queue and room > 0:
            delivery = queue.popleft()
            if delivery.incident_id in blocked or (delivery.incident_id, key) in self.busy:
                blocked.add(delivery.incident_id)
                kept.append(delivery)
                continue
            self.parked_count -= 1
            self._send(delivery)
            room -= 1
        queue.extendleft(reversed(kept))

    def _groups_due(self, due: Iterable[tuple[str, str, float]]) -> None:
        """Serve the group notifications' destinations from the store, where they wait free
        until due, and pull when each comes due (the poll would too, up to a poll interval
        later)."""
        ref, now = self.actor_ref, self.clock()
        configured = [(channel, destination, at) for channel, destination, at in due
                      if (channel, destination) in self.parked]
        self._to_store({(channel, destination) for channel, destination, _ in configured})
        for at in {at for _, _, at in configured}:
            self.scheduler.call_later(max(0.0, at - now), lambda: tell_quietly(ref, Pull()))

    # -- deliveries from the store --------------------------------------------------------
    def _request_pull(self) -> None:
        if not self._pull_requested and not self._draining:
            self._pull_requested = True
            self.actor_ref.tell(Pull())

    def _pull(self) -> None:
        if self._draining:
            return
        now = self.clock()
        for key in sorted(self.from_store):
            room = self._room(key)
            if room <= 0 or (room < self.pull_batch and self.per_destination[key] > 0):
                continue  # wait for a worthwhile batch of free slots: fewer, larger queries
            leased = self.store.lease_due(key[0], key[1], now, room, self.token)
            for delivery in leased:
                self._send(delivery, verify=True)
            if len(leased) < room and not self.store.shared \
                    and not self.store.has_free_owed(key[0], key[1], self.token):
                self.from_store.discard(key)  # everything owed to it is ours now: back to memory

    # -- sending and tracking --------------------------------------------------------------
    def _room(self, key: Destination) -> int:
        return min(self.per_destination_limit - self.per_destination[key], self.max_in_flight - self.sending)

    def _send(self, delivery: Delivery, verify: bool = False) -> None:
        """Track the delivery as out (once, however often it is handed out) and queue it for
        its sender (told in :meth:`_flush_sends`)."""
        self._forget(delivery.notification_id)
        channel = delivery.channel
        name = sender_name(channel, zlib.crc32(delivery.incident_id.encode()) % self.pool_sizes[channel])
        self._outgoing.setdefault((name, verify), []).append(delivery)
        key = (channel, delivery.destination)
        self.tracked[delivery.notification_id] = _Tracked(key, delivery.incident_id, name)
        self.busy[(delivery.incident_id, key)] += 1
        self.per_destination[key] += 1
        self.sending += 1

    def _flush_sends(self) -> None:
        """One Send per sender for what was decided; what a sender that is restarting could
        not take is let go of in the store, and its destinations are served from there."""
        outgoing, self._outgoing = self._outgoing, {}
        for (name, verify), deliveries in outgoing.items():
            if not self.directory.tell(name, Send(tuple(deliveries), verify)):
                self._let_go([d.notification_id for d in deliveries])

    def _settled(self, notification_ids: tuple[str, ...]) -> None:
        keys = {tracked.destination for tracked in map(self._forget, notification_ids) if tracked is not None}
        for key in keys:
            if key in self.from_store:
                self._request_pull()
            else:
                self._dispatch(key)

    def _forget(self, notification_id: str) -> _Tracked | None:
        tracked = self.tracked.pop(notification_id, None)
        if tracked is None:
            return None
        self.per_destination[tracked.destination] -= 1
        busy = (tracked.incident_id, tracked.destination)
        self.busy[busy] -= 1
        if not self.busy[busy]:
            del self.busy[busy]
        if not tracked.on_timer:
            self.sending -= 1
        return tracked

    def _set_on_timer(self, notification_id: str, on_timer: bool) -> None:
        tracked = self.tracked.get(notification_id)
        if tracked is None or tracked.on_timer == on_timer:
            return
        tracked.on_timer = on_timer
        self.sending += -1 if on_timer else 1
        if on_timer:  # a sending slot came free
            for key in self.destinations:
                if key not in self.from_store:
                    self._dispatch(key)
            self._request_pull()

    def _recover(self, sender: str) -> None:
        """``sender`` (or every member of pool ``pool:<channel>``) was replaced: what it held is
        let go of, to be pulled again from the store."""
        members = f"sender:{sender.removeprefix('pool:')}:" if sender.startswith("pool:") else None
        lost = [nid for nid, t in self.tracked.items()
                if t.sender == sender or (members is not None and t.sender.startswith(members))]
        self._let_go(lost)
        log.warning("deliveries_recovered", actor=self.name, sender=sender, count=len(lost))

    def _let_go(self, notification_ids: Iterable[str]) -> None:
        """Stop tracking these deliveries, still owed, and free them in the store in the same
        step — only the router frees what it leased, so none of its pulls takes one back unseen
        — and serve their destinations from the store until it has them back (so what comes
        after one of them waits behind it there)."""
        forgotten = {nid: tracked for nid in notification_ids if (tracked := self._forget(nid)) is not None}
        if forgotten:
            self.store.release(forgotten)
        self._to_store({tracked.destination for tracked in forgotten.values()})

    def _counts(self) -> dict[str, tuple[int, int]]:
        counts: dict[str, list[int]] = {}
        for tracked in self.tracked.values():
            entry = counts.setdefault(tracked.destination[0], [0, 0])
            entry[1 if tracked.on_timer else 0] += 1
        return {channel: (c[0], c[1]) for channel, c in counts.items()}
