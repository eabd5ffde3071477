"""Proto ⇄ domain conversion with validation. Every rejection names the field."""
from __future__ import annotations

import enum
import json
from datetime import datetime, timedelta, timezone
from typing import TypeVar

from google.protobuf.timestamp_pb2 import Timestamp

from protos import alerts_pb2, incidents_pb2, notifications_pb2

from ..domain.changes import IncidentQuery, NotificationRecord
from ..domain.commands import checked_alert
from ..domain.errors import InvalidArgument
from ..domain.limits import DEFAULT_PAGE, MAX_PAGE
from ..domain.routing import Decision
from ..domain.silences import Silence
from ..domain.models import (Alert, Attempt, DeliveryStatus, Incident, IncidentState, IncidentType,
                             ResolutionMethod, Severity, TimelineEvent)

E = TypeVar("E", bound=enum.IntEnum)


def enum_value(field: str, enum_type: type[E], number: int, required: bool = True) -> E | None:
    """The enum member for a wire number; 0 (unspecified) is an error when required."""
    if number == 0 and not required:
        return None
    try:
        return enum_type(number)
    except ValueError:
        allowed = ", ".join(f"{m.value} ({m.name})" for m in enum_type)
        reason = "is required" if number == 0 else f"has unknown value {number}"
        raise InvalidArgument(field, f"{reason}; allowed: {allowed}") from None


#: The seconds of 0001-01-01T00:00:00Z and of the first second after 9999-12-31T23:59:59Z:
#: the range a Timestamp may hold (protobuf itself lets any int64 through).
_FIRST_SECOND, _PAST_LAST_SECOND = -62135596800, 253402300800


def to_datetime(field: str, stamp: Timestamp) -> datetime | None:
    """The moment ``stamp`` names, or None when it is unset (zero). Raises InvalidArgument
    naming ``field`` for seconds outside years 1..9999 or nanos outside 0..999,999,999."""
    if stamp.seconds == 0 and stamp.nanos == 0:
        return None
    if not (_FIRST_SECOND <= stamp.seconds < _PAST_LAST_SECOND and 0 <= stamp.nanos < 1_000_000_000):
        raise InvalidArgument(field, "must be a time from year 1 to year 9999 (nanos 0 to 999999999), "
                                     f"got seconds={stamp.seconds} nanos={stamp.nanos}")
    return datetime.fromtimestamp(stamp.seconds, timezone.utc) + timedelta(microseconds=stamp.nanos // 1000)


def to_timestamp(moment: datetime | None) -> Timestamp | None:
    if moment is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(moment.astimezone(timezone.utc))
    return stamp


def page_size(requested: int) -> int:
    if requested > MAX_PAGE:
        raise InvalidArgument("page_size", f"must be at most {MAX_PAGE}")
    return requested or DEFAULT_PAGE


def alert_from_proto(request: alerts_pb2.AlertRequest, max_field_bytes: int) -> Alert:
    return checked_alert(
        alert_id=request.alert_id, source=request.source, title=request.title, description=request.description,
        severity=enum_value("severity", Severity, request.severity),  # type: ignore[arg-type]
        type=enum_value("type", IncidentType, request.type),  # type: ignore[arg-type]
        labels=request.labels, annotations=request.annotations, affected_services=request.affected_services,
        fired_at=to_datetime("fired_at", request.fired_at), max_text=max_field_bytes)


def incident_query(request: incidents_pb2.ListIncidentsRequest) -> IncidentQuery:
    return IncidentQuery(
        states=tuple(int(enum_value("states", IncidentState, s)) for s in request.states),  # type: ignore[arg-type]
        severities=tuple(int(enum_value("severities", Severity, s)) for s in request.severities),  # type: ignore[arg-type]
        source=request.source.strip() or None,
        created_after=to_datetime("created_after", request.created_after),
        created_before=to_datetime("created_before", request.created_before),
    )


def incident_to_proto(incident: Incident) -> incidents_pb2.Incident:
    message = incidents_pb2.Incident(
        id=incident.id, title=incident.title, description=incident.description,
        severity=int(incident.severity), type=int(incident.type), state=int(incident.state),
        source=incident.source, fingerprint=incident.fingerprint,
        created_at=to_timestamp(incident.created_at), updated_at=to_timestamp(incident.updated_at),
        last_alert_at=to_timestamp(incident.last_alert_at), alert_count=incident.alert_count,
        labels=dict(incident.labels), affected_services=list(incident.affected_services),
        assignees=list(incident.assignees))
    if incident.resolution:
        r = incident.resolution
        message.resolution.CopyFrom(incidents_pb2.Resolution(
            resolved_by=r.resolved_by, method=int(r.method), notes=r.notes, root_cause=r.root_cause,
            resolved_at=to_timestamp(r.resolved_at)))
    return message


def timeline_to_proto(event: TimelineEvent) -> incidents_pb2.TimelineEntry:
    return incidents_pb2.TimelineEntry(
        id=event.id or 0, incident_id=event.incident_id, kind=event.kind.value, at=to_timestamp(event.at),
        actor=event.actor, detail_json=json.dumps(dict(event.detail), ensure_ascii=False))


def method_from_proto(number: int) -> ResolutionMethod:
    """Resolution method; unspecified means MANUAL (the original's examples always set it)."""
    return enum_value("method", ResolutionMethod, number, required=False) or ResolutionMethod.MANUAL  # type: ignore[return-value]


_STATUS_TO_PROTO = {status: notifications_pb2.DeliveryStatus.Value(status.name) for status in DeliveryStatus}


def delivery_status_from_proto(number: int) -> str:
    if number == 0:
        return ""
    member = enum_value("status", _ProtoStatus, number)
    return DeliveryStatus[member.name].value  # type: ignore[union-attr]


class _ProtoStatus(enum.IntEnum):
    QUEUED = 1
    IN_FLIGHT = 2
    RETRYING = 3
    DELIVERED = 4
    SKIPPED = 5
    DEAD = 6
    SILENCED = 7
    INHIBITED = 8


def notification_to_proto(record: NotificationRecord) -> notifications_pb2.Notification:
    return notifications_pb2.Notification(
        id=record.id, incident_id=record.incident_id, channel=record.channel, destination=record.destination,
        event_type=record.event_type, status=_STATUS_TO_PROTO[record.status], attempts=record.attempts,
        created_at=to_timestamp(record.created_at), updated_at=to_timestamp(record.updated_at),
        next_attempt_at=to_timestamp(record.next_attempt_at), last_error=record.last_error,
        suppressed_by=record.suppressed_by)


def silence_to_proto(silence: Silence, now: datetime) -> notifications_pb2.Silence:
    return notifications_pb2.Silence(
        id=silence.id, matchers=silence.matchers, starts_at=to_timestamp(silence.starts_at),
        ends_at=to_timestamp(silence.ends_at), created_by=silence.created_by, comment=silence.comment,
        created_at=to_timestamp(silence.created_at), updated_at=to_timestamp(silence.updated_at),
        state=silence.state_at(now))


def decision_to_proto(decision: Decision) -> notifications_pb2.RoutingDecision:
    return notifications_pb2.RoutingDecision(
        channel=decision.channel, receiver=decision.receiver, verdict=decision.verdict.value, route=decision.route,
        by=decision.by, reason=decision.reason, rule=decision.rule)


def attempt_to_proto(attempt: Attempt) -> notifications_pb2.Attempt:
    return notifications_pb2.Attempt(
        number=attempt.number, at=to_timestamp(attempt.at), outcome=attempt.outcome.value,
        status_code=attempt.status_code or 0, error=attempt.detail, duration_ms=attempt.duration_ms)
