"""How ``imctl`` reaches the server: plaintext or TLS (optionally mutual), and the API token sent
on every call as ``authorization: Bearer <token>`` metadata."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import grpc


@dataclass(frozen=True)
class TlsFiles:
    """The PEM contents given by ``--cacert`` (None: the system's trusted CAs) and, for mutual
    TLS, ``--cert``/``--key`` (both or neither)."""
    ca: bytes | None
    cert: bytes | None = None
    key: bytes | None = None


def open_channel(server: str, tls: TlsFiles | None) -> grpc.Channel:
    """A plaintext channel to ``server`` when ``tls`` is None, else a TLS one. Nothing connects
    yet: a server that is absent, speaks the other protocol or whose certificate is not trusted
    makes the first call fail with UNAVAILABLE."""
    if tls is None:
        return grpc.insecure_channel(server)
    return grpc.secure_channel(server, grpc.ssl_channel_credentials(tls.ca, tls.key, tls.cert))


class _Bearer(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
              grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    def __init__(self, token: str) -> None:
        self._entry = ("authorization", f"Bearer {token}")

    def _with_token(self, details: Any) -> Any:
        return details._replace(metadata=(*(details.metadata or ()), self._entry))

    def _call(self, continuation: Callable[[Any, Any], Any], details: Any, request: Any) -> Any:
        return continuation(self._with_token(details), request)

    intercept_unary_unary = intercept_unary_stream = _call
    intercept_stream_unary = intercept_stream_stream = _call


def with_token(channel: grpc.Channel, token: str) -> grpc.Channel:
    """``channel`` sending ``token`` with every call; ``channel`` itself when ``token`` is ""."""
    return grpc.intercept_channel(channel, _Bearer(token)) if token else channel
