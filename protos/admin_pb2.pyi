from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ActorFaultKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACTOR_FAULT_KIND_UNSPECIFIED: _ClassVar[ActorFaultKind]
    CRASH_NEXT_MESSAGE: _ClassVar[ActorFaultKind]
    CRASH_ON_START: _ClassVar[ActorFaultKind]
    DELAY_MESSAGES: _ClassVar[ActorFaultKind]
    STOP: _ClassVar[ActorFaultKind]

class TransportFaultKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRANSPORT_FAULT_KIND_UNSPECIFIED: _ClassVar[TransportFaultKind]
    TIMEOUT: _ClassVar[TransportFaultKind]
    CONNECTION_REFUSED: _ClassVar[TransportFaultKind]
    HTTP_STATUS: _ClassVar[TransportFaultKind]
    SMTP_CODE: _ClassVar[TransportFaultKind]
    SLOW: _ClassVar[TransportFaultKind]
ACTOR_FAULT_KIND_UNSPECIFIED: ActorFaultKind
CRASH_NEXT_MESSAGE: ActorFaultKind
CRASH_ON_START: ActorFaultKind
DELAY_MESSAGES: ActorFaultKind
STOP: ActorFaultKind
TRANSPORT_FAULT_KIND_UNSPECIFIED: TransportFaultKind
TIMEOUT: TransportFaultKind
CONNECTION_REFUSED: TransportFaultKind
HTTP_STATUS: TransportFaultKind
SMTP_CODE: TransportFaultKind
SLOW: TransportFaultKind

class InjectActorFaultRequest(_message.Message):
    __slots__ = ("actor", "kind", "times", "delay_ms")
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TIMES_FIELD_NUMBER: _ClassVar[int]
    DELAY_MS_FIELD_NUMBER: _ClassVar[int]
    actor: str
    kind: ActorFaultKind
    times: int
    delay_ms: int
    def __init__(self, actor: _Optional[str] = ..., kind: _Optional[_Union[ActorFaultKind, str]] = ..., times: _Optional[int] = ..., delay_ms: _Optional[int] = ...) -> None: ...

class InjectTransportFaultRequest(_message.Message):
    __slots__ = ("channel", "times", "kind", "code", "delay_ms", "retry_after")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    TIMES_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    DELAY_MS_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_FIELD_NUMBER: _ClassVar[int]
    channel: str
    times: int
    kind: TransportFaultKind
    code: int
    delay_ms: int
    retry_after: str
    def __init__(self, channel: _Optional[str] = ..., times: _Optional[int] = ..., kind: _Optional[_Union[TransportFaultKind, str]] = ..., code: _Optional[int] = ..., delay_ms: _Optional[int] = ..., retry_after: _Optional[str] = ...) -> None: ...

class ClearFaultsRequest(_message.Message):
    __slots__ = ("actor", "channel")
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    actor: str
    channel: str
    def __init__(self, actor: _Optional[str] = ..., channel: _Optional[str] = ...) -> None: ...

class FaultsCleared(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class FaultInjected(_message.Message):
    __slots__ = ("target", "detail")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    target: str
    detail: str
    def __init__(self, target: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...

class ListActorsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ActorStatus(_message.Message):
    __slots__ = ("name", "alive", "restarts", "last_failure", "fenced")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ALIVE_FIELD_NUMBER: _ClassVar[int]
    RESTARTS_FIELD_NUMBER: _ClassVar[int]
    LAST_FAILURE_FIELD_NUMBER: _ClassVar[int]
    FENCED_FIELD_NUMBER: _ClassVar[int]
    name: str
    alive: bool
    restarts: int
    last_failure: str
    fenced: int
    def __init__(self, name: _Optional[str] = ..., alive: _Optional[bool] = ..., restarts: _Optional[int] = ..., last_failure: _Optional[str] = ..., fenced: _Optional[int] = ...) -> None: ...

class ActorList(_message.Message):
    __slots__ = ("actors",)
    ACTORS_FIELD_NUMBER: _ClassVar[int]
    actors: _containers.RepeatedCompositeFieldContainer[ActorStatus]
    def __init__(self, actors: _Optional[_Iterable[_Union[ActorStatus, _Mapping]]] = ...) -> None: ...

class FaultStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class FaultStats(_message.Message):
    __slots__ = ("injected_crashes", "injected_transport_faults", "actors_stopped")
    INJECTED_CRASHES_FIELD_NUMBER: _ClassVar[int]
    INJECTED_TRANSPORT_FAULTS_FIELD_NUMBER: _ClassVar[int]
    ACTORS_STOPPED_FIELD_NUMBER: _ClassVar[int]
    injected_crashes: int
    injected_transport_faults: int
    actors_stopped: int
    def __init__(self, injected_crashes: _Optional[int] = ..., injected_transport_faults: _Optional[int] = ..., actors_stopped: _Optional[int] = ...) -> None: ...
