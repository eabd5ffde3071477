"""Logs a person and a log pipeline can read: one format for every line, no traceback for an
expected error, one (redacted) for a crash, no colours off a terminal, and an embedded engine
that prints nothing unless its host asks."""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import grpc
import pytest
import structlog

from actors.channels.redact import redactor
from actors.directory import ActorDirectory
from actors.domain.config import ObservabilitySettings
from actors.domain.models import Alert, Delivery, IncidentType, Outcome, Severity
from actors.embed import IncidentManager
from actors.engine import Engine
from actors.logs import AtMostEvery, configure_logging
from actors.supervision import ChildSpec, GetStatus, Strategy, SupervisedActor, Supervisor
from protos import alerts_pb2, incidents_pb2
from tests.support.http_receiver import HttpReceiver
from tests.support.process import ROOT, ServerProcess, write_config
from tests.support.server import TIMEOUT, client_for, make_settings, running
from tests.support.waiting import wait_until

ANSI = "\x1b["
SECRET_PATH = "/hook/T0K3N-in-the-path"


@contextlib.contextmanager
def logging_to(stream: io.StringIO, monkeypatch: pytest.MonkeyPatch, level: str = "debug",
               json_logs: bool = False) -> Iterator[io.StringIO]:
    """configure_logging onto ``stream`` for one test, undone afterwards."""
    monkeypatch.setenv("GRPC_VERBOSITY", os.environ.get("GRPC_VERBOSITY", "NONE"))  # restored after
    root = logging.getLogger()
    level_before, urllib3_before = root.level, logging.getLogger("urllib3").level
    configure_logging(ObservabilitySettings(log_level=level, json_logs=json_logs), stream=stream)
    # Module loggers used now must not keep this configuration for the tests that follow.
    structlog.configure(cache_logger_on_first_use=False)
    try:
        yield stream
    finally:
        for handler in [h for h in root.handlers if getattr(h, "stream", None) is stream]:
            root.removeHandler(handler)
        root.setLevel(level_before)
        logging.getLogger("urllib3").setLevel(urllib3_before)
        structlog.reset_defaults()


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def alert(n: int) -> Alert:
    return Alert(f"a-{n}", "sentinel", f"title {n}", "", Severity.P1, IncidentType.APPLICATION)


# -- one format ------------------------------------------------------------------------------

def test_json_logs_are_one_json_object_per_line_with_level_and_time(monkeypatch):
    with logging_to(io.StringIO(), monkeypatch, level="info", json_logs=True) as out:
        log = structlog.get_logger("test")
        log.debug("hidden_below_the_threshold")
        log.error("delivery_failed", notification_id="n-1", incident_id="i-1")
        logging.getLogger("pykka").warning("a stdlib record")
        logging.getLogger("grpc").debug("hidden as well")
    lines = json_lines(out.getvalue())
    assert [line["event"] for line in lines] == ["delivery_failed", "a stdlib record"]
    assert lines[0]["level"] == "error" and lines[0]["notification_id"] == "n-1" and "timestamp" in lines[0]
    assert (lines[1]["level"], lines[1]["logger"]) == ("warning", "pykka") and "timestamp" in lines[1]


def test_a_json_server_writes_nothing_but_json_lines_even_for_bad_calls(tmp_path):
    config = write_config(tmp_path / "c.toml", tmp_path / "store.db", "http://127.0.0.1:9/hook")
    config.write_text(config.read_text().replace('log_level = "warning"', 'log_level = "debug"\njson_logs = true'))
    server = ServerProcess(config).start()
    try:
        with client_for(server.port) as client:
            incident_id = client.alerts.SubmitAlert(alerts_pb2.AlertRequest(
                alert_id="a-1", source="s", title="t", severity=1, type=5), timeout=TIMEOUT).incident_id
            resolve = incidents_pb2.ResolveIncidentRequest(id=incident_id, resolved_by="me", method=2)
            client.incidents.ResolveIncident(resolve, timeout=TIMEOUT)
            bad_calls = [(client.incidents.ResolveIncident, resolve),  # resolving twice
                         (client.incidents.GetIncident, incidents_pb2.GetIncidentRequest(id="nope")),
                         (client.incidents.CreateIncident, incidents_pb2.CreateIncidentRequest(title=""))]
            codes = []
            for call, request in bad_calls:
                with pytest.raises(grpc.RpcError) as error:
                    call(request, timeout=TIMEOUT)
                codes.append(error.value.code())
        server.proc.send_signal(signal.SIGTERM)
        assert server.wait() == 0
        wait_until(lambda: any('"event": "stopped"' in line for line in server.output))
    finally:
        server.stop()
    assert codes == [grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND,
                     grpc.StatusCode.INVALID_ARGUMENT]
    lines = json_lines("".join(server.output))  # stdout and stderr together
    events = [line["event"] for line in lines]
    assert "listening" in events and "engine_started" in events
    assert not any("exception" in line for line in lines), "an expected error was logged with a traceback"


def test_a_taken_port_in_json_mode_is_one_json_line_without_grpcs_own(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        config = write_config(tmp_path / "c.toml", tmp_path / "store.db", "http://127.0.0.1:9/hook")
        config.write_text(config.read_text().replace("grpc_port = 0", f"grpc_port = {port}")
                          .replace('log_level = "warning"', 'log_level = "warning"\njson_logs = true'))
        env = {k: v for k, v in os.environ.items() if k != "GRPC_VERBOSITY"}
        result = subprocess.run([sys.executable, str(ROOT / "server.py"), "--config", str(config)],
                                capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)
    assert result.returncode == 3 and result.stdout == ""
    (line,) = json_lines(result.stderr)
    assert line["event"] == "cannot_serve" and f"cannot listen on 127.0.0.1:{port}" in line["message"]


# -- tracebacks: none for expected errors, one (redacted) per crash -----------------------------

def test_expected_errors_over_grpc_log_no_traceback(tmp_path, monkeypatch):
    with logging_to(io.StringIO(), monkeypatch) as out, \
            running(make_settings(tmp_path)) as (engine, api, client):
        incident_id = engine.submit_alert(alert(1)).incident_id
        resolve = incidents_pb2.ResolveIncidentRequest(id=incident_id, resolved_by="me", method=2)
        client.incidents.ResolveIncident(resolve, timeout=TIMEOUT)
        for call, request in [(client.incidents.ResolveIncident, resolve),
                              (client.incidents.GetIncident, incidents_pb2.GetIncidentRequest(id="nope")),
                              (client.incidents.CreateIncident, incidents_pb2.CreateIncidentRequest(title=""))]:
            with pytest.raises(grpc.RpcError):
                call(request, timeout=TIMEOUT)
    assert "engine_started" in out.getvalue()  # the log was live
    assert "Traceback" not in out.getvalue()


class CrashOnce:
    """A webhook channel whose first delivery raises (a bug) with its URL in the message."""

    name = "webhook"
    destinations = ("default",)
    needs_state = False

    def __init__(self, url: str) -> None:
        self.url = url
        self.calls = 0

    def deliver(self, delivery: Delivery) -> Outcome:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError(f"bug posting to {self.url} (path {SECRET_PATH})")
        return Outcome.delivered(200)

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_a_crash_is_logged_once_with_its_traceback_and_context_and_its_reason_is_redacted(tmp_path, monkeypatch):
    url = "http://127.0.0.1:9" + SECRET_PATH
    settings = make_settings(tmp_path, notifications={"webhook_enabled": True, "default_webhook_url": url,
                                                      "worker_threads": 1})
    channel = CrashOnce(url)
    with logging_to(io.StringIO(), monkeypatch, json_logs=True) as out:
        with Engine(settings, channel_factory=lambda name: channel) as engine:
            incident_id = engine.submit_alert(alert(1)).incident_id
            wait_until(lambda: channel.calls >= 2)  # crashed once, restarted, delivered
            (sender,) = [s for s in engine.actor_statuses() if s.name == "sender:webhook:0"]
    text = out.getvalue()
    assert SECRET_PATH not in text and SECRET_PATH not in sender.last_failure
    assert sender.restarts == 1 and "RuntimeError('bug posting to *** (path ***)')" in sender.last_failure
    with_traceback = [line for line in json_lines(text) if "Traceback" in json.dumps(line)]
    (crash,) = with_traceback
    assert crash["event"] == "actor_exited" and crash["actor"] == "sender:webhook:0"
    assert crash["incident_id"] == incident_id and crash["notification_id"]
    assert "in deliver" in crash["exception"] and "(path ***)" in crash["exception"]


def test_the_engines_redactor_knows_every_configured_secret():
    settings = make_settings(Path("unused"), notifications={
        "default_webhook_url": "https://hooks.example/T0/B0/urlsecret?key=querysecret",
        "webhook_headers": {"Authorization": "Bearer headersecret"},
        "slack_bot_token_env": "BOT", "smtp_password_env": "SMTP_PASSWORD", "smtp_username_env": "NOT_SET"})
    redact = redactor(settings.notifications, {"BOT": "bot-token-1", "SMTP_PASSWORD": "pa55word"})
    text = redact("hooks.example/T0/B0/urlsecret key=querysecret Bearer headersecret bot-token-1 pa55word ok")
    assert text == "hooks.example*** *** *** *** *** ok"


class LeakyActor(SupervisedActor):
    def receive(self, message: object) -> None:
        raise ValueError(f"failed at https://hooks.example/T/B/s3cret with xoxb-123-abc: {message}")


def test_a_supervisor_without_the_engines_secrets_still_cuts_urls_and_tokens():
    directory = ActorDirectory()
    top = Supervisor.start(None, "top", [ChildSpec("leaky", LeakyActor.start)], Strategy.ONE_FOR_ONE,
                           5, 30, directory)
    try:
        wait_until(lambda: directory.lookup("leaky") is not None)
        directory.tell("leaky", "go")
        wait_until(lambda: top.ask(GetStatus(), timeout=TIMEOUT)[0].restarts == 1)
        failure = top.ask(GetStatus(), timeout=TIMEOUT)[0].last_failure
    finally:
        top.stop(block=True, timeout=TIMEOUT)
    assert "https://hooks.example/…" in failure and "s3cret" not in failure and "xoxb" not in failure


# -- colours -----------------------------------------------------------------------------------

def test_console_logs_have_no_colours_off_a_terminal(monkeypatch):
    with logging_to(io.StringIO(), monkeypatch) as out:
        structlog.get_logger("test").warning("something_odd", key="value")
        logging.getLogger("pykka").error("a stdlib record")
    assert "something_odd" in out.getvalue() and "a stdlib record" in out.getvalue()
    assert ANSI not in out.getvalue()


def test_check_config_warnings_have_no_colours_when_redirected(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[notifications]\npagerduty_enabled = true\npagerduty_integration_key_env = "PD_KEY"\n'
                      'pagerduty_api_token_env = "PD_TOKEN"\n')
    env = {**os.environ, "PD_KEY": "k" * 32, "PD_TOKEN": "unused"}
    result = subprocess.run([sys.executable, str(ROOT / "server.py"), "--config", str(config), "--check-config"],
                            capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)
    assert result.returncode == 0, result.stderr
    assert "pagerduty_api_token_unused" in result.stderr and ANSI not in result.stderr + result.stdout


# -- embedding ---------------------------------------------------------------------------------

@pytest.fixture
def unconfigured_structlog():
    """structlog as a host program that never configured it has it (printing to stdout)."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


def embedded_config(tmp_path, url: str) -> dict:
    return {"state": {"path": str(tmp_path / "store.db")},
            "notifications": {"webhook_enabled": True, "default_webhook_url": url + "/hook"}}


def test_an_embedded_engine_prints_nothing_unless_the_host_asks(tmp_path, capfd, unconfigured_structlog):
    capfd.readouterr()
    with HttpReceiver() as rx, IncidentManager(embedded_config(tmp_path, rx.url)) as im:
        settled = im.subscribe(incidents=False)
        result = im.submit_alert("High latency", "my-app", "P1", "performance")
        assert settled.get(timeout=TIMEOUT).delivery.incident_id == result.incident_id
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_an_embedded_engines_events_reach_the_hosts_stdlib_logging(tmp_path, caplog, unconfigured_structlog):
    caplog.set_level(logging.DEBUG)
    with HttpReceiver() as rx, IncidentManager(embedded_config(tmp_path, rx.url)) as im:
        settled = im.subscribe(incidents=False)
        im.submit_alert("High latency", "my-app", "P1", "performance")
        settled.get(timeout=TIMEOUT)
    started = [r for r in caplog.records if r.name == "actors.embed" and "embedded_started" in r.getMessage()]
    assert started and started[0].getMessage().startswith("event=embedded_started")
    assert any(r.name.startswith("actors.") and r.levelno == logging.DEBUG for r in caplog.records)


def test_urllib3_request_lines_are_kept_out_because_urls_are_secrets(monkeypatch):
    with logging_to(io.StringIO(), monkeypatch):
        assert logging.getLogger("urllib3").getEffectiveLevel() >= logging.WARNING


def test_psycopgs_pool_warnings_are_heard_at_most_once_a_minute_and_its_errors_always(monkeypatch):
    with logging_to(io.StringIO(), monkeypatch, json_logs=True) as stream:
        assert any(isinstance(f, AtMostEvery) and f.secs == 60 for f in logging.getLogger("psycopg.pool").filters)
        pool = logging.getLogger("test.pool")
        monkeypatch.setattr(pool, "filters", [AtMostEvery(60.0)])
        for attempt in range(3):
            pool.warning("error connecting: attempt %d", attempt)
        pool.error("the pool is broken")
    assert [(line["level"], line["event"]) for line in json_lines(stream.getvalue())] == [
        ("warning", "error connecting: attempt 0"), ("error", "the pool is broken")]
