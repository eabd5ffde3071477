"""Routes end to end: two webhook receivers on loopback and a routing tree, through a real gRPC
server; GetNotification explains every notification's routing."""
from __future__ import annotations

from collections import Counter

from actors.channels.redact import configured_secrets
from actors.domain.config import settings_from_mapping
from protos import alerts_pb2, notifications_pb2
from tests.support.http_receiver import HttpReceiver
from tests.support.server import TIMEOUT, make_settings, running
from tests.test_webhook_channel import verifies

DB_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def routed_settings(tmp_path, db_url: str, rest_url: str):
    return make_settings(
        tmp_path, notifications={"webhook_enabled": True, "retry_backoff_secs": 0.05},
        receivers={"team-db": {"webhook": {"url": db_url, "secret_env": "DB_SECRET", "headers": {"X-Team": "db"}}},
                   "everyone-else": {"webhook": {"url": rest_url, "headers": {"X-Team": "rest"}}}},
        route={"receiver": "everyone-else",
               "routes": [{"name": "db-p0", "matchers": ['severity="P0"', 'service="db"'], "receiver": "team-db"}]})


def alert(alert_id: str, severity: int, *services: str) -> alerts_pb2.AlertRequest:
    return alerts_pb2.AlertRequest(alert_id=alert_id, source="sentinel", title=f"alert {alert_id}",
                                   severity=severity, type=5, affected_services=services)


def test_p0_db_incidents_reach_the_db_receiver_and_the_rest_the_other(tmp_path, monkeypatch):
    monkeypatch.setenv("DB_SECRET", DB_SECRET)
    with HttpReceiver() as db_rx, HttpReceiver() as rest_rx, \
            running(routed_settings(tmp_path, db_rx.url + "/db", rest_rx.url + "/rest")) as (_, _, client):
        sent = {name: client.alerts.SubmitAlert(request, timeout=TIMEOUT).incident_id for name, request in (
            ("p0-db", alert("a-1", 1, "db", "api")), ("p1-db", alert("a-2", 2, "db")),
            ("p0-web", alert("a-3", 1, "web")), ("p0-none", alert("a-4", 1)))}
        (at_db,) = db_rx.wait_for(1)
        at_rest = rest_rx.wait_for(3)
        listed = client.notifications.ListNotifications(notifications_pb2.ListNotificationsRequest(),
                                                        timeout=TIMEOUT).notifications
        details = {n.incident_id: client.notifications.GetNotification(
            notifications_pb2.GetNotificationRequest(id=n.id), timeout=TIMEOUT) for n in listed}
    assert at_db.json()["incident"]["id"] == sent["p0-db"]
    assert at_db.headers["x-team"] == "db" and verifies(at_db, DB_SECRET)
    assert sorted(r.json()["incident"]["id"] for r in at_rest) == sorted(
        sent[name] for name in ("p1-db", "p0-web", "p0-none"))
    assert {r.headers["x-team"] for r in at_rest} == {"rest"} and not any("webhook-signature" in r.headers
                                                                           for r in at_rest)
    assert Counter((n.channel, n.destination) for n in listed) == {("webhook", "team-db"): 1,
                                                                   ("webhook", "everyone-else"): 3}
    explained = details[sent["p0-db"]]
    assert explained.notification.destination == "team-db" and explained.route == "root/db-p0"
    assert [(d.receiver, d.verdict, d.route, d.reason) for d in explained.routing] == [
        ("team-db", "routed", "root/db-p0", "route root/db-p0"),
        ("everyone-else", "no_route", "", "no route matched")]
    other = details[sent["p0-web"]]
    assert other.route == "root"
    assert [(d.receiver, d.reason) for d in other.routing] == [("team-db", "no route matched"),
                                                               ("everyone-else", "route root")]


def test_a_test_send_names_a_receivers_destination(tmp_path, monkeypatch):
    monkeypatch.setenv("DB_SECRET", DB_SECRET)
    with HttpReceiver() as db_rx, HttpReceiver() as rest_rx, \
            running(routed_settings(tmp_path, db_rx.url + "/db", rest_rx.url + "/rest")) as (_, _, client):
        result = client.notifications.SendTestNotification(notifications_pb2.TestNotificationRequest(
            channel="webhook", destination="team-db"), timeout=TIMEOUT)
        (request,) = db_rx.wait_for(1)
        stats = client.notifications.GetStats(notifications_pb2.StatsRequest(), timeout=TIMEOUT)
    assert (result.destination, result.outcome) == ("team-db", "delivered") and request.json()["test"] is True
    assert rest_rx.requests == []
    (webhook,) = stats.channels
    assert list(webhook.destinations) == ["team-db", "everyone-else"] and webhook.warning == ""


def test_every_receivers_secrets_are_kept_out_of_error_texts():
    settings = settings_from_mapping({
        "notifications": {"webhook_enabled": True, "pagerduty_enabled": True},
        "receivers": {"db": {"webhook": {"url": "https://hooks.example/T0K3N/db", "headers": {"X-Key": "hdr-s3cr3t"},
                                         "secret_env": "DB_SECRET"}},
                      "pager": {"pagerduty": {"integration_key_env": "PD_KEY"}}}})
    secrets = configured_secrets(settings.notifications, {"DB_SECRET": "whsec_abc", "PD_KEY": "k" * 32},
                                 settings.receivers)
    assert {"https://hooks.example/T0K3N/db", "/T0K3N/db", "hdr-s3cr3t", "whsec_abc", "k" * 32} <= set(secrets)
