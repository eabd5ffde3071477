"""The PagerDuty formatter: lifecycle → event_action, severity, dedup_key, PD-CEF payload, limits."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from actors.domain.models import (Delivery, Incident, IncidentState, IncidentType, Resolution,
                                  ResolutionMethod, Severity)
from actors.formatting import pagerduty as fmt

KEY = "R0UT1NGKEY0123456789abcdefABCDEF"
T0 = datetime(2024, 1, 15, 14, 32, tzinfo=timezone.utc)


def incident(**changes: object) -> Incident:
    base = Incident(
        id="inc-42", fingerprint="fp", title="High Latency", description="p99 above 2 s",
        severity=Severity.P0, type=IncidentType.AVAILABILITY, state=IncidentState.DETECTED,
        source="sentinel", created_at=T0, updated_at=T0, last_alert_at=T0, alert_count=3,
        labels={"team": "payments", "env": "prod"}, affected_services=("checkout", "cart"))
    return base.evolve(**changes)


def delivery(event_type: str = "incident.detected", **changes: object) -> Delivery:
    is_test = bool(changes.pop("is_test", False))
    return Delivery(notification_id="n-1", incident_id="inc-42", channel="pagerduty",
                    destination="default", event_type=event_type,
                    occurred_at=T0 + timedelta(seconds=5), incident=incident(**changes),
                    is_test=is_test)


@pytest.mark.parametrize("state, action", [
    (IncidentState.DETECTED, "trigger"),
    (IncidentState.TRIAGED, "trigger"),
    (IncidentState.INVESTIGATING, "acknowledge"),
    (IncidentState.REMEDIATING, "acknowledge"),
    (IncidentState.RESOLVED, "resolve"),
    (IncidentState.CLOSED, "resolve"),
])
def test_each_lifecycle_state_maps_to_its_event_action(state: IncidentState, action: str) -> None:
    assert fmt.event_action(state.event_type) == action
    assert fmt.render(delivery(state.event_type, state=state), KEY)["event_action"] == action


def test_an_event_type_without_a_pagerduty_action_is_rejected() -> None:
    with pytest.raises(ValueError, match="incident.updated"):
        fmt.event_action("incident.updated")


@pytest.mark.parametrize("severity, expected", [
    (Severity.P0, "critical"), (Severity.P1, "error"), (Severity.P2, "warning"),
    (Severity.P3, "info"), (Severity.P4, "info"),
])
def test_each_severity_maps_to_a_pagerduty_severity(severity: Severity, expected: str) -> None:
    payload = fmt.render(delivery(severity=severity), KEY)["payload"]
    assert payload["severity"] == expected
    assert payload["summary"].startswith(f"[{severity.label}] ")


def test_a_trigger_carries_the_full_pd_cef_payload() -> None:
    event = fmt.render(delivery(), KEY)
    assert event["routing_key"] == KEY
    assert event["dedup_key"] == "llm-im-inc-42"
    assert event["client"] == "LLM Incident Manager"
    assert event["payload"] == {
        "summary": "[P0] High Latency",
        "source": "sentinel",
        "severity": "critical",
        "timestamp": "2024-01-15T14:32:05.000Z",
        "component": "checkout",
        "group": "payments",
        "class": "Availability",
        "custom_details": {
            "incident_id": "inc-42", "severity": "P0", "type": "Availability", "state": "Detected",
            "alert_count": 3, "description": "p99 above 2 s",
            "labels": {"team": "payments", "env": "prod"},
            "affected_services": ["checkout", "cart"],
        },
    }


def test_the_payload_falls_back_when_source_services_and_team_are_missing() -> None:
    payload = fmt.render(delivery(source="  ", labels={}, affected_services=()), KEY)["payload"]
    assert payload["source"] == "llm-incident-manager"
    assert "component" not in payload and "group" not in payload


def test_group_is_the_source_when_there_is_no_team_label() -> None:
    assert fmt.render(delivery(labels={}), KEY)["payload"]["group"] == "sentinel"


def test_resolution_details_use_human_names() -> None:
    resolution = Resolution("oncall@example.com", ResolutionMethod.AUTO_ASSISTED_MANUAL, "restarted",
                            "bad deploy", T0)
    details = fmt.render(delivery(resolution=resolution), KEY)["payload"]["custom_details"]
    assert details["resolution"] == {"resolved_by": "oncall@example.com", "method": "Auto-assisted manual",
                                     "root_cause": "bad deploy", "notes": "restarted",
                                     "resolved_at": "2024-01-15T14:32:00.000Z"}


@pytest.mark.parametrize("event_type, state", [
    ("incident.investigating", IncidentState.INVESTIGATING),
    ("incident.resolved", IncidentState.RESOLVED),
])
def test_acknowledge_and_resolve_send_only_key_dedup_key_and_action(event_type: str,
                                                                    state: IncidentState) -> None:
    event = fmt.render(delivery(event_type, state=state), KEY, stored_dedup_key="from-pagerduty")
    assert event == {"routing_key": KEY, "event_action": fmt.event_action(event_type),
                     "dedup_key": "from-pagerduty"}


def test_the_dedup_key_is_stable_across_every_event_of_an_incident() -> None:
    keys = {fmt.render(delivery(s.event_type, state=s), KEY)["dedup_key"] for s in IncidentState}
    assert keys == {"llm-im-inc-42"}
    assert fmt.dedup_key("inc-42") == fmt.dedup_key("inc-42") != fmt.dedup_key("inc-43")


def test_a_long_incident_id_gives_a_bounded_stable_dedup_key() -> None:
    long_id = "x" * 300
    key = fmt.dedup_key(long_id)
    assert len(key) <= fmt.MAX_DEDUP_KEY_CHARS
    assert key == fmt.dedup_key(long_id) != fmt.dedup_key("y" * 300)


def test_a_1025_character_summary_is_cut_to_1024_ending_in_an_ellipsis() -> None:
    title = "t" * (1025 - len("[P0] "))
    summary = fmt.render(delivery(title=title), KEY)["payload"]["summary"]
    assert len(f"[P0] {title}") == 1025
    assert len(summary) == 1024 and summary.endswith("…")
    assert fmt.render(delivery(title=title[:-1]), KEY)["payload"]["summary"] == f"[P0] {title[:-1]}"


def test_a_test_notification_is_a_marked_trigger_with_its_own_dedup_key() -> None:
    event = fmt.render(delivery("incident.resolved", state=IncidentState.RESOLVED, is_test=True), KEY)
    assert event["event_action"] == "trigger"
    assert event["payload"]["summary"] == "[TEST] [P0] High Latency"
    assert event["dedup_key"] == fmt.dedup_key_for_test("n-1") != fmt.dedup_key("inc-42")


def test_a_huge_label_set_is_shrunk_to_fit_512_kb() -> None:
    labels = {f"label-{i:06d}": "v" * 200 for i in range(20_000)}  # ≈ 4.5 MB
    event = fmt.render(delivery(labels=labels, description="d" * 1_000_000), KEY)
    size = len(fmt.encode(event))
    assert size <= fmt.MAX_BODY_BYTES
    details = event["payload"]["custom_details"]
    assert details["incident_id"] == "inc-42" and "truncated" in details
    assert len(details["labels"]) > 1  # labels were capped, not all thrown away
    assert details["description"].endswith("…")


def test_an_event_fitting_512_kb_is_left_untouched() -> None:
    description = "d" * 400_000
    details = fmt.render(delivery(description=description), KEY)["payload"]["custom_details"]
    assert details["description"] == description and "truncated" not in details


def test_a_trigger_that_cannot_fit_even_without_details_is_refused() -> None:
    with pytest.raises(ValueError, match="524288"):
        fmt.render(delivery(source="s" * 600_000), KEY)
