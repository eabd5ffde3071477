"""No client can starve the others: caps on the calls that hold a gRPC worker thread for long.

The gRPC server runs every call in a thread of one pool, and a call holds its thread until it
ends: a stream (WatchIncidents, StreamAlerts, reflection) for as long as it is open, a test
send until its destination answers. (The health Watch is the exception: it is answered without
a thread, so it is not capped.) So that such calls never take the threads
intake needs, the pool has ``[server] max_workers`` threads for unary calls *plus*
``max_streams`` for streams and ``max_test_sends`` for test sends (``ServerSettings.threads``),
and :class:`Admission` lets no more streams or test sends run than that, in total and per
client (``max_streams_per_client``, ``max_test_sends_per_client``). A call over a cap is
answered RESOURCE_EXHAUSTED naming the limit before its servicer runs, so its thread is free
again at once. A client is its token's name when authentication is on, otherwise the host
address it calls from (every connection from one host is one client).
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Iterator
from urllib.parse import unquote

import grpc

from protos import notifications_pb2

from ..domain.config import ServerSettings
from ..domain.errors import Overloaded
from .auth import PRINCIPAL, method_path
from .handlers import behavior_of, handler_like, holds_no_thread

TEST_SEND = method_path(notifications_pb2.DESCRIPTOR.services_by_name["NotificationService"], "SendTestNotification")


class Quota:
    """At most ``total`` calls of one kind at once, and at most ``per_client`` of them from one
    client; the limits are named by their ``[server]`` keys in refusals."""

    def __init__(self, kind: str, total_key: str, total: int, per_client_key: str, per_client: int) -> None:
        self.kind = kind
        self.total_key, self.total = total_key, total
        self.per_client_key, self.per_client = per_client_key, per_client
        self._lock = threading.Lock()
        self._running = 0
        self._by_client: dict[str, int] = {}

    def acquire(self, client: str) -> None:
        """Count one more call of ``client``. Raises Overloaded naming the limit it would go
        over; nothing is counted then."""
        with self._lock:
            mine = self._by_client.get(client, 0)
            if mine >= self.per_client:
                raise Overloaded(f"too many {self.kind} at once from {client}: "
                                 f"[server] {self.per_client_key} is {self.per_client}; retry when one has ended")
            if self._running >= self.total:
                raise Overloaded(f"too many {self.kind} at once on this server: "
                                 f"[server] {self.total_key} is {self.total}; retry later")
            self._by_client[client] = mine + 1
            self._running += 1

    def release(self, client: str) -> None:
        """One call of ``client`` counted by :meth:`acquire` has ended."""
        with self._lock:
            self._running -= 1
            left = self._by_client[client] - 1
            if left:
                self._by_client[client] = left
            else:
                del self._by_client[client]


def peer_host(peer: str) -> str:
    """The host part of a gRPC peer (``ipv4:127.0.0.1:5000`` → ``127.0.0.1``,
    ``ipv6:%5B::1%5D:5000`` → ``::1``); any other kind of peer (a Unix socket) whole."""
    kind, _, address = peer.partition(":")
    if kind not in ("ipv4", "ipv6"):
        return peer
    return unquote(address.rsplit(":", 1)[0]).strip("[]")


def client_of(context: grpc.ServicerContext) -> str:
    """Who is calling, for the per-client caps: ``token <name>`` with authentication on,
    ``host <address>`` otherwise (or for a call that needs no token)."""
    principal = PRINCIPAL.get()
    if principal is not None:
        return f"token {principal.name}"
    return f"host {peer_host(context.peer())}"


class Admission(grpc.ServerInterceptor):
    """Caps every stream that holds a thread and every test send as described in the module
    docstring; other calls pass untouched. Install it after the authentication interceptor, which tells who calls."""

    def __init__(self, settings: ServerSettings) -> None:
        self.streams = Quota("streams", "max_streams", settings.max_streams,
                             "max_streams_per_client", settings.max_streams_per_client)
        self.test_sends = Quota("test sends", "max_test_sends", settings.max_test_sends,
                                "max_test_sends_per_client", settings.max_test_sends_per_client)

    def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails], Any],
                          details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        if handler is None or holds_no_thread(behavior_of(handler)):
            return handler
        if handler.request_streaming or handler.response_streaming:
            return _limited(handler, self.streams)
        if details.method == TEST_SEND:  # type: ignore[attr-defined]
            return _limited(handler, self.test_sends)
        return handler


def _limited(handler: grpc.RpcMethodHandler, quota: Quota) -> grpc.RpcMethodHandler:
    """``handler`` counted against ``quota`` from when its behaviour starts until it ends (a
    response stream: until the stream ends or is closed), refused RESOURCE_EXHAUSTED when over."""
    behavior = behavior_of(handler)

    def admitted(context: grpc.ServicerContext) -> str:
        client = client_of(context)
        try:
            quota.acquire(client)
        except Overloaded as refusal:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(refusal))
        return client

    def unary(request: Any, context: grpc.ServicerContext) -> Any:
        client = admitted(context)
        try:
            return behavior(request, context)
        finally:
            quota.release(client)

    def streaming(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        client = admitted(context)
        try:
            yield from behavior(request, context)
        finally:
            quota.release(client)
    return handler_like(handler, unary, streaming)
