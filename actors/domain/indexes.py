"""Bounded in-memory indexes the processor keeps in front of the store (pure).

Both answer "known", "known absent" or "ask the store", so a duplicate storm costs no store
read per alert while memory stays bounded whatever the history.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Iterable

from .models import Incident


class RecentAlerts:
    """alert_id → incident id for the most recently recorded alerts (least recent evicted).
    A miss says nothing: the alert may have been recorded long ago (ask the store)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, str] = OrderedDict()

    def get(self, alert_id: str) -> str | None:
        return self._ids.get(alert_id)

    def add(self, alert_id: str, incident_id: str) -> None:
        self._ids[alert_id] = incident_id
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)


class ActiveIncidents:
    """fingerprint → the newest active incident with it.

    While every active incident fits (``complete``), a miss means "none": no store read. Once
    more are active than ``capacity``, the least recently used are evicted and the index stops
    being complete, so a miss must be checked in the store (:meth:`lookup` returns
    ``(None, False)``); it becomes complete again on the next :meth:`load` (at start).
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.complete = True
        self._by_fingerprint: OrderedDict[str, Incident] = OrderedDict()
        #: Fingerprints whose newest active incident left: an older one may still be active.
        self._unsure: set[str] = set()

    def load(self, active: Iterable[Incident], complete: bool) -> None:
        """Replace the contents with ``active`` (oldest first); ``complete`` says it is all of them."""
        self._by_fingerprint.clear()
        self._unsure.clear()
        self.complete = complete
        for incident in active:
            self.put(incident)

    def lookup(self, fingerprint: str) -> tuple[Incident | None, bool]:
        """(incident, True) when the index knows the answer (incident may be None), else (None, False)."""
        if fingerprint in self._unsure:
            return None, False
        incident = self._by_fingerprint.get(fingerprint)
        if incident is not None:
            self._by_fingerprint.move_to_end(fingerprint)
            return incident, True
        return None, self.complete

    def found(self, fingerprint: str, incident: Incident | None) -> None:
        """What the store said about a fingerprint the index could not answer for."""
        self._unsure.discard(fingerprint)
        if incident is not None:
            self.put(incident)

    def put(self, incident: Incident) -> None:
        """Record the incident's latest version: kept while active, forgotten once it is not."""
        if not incident.state.is_active:
            current = self._by_fingerprint.get(incident.fingerprint)
            if current is not None and current.id == incident.id:
                del self._by_fingerprint[incident.fingerprint]
                self._unsure.add(incident.fingerprint)
                if len(self._unsure) > self.capacity:
                    self._unsure.clear()
                    self.complete = False
            return
        current = self._by_fingerprint.get(incident.fingerprint)
        if current is not None and current.id != incident.id and current.created_at > incident.created_at:
            return  # an older incident with the same fingerprint: the newest one is what joins
        self._by_fingerprint[incident.fingerprint] = incident
        self._by_fingerprint.move_to_end(incident.fingerprint)
        if len(self._by_fingerprint) > self.capacity:
            self._by_fingerprint.popitem(last=False)
            self.complete = False
