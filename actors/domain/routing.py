"""Routing: which receivers owe a notification for an incident event (pure)."""
from __future__ import annotations

from dataclasses import dataclass

from .models import Incident, IncidentState, Severity

#: Every event type that produces notifications: entering each lifecycle state.
EVENT_TYPES: tuple[str, ...] = tuple(state.event_type for state in IncidentState)


@dataclass(frozen=True, slots=True)
class Receiver:
    """One place notifications go: a channel and a named destination within it."""

    channel: str
    destination: str
    min_severity: Severity = Severity.P4
    events: frozenset[str] = frozenset(EVENT_TYPES)

    def wants(self, incident: Incident, event_type: str) -> bool:
        # P0 is the most severe and has the smallest number.
        return event_type in self.events and incident.severity <= self.min_severity


def route(incident: Incident, event_type: str, receivers: tuple[Receiver, ...]) -> list[Receiver]:
    """The receivers that must be notified of ``event_type`` for this incident snapshot."""
    return [receiver for receiver in receivers if receiver.wants(incident, event_type)]
