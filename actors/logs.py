"""Logging set-up: one format for every line the process writes, and quiet when embedded.

:func:`configure_logging` (the server, or an embedding program that asks for it) renders
structlog's events *and* every standard-library logger's records (pykka, grpc, …) through
one handler on stderr: JSON lines, or the console renderer (coloured only on a terminal).
gRPC's C core, which writes to stderr on its own, is silenced, and psycopg's pool, which warns
at every reconnection attempt while the database is away, is heard at most once a minute.
:func:`announce` writes the
few lines meant for whoever started the process (the port, a fatal error) in that format.

:func:`quiet_unless_configured` is for an embedded engine whose host did not ask for logs:
structlog's default configuration prints every event to stdout, into the host's output.
"""
from __future__ import annotations

import json
import logging
import math
import os
import sys
import threading
import time
from typing import Any, TextIO

import structlog
from structlog.stdlib import ProcessorFormatter

from .domain.config import ObservabilitySettings

_TIMESTAMP = structlog.processors.TimeStamper(fmt="iso", utc=True)
#: Processors every event goes through, whether it comes from structlog or stdlib logging.
_SHARED = (
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    _TIMESTAMP,
)


class _Installed:
    """What :func:`configure_logging` set up last (its handler is replaced by the next call)."""

    handler: logging.Handler | None = None
    json = False


class AtMostEvery(logging.Filter):
    """Lets a logger's warnings (and lesser records) through at most once per ``secs``; errors
    always pass. For psycopg's pool, which warns at every reconnection attempt while the store's
    database is away (the engine logs the outage itself, once)."""

    def __init__(self, secs: float) -> None:
        super().__init__()
        self.secs = secs
        self._last = -math.inf
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.WARNING:
            return True
        with self._lock:
            now = time.monotonic()
            if now - self._last < self.secs:
                return False
            self._last = now
            return True


#: psycopg's pool: at most one reconnection warning a minute.
_POOL_WARNINGS = AtMostEvery(60.0)

#: Keeps the engine's ``actors.*`` loggers off Python's last-resort handler (stderr) in a
#: host that configured no logging.
_SILENT = logging.NullHandler()
_LOGFMT = structlog.processors.LogfmtRenderer(key_order=["event"])


def configure_logging(settings: ObservabilitySettings, stream: TextIO | None = None) -> None:
    """Send structlog and stdlib logging, at ``settings.log_level``, to ``stream`` (default
    stderr) as JSON lines or console lines. Replaces the handler an earlier call installed;
    leaves other handlers alone. Silences gRPC's C core unless ``GRPC_VERBOSITY`` is set
    (effective only before grpc is first imported: its failures reach us as exceptions)."""
    stream = stream or sys.stderr
    level = getattr(logging, settings.log_level.upper())
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    renderer: Any = (structlog.processors.JSONRenderer() if settings.json_logs else
                     structlog.dev.ConsoleRenderer(colors=_is_terminal(stream),
                                                   exception_formatter=structlog.dev.plain_traceback))
    handler = logging.StreamHandler(stream)
    handler.setFormatter(ProcessorFormatter(
        foreign_pre_chain=_SHARED,
        processors=[ProcessorFormatter.remove_processors_meta, structlog.processors.format_exc_info, renderer]))
    root = logging.getLogger()
    if _Installed.handler is not None:
        root.removeHandler(_Installed.handler)
    root.addHandler(handler)
    root.setLevel(level)
    _Installed.handler, _Installed.json = handler, settings.json_logs
    logging.getLogger("urllib3").setLevel(logging.WARNING)  # it logs request paths (webhook URLs are secrets)
    logging.getLogger("psycopg.pool").addFilter(_POOL_WARNINGS)  # added once: filters are a set
    structlog.configure(
        processors=[*_SHARED, ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )


def quiet_unless_configured() -> None:
    """Keep the engine's events out of a host program's output unless it configured logging.

    If the host configured structlog, its configuration stands. Otherwise events go to the
    standard ``logging`` module under the engine's module names (``actors.sender``, …) as
    ``event=… key=…`` messages: they show wherever the host's logging is set up to show
    them, and nowhere (not even on stderr) when it is not.
    """
    if _SILENT not in logging.getLogger("actors").handlers:
        logging.getLogger("actors").addHandler(_SILENT)
    if structlog.is_configured():
        return
    structlog.configure(
        processors=[structlog.stdlib.filter_by_level, structlog.contextvars.merge_contextvars, _as_logfmt_record],
        wrapper_class=structlog.make_filtering_bound_logger(logging.NOTSET),  # the host's levels decide
        logger_factory=structlog.stdlib.LoggerFactory(),
    )


def announce(text: str, event: str, *, level: str = "info", stream: TextIO | None = None, **fields: Any) -> None:
    """Write one line meant for whoever started the process, whatever the log level, to
    ``stream`` (default stdout): ``text`` itself, or — once :func:`configure_logging` chose
    JSON — one JSON object with ``event``, ``level``, ``timestamp``, ``fields`` and ``text``
    as ``message``, so that a log pipeline can parse every line."""
    stream = stream or sys.stdout
    if _Installed.json:
        text = json.dumps(_TIMESTAMP(None, level, {"event": event, **fields, "message": text, "level": level}))
    print(text, file=stream, flush=True)


def _as_logfmt_record(logger: Any, method_name: str, event_dict: Any) -> tuple[tuple[str], dict[str, Any]]:
    """The stdlib call for an event: ``event=… key=…`` as the message; a traceback is left
    to the host's formatter (``exc_info``)."""
    exc_info = event_dict.pop("exc_info", None)
    return (_LOGFMT(logger, method_name, event_dict),), {"exc_info": exc_info}


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
