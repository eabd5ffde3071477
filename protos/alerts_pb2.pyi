import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from protos import incidents_pb2 as _incidents_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AckStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACK_STATUS_UNSPECIFIED: _ClassVar[AckStatus]
    ACCEPTED: _ClassVar[AckStatus]
    DUPLICATE: _ClassVar[AckStatus]
    REJECTED: _ClassVar[AckStatus]
    RATE_LIMITED: _ClassVar[AckStatus]
ACK_STATUS_UNSPECIFIED: AckStatus
ACCEPTED: AckStatus
DUPLICATE: AckStatus
REJECTED: AckStatus
RATE_LIMITED: AckStatus

class AlertRequest(_message.Message):
    __slots__ = ("alert_id", "source", "title", "description", "severity", "type", "labels", "annotations", "affected_services", "fired_at")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class AnnotationsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    ANNOTATIONS_FIELD_NUMBER: _ClassVar[int]
    AFFECTED_SERVICES_FIELD_NUMBER: _ClassVar[int]
    FIRED_AT_FIELD_NUMBER: _ClassVar[int]
    alert_id: str
    source: str
    title: str
    description: str
    severity: _incidents_pb2.Severity
    type: _incidents_pb2.IncidentType
    labels: _containers.ScalarMap[str, str]
    annotations: _containers.ScalarMap[str, str]
    affected_services: _containers.RepeatedScalarFieldContainer[str]
    fired_at: _timestamp_pb2.Timestamp
    def __init__(self, alert_id: _Optional[str] = ..., source: _Optional[str] = ..., title: _Optional[str] = ..., description: _Optional[str] = ..., severity: _Optional[_Union[_incidents_pb2.Severity, str]] = ..., type: _Optional[_Union[_incidents_pb2.IncidentType, str]] = ..., labels: _Optional[_Mapping[str, str]] = ..., annotations: _Optional[_Mapping[str, str]] = ..., affected_services: _Optional[_Iterable[str]] = ..., fired_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AlertAck(_message.Message):
    __slots__ = ("alert_id", "status", "incident_id", "new_incident", "reason")
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    INCIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    NEW_INCIDENT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    alert_id: str
    status: AckStatus
    incident_id: str
    new_incident: bool
    reason: str
    def __init__(self, alert_id: _Optional[str] = ..., status: _Optional[_Union[AckStatus, str]] = ..., incident_id: _Optional[str] = ..., new_incident: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class AlertBatch(_message.Message):
    __slots__ = ("alerts",)
    ALERTS_FIELD_NUMBER: _ClassVar[int]
    alerts: _containers.RepeatedCompositeFieldContainer[AlertRequest]
    def __init__(self, alerts: _Optional[_Iterable[_Union[AlertRequest, _Mapping]]] = ...) -> None: ...

class AlertAcks(_message.Message):
    __slots__ = ("acks",)
    ACKS_FIELD_NUMBER: _ClassVar[int]
    acks: _containers.RepeatedCompositeFieldContainer[AlertAck]
    def __init__(self, acks: _Optional[_Iterable[_Union[AlertAck, _Mapping]]] = ...) -> None: ...
