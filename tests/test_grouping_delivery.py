"""Grouping end to end: a route with group_by sends one webhook body and one Slack message per
group (PagerDuty still one alert per incident), through a real gRPC server and loopback
receivers; the group's state survives a restart."""
from __future__ import annotations

from actors.domain.grouping import GROUP_EVENT
from protos import alerts_pb2, incidents_pb2, notifications_pb2
from tests.support.http_receiver import HttpReceiver, Reply
from tests.support.process import ServerProcess, write_config
from tests.support.server import TIMEOUT, client_for, make_settings, running
from tests.support.slack_api import FakeSlack
from tests.support.smtp_server import PASSWORD, USERNAME, SmtpServer, make_certificates
from tests.test_all_channels import PD_KEY, SLACK_TOKEN

WAIT_SECS = 1.0
INTERVAL_SECS = 0.6


def grouped_settings(tmp_path, url: str, wait_secs: float = WAIT_SECS):
    return make_settings(
        tmp_path, notifications={"webhook_enabled": True, "retry_backoff_secs": 0.05},
        receivers={"team": {"webhook": {"url": url}}},
        route={"receiver": "team", "group_by": ["service"], "group_wait_secs": wait_secs,
               "group_interval_secs": INTERVAL_SECS})


def batch(first: int, count: int, service: str = "db") -> alerts_pb2.AlertBatch:
    return alerts_pb2.AlertBatch(alerts=[
        alerts_pb2.AlertRequest(alert_id=f"a-{n}", source="sentinel", title=f"disk {n} full", severity=2, type=5,
                                affected_services=[service]) for n in range(first, first + count)])


def submit(client, first: int, count: int, service: str = "db") -> list[str]:
    acks = client.alerts.SubmitAlerts(batch(first, count, service), timeout=TIMEOUT).acks
    return [ack.incident_id for ack in acks]


def incident_ids(body) -> list[str]:
    return [incident["id"] for incident in body["incidents"]]


def every_channel_settings(tmp_path, hook_url: str, slack_url: str, pd_url: str, smtp: SmtpServer, ca_file: str):
    return make_settings(
        tmp_path, notifications={
            "email_enabled": True, "smtp_server": smtp.host, "smtp_port": smtp.port, "smtp_tls_mode": "starttls",
            "smtp_ca_file": ca_file, "smtp_username_env": "SMTP_USER", "smtp_password_env": "SMTP_PASS",
            "email_from": "incidents@example.com", "email_to": ["oncall@example.com"],
            "webhook_enabled": True, "default_webhook_url": hook_url, "retry_backoff_secs": 0.05,
            "slack_enabled": True, "slack_bot_token_env": "SLACK_TOKEN", "slack_default_channel": "#incidents",
            "slack_api_url": slack_url, "slack": {"rate_per_sec": 50},
            "pagerduty_enabled": True, "pagerduty_integration_key_env": "PD_KEY", "pagerduty_api_url": pd_url},
        route={"receiver": "default", "group_by": ["service"], "group_wait_secs": WAIT_SECS,
               "group_interval_secs": INTERVAL_SECS})


def test_a_storm_of_one_group_is_one_body_and_later_events_wait_for_the_group_interval(tmp_path, monkeypatch):
    monkeypatch.setenv("SLACK_TOKEN", SLACK_TOKEN)
    monkeypatch.setenv("PD_KEY", PD_KEY)
    monkeypatch.setenv("SMTP_USER", USERNAME)
    monkeypatch.setenv("SMTP_PASS", PASSWORD)
    (tmp_path / "tls").mkdir()
    certificates = make_certificates(tmp_path / "tls")
    slack = FakeSlack(SLACK_TOKEN)
    with HttpReceiver() as rx, HttpReceiver(slack) as slack_rx, SmtpServer(certificates) as smtp, \
            HttpReceiver(lambda r: Reply(202, '{"status":"success"}')) as pd_rx, \
            running(every_channel_settings(tmp_path, rx.url + "/hook", slack_rx.url + "/api",
                                           pd_rx.url + "/v2/enqueue", smtp, certificates.ca_file)) as (_, _, client):
        storm = [nid for first in range(0, 50, 10) for nid in submit(client, first, 10)]
        other = submit(client, 100, 1, service="web")
        first_two = rx.wait_for(2)
        slack_rx.wait_for(2)
        smtp.wait_for(2)  # every channel's first notifications went out (so are closed) before the next event
        later = submit(client, 200, 1)
        third = rx.wait_for(3)[2]
        slack_rx.wait_for(3)
        paged = pd_rx.wait_for(52)
        mails = [received.message for received in smtp.wait_for(3)]
        listed = client.notifications.ListNotifications(notifications_pb2.ListNotificationsRequest(page_size=500),
                                                        timeout=TIMEOUT).notifications
    posted = {message.payload["text"]: message.payload for message in slack.roots()}
    assert list(posted)[2:] == ["1 incident: service=db"]  # the storm's group again, after group_interval
    assert sorted(posted) == ["1 incident: service=db", "1 incident: service=web", "50 incidents: service=db"]
    assert all(storm_id in str(posted["50 incidents: service=db"]["blocks"]) for storm_id in storm)
    storm_mail = next(mail for mail in mails if "50 incidents" in str(mail.get_body(("plain",)).get_content()))
    text = storm_mail.get_body(("plain",)).get_content()
    assert storm_mail["Subject"].endswith("] service=db") and all(storm_id in text for storm_id in storm)
    later_mail = mails[2]  # the group's next mail, in the group's thread
    assert later_mail["Subject"] == storm_mail["Subject"] and later_mail["In-Reply-To"] == storm_mail["Message-ID"]
    assert sorted(r.json()["dedup_key"].removeprefix("llm-im-") for r in paged) == sorted(storm + other + later)
    bodies = {body.json()["group"]["labels"]["service"]: body for body in first_two}
    db = bodies["db"].json()
    assert db["event_type"] == GROUP_EVENT and db["group"] == {"route": "root", "labels": {"service": "db"}}
    assert incident_ids(db) == storm and len(set(storm)) == 50
    assert incident_ids(bodies["web"].json()) == other
    assert incident_ids(third.json()) == later  # the next notification of the group: only what came since
    assert third.arrived - bodies["db"].arrived >= INTERVAL_SECS - 0.1
    assert {n.event_type for n in listed if n.channel != "pagerduty"} == {GROUP_EVENT}


def test_a_restart_during_group_wait_sends_the_group_once(tmp_path):
    with HttpReceiver() as rx:  # the wait leaves room for a stop and a start on a loaded machine
        settings = grouped_settings(tmp_path, rx.url + "/hook", wait_secs=3.0)
        with running(settings) as (_, _, client):
            before = submit(client, 0, 5)
        assert rx.requests == []  # stopped within group_wait: nothing went out yet
        with running(settings) as (_, _, client):
            after = submit(client, 5, 2)
            (sent,) = rx.wait_for(1)
            later = submit(client, 10, 1)
            second = rx.wait_for(2)[1]
    assert incident_ids(sent.json()) == before + after
    assert incident_ids(second.json()) == later  # the group was not sent a second time


def test_a_group_still_active_is_reminded_after_the_repeat_interval_and_no_longer_once_resolved(tmp_path):
    with HttpReceiver() as rx:
        settings = make_settings(
            tmp_path, notifications={"webhook_enabled": True, "retry_backoff_secs": 0.05},
            receivers={"team": {"webhook": {"url": rx.url + "/hook"}}},
            route={"receiver": "team", "group_by": ["service"], "group_wait_secs": 0.2,
                   "group_interval_secs": 1.0, "repeat_interval_secs": 0.8})
        with running(settings) as (_, _, client):
            opened = submit(client, 0, 3)
            first, reminder = rx.wait_for(2)
            for incident_id in opened:
                client.incidents.ResolveIncident(incidents_pb2.ResolveIncidentRequest(
                    id=incident_id, resolved_by="ana", method=1), timeout=TIMEOUT)
            resolved = rx.wait_for(3)[2]
            listed = client.notifications.ListNotifications(notifications_pb2.ListNotificationsRequest(),
                                                            timeout=TIMEOUT).notifications
    assert incident_ids(first.json()) == incident_ids(reminder.json()) == opened  # still active: all of them
    assert reminder.arrived - first.arrived >= 0.8 - 0.1
    assert incident_ids(resolved.json()) == opened
    assert {incident["state"] for incident in resolved.json()["incidents"]} == {"RESOLVED"}
    assert len(listed) == 3  # nothing was active when the last one went out: no reminder after it


def test_a_kill_minus_nine_during_group_wait_loses_nothing_and_sends_the_group_once(tmp_path):
    grouped = """
[route]
receiver = "default"
group_by = ["service"]
group_wait_secs = 3.0
group_interval_secs = 0.5
"""
    with HttpReceiver() as rx:
        server = ServerProcess(write_config(tmp_path / "c.toml", tmp_path / "store.db", rx.url + "/hook", grouped))
        try:
            server.start()
            with client_for(server.port) as client:
                before = submit(client, 0, 5)
            server.stop()  # kill -9, within group_wait
            assert rx.requests == []
            server.start()
            with client_for(server.port) as client:
                (sent,) = rx.wait_for(1)
                later = submit(client, 10, 1)
                second = rx.wait_for(2)[1]
        finally:
            server.stop()
    assert incident_ids(sent.json()) == before
    assert incident_ids(second.json()) == later


def test_a_silenced_incident_takes_no_share_of_its_group_and_is_recorded_silenced(tmp_path):
    from tests.test_silences import notifications_of, silence
    with HttpReceiver() as rx, running(grouped_settings(tmp_path, rx.url + "/hook")) as (_, _, client):
        held = silence(client, 'service="db"')
        silenced = submit(client, 0, 3)
        heard = submit(client, 10, 1, service="web")
        (body,) = [request.json() for request in rx.wait_for(1)]  # the web group, after its group_wait
        rows = [notifications_of(client, incident_id) for incident_id in silenced]
    assert incident_ids(body) == heard
    assert [[(n.status, n.suppressed_by, n.destination) for n in of] for of in rows] == \
        [[(notifications_pb2.SILENCED, held.id, "team")]] * 3
