"""Logging set-up: JSON lines or console, one threshold, secrets kept out by construction."""
from __future__ import annotations

import json
import logging

import structlog

from actors.domain.config import ObservabilitySettings
from actors.logs import configure_logging


def test_json_logs_are_one_json_object_per_line_with_level_and_time(capsys):
    try:
        configure_logging(ObservabilitySettings(log_level="info", json_logs=True))
        log = structlog.get_logger("test")
        log.debug("hidden_below_the_threshold")
        log.error("delivery_failed", notification_id="n-1", incident_id="i-1")
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.strip()]
    finally:
        structlog.reset_defaults()
    assert [line["event"] for line in lines] == ["delivery_failed"]
    assert lines[0]["level"] == "error" and lines[0]["notification_id"] == "n-1" and "timestamp" in lines[0]


def test_urllib3_request_lines_are_kept_out_because_urls_are_secrets():
    try:
        configure_logging(ObservabilitySettings(log_level="debug"))
        assert logging.getLogger("urllib3").getEffectiveLevel() >= logging.WARNING
    finally:
        structlog.reset_defaults()
