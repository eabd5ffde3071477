"""Domain models: enums with the original's wire numbering, alerts, incidents, deliveries.

Everything here is immutable (frozen dataclasses) so it can travel between actor threads
without copying. Nothing here does I/O.
"""
from __future__ import annotations

import enum
import functools
import os
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Mapping

from .jsontext import ascii_compact, parse


def new_id() -> str:
    """A random (version 4) UUID in its text form, as ``str(uuid.uuid4())`` gives, at a
    quarter of its cost: one is made for every incident and every notification. Random, not
    time-ordered (version 7, which would let the store append index entries instead of
    scattering them), so that 8 characters tell ids apart wherever people see or type them
    (imctl, e-mail subjects)."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC, to the millisecond (what the store keeps)."""
    now = datetime.now(timezone.utc)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


@functools.lru_cache(maxsize=1024)
def to_iso(moment: datetime) -> str:
    """RFC 3339 text for a moment, in UTC, e.g. ``2024-01-15T14:32:00.123Z``. Cached: the
    moments of one batch (an incident's created, updated and last-alert times, its events'
    times) repeat, and formatting costs more than the lookup."""
    if moment.tzinfo is not timezone.utc:
        moment = moment.astimezone(timezone.utc)
    return moment.isoformat(timespec="milliseconds")[:-6] + "Z"  # drop "+00:00"


def from_iso(text: str) -> datetime:
    """Parse text written by :func:`to_iso`; raises ValueError on anything else."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class Severity(enum.IntEnum):
    """Incident severity; numbers follow the original's proto (P0 = 1 … P4 = 5)."""

    P0 = 1
    P1 = 2
    P2 = 3
    P3 = 4
    P4 = 5

    @property
    def label(self) -> str:
        return self.name


class IncidentType(enum.IntEnum):
    INFRASTRUCTURE = 1
    APPLICATION = 2
    SECURITY = 3
    DATA = 4
    PERFORMANCE = 5
    AVAILABILITY = 6
    COMPLIANCE = 7

    @property
    def label(self) -> str:
        return self.name.capitalize()


class IncidentState(enum.IntEnum):
    DETECTED = 1
    TRIAGED = 2
    INVESTIGATING = 3
    REMEDIATING = 4
    RESOLVED = 5
    CLOSED = 6

    @property
    def label(self) -> str:
        return self.name.capitalize()

    @property
    def is_active(self) -> bool:
        return self not in (IncidentState.RESOLVED, IncidentState.CLOSED)

    @property
    def event_type(self) -> str:
        """The notification event type announcing entry into this state."""
        return f"incident.{self.name.lower()}"


class ResolutionMethod(enum.IntEnum):
    AUTOMATED = 1
    MANUAL = 2
    AUTO_ASSISTED_MANUAL = 3

    @property
    def label(self) -> str:
        return self.name.replace("_", " ").capitalize().replace("Auto assisted", "Auto-assisted")


def _enum_by_name(enum_type: type[enum.IntEnum], value: Any) -> Any:
    if isinstance(value, enum_type):
        return value
    return enum_type[str(value)]


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert as received from a monitoring tool (already validated)."""

    alert_id: str
    source: str
    title: str
    description: str
    severity: Severity
    type: IncidentType
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    affected_services: tuple[str, ...] = ()
    fired_at: datetime = field(default_factory=utc_now)

    def to_dict(self) -> dict[str, Any]:
        return {
            "alert_id": self.alert_id,
            "source": self.source,
            "title": self.title,
            "description": self.description,
            "severity": self.severity.name,
            "type": self.type.name,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "affected_services": list(self.affected_services),
            "fired_at": to_iso(self.fired_at),
        }


@dataclass(frozen=True, slots=True)
class Resolution:
    resolved_by: str
    method: ResolutionMethod
    notes: str
    root_cause: str
    resolved_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "resolved_by": self.resolved_by,
            "method": self.method.name,
            "notes": self.notes,
            "root_cause": self.root_cause,
            "resolved_at": to_iso(self.resolved_at),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Resolution":
        return cls(
            resolved_by=data["resolved_by"],
            method=_enum_by_name(ResolutionMethod, data["method"]),
            notes=data["notes"],
            root_cause=data["root_cause"],
            resolved_at=from_iso(data["resolved_at"]),
        )


@dataclass(frozen=True, slots=True)
class Incident:
    """An incident as it stands at one moment. Changes produce a new instance."""

    id: str
    fingerprint: str
    title: str
    description: str
    severity: Severity
    type: IncidentType
    state: IncidentState
    source: str
    created_at: datetime
    updated_at: datetime
    last_alert_at: datetime
    alert_count: int = 1
    labels: Mapping[str, str] = field(default_factory=dict)
    affected_services: tuple[str, ...] = ()
    assignees: tuple[str, ...] = ()
    resolution: Resolution | None = None

    def evolve(self, **changes: Any) -> "Incident":
        return replace(self, **changes)

    def joined(self, at: datetime) -> "Incident":
        """This incident with one more alert, the last one at ``at``: :meth:`evolve` for the
        hottest change of all (a duplicate storm), built directly (``replace`` costs 3×)."""
        return Incident(self.id, self.fingerprint, self.title, self.description, self.severity, self.type,
                        self.state, self.source, self.created_at, at, at, self.alert_count + 1, self.labels,
                        self.affected_services, self.assignees, self.resolution)

    def to_dict(self) -> dict[str, Any]:
        """The JSON snapshot stored with events and sent in webhook payloads."""
        return {
            "id": self.id,
            "fingerprint": self.fingerprint,
            "title": self.title,
            "description": self.description,
            "severity": self.severity.name,
            "type": self.type.name,
            "state": self.state.name,
            "source": self.source,
            "created_at": to_iso(self.created_at),
            "updated_at": to_iso(self.updated_at),
            "last_alert_at": to_iso(self.last_alert_at),
            "alert_count": self.alert_count,
            "labels": dict(self.labels),
            "affected_services": list(self.affected_services),
            "assignees": list(self.assignees),
            "resolution": self.resolution.to_dict() if self.resolution else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Incident":
        """Rebuild an incident from :meth:`to_dict` output; raises KeyError/ValueError if malformed."""
        resolution = data.get("resolution")
        return cls(
            id=data["id"],
            fingerprint=data["fingerprint"],
            title=data["title"],
            description=data["description"],
            severity=_enum_by_name(Severity, data["severity"]),
            type=_enum_by_name(IncidentType, data["type"]),
            state=_enum_by_name(IncidentState, data["state"]),
            source=data["source"],
            created_at=from_iso(data["created_at"]),
            updated_at=from_iso(data["updated_at"]),
            last_alert_at=from_iso(data["last_alert_at"]),
            alert_count=int(data["alert_count"]),
            labels=dict(data.get("labels") or {}),
            affected_services=tuple(data.get("affected_services") or ()),
            assignees=tuple(data.get("assignees") or ()),
            resolution=Resolution.from_dict(resolution) if resolution else None,
        )


def snapshot_json(incident: Incident) -> str:
    """The incident's snapshot as compact, ASCII-only JSON: the one serialisation of an event's
    snapshot, stored once and embedded as-is in webhook bodies (never fails on odd text)."""
    return ascii_compact(incident.to_dict())


class EventKind(str, enum.Enum):
    """Kinds of timeline entries."""

    CREATED = "created"
    ALERT_JOINED = "alert_joined"
    STATE_CHANGED = "state_changed"
    UPDATED = "updated"
    ASSIGNMENT_CHANGED = "assignment_changed"
    NOTE_ADDED = "note_added"
    NOTIFICATION_DELIVERED = "notification_delivered"
    NOTIFICATION_DEAD = "notification_dead"
    NOTIFICATION_SILENCED = "notification_silenced"    # an event's notifications held by a silence
    NOTIFICATION_INHIBITED = "notification_inhibited"  # … by an active source incident
    SILENCE_ENDED = "silence_ended"                    # a silence that held it ended: notified again


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    incident_id: str
    kind: EventKind
    at: datetime
    actor: str
    detail: Mapping[str, Any]
    id: int | None = None


class DeliveryStatus(str, enum.Enum):
    """Where a notification stands. ``in_flight`` exists only in memory (the router's window)."""

    QUEUED = "queued"
    IN_FLIGHT = "in_flight"
    RETRYING = "retrying"
    DELIVERED = "delivered"
    SKIPPED = "skipped"
    DEAD = "dead"
    SILENCED = "silenced"    # never sent: a silence held it (final)
    INHIBITED = "inhibited"  # never sent: an active incident inhibited it (final)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One owed notification: an event rendered for one (channel, destination).

    ``incident`` is the snapshot taken when the event happened, never the current state, and
    ``snapshot`` its JSON text as stored (empty when the delivery was built without the store).
    ``state`` is what the channel stored earlier for this incident and destination (Slack
    thread, email root Message-ID, PagerDuty trigger), empty when nothing was stored.
    ``lease`` names the router that handed it out (see actors/store/schema.sql).
    """

    notification_id: str
    incident_id: str
    channel: str
    destination: str
    event_type: str
    occurred_at: datetime
    incident: Incident
    attempt: int = 1
    state: Mapping[str, Any] = field(default_factory=dict)
    is_test: bool = False
    snapshot: str = ""
    lease: str = ""
    #: For a group notification (actors/domain/grouping.py): what it carries, read by its
    #: sender at the first attempt; None for any other delivery, and before that read.
    group: "GroupContent | None" = None

    def next_attempt(self, state: Mapping[str, Any] | None = None) -> "Delivery":
        return replace(self, attempt=self.attempt + 1, state=self.state if state is None else state)


@dataclass(frozen=True, slots=True)
class GroupContent:
    """What a group notification carries: its route and group labels, and the incidents whose
    events joined it (first joined first), each as its snapshot after its last such event."""

    route: str
    labels: Mapping[str, str]
    incident_ids: tuple[str, ...]
    snapshots: tuple[str, ...]

    def incidents(self) -> list[Incident]:
        return [Incident.from_dict(parse(snapshot)) for snapshot in self.snapshots]

    def describe(self) -> str:
        """``service=db, env=prod`` (the group's labels), for a subject or a header."""
        return ", ".join(f"{name}={value}" for name, value in self.labels.items())


class OutcomeKind(str, enum.Enum):
    DELIVERED = "delivered"
    RETRY = "retry"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one delivery attempt came to.

    ``detail`` is human text that must already be free of secrets. ``retry_after`` is the
    destination's own wait request in seconds (Retry-After), if it gave one. ``state`` is
    channel state to store for this incident and destination (replacing what was there).
    ``disable_destination`` asks the operator's attention: the endpoint is gone (HTTP 410).
    """

    kind: OutcomeKind
    detail: str = ""
    status_code: int | None = None
    retry_after: float | None = None
    state: Mapping[str, Any] | None = None
    disable_destination: bool = False

    @classmethod
    def delivered(cls, detail: str = "", status_code: int | None = None,
                  state: Mapping[str, Any] | None = None) -> "Outcome":
        return cls(OutcomeKind.DELIVERED, detail, status_code, state=state)

    @classmethod
    def retry(cls, detail: str, status_code: int | None = None,
              retry_after: float | None = None, state: Mapping[str, Any] | None = None) -> "Outcome":
        return cls(OutcomeKind.RETRY, detail, status_code, retry_after, state=state)

    @classmethod
    def failed(cls, detail: str, status_code: int | None = None,
               disable_destination: bool = False, state: Mapping[str, Any] | None = None) -> "Outcome":
        return cls(OutcomeKind.FAILED, detail, status_code, state=state,
                   disable_destination=disable_destination)

    @classmethod
    def skipped(cls, detail: str) -> "Outcome":
        return cls(OutcomeKind.SKIPPED, detail)


@dataclass(frozen=True, slots=True)
class Attempt:
    """A recorded delivery attempt (errors already redacted)."""

    notification_id: str
    number: int
    at: datetime
    outcome: OutcomeKind
    status_code: int | None
    detail: str
    duration_ms: float
