"""Requests that do not parse answer INVALID_ARGUMENT naming the message type.

grpc itself answers a request its deserializer cannot parse with INTERNAL ("Exception
deserializing request!") and logs a traceback. :class:`TolerantRegistry` stands in for the
server while the generated ``add_*_to_server`` functions register a service: every method
gets a deserializer that returns an :class:`Undecodable` instead of raising, and a behaviour
that answers it with INVALID_ARGUMENT before the servicer sees it. On a request stream the
first undecodable message ends the requests (the servicer finishes what came before) and the
call ends INVALID_ARGUMENT.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator, Mapping

import grpc
from google.protobuf.message import DecodeError, Message


class Undecodable:
    """Bytes that are not a ``message_type`` message."""

    def __init__(self, message_type: str) -> None:
        self.details = f"request: not a valid {message_type} message"


def _tolerant(deserializer: Callable[[bytes], Message]) -> Callable[[bytes], Message | Undecodable]:
    message_type = getattr(deserializer, "__self__", None)
    name = message_type.DESCRIPTOR.full_name if message_type is not None else "request"

    def deserialize(data: bytes) -> Message | Undecodable:
        try:
            return deserializer(data)
        except DecodeError:
            return Undecodable(name)
    return deserialize


def _unary_request(behavior: Callable[..., Any]) -> Callable[..., Any]:
    def answer(request: Any, context: grpc.ServicerContext) -> Any:
        if isinstance(request, Undecodable):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.details)
        return behavior(request, context)
    return answer


def _stream_request(behavior: Callable[..., Any]) -> Callable[..., Any]:
    def answer(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
        return behavior(_until_undecodable(requests, context), context)
    return answer


def _until_undecodable(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
    for request in requests:
        if isinstance(request, Undecodable):
            context.set_code(grpc.StatusCode.INVALID_ARGUMENT)
            context.set_details(request.details)
            return
        yield request


def tolerant_handler(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """``handler`` with the undecodable-request handling described above."""
    if handler.request_deserializer is None:
        return handler
    wrap = _stream_request if handler.request_streaming else _unary_request
    behaviours = {name: wrap(getattr(handler, name))
                  for name in ("unary_unary", "unary_stream", "stream_unary", "stream_stream")
                  if getattr(handler, name) is not None}
    return handler._replace(request_deserializer=_tolerant(handler.request_deserializer),  # type: ignore[attr-defined]
                            **behaviours)


class TolerantRegistry:
    """Pass to a generated ``add_*_to_server`` in place of ``server``. The generated code
    hands over each service twice (a generic handler, then the same method handlers as
    registered methods); the registered methods, made tolerant, are installed both ways."""

    def __init__(self, server: grpc.Server) -> None:
        self.server = server

    def add_generic_rpc_handlers(self, handlers: object) -> None:
        """Ignored: :meth:`add_registered_method_handlers` gets the same methods."""

    def add_registered_method_handlers(self, service: str, handlers: Mapping[str, grpc.RpcMethodHandler]) -> None:
        tolerant = {method: tolerant_handler(handler) for method, handler in handlers.items()}
        self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, tolerant),))
        self.server.add_registered_method_handlers(service, tolerant)
