"""structlog set-up: JSON lines or a console renderer, one level threshold, ISO timestamps."""
from __future__ import annotations

import logging
import sys

import structlog

from .domain.config import ObservabilitySettings


def configure_logging(settings: ObservabilitySettings) -> None:
    """Configure structlog (and stdlib logging, which pykka and grpc use) once per process."""
    level = getattr(logging, settings.log_level.upper())
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("urllib3").setLevel(logging.WARNING)  # it logs request paths (webhook URLs are secrets)
    renderer = structlog.processors.JSONRenderer() if settings.json_logs else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
