"""Method handlers rebuilt around a wrapped behaviour, for the server interceptors
(actors/api/auth.py, actors/api/admission.py)."""
from __future__ import annotations

from typing import Any, Callable

import grpc


def behavior_of(handler: grpc.RpcMethodHandler) -> Callable[..., Any]:
    """The servicer function ``handler`` calls, whatever its kind."""
    return (handler.unary_unary or handler.unary_stream or handler.stream_unary  # type: ignore[return-value]
            or handler.stream_stream)


def holds_no_thread(behavior: Callable[..., Any]) -> bool:
    """Whether gRPC runs ``behavior`` in its non-blocking mode: called with a callback that
    sends its responses, it returns at once and its stream stays open without a worker thread
    (grpcio's ``experimental_non_blocking``; the health Watch works so)."""
    return bool(getattr(behavior, "experimental_non_blocking", False))


def handler_like(handler: grpc.RpcMethodHandler, unary: Callable[..., Any],
                 streaming: Callable[..., Any]) -> grpc.RpcMethodHandler:
    """A handler of ``handler``'s kind and (de)serializers whose behaviour is ``unary`` or, for a
    response stream, ``streaming``."""
    make = {(False, False): grpc.unary_unary_rpc_method_handler,
            (False, True): grpc.unary_stream_rpc_method_handler,
            (True, False): grpc.stream_unary_rpc_method_handler,
            (True, True): grpc.stream_stream_rpc_method_handler}[(handler.request_streaming,
                                                                   handler.response_streaming)]
    return make(streaming if handler.response_streaming else unary,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)
