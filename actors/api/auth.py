"""Bearer-token authentication and role checks for every gRPC call, as a server interceptor.

A client sends ``authorization: Bearer <token>``. A missing or unknown token answers
UNAUTHENTICATED; a known token whose role may not call the method answers PERMISSION_DENIED
(:data:`ALLOWED` is the one table of who may call what). Health checks and reflection may be
left open (``[auth] open_health``, ``open_reflection``); otherwise any known token may call
them. An allowed call runs with its :class:`Principal` in :data:`PRINCIPAL`, which
:func:`attributed` turns into the actor the servicers record. Tokens are never logged or
repeated in an answer.
"""
from __future__ import annotations

import contextvars
from typing import Any, Callable, Iterator, Mapping, Sequence

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health

from protos import admin_pb2, alerts_pb2, incidents_pb2, notifications_pb2

from ..domain.config import AuthSettings
from ..domain.tokens import Principal, Tokens
from .handlers import behavior_of, handler_like, holds_no_thread
from .reflection import SERVICE_NAMES as REFLECTION_SERVICE_NAMES

INGEST = frozenset({"ingest", "admin"})
READ = frozenset({"viewer", "responder", "admin"})
RESPOND = frozenset({"responder", "admin"})
ADMIN = frozenset({"admin"})

#: Who may call each RPC, by service and method. Every method of :data:`SERVICES` needs an
#: entry (tests/test_auth.py checks); a method missing here is for ``admin`` only.
ALLOWED: Mapping[str, Mapping[str, frozenset[str]]] = {
    "AlertIngestion": {"SubmitAlert": INGEST, "SubmitAlerts": INGEST, "StreamAlerts": INGEST},
    "IncidentService": {
        "GetIncident": READ, "ListIncidents": READ, "WatchIncidents": READ, "GetTimeline": READ,
        "CreateIncident": RESPOND, "UpdateIncident": RESPOND, "TransitionIncident": RESPOND,
        "ResolveIncident": RESPOND, "AddNote": RESPOND},
    "NotificationService": {
        "GetStats": READ, "ListNotifications": READ, "GetNotification": READ,
        "RequeueNotification": RESPOND, "SendTestNotification": RESPOND, "RenderTemplate": READ,
        "ListSilences": READ, "GetSilence": READ, "CreateSilence": RESPOND, "UpdateSilence": RESPOND,
        "ExpireSilence": RESPOND},
    "AdminService": {"InjectActorFault": ADMIN, "InjectTransportFault": ADMIN, "ClearFaults": ADMIN,
                     "ListActors": ADMIN, "GetFaultStats": ADMIN},
}
SERVICES: tuple[ServiceDescriptor, ...] = (
    alerts_pb2.DESCRIPTOR.services_by_name["AlertIngestion"],
    incidents_pb2.DESCRIPTOR.services_by_name["IncidentService"],
    notifications_pb2.DESCRIPTOR.services_by_name["NotificationService"],
    admin_pb2.DESCRIPTOR.services_by_name["AdminService"],
)


def method_path(service: ServiceDescriptor, method: str) -> str:
    """The path gRPC calls a method by: ``/package.Service/Method``."""
    return f"/{service.full_name}/{method}"


def unassigned() -> list[str]:
    """The methods of :data:`SERVICES` that :data:`ALLOWED` gives no roles (should be none)."""
    return [method_path(s, m.name) for s in SERVICES for m in s.methods
            if m.name not in ALLOWED.get(s.name, {})]


#: ``/package.Service/Method`` → the roles that may call it.
ROLES_BY_METHOD: Mapping[str, frozenset[str]] = {
    method_path(s, m.name): ALLOWED.get(s.name, {}).get(m.name, ADMIN) for s in SERVICES for m in s.methods}

#: The principal of the call running in this context; None when authentication is off.
PRINCIPAL: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("principal", default=None)


def attributed(requested: str) -> str:
    """The actor to record for a command: with authentication on, the token's name, keeping a
    different ``requested`` actor as ``name (on behalf of requested)``; with it off,
    ``requested`` unchanged (the command checks it)."""
    principal = PRINCIPAL.get()
    if principal is None:
        return requested
    requested = requested.strip()
    if not requested or requested == principal.name:
        return principal.name
    return f"{principal.name} (on behalf of {requested})"


def bearer_token(metadata: Sequence[tuple[str, Any]] | None) -> str:
    """The token of an ``authorization: Bearer <token>`` entry, or "" when there is none."""
    for key, value in metadata or ():
        if key.lower() == "authorization" and isinstance(value, str):
            scheme, _, token = value.strip().partition(" ")
            if scheme.lower() == "bearer":
                return token.strip()
    return ""


def open_methods(settings: AuthSettings) -> frozenset[str]:
    """The method paths (``/service/`` prefixes) that answer without a token."""
    services = ((health.SERVICE_NAME,) if settings.open_health else ()) + \
        (REFLECTION_SERVICE_NAMES if settings.open_reflection else ())
    return frozenset(f"/{name}/" for name in services)


class AuthInterceptor(grpc.ServerInterceptor):
    """Admits a call whose bearer token's role may call its method (see the module docstring)."""

    def __init__(self, tokens: Tokens, settings: AuthSettings) -> None:
        self.tokens = tokens
        self.open_prefixes = open_methods(settings)

    def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails], Any],
                          details: grpc.HandlerCallDetails) -> Any:
        method: str = details.method  # type: ignore[attr-defined]
        handler = continuation(details)
        if handler is None or method.startswith(tuple(self.open_prefixes)):
            return handler
        principal = self.tokens.identify(bearer_token(details.invocation_metadata))  # type: ignore[attr-defined]
        if principal is None:
            return _refusal(handler, grpc.StatusCode.UNAUTHENTICATED,
                            "missing or unknown token: send the metadata 'authorization: Bearer <token>'")
        if method in ROLES_BY_METHOD and principal.role not in ROLES_BY_METHOD[method]:
            return _refusal(handler, grpc.StatusCode.PERMISSION_DENIED,
                            f"{principal.name} (role {principal.role}) may not call {method}")
        return _as(principal, handler)


def _refusal(handler: Any, code: grpc.StatusCode, details: str) -> Any:
    def refuse(request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(code, details)

    def refuse_stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        context.abort(code, details)
        yield  # pragma: no cover  (makes this a generator; abort raises)
    return handler_like(handler, refuse, refuse_stream)


def _as(principal: Principal, handler: Any) -> Any:
    """``handler`` with its behaviour (and a response stream's every step) run in a context
    where :data:`PRINCIPAL` is ``principal``; a stream answered without a worker thread
    (actors/api/handlers.py) still is."""
    behavior = behavior_of(handler)

    def context_for_call() -> contextvars.Context:
        context = contextvars.copy_context()
        context.run(PRINCIPAL.set, principal)
        return context

    def unary(request: Any, context: grpc.ServicerContext) -> Any:
        return context_for_call().run(behavior, request, context)

    if holds_no_thread(behavior):  # the health Watch: wrapped so that it still needs no thread
        def sending(request: Any, context: grpc.ServicerContext, send_response_callback: Any) -> None:
            context_for_call().run(behavior, request, context, send_response_callback)
        sending.experimental_non_blocking = True  # type: ignore[attr-defined]
        return handler_like(handler, unary, sending)

    def streaming(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        call_context = context_for_call()
        responses = call_context.run(behavior, request, context)
        try:
            while True:
                try:
                    response = call_context.run(next, responses)
                except StopIteration:
                    return
                yield response
        finally:
            close = getattr(responses, "close", None)
            if close is not None:
                call_context.run(close)
    return handler_like(handler, unary, streaming)
