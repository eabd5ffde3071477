import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Severity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEVERITY_UNSPECIFIED: _ClassVar[Severity]
    P0: _ClassVar[Severity]
    P1: _ClassVar[Severity]
    P2: _ClassVar[Severity]
    P3: _ClassVar[Severity]
    P4: _ClassVar[Severity]

class IncidentType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INCIDENT_TYPE_UNSPECIFIED: _ClassVar[IncidentType]
    INFRASTRUCTURE: _ClassVar[IncidentType]
    APPLICATION: _ClassVar[IncidentType]
    SECURITY: _ClassVar[IncidentType]
    DATA: _ClassVar[IncidentType]
    PERFORMANCE: _ClassVar[IncidentType]
    AVAILABILITY: _ClassVar[IncidentType]
    COMPLIANCE: _ClassVar[IncidentType]

class IncidentState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INCIDENT_STATE_UNSPECIFIED: _ClassVar[IncidentState]
    DETECTED: _ClassVar[IncidentState]
    TRIAGED: _ClassVar[IncidentState]
    INVESTIGATING: _ClassVar[IncidentState]
    REMEDIATING: _ClassVar[IncidentState]
    RESOLVED: _ClassVar[IncidentState]
    CLOSED: _ClassVar[IncidentState]

class ResolutionMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RESOLUTION_METHOD_UNSPECIFIED: _ClassVar[ResolutionMethod]
    AUTOMATED: _ClassVar[ResolutionMethod]
    MANUAL: _ClassVar[ResolutionMethod]
    AUTO_ASSISTED_MANUAL: _ClassVar[ResolutionMethod]
SEVERITY_UNSPECIFIED: Severity
P0: Severity
P1: Severity
P2: Severity
P3: Severity
P4: Severity
INCIDENT_TYPE_UNSPECIFIED: IncidentType
INFRASTRUCTURE: IncidentType
APPLICATION: IncidentType
SECURITY: IncidentType
DATA: IncidentType
PERFORMANCE: IncidentType
AVAILABILITY: IncidentType
COMPLIANCE: IncidentType
INCIDENT_STATE_UNSPECIFIED: IncidentState
DETECTED: IncidentState
TRIAGED: IncidentState
INVESTIGATING: IncidentState
REMEDIATING: IncidentState
RESOLVED: IncidentState
CLOSED: IncidentState
RESOLUTION_METHOD_UNSPECIFIED: ResolutionMethod
AUTOMATED: ResolutionMethod
MANUAL: ResolutionMethod
AUTO_ASSISTED_MANUAL: ResolutionMethod

class Resolution(_message.Message):
    __slots__ = ("resolved_by", "method", "notes", "root_cause", "resolved_at")
    RESOLVED_BY_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    NOTES_FIELD_NUMBER: _ClassVar[int]
    ROOT_CAUSE_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_AT_FIELD_NUMBER: _ClassVar[int]
    resolved_by: str
    method: ResolutionMethod
    notes: str
    root_cause: str
    resolved_at: _timestamp_pb2.Timestamp
    def __init__(self, resolved_by: _Optional[str] = ..., method: _Optional[_Union[ResolutionMethod, str]] = ..., notes: _Optional[str] = ..., root_cause: _Optional[str] = ..., resolved_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Incident(_message.Message):
    __slots__ = ("id", "title", "description", "severity", "type", "state", "source", "fingerprint", "created_at", "updated_at", "last_alert_at", "alert_count", "labels", "affected_services", "assignees", "resolution")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_ALERT_AT_FIELD_NUMBER: _ClassVar[int]
    ALERT_COUNT_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    AFFECTED_SERVICES_FIELD_NUMBER: _ClassVar[int]
    ASSIGNEES_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    id: str
    title: str
    description: str
    severity: Severity
    type: IncidentType
    state: IncidentState
    source: str
    fingerprint: str
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    last_alert_at: _timestamp_pb2.Timestamp
    alert_count: int
    labels: _containers.ScalarMap[str, str]
    affected_services: _containers.RepeatedScalarFieldContainer[str]
    assignees: _containers.RepeatedScalarFieldContainer[str]
    resolution: Resolution
    def __init__(self, id: _Optional[str] = ..., title: _Optional[str] = ..., description: _Optional[str] = ..., severity: _Optional[_Union[Severity, str]] = ..., type: _Optional[_Union[IncidentType, str]] = ..., state: _Optional[_Union[IncidentState, str]] = ..., source: _Optional[str] = ..., fingerprint: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_alert_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., alert_count: _Optional[int] = ..., labels: _Optional[_Mapping[str, str]] = ..., affected_services: _Optional[_Iterable[str]] = ..., assignees: _Optional[_Iterable[str]] = ..., resolution: _Optional[_Union[Resolution, _Mapping]] = ...) -> None: ...

class CreateIncidentRequest(_message.Message):
    __slots__ = ("title", "description", "severity", "type", "source", "labels", "affected_services", "assignees", "actor")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    AFFECTED_SERVICES_FIELD_NUMBER: _ClassVar[int]
    ASSIGNEES_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    title: str
    description: str
    severity: Severity
    type: IncidentType
    source: str
    labels: _containers.ScalarMap[str, str]
    affected_services: _containers.RepeatedScalarFieldContainer[str]
    assignees: _containers.RepeatedScalarFieldContainer[str]
    actor: str
    def __init__(self, title: _Optional[str] = ..., description: _Optional[str] = ..., severity: _Optional[_Union[Severity, str]] = ..., type: _Optional[_Union[IncidentType, str]] = ..., source: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., affected_services: _Optional[_Iterable[str]] = ..., assignees: _Optional[_Iterable[str]] = ..., actor: _Optional[str] = ...) -> None: ...

class GetIncidentRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListIncidentsRequest(_message.Message):
    __slots__ = ("states", "severities", "source", "created_after", "created_before", "page_size", "page_token")
    STATES_FIELD_NUMBER: _ClassVar[int]
    SEVERITIES_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AFTER_FIELD_NUMBER: _ClassVar[int]
    CREATED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    states: _containers.RepeatedScalarFieldContainer[IncidentState]
    severities: _containers.RepeatedScalarFieldContainer[Severity]
    source: str
    created_after: _timestamp_pb2.Timestamp
    created_before: _timestamp_pb2.Timestamp
    page_size: int
    page_token: str
    def __init__(self, states: _Optional[_Iterable[_Union[IncidentState, str]]] = ..., severities: _Optional[_Iterable[_Union[Severity, str]]] = ..., source: _Optional[str] = ..., created_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListIncidentsResponse(_message.Message):
    __slots__ = ("incidents", "next_page_token")
    INCIDENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    incidents: _containers.RepeatedCompositeFieldContainer[Incident]
    next_page_token: str
    def __init__(self, incidents: _Optional[_Iterable[_Union[Incident, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class AssigneeList(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, values: _Optional[_Iterable[str]] = ...) -> None: ...

class LabelSet(_message.Message):
    __slots__ = ("values",)
    class ValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.ScalarMap[str, str]
    def __init__(self, values: _Optional[_Mapping[str, str]] = ...) -> None: ...

class UpdateIncidentRequest(_message.Message):
    __slots__ = ("id", "title", "description", "severity", "assignees", "labels", "actor")
    ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    ASSIGNEES_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    id: str
    title: str
    description: str
    severity: Severity
    assignees: AssigneeList
    labels: LabelSet
    actor: str
    def __init__(self, id: _Optional[str] = ..., title: _Optional[str] = ..., description: _Optional[str] = ..., severity: _Optional[_Union[Severity, str]] = ..., assignees: _Optional[_Union[AssigneeList, _Mapping]] = ..., labels: _Optional[_Union[LabelSet, _Mapping]] = ..., actor: _Optional[str] = ...) -> None: ...

class TransitionIncidentRequest(_message.Message):
    __slots__ = ("id", "to_state", "actor", "note")
    ID_FIELD_NUMBER: _ClassVar[int]
    TO_STATE_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    id: str
    to_state: IncidentState
    actor: str
    note: str
    def __init__(self, id: _Optional[str] = ..., to_state: _Optional[_Union[IncidentState, str]] = ..., actor: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class ResolveIncidentRequest(_message.Message):
    __slots__ = ("id", "resolved_by", "method", "notes", "root_cause")
    ID_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_BY_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    NOTES_FIELD_NUMBER: _ClassVar[int]
    ROOT_CAUSE_FIELD_NUMBER: _ClassVar[int]
    id: str
    resolved_by: str
    method: ResolutionMethod
    notes: str
    root_cause: str
    def __init__(self, id: _Optional[str] = ..., resolved_by: _Optional[str] = ..., method: _Optional[_Union[ResolutionMethod, str]] = ..., notes: _Optional[str] = ..., root_cause: _Optional[str] = ...) -> None: ...

class AddNoteRequest(_message.Message):
    __slots__ = ("id", "author", "text")
    ID_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    id: str
    author: str
    text: str
    def __init__(self, id: _Optional[str] = ..., author: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class TimelineEntry(_message.Message):
    __slots__ = ("id", "incident_id", "kind", "at", "actor", "detail_json")
    ID_FIELD_NUMBER: _ClassVar[int]
    INCIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    DETAIL_JSON_FIELD_NUMBER: _ClassVar[int]
    id: int
    incident_id: str
    kind: str
    at: _timestamp_pb2.Timestamp
    actor: str
    detail_json: str
    def __init__(self, id: _Optional[int] = ..., incident_id: _Optional[str] = ..., kind: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actor: _Optional[str] = ..., detail_json: _Optional[str] = ...) -> None: ...

class GetTimelineRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class Timeline(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[TimelineEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[TimelineEntry, _Mapping]]] = ...) -> None: ...

class WatchIncidentsRequest(_message.Message):
    __slots__ = ("incident_id", "states", "min_severity", "kinds")
    INCIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    MIN_SEVERITY_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    incident_id: str
    states: _containers.RepeatedScalarFieldContainer[IncidentState]
    min_severity: Severity
    kinds: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, incident_id: _Optional[str] = ..., states: _Optional[_Iterable[_Union[IncidentState, str]]] = ..., min_severity: _Optional[_Union[Severity, str]] = ..., kinds: _Optional[_Iterable[str]] = ...) -> None: ...

class IncidentEvent(_message.Message):
    __slots__ = ("entry", "incident")
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    INCIDENT_FIELD_NUMBER: _ClassVar[int]
    entry: TimelineEntry
    incident: Incident
    def __init__(self, entry: _Optional[_Union[TimelineEntry, _Mapping]] = ..., incident: _Optional[_Union[Incident, _Mapping]] = ...) -> None: ...
