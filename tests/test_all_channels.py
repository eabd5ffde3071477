"""All four channels through the whole engine: one incident's lifecycle, a restart in the
middle, per-channel minimum severity, and no secret in any stored attempt or log line."""
from __future__ import annotations

from pathlib import Path

import structlog

from actors.domain.models import Alert, IncidentState, IncidentType, ResolutionMethod, Severity
from actors.engine import Engine
from actors.domain.commands import ResolveIncident, TransitionIncident
from tests.support.http_receiver import HttpReceiver, Reply
from tests.support.server import make_settings
from tests.support.slack_api import FakeSlack
from tests.support.smtp_server import PASSWORD, USERNAME, SmtpServer, make_certificates

SLACK_TOKEN = "xoxb-test-token-123456"
PD_KEY = "R0UT1NGKEY0123456789abcdefABCDEF"
HOOK_PATH = "/hooks/T0K3N-hook-secret"
ENV = {"SLACK_TOKEN": SLACK_TOKEN, "PD_KEY": PD_KEY, "SMTP_USER": USERNAME, "SMTP_PASS": PASSWORD}


def alert(n: int, severity: Severity) -> Alert:
    return Alert(f"a-{n}", "sentinel", f"API down {n}", "5xx everywhere", severity, IncidentType.AVAILABILITY,
                 affected_services=("api",))


def wait_all_settled(engine: Engine, count: int) -> None:
    settled = engine.subscribe(lambda e: type(e).__name__ == "DeliverySettled")
    while True:
        records, _ = engine.notifications(page_size=500)
        if len(records) >= count and all(r.status.value in ("delivered", "skipped", "dead") for r in records):
            settled.close()
            return
        assert settled.get(timeout=10) is not None, [(r.channel, r.status) for r in records]


def test_an_incident_lifecycle_reaches_every_channel_across_a_restart(tmp_path: Path):
    (tmp_path / "tls").mkdir()
    certificates = make_certificates(tmp_path / "tls")
    slack = FakeSlack(SLACK_TOKEN)
    with HttpReceiver(slack) as slack_rx, HttpReceiver(lambda r: Reply(202, '{"status":"success"}')) as pd_rx, \
            HttpReceiver() as hook_rx, SmtpServer(certificates) as smtp:
        settings = make_settings(tmp_path, notifications={
            "slack_enabled": True, "slack_bot_token_env": "SLACK_TOKEN", "slack_default_channel": "#incidents",
            "slack_api_url": slack_rx.url + "/api",
            "email_enabled": True, "smtp_server": smtp.host, "smtp_port": smtp.port, "smtp_tls_mode": "starttls",
            "smtp_ca_file": certificates.ca_file, "smtp_username_env": "SMTP_USER", "smtp_password_env": "SMTP_PASS",
            "email_from": "incidents@example.com", "email_to": ["oncall@example.com"],
            "pagerduty_enabled": True, "pagerduty_integration_key_env": "PD_KEY",
            "pagerduty_api_url": pd_rx.url + "/v2/enqueue",
            "webhook_enabled": True, "default_webhook_url": hook_rx.url + HOOK_PATH,
            "pagerduty": {"min_severity": "P1"}, "slack": {"rate_per_sec": 50},
        })
        with structlog.testing.capture_logs() as logs:
            with Engine(settings, environ=ENV) as engine:
                loud = engine.submit_alert(alert(1, Severity.P0)).incident_id
                quiet = engine.submit_alert(alert(2, Severity.P3)).incident_id
                engine.transition(TransitionIncident(loud, IncidentState.INVESTIGATING, "ana"))
                wait_all_settled(engine, 4 + 3 + 4)  # P0: 4 channels, P3: 3 (no PagerDuty), investigating: 4…
            with Engine(settings, environ=ENV) as engine:  # …the rest after a restart
                engine.resolve(ResolveIncident(loud, "ana", ResolutionMethod.MANUAL, "restarted"))
                engine.transition(TransitionIncident(loud, IncidentState.CLOSED, "ana"))
                wait_all_settled(engine, 4 + 3 + 4 + 4 + 4)
                records, _ = engine.notifications(page_size=500)
                attempts = [a for r in records for a in engine.notification(r.id)[1]]

    # Slack: one root per incident, edited to show the current state, follow-ups in its thread
    roots = {m.payload["text"].split("API down ")[-1][:1]: m for m in slack.roots()}
    assert set(roots) == {"1", "2"}
    assert len(slack.replies(roots["1"].ts)) == 3 and roots["1"].revisions[-1] != roots["1"].revisions[0]
    assert "Closed" in str(roots["1"].payload["blocks"])
    # email: one conversation per incident
    loud_mails = [m.message for m in smtp.messages if loud[:8] in m.message["Subject"]]
    root_id = loud_mails[0]["Message-ID"]
    assert len(loud_mails) == 4 and all(m["In-Reply-To"] == root_id for m in loud_mails[1:])
    # PagerDuty: trigger → acknowledge → resolve on one key; Closed after resolve is skipped; P3 never paged
    actions = [r.json()["event_action"] for r in pd_rx.requests]
    assert actions == ["trigger", "acknowledge", "resolve"]
    assert len({r.json()["dedup_key"] for r in pd_rx.requests}) == 1
    assert quiet not in str([r.json() for r in pd_rx.requests])
    # webhook: every event of both incidents
    assert len(hook_rx.requests) == 5
    # no secret anywhere a person can read
    readable = repr(logs) + repr(attempts) + repr(records)
    for secret in (SLACK_TOKEN, PD_KEY, PASSWORD, HOOK_PATH, "T0K3N"):
        assert secret not in readable
