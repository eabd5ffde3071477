"""Domain errors → gRPC status codes, in one place.

Every servicer method runs inside :func:`translate`, so an expected error never reaches
the client as UNKNOWN: InvalidArgument → INVALID_ARGUMENT (message names the field),
NotFound → NOT_FOUND, IllegalTransition and NotConfigured → FAILED_PRECONDITION, Overloaded →
RESOURCE_EXHAUSTED, Unavailable → UNAVAILABLE. Anything else is a bug: it is logged with
its traceback and answered INTERNAL without details.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

import grpc
import structlog

from ..domain.errors import (DomainError, IllegalTransition, InvalidArgument, NotConfigured, NotFound, Overloaded,
                             Unavailable)

log = structlog.get_logger(__name__)

STATUS: dict[type[DomainError], grpc.StatusCode] = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    IllegalTransition: grpc.StatusCode.FAILED_PRECONDITION,
    NotConfigured: grpc.StatusCode.FAILED_PRECONDITION,
    Overloaded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
}

F = TypeVar("F", bound=Callable[..., Any])


def status_for(error: DomainError) -> grpc.StatusCode:
    return next((code for kind, code in STATUS.items() if isinstance(error, kind)), grpc.StatusCode.INTERNAL)


def translate(method: F) -> F:
    """Wrap a unary servicer method ``(self, request, context)``."""
    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except DomainError as error:
            context.abort(status_for(error), str(error))
        except Exception:
            log.exception("rpc_failed", method=method.__name__)
            context.abort(grpc.StatusCode.INTERNAL, "internal error; see the server log")
    return wrapper  # type: ignore[return-value]


def translate_stream(method: F) -> F:
    """Wrap a response-streaming servicer method (a generator)."""
    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            yield from method(self, request, context)
        except DomainError as error:
            context.abort(status_for(error), str(error))
        except Exception:
            log.exception("rpc_failed", method=method.__name__)
            context.abort(grpc.StatusCode.INTERNAL, "internal error; see the server log")
    return wrapper  # type: ignore[return-value]
