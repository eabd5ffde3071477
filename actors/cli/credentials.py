"""The API token sent on every call as ``authorization: Bearer <token>`` metadata."""
from __future__ import annotations

from typing import Any, Callable

import grpc


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
