"""Publish/subscribe for incident and delivery events (gRPC Watch, embedding programs).

Publishing never blocks an actor: each subscriber has a bounded queue, and a subscriber
that falls behind by more than its bound is closed with ``lagged = True`` rather than
growing memory or slowing the engine.
"""
from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Callable, Iterator

from .domain.models import Delivery, Incident, Outcome, TimelineEvent


@dataclass(frozen=True, slots=True)
class IncidentChanged:
    incident: Incident
    event: TimelineEvent


@dataclass(frozen=True, slots=True)
class DeliverySettled:
    delivery: Delivery
    outcome: Outcome
    status: str


Event = IncidentChanged | DeliverySettled
_CLOSED = object()


class Subscription:
    """Iterate to receive events; ``close()`` ends the iteration. Not shared across threads."""

    def __init__(self, hub: "EventHub", accept: Callable[[Event], bool], bound: int) -> None:
        self._hub = hub
        self._accept = accept
        self._queue: queue.Queue[object] = queue.Queue(bound)
        self.lagged = False
        self.closed = False

    def _offer(self, event: Event) -> None:
        if self.closed or not self._accept(event):
            return
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.lagged = True
            self.close()

    def get(self, timeout: float | None = None) -> Event | None:
        """The next event, or None on timeout or when closed."""
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        return None if item is _CLOSED else item  # type: ignore[return-value]

    def __iter__(self) -> Iterator[Event]:
        while True:
            item = self._queue.get()
            if item is _CLOSED:
                return
            yield item  # type: ignore[misc]

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._hub._remove(self)
        while True:  # make room for the end marker
            try:
                self._queue.put_nowait(_CLOSED)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    pass


class EventHub:
    def __init__(self) -> None:
        self._subscribers: list[Subscription] = []
        self._lock = threading.Lock()

    def subscribe(self, accept: Callable[[Event], bool] = lambda e: True, bound: int = 10_000) -> Subscription:
        subscription = Subscription(self, accept, bound)
        with self._lock:
            self._subscribers = [*self._subscribers, subscription]
        return subscription

    def publish(self, event: Event) -> None:
        for subscription in self._subscribers:
            subscription._offer(event)

    def close_all(self) -> None:
        for subscription in list(self._subscribers):
            subscription.close()

    def _remove(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscribers = [s for s in self._subscribers if s is not subscription]
