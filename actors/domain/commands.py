"""The engine's public commands, and the one validating constructor of each.

Both edges — the gRPC servicers (actors/api/) and the embedding API (actors/embed.py) —
turn their input into these with the ``checked`` constructors (and :func:`checked_alert`),
so one rule holds everywhere:

- text fields are stripped, limited (actors/domain/limits.py) and free of NUL;
- ``title``, ``source``, ``resolved_by`` and a note's ``text`` must not be empty;
- who did it (``actor``, a note's ``author``) is optional: blank means the edge itself
  (``api`` over gRPC, ``embedded`` in-process), the ``default_actor`` each edge passes;
- ids must be non-empty (an edge may first expand an id prefix).

Enums arrive as members: reading them from the wire (numbers) or from Python (names) is the
edge's job. Every rejection is an :class:`InvalidArgument` naming the field. The processor
takes the commands as they are (it checks the domain: state machine, existence).
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterable, Mapping

from .errors import InvalidArgument
from .limits import MAX_ID, MAX_NAME, MAX_TITLE, string_list, string_map, text
from .models import Alert, IncidentState, IncidentType, ResolutionMethod, Severity, utc_now
from .silences import MAX_COMMENT, check_window, checked_matchers


def actor_name(field_name: str, value: str, default_actor: str) -> str:
    """Who did it: ``value`` checked like a name, or ``default_actor`` when it is blank."""
    return text(field_name, value, MAX_NAME) or default_actor


def checked_id(value: str, field_name: str = "id") -> str:
    """An incident or notification id: non-empty, at most MAX_ID bytes."""
    return text(field_name, value, MAX_ID, required=True)


@dataclass(frozen=True, slots=True)
class AlertResult:
    """What recording one alert came to."""

    alert_id: str
    incident_id: str
    duplicate: bool       # this alert_id had been recorded before; nothing changed
    new_incident: bool    # the alert opened a new incident


def checked_alert(*, alert_id: str, source: str, title: str, description: str, severity: Severity,
                  type: IncidentType, labels: Mapping[str, str], annotations: Mapping[str, str],
                  affected_services: Iterable[str], fired_at: datetime | None, max_text: int) -> Alert:
    """An alert to record. A blank ``alert_id`` gets a random one; ``fired_at`` None means
    now, otherwise it must be timezone-aware. Raises InvalidArgument naming the field."""
    if fired_at is not None and (not isinstance(fired_at, datetime) or fired_at.tzinfo is None):
        raise InvalidArgument("fired_at", "must be a timezone-aware datetime")
    return Alert(
        alert_id=text("alert_id", alert_id, MAX_ID) or str(uuid.uuid4()),
        source=text("source", source, MAX_NAME, required=True),
        title=text("title", title, MAX_TITLE, required=True),
        description=text("description", description, max_text),
        severity=severity,
        type=type,
        labels=string_map("labels", labels),
        annotations=string_map("annotations", annotations),
        affected_services=string_list("affected_services", affected_services),
        fired_at=fired_at or utc_now())


@dataclass(frozen=True, slots=True)
class CreateIncident:
    title: str
    description: str
    severity: Severity
    type: IncidentType
    source: str
    labels: Mapping[str, str] = field(default_factory=dict)
    affected_services: tuple[str, ...] = ()
    assignees: tuple[str, ...] = ()
    actor: str = "api"

    @classmethod
    def checked(cls, *, title: str, description: str, severity: Severity, type: IncidentType, source: str,
                labels: Mapping[str, str], affected_services: Iterable[str], assignees: Iterable[str],
                actor: str, default_actor: str, max_text: int) -> "CreateIncident":
        """Raises InvalidArgument naming the field (an empty ``source`` included: as for an alert)."""
        return cls(
            title=text("title", title, MAX_TITLE, required=True),
            description=text("description", description, max_text),
            severity=severity, type=type,
            source=text("source", source, MAX_NAME, required=True),
            labels=string_map("labels", labels),
            affected_services=string_list("affected_services", affected_services),
            assignees=string_list("assignees", assignees),
            actor=actor_name("actor", actor, default_actor))


@dataclass(frozen=True, slots=True)
class UpdateIncident:
    """Only the fields that are not None change."""

    incident_id: str
    actor: str
    title: str | None = None
    description: str | None = None
    severity: Severity | None = None
    assignees: tuple[str, ...] | None = None
    labels: Mapping[str, str] | None = None

    @classmethod
    def checked(cls, *, incident_id: str, actor: str, default_actor: str, max_text: int,
                title: str | None = None, description: str | None = None, severity: Severity | None = None,
                assignees: Iterable[str] | None = None,
                labels: Mapping[str, str] | None = None) -> "UpdateIncident":
        """Raises InvalidArgument naming the field (a title given must not be empty)."""
        return cls(
            incident_id=checked_id(incident_id), actor=actor_name("actor", actor, default_actor),
            title=None if title is None else text("title", title, MAX_TITLE, required=True),
            description=None if description is None else text("description", description, max_text),
            severity=severity,
            assignees=None if assignees is None else string_list("assignees", assignees),
            labels=None if labels is None else string_map("labels", labels))


@dataclass(frozen=True, slots=True)
class TransitionIncident:
    incident_id: str
    to_state: IncidentState
    actor: str
    note: str = ""

    @classmethod
    def checked(cls, *, incident_id: str, to_state: IncidentState, actor: str, default_actor: str,
                note: str, max_text: int) -> "TransitionIncident":
        return cls(checked_id(incident_id), to_state, actor_name("actor", actor, default_actor),
                   text("note", note, max_text))


@dataclass(frozen=True, slots=True)
class ResolveIncident:
    incident_id: str
    resolved_by: str
    method: ResolutionMethod
    notes: str = ""
    root_cause: str = ""

    @classmethod
    def checked(cls, *, incident_id: str, resolved_by: str, method: ResolutionMethod, notes: str,
                root_cause: str, max_text: int) -> "ResolveIncident":
        """``resolved_by`` is required (it is the resolution's record of who resolved it)."""
        return cls(checked_id(incident_id), text("resolved_by", resolved_by, MAX_NAME, required=True),
                   method, text("notes", notes, max_text), text("root_cause", root_cause, max_text))


@dataclass(frozen=True, slots=True)
class AddNote:
    incident_id: str
    author: str
    text: str

    @classmethod
    def checked(cls, *, incident_id: str, author: str, default_actor: str, note: str,
                max_text: int) -> "AddNote":
        return cls(checked_id(incident_id), actor_name("author", author, default_actor),
                   text("text", note, max_text, required=True))


@dataclass(frozen=True, slots=True)
class CreateSilence:
    """A new silence: canonical matchers (actors/domain/silences.py), its window and who and why."""

    matchers: tuple[str, ...]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str

    @classmethod
    def checked(cls, *, matchers: Iterable[str], starts_at: datetime | None, ends_at: datetime | None,
                created_by: str, comment: str, default_actor: str) -> "CreateSilence":
        """``starts_at`` None means now; ``ends_at`` is required and after the start.
        ``comment`` (why) is required. Raises InvalidArgument naming the field."""
        starts = _moment("starts_at", starts_at) or utc_now()
        ends = _moment("ends_at", ends_at)
        if ends is None:
            raise InvalidArgument("ends_at", "required: when the silence ends")
        check_window(starts, ends)
        return cls(checked_matchers(string_list("matchers", matchers)), starts, ends,
                   actor_name("created_by", created_by, default_actor),
                   text("comment", comment, MAX_COMMENT, required=True))


@dataclass(frozen=True, slots=True)
class UpdateSilence:
    """New matchers, window or comment for a silence not yet ended (None keeps the old)."""

    silence_id: str
    actor: str
    matchers: tuple[str, ...] | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    comment: str | None = None

    @classmethod
    def checked(cls, *, silence_id: str, matchers: Iterable[str] | None, starts_at: datetime | None,
                ends_at: datetime | None, comment: str | None, actor: str,
                default_actor: str) -> "UpdateSilence":
        """Raises InvalidArgument naming the field (the processor checks the window as a whole)."""
        return cls(checked_id(silence_id), actor_name("actor", actor, default_actor),
                   None if matchers is None else checked_matchers(string_list("matchers", matchers)),
                   _moment("starts_at", starts_at), _moment("ends_at", ends_at),
                   None if comment is None else text("comment", comment, MAX_COMMENT, required=True))


@dataclass(frozen=True, slots=True)
class ExpireSilence:
    """End a silence now (a pending one never starts)."""

    silence_id: str
    actor: str


def _moment(field_name: str, value: datetime | None) -> datetime | None:
    if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
        raise InvalidArgument(field_name, "must be a timezone-aware datetime")
    return value
