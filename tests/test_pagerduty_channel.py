"""The PagerDuty channel against a real loopback HTTP server."""
from __future__ import annotations

import dataclasses
import json
import socket
from datetime import datetime, timezone
from typing import Any, Iterator, Mapping

import pytest
import structlog.testing

from actors.channels.pagerduty import PagerDutyChannel, build, key_hash
from actors.domain.config import ChannelTuning, NotificationSettings, settings_from_mapping
from actors.domain.errors import ConfigError
from actors.domain.models import (Delivery, Incident, IncidentState, IncidentType, Outcome,
                                  OutcomeKind, Severity)
from tests.support.http_receiver import HttpReceiver, Recorded, Reply

KEY = "R0UT1NGKEY0123456789abcdefABCDEF"
OTHER_KEY = "0THERKEY0123456789abcdefABCDEF99"
ENV = {"PD_KEY": KEY}
T0 = datetime(2024, 1, 15, 14, 32, tzinfo=timezone.utc)


def settings(url: str = "https://events.pagerduty.com/v2/enqueue", **changes: Any) -> NotificationSettings:
    values: dict[str, Any] = {"pagerduty_enabled": True, "pagerduty_integration_key_env": "PD_KEY",
                              "pagerduty_api_url": url, "pagerduty": ChannelTuning(timeout_secs=2.0)}
    return NotificationSettings(**{**values, **changes})


def make_delivery(state: IncidentState = IncidentState.DETECTED, stored: Mapping[str, Any] | None = None,
                  is_test: bool = False, **changes: Any) -> Delivery:
    incident = Incident(
        id="inc-7", fingerprint="fp", title="Checkout down", description="5xx everywhere",
        severity=Severity.P0, type=IncidentType.AVAILABILITY, state=state, source="sentinel",
        created_at=T0, updated_at=T0, last_alert_at=T0, affected_services=("checkout",)).evolve(**changes)
    return Delivery(notification_id=f"n-{state.name}", incident_id=incident.id, channel="pagerduty",
                    destination="default", event_type=state.event_type, occurred_at=T0,
                    incident=incident, state=dict(stored or {}), is_test=is_test)


def accepted(request: Recorded, dedup_key: str | None = None) -> Reply:
    """What PagerDuty answers to a valid event: 202 echoing the dedup_key (or ``dedup_key``)."""
    sent = request.json().get("dedup_key")
    body = {"status": "success", "message": "Event processed", "dedup_key": dedup_key or sent}
    return Reply(202, json.dumps(body), {"Content-Type": "application/json"})


@pytest.fixture(scope="module")
def server() -> Iterator[HttpReceiver]:
    """One receiver for the module (each receiver takes ~0.5 s to shut down)."""
    with HttpReceiver(accepted) as receiver:
        yield receiver


@pytest.fixture
def rx(server: HttpReceiver) -> HttpReceiver:
    """The shared receiver, answering like PagerDuty and with no requests recorded yet."""
    server.respond = accepted
    server.requests.clear()
    return server


@pytest.fixture
def channel(rx: HttpReceiver) -> Iterator[PagerDutyChannel]:
    built = build(settings(rx.url + "/v2/enqueue"), ENV)
    yield built
    built.close()


def triggered_state(key: str = KEY, dedup_key: str = "llm-im-inc-7") -> dict[str, Any]:
    return {"triggered": True, "dedup_key": dedup_key, "routing_key_hash": key_hash(key)}


def test_trigger_acknowledge_and_resolve_share_one_dedup_key_and_routing_key(
        rx: HttpReceiver, channel: PagerDutyChannel) -> None:
    stored: Mapping[str, Any] = {}
    for state in (IncidentState.DETECTED, IncidentState.INVESTIGATING, IncidentState.RESOLVED):
        outcome = channel.deliver(make_delivery(state, stored))
        assert outcome.kind is OutcomeKind.DELIVERED, outcome.detail
        assert outcome.status_code == 202
        stored = outcome.state if outcome.state is not None else stored
    trigger, ack, resolve = (r.json() for r in rx.wait_for(3))
    assert [e["event_action"] for e in (trigger, ack, resolve)] == ["trigger", "acknowledge", "resolve"]
    assert {e["dedup_key"] for e in (trigger, ack, resolve)} == {"llm-im-inc-7"}
    assert {e["routing_key"] for e in (trigger, ack, resolve)} == {KEY}
    assert rx.requests[0].path == "/v2/enqueue"
    assert rx.requests[0].headers["content-type"] == "application/json"
    assert trigger["payload"]["summary"] == "[P0] Checkout down"
    assert stored == {"triggered": False, "dedup_key": "llm-im-inc-7", "routing_key_hash": key_hash(KEY)}


def test_an_accepted_trigger_stores_the_trigger_without_the_key(channel: PagerDutyChannel) -> None:
    outcome = channel.deliver(make_delivery())
    assert outcome.state == triggered_state()
    assert KEY not in repr(outcome)


def test_an_acknowledge_leaves_the_stored_trigger_unchanged(channel: PagerDutyChannel) -> None:
    outcome = channel.deliver(make_delivery(IncidentState.INVESTIGATING, triggered_state()))
    assert outcome.kind is OutcomeKind.DELIVERED and outcome.state is None


def test_an_acknowledge_for_an_incident_never_triggered_is_skipped_without_a_request(
        rx: HttpReceiver, channel: PagerDutyChannel) -> None:
    outcome = channel.deliver(make_delivery(IncidentState.INVESTIGATING))
    assert outcome == Outcome.skipped("never triggered via this integration key")
    channel.deliver(make_delivery(IncidentState.DETECTED))
    assert [r.json()["event_action"] for r in rx.wait_for(1)] == ["trigger"]
    assert len(rx.requests) == 1


def test_a_trigger_stored_for_a_different_integration_key_is_not_acknowledged_or_resolved(
        rx: HttpReceiver, channel: PagerDutyChannel) -> None:
    for state in (IncidentState.REMEDIATING, IncidentState.CLOSED):
        outcome = channel.deliver(make_delivery(state, triggered_state(OTHER_KEY)))
        assert outcome.kind is OutcomeKind.SKIPPED
        assert outcome.detail == "never triggered via this integration key"
    assert rx.requests == []


def test_after_a_resolve_a_close_is_skipped_as_already_resolved(channel: PagerDutyChannel) -> None:
    resolved = channel.deliver(make_delivery(IncidentState.RESOLVED, triggered_state())).state
    assert resolved is not None
    outcome = channel.deliver(make_delivery(IncidentState.CLOSED, resolved))
    assert outcome.kind is OutcomeKind.SKIPPED and "already resolved" in outcome.detail


def test_a_reopened_incident_is_triggered_again_on_the_same_key(rx: HttpReceiver, channel: PagerDutyChannel) -> None:
    resolved = channel.deliver(make_delivery(IncidentState.RESOLVED, triggered_state())).state
    outcome = channel.deliver(make_delivery(IncidentState.INVESTIGATING, resolved))
    reopen = rx.wait_for(2)[1].json()
    assert (reopen["event_action"], reopen["dedup_key"]) == ("trigger", "llm-im-inc-7")
    assert outcome.state is not None and outcome.state["triggered"] is True


def test_the_dedup_key_pagerduty_returns_is_kept_and_used_for_the_acknowledge(
        rx: HttpReceiver, channel: PagerDutyChannel) -> None:
    rx.respond = lambda r: accepted(r, "pd-chosen-key")
    state = channel.deliver(make_delivery()).state
    assert state is not None and state["dedup_key"] == "pd-chosen-key"
    channel.deliver(make_delivery(IncidentState.INVESTIGATING, state))
    assert rx.wait_for(2)[1].json()["dedup_key"] == "pd-chosen-key"


def test_a_202_without_a_dedup_key_keeps_the_one_we_sent(rx: HttpReceiver, channel: PagerDutyChannel) -> None:
    rx.respond = lambda r: Reply(202, '{"status":"success","message":"Event processed"}')
    outcome = channel.deliver(make_delivery())
    assert outcome.kind is OutcomeKind.DELIVERED
    assert outcome.state == triggered_state(dedup_key="llm-im-inc-7")


def test_a_test_notification_triggers_a_marked_alert_and_stores_nothing(
        rx: HttpReceiver, channel: PagerDutyChannel) -> None:
    outcome = channel.deliver(make_delivery(IncidentState.RESOLVED, is_test=True))
    assert outcome.kind is OutcomeKind.DELIVERED and outcome.state is None
    event = rx.wait_for(1)[0].json()
    assert event["event_action"] == "trigger"
    assert event["payload"]["summary"].startswith("[TEST] ")
    assert event["dedup_key"] != "llm-im-inc-7"


def test_a_400_fails_for_good_with_pagerdutys_message_and_errors(
        rx: HttpReceiver, channel: PagerDutyChannel) -> None:
    body = {"status": "invalid event", "message": "Event object is invalid",
            "errors": ["'payload.severity' is invalid"]}
    rx.respond = lambda r: Reply(400, json.dumps(body))
    outcome = channel.deliver(make_delivery())
    assert outcome.kind is OutcomeKind.FAILED and outcome.status_code == 400
    assert outcome.detail == "HTTP 400: Event object is invalid: 'payload.severity' is invalid"
    assert outcome.state is None


@pytest.mark.parametrize("headers, wait", [({}, 30.0), ({"Retry-After": "7"}, 7.0)])
def test_a_429_is_retried_after_30_seconds_unless_retry_after_says_otherwise(
        rx: HttpReceiver, channel: PagerDutyChannel, headers: dict[str, str], wait: float) -> None:
    rx.respond = lambda r: Reply(429, "", headers)
    outcome = channel.deliver(make_delivery())
    assert outcome.kind is OutcomeKind.RETRY and outcome.status_code == 429
    assert outcome.retry_after == wait


def test_a_503_is_retried(rx: HttpReceiver, channel: PagerDutyChannel) -> None:
    rx.respond = lambda r: Reply(503, "upstream unavailable")
    outcome = channel.deliver(make_delivery())
    assert outcome.kind is OutcomeKind.RETRY and outcome.status_code == 503


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_refused_connection_is_retried() -> None:
    channel = build(settings(f"http://127.0.0.1:{free_port()}/v2/enqueue"), ENV)
    outcome = channel.deliver(make_delivery())
    channel.close()
    assert outcome.kind is OutcomeKind.RETRY and "connection error" in outcome.detail


def test_a_timeout_is_retried() -> None:
    with HttpReceiver(lambda r: Reply(202, "{}", delay_secs=5)) as rx:
        channel = build(settings(rx.url, pagerduty=ChannelTuning(timeout_secs=0.2)), ENV)
        outcome = channel.deliver(make_delivery())
        channel.close()
    assert outcome.kind is OutcomeKind.RETRY and "timeout" in outcome.detail


def test_a_trigger_too_big_for_512_kb_fails_without_a_request(
        rx: HttpReceiver, channel: PagerDutyChannel) -> None:
    outcome = channel.deliver(make_delivery(source="s" * 600_000))
    assert outcome.kind is OutcomeKind.FAILED and "524288" in outcome.detail
    assert rx.requests == []


def expected_kind(status: int) -> OutcomeKind:
    if 200 <= status < 300:
        return OutcomeKind.DELIVERED
    if status in (408, 425, 429) or (500 <= status < 600 and status != 501):
        return OutcomeKind.RETRY
    return OutcomeKind.FAILED


def test_every_http_status_from_200_to_599_maps_to_the_expected_outcome() -> None:
    answering = {"status": 200}

    def respond(request: Recorded) -> Reply:
        status = answering["status"]
        return Reply(status, "" if status in (204, 304) else '{"status": "x", "message": "m"}')  # no body allowed

    wrong: dict[int, tuple[OutcomeKind, OutcomeKind]] = {}
    with HttpReceiver(respond) as rx:
        channel = build(settings(rx.url + "/v2/enqueue"), ENV)
        for status in range(200, 600):
            answering["status"] = status
            outcome = channel.deliver(make_delivery())
            if outcome.kind is not expected_kind(status) or outcome.status_code != status:
                wrong[status] = (expected_kind(status), outcome.kind)
            if status == 429:
                assert outcome.retry_after == 30.0
        channel.close()
    assert wrong == {}
    assert len(rx.requests) == 400


def test_an_integration_key_of_the_wrong_length_is_a_config_error_that_hides_the_value() -> None:
    for bad in ("short", KEY + "X"):
        with pytest.raises(ConfigError) as caught:
            build(settings(), {"PD_KEY": bad})
        assert caught.value.key == "notifications.pagerduty_integration_key_env"
        assert bad not in str(caught.value) and "32" in str(caught.value)


def test_a_missing_integration_key_variable_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        build(settings(), {})
    assert caught.value.key == "notifications.pagerduty_integration_key_env"


def test_an_api_token_setting_is_accepted_but_warned_about_as_unused() -> None:
    with structlog.testing.capture_logs() as logs:
        channel = build(settings(pagerduty_api_token_env="PD_TOKEN"), ENV)
    channel.close()
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert [e["event"] for e in warnings] == ["pagerduty_api_token_unused"]
    assert warnings[0]["setting"] == "notifications.pagerduty_api_token_env"


def test_the_channel_serves_one_default_destination_and_needs_state() -> None:
    channel = build(settings(), ENV)
    assert (channel.name, channel.destinations, channel.needs_state) == ("pagerduty", ("default",), True)
    channel.close()


def leaky(request: Recorded) -> Reply:
    """A server that echoes the routing key back in every kind of error."""
    key = request.json()["routing_key"]
    title = request.json().get("payload", {}).get("summary", "")
    status = {"[P0] bad": 400, "[P0] busy": 429, "[P0] down": 500}.get(title, 403)
    body = {"status": "invalid event", "message": f"key {key} rejected", "errors": [f"{key} is invalid"]}
    return Reply(status, json.dumps(body) if status != 500 else f"crash near {key}")


def test_the_integration_key_never_appears_in_details_or_logs(rx: HttpReceiver) -> None:
    outcomes: list[Outcome] = []
    rx.respond = leaky
    with structlog.testing.capture_logs() as logs:
        channel = build(settings(rx.url + f"/v2/enqueue?k={KEY}", pagerduty_api_token_env="T"), ENV)
        for title in ("bad", "busy", "down", "forbidden"):
            outcomes.append(channel.deliver(make_delivery(title=title)))
        outcomes.append(channel.deliver(make_delivery(source="s" * 600_000)))
        outcomes.append(channel.deliver(make_delivery(IncidentState.RESOLVED)))
        channel.close()
        refused = build(settings(f"http://127.0.0.1:{free_port()}/{KEY}"), ENV)
        outcomes.append(refused.deliver(make_delivery()))
        refused.close()
    kinds = [o.kind for o in outcomes]
    assert kinds == [OutcomeKind.FAILED, OutcomeKind.RETRY, OutcomeKind.RETRY, OutcomeKind.FAILED,
                     OutcomeKind.FAILED, OutcomeKind.SKIPPED, OutcomeKind.RETRY]
    assert "rejected" in outcomes[0].detail  # the server's message is kept, minus the key
    for outcome in outcomes:
        assert KEY not in outcome.detail and KEY not in repr(outcome)
    assert logs and KEY not in repr(logs)


def test_an_unusable_api_url_is_a_config_error_at_build_naming_the_key() -> None:
    for bad in ("events.pagerduty.com/v2/enqueue", "https://events.pagerduty.com/v2/en queue", "https://:99999/"):
        with pytest.raises(ConfigError) as caught:
            build(settings(bad), ENV)
        assert caught.value.key == "notifications.pagerduty_api_url" and KEY not in str(caught.value)


# --- several destinations ------------------------------------------------------------------------

def test_each_receiver_pages_its_own_service_and_remembers_its_own_trigger(rx: HttpReceiver) -> None:
    receivers = settings_from_mapping({
        "notifications": {"pagerduty_enabled": True},
        "receivers": {"team-db": {"pagerduty": {"integration_key_env": "DB_KEY"}}}}).receivers
    channel = build(settings(rx.url + "/v2/enqueue"), {**ENV, "DB_KEY": OTHER_KEY}, receivers)
    try:
        assert channel.destinations == ("default", "team-db")
        to_db = dataclasses.replace(make_delivery(), destination="team-db")
        outcomes = [channel.deliver(make_delivery()), channel.deliver(to_db)]
        # an acknowledge for the db service, holding the default service's trigger, is not sent
        skipped = channel.deliver(dataclasses.replace(make_delivery(IncidentState.INVESTIGATING, outcomes[0].state),
                                                      destination="team-db"))
    finally:
        channel.close()
    assert [json.loads(r.body)["routing_key"] for r in rx.wait_for(2)] == [KEY, OTHER_KEY]
    assert [o.state["routing_key_hash"] for o in outcomes if o.state] == [key_hash(KEY), key_hash(OTHER_KEY)]
    assert skipped.kind is OutcomeKind.SKIPPED and len(rx.requests) == 2


def test_a_receivers_integration_key_must_be_set_and_whole() -> None:
    receivers = settings_from_mapping({
        "notifications": {"pagerduty_enabled": True},
        "receivers": {"team-db": {"pagerduty": {"integration_key_env": "DB_KEY"}}}}).receivers
    with pytest.raises(ConfigError) as unset:
        build(settings(), ENV, receivers)
    with pytest.raises(ConfigError) as short:
        build(settings(), {**ENV, "DB_KEY": "short"}, receivers)
    assert unset.value.key == short.value.key == "receivers.team-db.pagerduty.integration_key_env"
    assert "short" not in str(short.value)
