import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DeliveryStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DELIVERY_STATUS_UNSPECIFIED: _ClassVar[DeliveryStatus]
    QUEUED: _ClassVar[DeliveryStatus]
    IN_FLIGHT: _ClassVar[DeliveryStatus]
    RETRYING: _ClassVar[DeliveryStatus]
    DELIVERED: _ClassVar[DeliveryStatus]
    SKIPPED: _ClassVar[DeliveryStatus]
    DEAD: _ClassVar[DeliveryStatus]
    SILENCED: _ClassVar[DeliveryStatus]
    INHIBITED: _ClassVar[DeliveryStatus]
DELIVERY_STATUS_UNSPECIFIED: DeliveryStatus
QUEUED: DeliveryStatus
IN_FLIGHT: DeliveryStatus
RETRYING: DeliveryStatus
DELIVERED: DeliveryStatus
SKIPPED: DeliveryStatus
DEAD: DeliveryStatus
SILENCED: DeliveryStatus
INHIBITED: DeliveryStatus

class ChannelStats(_message.Message):
    __slots__ = ("channel", "queued", "in_flight", "delivered", "retrying", "dead", "skipped", "latency_p50_ms", "latency_p99_ms", "enabled", "destinations", "warning", "silenced", "inhibited")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_FIELD_NUMBER: _ClassVar[int]
    RETRYING_FIELD_NUMBER: _ClassVar[int]
    DEAD_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P50_MS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P99_MS_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    DESTINATIONS_FIELD_NUMBER: _ClassVar[int]
    WARNING_FIELD_NUMBER: _ClassVar[int]
    SILENCED_FIELD_NUMBER: _ClassVar[int]
    INHIBITED_FIELD_NUMBER: _ClassVar[int]
    channel: str
    queued: int
    in_flight: int
    delivered: int
    retrying: int
    dead: int
    skipped: int
    latency_p50_ms: float
    latency_p99_ms: float
    enabled: bool
    destinations: _containers.RepeatedScalarFieldContainer[str]
    warning: str
    silenced: int
    inhibited: int
    def __init__(self, channel: _Optional[str] = ..., queued: _Optional[int] = ..., in_flight: _Optional[int] = ..., delivered: _Optional[int] = ..., retrying: _Optional[int] = ..., dead: _Optional[int] = ..., skipped: _Optional[int] = ..., latency_p50_ms: _Optional[float] = ..., latency_p99_ms: _Optional[float] = ..., enabled: _Optional[bool] = ..., destinations: _Optional[_Iterable[str]] = ..., warning: _Optional[str] = ..., silenced: _Optional[int] = ..., inhibited: _Optional[int] = ...) -> None: ...

class ActorStatus(_message.Message):
    __slots__ = ("name", "restarts", "last_failure", "alive", "fenced", "replica")
    NAME_FIELD_NUMBER: _ClassVar[int]
    RESTARTS_FIELD_NUMBER: _ClassVar[int]
    LAST_FAILURE_FIELD_NUMBER: _ClassVar[int]
    ALIVE_FIELD_NUMBER: _ClassVar[int]
    FENCED_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    name: str
    restarts: int
    last_failure: str
    alive: bool
    fenced: int
    replica: str
    def __init__(self, name: _Optional[str] = ..., restarts: _Optional[int] = ..., last_failure: _Optional[str] = ..., alive: _Optional[bool] = ..., fenced: _Optional[int] = ..., replica: _Optional[str] = ...) -> None: ...

class StatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StoreStats(_message.Message):
    __slots__ = ("size_bytes", "free_bytes", "oldest_record_at", "retention_days", "unavailable")
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    FREE_BYTES_FIELD_NUMBER: _ClassVar[int]
    OLDEST_RECORD_AT_FIELD_NUMBER: _ClassVar[int]
    RETENTION_DAYS_FIELD_NUMBER: _ClassVar[int]
    UNAVAILABLE_FIELD_NUMBER: _ClassVar[int]
    size_bytes: int
    free_bytes: int
    oldest_record_at: _timestamp_pb2.Timestamp
    retention_days: int
    unavailable: str
    def __init__(self, size_bytes: _Optional[int] = ..., free_bytes: _Optional[int] = ..., oldest_record_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., retention_days: _Optional[int] = ..., unavailable: _Optional[str] = ...) -> None: ...

class Stats(_message.Message):
    __slots__ = ("channels", "actors", "store")
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    ACTORS_FIELD_NUMBER: _ClassVar[int]
    STORE_FIELD_NUMBER: _ClassVar[int]
    channels: _containers.RepeatedCompositeFieldContainer[ChannelStats]
    actors: _containers.RepeatedCompositeFieldContainer[ActorStatus]
    store: StoreStats
    def __init__(self, channels: _Optional[_Iterable[_Union[ChannelStats, _Mapping]]] = ..., actors: _Optional[_Iterable[_Union[ActorStatus, _Mapping]]] = ..., store: _Optional[_Union[StoreStats, _Mapping]] = ...) -> None: ...

class Notification(_message.Message):
    __slots__ = ("id", "incident_id", "channel", "destination", "event_type", "status", "attempts", "created_at", "updated_at", "next_attempt_at", "last_error", "suppressed_by")
    ID_FIELD_NUMBER: _ClassVar[int]
    INCIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    SUPPRESSED_BY_FIELD_NUMBER: _ClassVar[int]
    id: str
    incident_id: str
    channel: str
    destination: str
    event_type: str
    status: DeliveryStatus
    attempts: int
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    next_attempt_at: _timestamp_pb2.Timestamp
    last_error: str
    suppressed_by: str
    def __init__(self, id: _Optional[str] = ..., incident_id: _Optional[str] = ..., channel: _Optional[str] = ..., destination: _Optional[str] = ..., event_type: _Optional[str] = ..., status: _Optional[_Union[DeliveryStatus, str]] = ..., attempts: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., next_attempt_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_error: _Optional[str] = ..., suppressed_by: _Optional[str] = ...) -> None: ...

class Attempt(_message.Message):
    __slots__ = ("number", "at", "outcome", "status_code", "error", "duration_ms")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    number: int
    at: _timestamp_pb2.Timestamp
    outcome: str
    status_code: int
    error: str
    duration_ms: float
    def __init__(self, number: _Optional[int] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., outcome: _Optional[str] = ..., status_code: _Optional[int] = ..., error: _Optional[str] = ..., duration_ms: _Optional[float] = ...) -> None: ...

class ListNotificationsRequest(_message.Message):
    __slots__ = ("incident_id", "channel", "status", "page_size", "page_token", "newest_first")
    INCIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    NEWEST_FIRST_FIELD_NUMBER: _ClassVar[int]
    incident_id: str
    channel: str
    status: DeliveryStatus
    page_size: int
    page_token: str
    newest_first: bool
    def __init__(self, incident_id: _Optional[str] = ..., channel: _Optional[str] = ..., status: _Optional[_Union[DeliveryStatus, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., newest_first: _Optional[bool] = ...) -> None: ...

class ListNotificationsResponse(_message.Message):
    __slots__ = ("notifications", "next_page_token")
    NOTIFICATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    notifications: _containers.RepeatedCompositeFieldContainer[Notification]
    next_page_token: str
    def __init__(self, notifications: _Optional[_Iterable[_Union[Notification, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetNotificationRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class RoutingDecision(_message.Message):
    __slots__ = ("channel", "receiver", "verdict", "route", "by", "reason", "rule")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    RECEIVER_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    BY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    channel: str
    receiver: str
    verdict: str
    route: str
    by: str
    reason: str
    rule: str
    def __init__(self, channel: _Optional[str] = ..., receiver: _Optional[str] = ..., verdict: _Optional[str] = ..., route: _Optional[str] = ..., by: _Optional[str] = ..., reason: _Optional[str] = ..., rule: _Optional[str] = ...) -> None: ...

class NotificationDetail(_message.Message):
    __slots__ = ("notification", "attempts", "route", "routing")
    NOTIFICATION_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    ROUTING_FIELD_NUMBER: _ClassVar[int]
    notification: Notification
    attempts: _containers.RepeatedCompositeFieldContainer[Attempt]
    route: str
    routing: _containers.RepeatedCompositeFieldContainer[RoutingDecision]
    def __init__(self, notification: _Optional[_Union[Notification, _Mapping]] = ..., attempts: _Optional[_Iterable[_Union[Attempt, _Mapping]]] = ..., route: _Optional[str] = ..., routing: _Optional[_Iterable[_Union[RoutingDecision, _Mapping]]] = ...) -> None: ...

class RequeueRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class TestNotificationRequest(_message.Message):
    __slots__ = ("channel", "destination")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    channel: str
    destination: str
    def __init__(self, channel: _Optional[str] = ..., destination: _Optional[str] = ...) -> None: ...

class TestNotificationResult(_message.Message):
    __slots__ = ("channel", "destination", "outcome", "status_code", "detail")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    channel: str
    destination: str
    outcome: str
    status_code: int
    detail: str
    def __init__(self, channel: _Optional[str] = ..., destination: _Optional[str] = ..., outcome: _Optional[str] = ..., status_code: _Optional[int] = ..., detail: _Optional[str] = ...) -> None: ...

class RenderTemplateRequest(_message.Message):
    __slots__ = ("receiver", "incident_id", "channel", "event_type")
    RECEIVER_FIELD_NUMBER: _ClassVar[int]
    INCIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    receiver: str
    incident_id: str
    channel: str
    event_type: str
    def __init__(self, receiver: _Optional[str] = ..., incident_id: _Optional[str] = ..., channel: _Optional[str] = ..., event_type: _Optional[str] = ...) -> None: ...

class RenderedTemplate(_message.Message):
    __slots__ = ("channel", "field", "setting", "text", "error")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    SETTING_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    channel: str
    field: str
    setting: str
    text: str
    error: str
    def __init__(self, channel: _Optional[str] = ..., field: _Optional[str] = ..., setting: _Optional[str] = ..., text: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...

class RenderTemplateResponse(_message.Message):
    __slots__ = ("templates",)
    TEMPLATES_FIELD_NUMBER: _ClassVar[int]
    templates: _containers.RepeatedCompositeFieldContainer[RenderedTemplate]
    def __init__(self, templates: _Optional[_Iterable[_Union[RenderedTemplate, _Mapping]]] = ...) -> None: ...

class Silence(_message.Message):
    __slots__ = ("id", "matchers", "starts_at", "ends_at", "created_by", "comment", "created_at", "updated_at", "state")
    ID_FIELD_NUMBER: _ClassVar[int]
    MATCHERS_FIELD_NUMBER: _ClassVar[int]
    STARTS_AT_FIELD_NUMBER: _ClassVar[int]
    ENDS_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    id: str
    matchers: _containers.RepeatedScalarFieldContainer[str]
    starts_at: _timestamp_pb2.Timestamp
    ends_at: _timestamp_pb2.Timestamp
    created_by: str
    comment: str
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    state: str
    def __init__(self, id: _Optional[str] = ..., matchers: _Optional[_Iterable[str]] = ..., starts_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ends_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_by: _Optional[str] = ..., comment: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., state: _Optional[str] = ...) -> None: ...

class CreateSilenceRequest(_message.Message):
    __slots__ = ("matchers", "starts_at", "ends_at", "created_by", "comment")
    MATCHERS_FIELD_NUMBER: _ClassVar[int]
    STARTS_AT_FIELD_NUMBER: _ClassVar[int]
    ENDS_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    matchers: _containers.RepeatedScalarFieldContainer[str]
    starts_at: _timestamp_pb2.Timestamp
    ends_at: _timestamp_pb2.Timestamp
    created_by: str
    comment: str
    def __init__(self, matchers: _Optional[_Iterable[str]] = ..., starts_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ends_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_by: _Optional[str] = ..., comment: _Optional[str] = ...) -> None: ...

class UpdateSilenceRequest(_message.Message):
    __slots__ = ("id", "matchers", "starts_at", "ends_at", "comment", "actor")
    ID_FIELD_NUMBER: _ClassVar[int]
    MATCHERS_FIELD_NUMBER: _ClassVar[int]
    STARTS_AT_FIELD_NUMBER: _ClassVar[int]
    ENDS_AT_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    id: str
    matchers: _containers.RepeatedScalarFieldContainer[str]
    starts_at: _timestamp_pb2.Timestamp
    ends_at: _timestamp_pb2.Timestamp
    comment: str
    actor: str
    def __init__(self, id: _Optional[str] = ..., matchers: _Optional[_Iterable[str]] = ..., starts_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ends_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., comment: _Optional[str] = ..., actor: _Optional[str] = ...) -> None: ...

class ExpireSilenceRequest(_message.Message):
    __slots__ = ("id", "actor")
    ID_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    id: str
    actor: str
    def __init__(self, id: _Optional[str] = ..., actor: _Optional[str] = ...) -> None: ...

class GetSilenceRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListSilencesRequest(_message.Message):
    __slots__ = ("include_expired",)
    INCLUDE_EXPIRED_FIELD_NUMBER: _ClassVar[int]
    include_expired: bool
    def __init__(self, include_expired: _Optional[bool] = ...) -> None: ...

class ListSilencesResponse(_message.Message):
    __slots__ = ("silences",)
    SILENCES_FIELD_NUMBER: _ClassVar[int]
    silences: _containers.RepeatedCompositeFieldContainer[Silence]
    def __init__(self, silences: _Optional[_Iterable[_Union[Silence, _Mapping]]] = ...) -> None: ...
