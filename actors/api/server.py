"""Builds the gRPC server: our three services, grpc.health.v1 and server reflection (v1 and v1alpha)."""
from __future__ import annotations

from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from protos import (admin_pb2, admin_pb2_grpc, alerts_pb2, alerts_pb2_grpc, incidents_pb2, incidents_pb2_grpc,
                    notifications_pb2, notifications_pb2_grpc)

from ..domain.config import ServerSettings
from ..engine import Engine
from .admin import AdminServicer
from .admission import Admission
from ..domain.tokens import load_tokens
from .alerts import AlertIngestionServicer
from .auth import AuthInterceptor
from .incidents import IncidentServicer
from .notifications import NotificationServicer
from .reflection import enable as enable_reflection
from .tls import ReloadableCredentials
from .undecodable import TolerantRegistry

SERVICE_NAMES = (
    alerts_pb2.DESCRIPTOR.services_by_name["AlertIngestion"].full_name,
    incidents_pb2.DESCRIPTOR.services_by_name["IncidentService"].full_name,
    notifications_pb2.DESCRIPTOR.services_by_name["NotificationService"].full_name,
)
ADMIN_SERVICE_NAME = admin_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name


class ApiServer:
    """A gRPC server bound to ``port`` (the port is taken at construction, so a second server
    finds out before touching anything else); it answers once :meth:`start` ran, and ``health``
    reports SERVING until :meth:`drain`. Streams and test sends are capped so that they never
    hold the ``[server] max_workers`` threads of unary calls (actors/api/admission.py), and a
    call arriving when every thread is busy is refused RESOURCE_EXHAUSTED instead of waiting.
    With ``[auth] enabled`` (from the engine's settings) every call needs a token
    (actors/api/auth.py); with ``[server] tls_cert_file`` it serves TLS only (:meth:`reload_tls`
    re-reads the files). Raises OSError when it cannot listen on ``[server] host:grpc_port``,
    ConfigError naming ``auth.tokens_file`` when the tokens file cannot be read or is invalid,
    or naming the TLS key when its files are unusable."""

    def __init__(self, engine: Engine, settings: ServerSettings) -> None:
        auth = engine.settings.auth
        interceptors: list[grpc.ServerInterceptor] = []
        if auth.enabled:
            interceptors.append(AuthInterceptor(load_tokens(auth.tokens_file or ""), auth))
        interceptors.append(Admission(settings))  # after auth, so that it counts per token
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=settings.threads, thread_name_prefix="grpc"),
            interceptors=interceptors,
            options=[("grpc.max_receive_message_length", settings.max_message_bytes),
                     ("grpc.so_reuseport", 0)],
            maximum_concurrent_rpcs=settings.threads)  # a call that finds every thread busy: refused, not queued
        registry = TolerantRegistry(self.server)  # undecodable requests: INVALID_ARGUMENT, not INTERNAL
        alerts_pb2_grpc.add_AlertIngestionServicer_to_server(AlertIngestionServicer(engine), registry)
        incidents_pb2_grpc.add_IncidentServiceServicer_to_server(IncidentServicer(engine), registry)
        notifications_pb2_grpc.add_NotificationServiceServicer_to_server(NotificationServicer(engine), registry)
        services = SERVICE_NAMES
        if settings.admin_enabled:  # fault injection: only when asked for (UNIMPLEMENTED otherwise)
            admin_pb2_grpc.add_AdminServiceServicer_to_server(AdminServicer(engine), registry)
            services = (*SERVICE_NAMES, ADMIN_SERVICE_NAME)
        self.health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        if settings.reflection:
            enable_reflection((*services, health.SERVICE_NAME), self.server)
        self.tls = ReloadableCredentials(settings) if settings.tls else None
        address = f"{settings.host}:{settings.grpc_port}"
        try:
            if self.tls:
                self.port = self.server.add_secure_port(address, self.tls.credentials)
            else:
                self.port = self.server.add_insecure_port(address)
        except RuntimeError:  # grpcio raises this when the address is taken or invalid
            self.port = 0
        if self.port == 0:
            raise OSError(f"cannot listen on {address} (in use, or not an address of this machine)")

    def start(self) -> "ApiServer":
        """Answer calls from now on (the engine should be started: until then its calls say
        UNAVAILABLE)."""
        self.server.start()
        for name in ("", *SERVICE_NAMES):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        return self

    def reload_tls(self) -> None:
        """Re-read the TLS files before the next handshake (open connections keep theirs);
        nothing to do without TLS."""
        if self.tls:
            self.tls.reload()

    def drain(self) -> None:
        """Report NOT_SERVING so balancers stop sending; calls still get UNAVAILABLE from the engine."""
        self.health.enter_graceful_shutdown()

    def stop(self, grace_secs: float) -> None:
        self.server.stop(grace_secs).wait(grace_secs + 1)
