"""Durable delivery through the actors, against real loopback HTTP receivers."""
from __future__ import annotations

import threading

import pytest

from protos import alerts_pb2, incidents_pb2, notifications_pb2
from tests.support.http_receiver import HttpReceiver, Recorded, Reply
from tests.support.server import TIMEOUT, make_settings, running
from tests.support.waiting import wait_until

PD_KEY = "k" * 32


def alert(alert_id: str, title: str = "High Latency", severity: int = 1) -> alerts_pb2.AlertRequest:
    return alerts_pb2.AlertRequest(alert_id=alert_id, source="sentinel", title=title, severity=severity, type=5)


def webhook_settings(tmp_path, url: str, state: dict | None = None, **notifications):
    values = {"webhook_enabled": True, "default_webhook_url": url + "/hook", "retry_backoff_secs": 0.05,
              "max_retries": 3, **notifications}
    return make_settings(tmp_path, notifications=values, state=state or {})


def wait_for_status(client, notification_id: str, status: int) -> notifications_pb2.NotificationDetail:
    """Poll the API (the public way to observe) until the status is reached or time runs out."""
    done = threading.Event()
    detail = None
    for _ in range(200):
        detail = client.notifications.GetNotification(
            notifications_pb2.GetNotificationRequest(id=notification_id), timeout=TIMEOUT)
        if detail.notification.status == status:
            return detail
        done.wait(0.05)
    raise AssertionError(f"notification never reached {status}: {detail}")


def test_every_state_change_is_delivered_once_in_order_with_its_own_snapshot(tmp_path, store_place):
    """End to end on each store engine: alerts over gRPC, an incident through its lifecycle,
    a webhook for each change."""
    with HttpReceiver() as rx, running(webhook_settings(tmp_path, rx.url, store_place.state)) as (engine, _, client):
        incident_id = client.alerts.SubmitAlert(alert("a-1"), timeout=TIMEOUT).incident_id
        client.alerts.SubmitAlert(alert("a-2"), timeout=TIMEOUT)  # joins: no notification
        for state in (incidents_pb2.TRIAGED, incidents_pb2.INVESTIGATING, incidents_pb2.REMEDIATING):
            client.incidents.TransitionIncident(incidents_pb2.TransitionIncidentRequest(
                id=incident_id, to_state=state, actor="ana"), timeout=TIMEOUT)
        client.incidents.ResolveIncident(incidents_pb2.ResolveIncidentRequest(
            id=incident_id, resolved_by="ana", method=2), timeout=TIMEOUT)
        client.incidents.TransitionIncident(incidents_pb2.TransitionIncidentRequest(
            id=incident_id, to_state=incidents_pb2.CLOSED), timeout=TIMEOUT)
        bodies = [r.json() for r in rx.wait_for(6)]
        assert type(engine.store).__name__ == {"sqlite": "SqliteStore", "postgres": "PostgresStore"}[store_place.kind]
    assert [b["event_type"] for b in bodies] == [
        "incident.detected", "incident.triaged", "incident.investigating", "incident.remediating",
        "incident.resolved", "incident.closed"]
    assert [b["incident"]["state"] for b in bodies] == [
        "DETECTED", "TRIAGED", "INVESTIGATING", "REMEDIATING", "RESOLVED", "CLOSED"]
    assert len({b["notification_id"] for b in bodies}) == 6
    assert len(rx.requests) == 6


def test_a_quickly_resolved_incident_still_announces_its_detection_from_the_snapshot(tmp_path):
    hold = threading.Event()

    def respond(request: Recorded) -> Reply:
        hold.wait(TIMEOUT)  # the detection delivery is stuck until the incident is resolved
        return Reply()

    with HttpReceiver(respond) as rx, running(webhook_settings(tmp_path, rx.url)) as (_, _, client):
        incident_id = client.alerts.SubmitAlert(alert("a-1"), timeout=TIMEOUT).incident_id
        client.incidents.ResolveIncident(incidents_pb2.ResolveIncidentRequest(id=incident_id, resolved_by="x"),
                                         timeout=TIMEOUT)
        hold.set()
        first, second = (r.json() for r in rx.wait_for(2))
    assert (first["event_type"], first["incident"]["state"]) == ("incident.detected", "DETECTED")
    assert first["incident"]["resolution"] is None
    assert (second["event_type"], second["incident"]["state"]) == ("incident.resolved", "RESOLVED")


def test_a_failing_first_attempt_is_retried_with_the_same_id_and_order_is_kept(tmp_path):
    answers = iter([Reply(503, "busy", {"Retry-After": "0"})])

    def respond(request: Recorded) -> Reply:
        return next(answers, Reply())

    with HttpReceiver(respond) as rx, running(webhook_settings(tmp_path, rx.url)) as (_, _, client):
        incident_id = client.alerts.SubmitAlert(alert("a-1"), timeout=TIMEOUT).incident_id
        client.incidents.ResolveIncident(incidents_pb2.ResolveIncidentRequest(id=incident_id, resolved_by="x"),
                                         timeout=TIMEOUT)
        requests = rx.wait_for(3)
        listed = client.notifications.ListNotifications(
            notifications_pb2.ListNotificationsRequest(incident_id=incident_id), timeout=TIMEOUT).notifications
        detail = wait_for_status(client, listed[0].id, notifications_pb2.DELIVERED)
    events = [r.json()["event_type"] for r in requests]
    assert events == ["incident.detected", "incident.detected", "incident.resolved"]
    assert requests[0].json()["notification_id"] == requests[1].json()["notification_id"]
    assert [(a.outcome, a.status_code) for a in detail.attempts] == [("retry", 503), ("delivered", 200)]


def test_a_permanent_failure_is_dead_visible_and_can_be_requeued(tmp_path):
    answers = iter([Reply(400, "bad payload")])

    def respond(request: Recorded) -> Reply:
        return next(answers, Reply())

    with HttpReceiver(respond) as rx, running(webhook_settings(tmp_path, rx.url)) as (_, _, client):
        incident_id = client.alerts.SubmitAlert(alert("a-1"), timeout=TIMEOUT).incident_id
        rx.wait_for(1)
        dead = client.notifications.ListNotifications(notifications_pb2.ListNotificationsRequest(
            status=notifications_pb2.DEAD), timeout=TIMEOUT).notifications
        if not dead:
            (nid,) = [n.id for n in client.notifications.ListNotifications(
                notifications_pb2.ListNotificationsRequest(), timeout=TIMEOUT).notifications]
            dead = [wait_for_status(client, nid, notifications_pb2.DEAD).notification]
        assert dead[0].last_error == "HTTP 400: bad payload"
        timeline = client.incidents.GetTimeline(incidents_pb2.GetTimelineRequest(id=incident_id), timeout=TIMEOUT)
        assert "notification_dead" in [e.kind for e in timeline.entries]
        client.notifications.RequeueNotification(notifications_pb2.RequeueRequest(id=dead[0].id), timeout=TIMEOUT)
        rx.wait_for(2)
        detail = wait_for_status(client, dead[0].id, notifications_pb2.DELIVERED)
        assert [a.outcome for a in detail.attempts] == ["failed", "delivered"]
        with pytest.raises(Exception, match="only dead ones"):
            client.notifications.RequeueNotification(notifications_pb2.RequeueRequest(id=dead[0].id), timeout=TIMEOUT)


def test_retries_stop_after_max_retries_and_the_delivery_is_dead(tmp_path):
    with HttpReceiver(lambda r: Reply(500, "down")) as rx, \
            running(webhook_settings(tmp_path, rx.url, max_retries=2)) as (_, _, client):
        client.alerts.SubmitAlert(alert("a-1"), timeout=TIMEOUT)
        rx.wait_for(3)
        (nid,) = [n.id for n in client.notifications.ListNotifications(
            notifications_pb2.ListNotificationsRequest(), timeout=TIMEOUT).notifications]
        detail = wait_for_status(client, nid, notifications_pb2.DEAD)
    assert [a.outcome for a in detail.attempts] == ["retry", "retry", "failed"]
    assert detail.notification.last_error.startswith("gave up after 3 attempts: HTTP 500")
    assert len(rx.requests) == 3


def test_a_hanging_destination_does_not_delay_another_channel(tmp_path):
    release = threading.Event()

    def hang(request: Recorded) -> Reply:
        release.wait(TIMEOUT)
        return Reply(202, '{"status": "success", "dedup_key": "x"}')

    with HttpReceiver(hang) as pager, HttpReceiver() as hook:
        settings = webhook_settings(tmp_path, hook.url, pagerduty_enabled=True,
                                    pagerduty_integration_key_env="PD_KEY",
                                    pagerduty_api_url=pager.url + "/v2/enqueue",
                                    pagerduty={"timeout_secs": 30})
        with running(settings, environ={"PD_KEY": PD_KEY}) as (_, _, client):
            for i in range(5):
                client.alerts.SubmitAlert(alert(f"a-{i}", title=f"t{i}"), timeout=TIMEOUT)
            hook.wait_for(5)  # all five webhooks arrive while PagerDuty hangs on the first
            assert len(pager.requests) == 0
            release.set()
            pager.wait_for(5)


def test_stats_report_per_channel_counts(tmp_path):
    with HttpReceiver() as rx, running(webhook_settings(tmp_path, rx.url)) as (_, _, client):
        for i in range(3):
            client.alerts.SubmitAlert(alert(f"a-{i}", title=f"t{i}"), timeout=TIMEOUT)
        rx.wait_for(3)

        def stats_now() -> notifications_pb2.Stats:
            return client.notifications.GetStats(notifications_pb2.StatsRequest(), timeout=TIMEOUT)

        wait_until(lambda: [c.delivered for c in stats_now().channels] == [3], poll=0.05)
        stats = stats_now()
    (webhook,) = stats.channels
    assert (webhook.channel, webhook.delivered, webhook.dead, webhook.queued) == ("webhook", 3, 0, 0)
    assert webhook.latency_p99_ms >= webhook.latency_p50_ms > 0
    assert {a.name for a in stats.actors} >= {"router", "processor", "pool:webhook", "sender:webhook:0"}


def test_a_test_notification_reaches_the_channel_and_reports_the_outcome(tmp_path):
    with HttpReceiver() as rx, running(webhook_settings(tmp_path, rx.url)) as (_, _, client):
        result = client.notifications.SendTestNotification(
            notifications_pb2.TestNotificationRequest(channel="webhook"), timeout=TIMEOUT)
        body = rx.wait_for(1)[0].json()
        with pytest.raises(Exception, match="not enabled"):
            client.notifications.SendTestNotification(
                notifications_pb2.TestNotificationRequest(channel="slack"), timeout=TIMEOUT)
    assert (result.outcome, result.status_code, result.destination) == ("delivered", 200, "default")
    assert body["test"] is True


def test_a_paced_channel_sends_every_delivery_at_its_rate_without_starving(tmp_path):
    with HttpReceiver() as rx, running(webhook_settings(
            tmp_path, rx.url, worker_threads=1, webhook={"rate_per_sec": 20})) as (_, _, client):
        for i in range(5):
            client.alerts.SubmitAlert(alert(f"a-{i}", title=f"t{i}"), timeout=TIMEOUT)
        rx.wait_for(5)
        arrivals = [r.arrived for r in rx.requests]
    # 20 per second: slots 50 ms apart, each taken on time or late (a late one shortens the gap
    # after it, not the span), so the span holds four gaps less what the first one was late by (unpaced, all five
    # arrive within a few milliseconds)
    assert arrivals[-1] - arrivals[0] >= 4 * 0.05 - 0.04
