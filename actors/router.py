"""RouterActor: moves owed deliveries from the store's outbox to the sender pools.

It holds at most ``max_in_flight`` deliveries being sent, and at most
``per_destination_limit`` per destination (counting those its senders hold on retry
timers), so a dead destination cannot take every slot and memory stays bounded whatever
the backlog on disk. The store query hands out only the oldest owed delivery per
(incident, destination), so a resolve never overtakes its trigger. A delivery always goes
to the same pool member (stable hash of the incident), keeping per-incident order there too.

The router keeps nothing that is not also in the store: if it or a sender dies, the
deliveries it tracked are simply owed again and pulled on the next pass.
"""
from __future__ import annotations

import time
import zlib
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

import pykka
import structlog

from .directory import ActorDirectory
from .domain.routing import Receiver
from .faults import ActorFaults
from .messages import (Drain, InFlightCounts, Pull, RetryResumed, RetryWaiting, Send, SenderRestarted,
                       Settled, Wake)
from .scheduler import Scheduler, TimerHandle
from .store.sqlite import SqliteStore
from .supervision import SupervisedActor

log = structlog.get_logger(__name__)


def sender_name(channel: str, index: int) -> str:
    return f"sender:{channel}:{index}"


@dataclass(slots=True)
class _Tracked:
    channel: str
    destination: str
    sender: str
    waiting: bool = False


class RouterActor(SupervisedActor):
    def __init__(self, supervisor: pykka.ActorRef | None, name: str, store: SqliteStore,
                 receivers: tuple[Receiver, ...], pool_sizes: dict[str, int], directory: ActorDirectory,
                 scheduler: Scheduler, max_in_flight: int, per_destination_limit: int,
                 poll_interval: float = 1.0, clock: Callable[[], float] = time.time,
                 faults: ActorFaults | None = None) -> None:
        super().__init__(supervisor, name, faults)
        self.store = store
        self.destinations = sorted({(r.channel, r.destination) for r in receivers})
        self.pool_sizes = pool_sizes
        self.directory = directory
        self.scheduler = scheduler
        self.max_in_flight = max_in_flight
        self.per_destination_limit = per_destination_limit
        self.poll_interval = poll_interval
        self.pull_batch = max(1, min(per_destination_limit, max_in_flight) // 4)
        self.clock = clock
        self.tracked: dict[str, _Tracked] = {}
        self.per_destination: Counter[tuple[str, str]] = Counter()
        self.sending = 0
        self._pull_requested = False
        self._draining = False
        self._poll_timer: TimerHandle | None = None

    def started(self) -> None:
        self.store.release()  # a new router knows of nothing in flight: everything owed is due
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

        def poll() -> None:
            try:
                ref.tell(Pull())
            except pykka.ActorDeadError:
                return
            self._schedule_poll()
        self._poll_timer = self.scheduler.call_later(self.poll_interval, poll)

    def receive(self, message: Any) -> Any:
        if isinstance(message, Wake):
            self._request_pull()
        elif isinstance(message, Pull):
            self._pull_requested = False
            self._pull()
        elif isinstance(message, Settled):
            self._forget(message.notification_id)
            self._request_pull()
        elif isinstance(message, RetryWaiting):
            self._set_waiting(message.notification_id, True)
        elif isinstance(message, RetryResumed):
            self._set_waiting(message.notification_id, False)
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

    def _request_pull(self) -> None:
        if not self._pull_requested and not self._draining:
            self._pull_requested = True
            self.actor_ref.tell(Pull())

    def _pull(self) -> None:
        if self._draining:
            return
        now = self.clock()
        for channel, destination in self.destinations:
            key = (channel, destination)
            room = min(self.per_destination_limit - self.per_destination[key], self.max_in_flight - self.sending)
            if room < self.pull_batch and self.per_destination[key] > 0:
                continue  # wait for a worthwhile batch of free slots: fewer, larger queries
            for delivery in self.store.lease_due(channel, destination, now, room):
                name = sender_name(channel, zlib.crc32(delivery.incident_id.encode()) % self.pool_sizes[channel])
                if not self.directory.tell(name, Send(delivery)):
                    self.store.release([delivery.notification_id])  # its sender is restarting
                    continue
                self.tracked[delivery.notification_id] = _Tracked(channel, destination, name)
                self.per_destination[key] += 1
                self.sending += 1

    def _forget(self, notification_id: str) -> None:
        tracked = self.tracked.pop(notification_id, None)
        if tracked is None:
            return
        self.per_destination[(tracked.channel, tracked.destination)] -= 1
        if not tracked.waiting:
            self.sending -= 1

    def _set_waiting(self, notification_id: str, waiting: bool) -> None:
        tracked = self.tracked.get(notification_id)
        if tracked is None or tracked.waiting == waiting:
            return
        tracked.waiting = waiting
        self.sending += -1 if waiting else 1
        if waiting:
            self._request_pull()

    def _recover(self, sender: str) -> None:
        lost = [nid for nid, t in self.tracked.items() if t.sender == sender]
        for nid in lost:
            self._forget(nid)
        self.store.release(lost)
        log.warning("deliveries_recovered", actor=self.name, sender=sender, count=len(lost))
        self._request_pull()

    def _counts(self) -> dict[str, tuple[int, int]]:
        counts: dict[str, list[int]] = {}
        for tracked in self.tracked.values():
            entry = counts.setdefault(tracked.channel, [0, 0])
            entry[1 if tracked.waiting else 0] += 1
        return {channel: (c[0], c[1]) for channel, c in counts.items()}
