"""What the processor asks the store to write in one transaction, and what it reads back."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping

from .grouping import GroupSlot
from .models import Alert, DeliveryStatus, EventKind, Incident
from .routing import Receiver


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """A timeline entry to write; when ``event_type`` is set it owes notifications to
    ``receivers``, rendered later from the incident snapshot stored with it, and ``routing``
    is the record of why (actors/domain/routing.py), stored with it too. ``groups`` are the
    group notifications it joins instead (actors/domain/grouping.py)."""

    kind: EventKind
    at: datetime
    actor: str
    detail: Mapping[str, Any] = field(default_factory=dict)
    event_type: str | None = None
    receivers: tuple[Receiver, ...] = ()
    routing: str = ""
    groups: tuple[GroupSlot, ...] = ()
    #: Destinations routed to but held back: rows recorded with ``suppression``'s final status.
    suppressed: tuple[Receiver, ...] = ()
    suppression: "Suppression | None" = None

    @property
    def notifies(self) -> bool:
        return bool(self.event_type and (self.receivers or self.groups))


@dataclass(frozen=True, slots=True)
class Suppression:
    """Why routed notifications are not sent: ``status`` silenced (``by`` the silence's id) or
    inhibited (``by`` the inhibiting incident's id, ``rule`` the inhibit rule's key)."""

    status: DeliveryStatus
    by: str
    rule: str = ""


@dataclass(frozen=True, slots=True)
class Change:
    """An incident's new version, the events that produced it, and the alert that did (if any).
    ``keeps_state`` says its state and severity are those already stored (an alert joining, a
    note): the store then rewrites only its data, leaving the indexes on them alone."""

    incident: Incident
    is_new: bool
    events: tuple[PendingEvent, ...]
    alert: Alert | None = None
    keeps_state: bool = False


@dataclass(frozen=True, slots=True)
class NotificationRecord:
    id: str
    incident_id: str
    channel: str
    destination: str
    event_type: str
    status: DeliveryStatus
    attempts: int
    created_at: datetime
    updated_at: datetime
    next_attempt_at: datetime | None
    last_error: str
    suppressed_by: str = ""


@dataclass(frozen=True, slots=True)
class IncidentQuery:
    """Filters for listing incidents; empty tuples and None mean 'any'."""

    states: tuple[int, ...] = ()
    severities: tuple[int, ...] = ()
    source: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


@dataclass(frozen=True, slots=True)
class StoreUsage:
    """How big the store file is, how much of it is free for reuse, and its oldest record
    (None when it holds none)."""

    size_bytes: int
    free_bytes: int
    oldest_record_at: datetime | None


@dataclass(frozen=True, slots=True)
class ChannelCounts:
    channel: str
    counts: Mapping[str, int]
    latency_p50_ms: float
    latency_p99_ms: float
