"""The webhook payload (exact bytes) and Standard Webhooks signing."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime, timedelta, timezone

import pytest

from actors.domain.models import (Delivery, Incident, IncidentState, IncidentType, Resolution,
                                  ResolutionMethod, Severity, to_iso)
from actors.formatting.signing import decode_secret, sign
from actors.formatting.webhook import payload, render

# The reference library's test vector (PROTOCOLS.md section 4).
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TS = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

T0 = datetime(2024, 1, 15, 14, 32, tzinfo=timezone.utc)


def make_incident(state: IncidentState = IncidentState.DETECTED, **changes: object) -> Incident:
    incident = Incident(
        id="inc-1", fingerprint="fp-1", title="API Gateway Down", description="All requests return 503",
        severity=Severity.P0, type=IncidentType.AVAILABILITY, state=state, source="llm-sentinel",
        created_at=T0, updated_at=T0, last_alert_at=T0, labels={"env": "prod"},
        affected_services=("gateway",), assignees=("oncall@example.com",))
    return incident.evolve(**changes) if changes else incident


def make_delivery(incident: Incident | None = None, **changes: object) -> Delivery:
    incident = incident or make_incident()
    fields: dict[str, object] = dict(
        notification_id="9b2f6c1e-0000-4000-8000-000000000001", incident_id=incident.id, channel="webhook",
        destination="default", event_type=incident.state.event_type, occurred_at=T0 + timedelta(seconds=5),
        incident=incident)
    fields.update(changes)
    return Delivery(**fields)  # type: ignore[arg-type]


# --- signing ---------------------------------------------------------------------------------

def test_signature_matches_the_standard_webhooks_test_vector() -> None:
    assert sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TS, VECTOR_BODY) == VECTOR_SIGNATURE


def test_a_secret_without_the_whsec_prefix_is_taken_as_raw_base64() -> None:
    assert sign(VECTOR_SECRET.removeprefix("whsec_"), VECTOR_ID, VECTOR_TS, VECTOR_BODY) == VECTOR_SIGNATURE


def test_the_hmac_key_is_the_base64_decoded_secret_not_its_text() -> None:
    expected = base64.b64encode(hmac.new(base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
                                         f"{VECTOR_ID}.{VECTOR_TS}.".encode() + VECTOR_BODY,
                                         hashlib.sha256).digest()).decode()
    assert decode_secret(VECTOR_SECRET) == base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    assert sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TS, VECTOR_BODY) == f"v1,{expected}"


def test_the_signature_changes_with_the_timestamp_the_id_and_every_body_byte() -> None:
    base = sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TS, VECTOR_BODY)
    assert sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TS + 1, VECTOR_BODY) != base
    assert sign(VECTOR_SECRET, VECTOR_ID + "x", VECTOR_TS, VECTOR_BODY) != base
    assert sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TS, b'{"test":2432232314}') != base


@pytest.mark.parametrize("secret", ["whsec_not base64!!", "whsec_abc", "zzz*", "whsec_é", "whsec_", ""])
def test_an_invalid_secret_raises_value_error_without_quoting_it(secret: str) -> None:
    with pytest.raises(ValueError) as raised:
        sign(secret, VECTOR_ID, VECTOR_TS, VECTOR_BODY)
    message = str(raised.value)
    assert "secret" in message
    payload = secret.removeprefix("whsec_")
    assert not payload or payload not in message


def test_an_id_containing_a_dot_is_refused_because_dots_separate_the_signed_fields() -> None:
    with pytest.raises(ValueError, match="webhook-id"):
        sign(VECTOR_SECRET, "msg.1", VECTOR_TS, VECTOR_BODY)


# --- payload ---------------------------------------------------------------------------------

def test_the_payload_has_the_documented_shape_and_no_test_flag() -> None:
    delivery = make_delivery()
    data = json.loads(render(delivery))
    assert data == {
        "event_type": "incident.detected",
        "timestamp": to_iso(delivery.occurred_at),
        "incident": delivery.incident.to_dict(),
        "notification_id": delivery.notification_id,
    }
    assert data["timestamp"] == "2024-01-15T14:32:05.000Z"


def test_the_body_is_compact_ascii_json_and_rendering_is_deterministic() -> None:
    delivery = make_delivery(make_incident(title="Ünïcode ☃ title", description="bad \ud800 surrogate"))
    body = render(delivery)
    assert body == render(delivery)
    assert body.isascii()
    assert b", " not in body and b": " not in body
    assert json.loads(body)["incident"]["title"] == "Ünïcode ☃ title"


@pytest.mark.parametrize("state, event_type", [
    (IncidentState.DETECTED, "incident.detected"),
    (IncidentState.TRIAGED, "incident.triaged"),
    (IncidentState.INVESTIGATING, "incident.investigating"),
    (IncidentState.REMEDIATING, "incident.remediating"),
    (IncidentState.RESOLVED, "incident.resolved"),
    (IncidentState.CLOSED, "incident.closed"),
])
def test_each_lifecycle_state_renders_its_event_type(state: IncidentState, event_type: str) -> None:
    data = json.loads(render(make_delivery(make_incident(state))))
    assert data["event_type"] == event_type
    assert data["incident"]["state"] == state.name


def test_the_payload_comes_from_the_delivery_snapshot_not_the_current_incident() -> None:
    snapshot = make_incident(IncidentState.DETECTED)
    current = snapshot.evolve(
        state=IncidentState.RESOLVED, title="changed later", updated_at=T0 + timedelta(minutes=3),
        resolution=Resolution("oncall@example.com", ResolutionMethod.AUTO_ASSISTED_MANUAL, "Fixed", "bad deploy",
                              T0 + timedelta(minutes=3)))
    delivery = make_delivery(snapshot)
    data = json.loads(render(delivery))
    assert data["event_type"] == "incident.detected"
    assert data["incident"] == snapshot.to_dict()
    assert data["incident"] != current.to_dict()
    assert data["incident"]["resolution"] is None


def test_a_resolved_snapshot_carries_its_resolution() -> None:
    resolution = Resolution("oncall@example.com", ResolutionMethod.MANUAL, "Restarted", "leak", T0)
    data = json.loads(render(make_delivery(make_incident(IncidentState.RESOLVED, resolution=resolution))))
    assert data["incident"]["resolution"] == resolution.to_dict()


def test_a_test_notification_is_marked_with_test_true() -> None:
    data = json.loads(render(make_delivery(is_test=True)))
    assert data["test"] is True
    assert data["event_type"] == "incident.detected"


def test_the_stored_snapshot_is_embedded_as_is_and_the_bytes_match_the_payload() -> None:
    from actors.domain.models import snapshot_json
    incident = make_incident(title="Ünïcode \ud800 title")
    stored = snapshot_json(incident)
    with_snapshot = render(make_delivery(incident, snapshot=stored))
    assert stored.encode("ascii") in with_snapshot
    expected = json.dumps(payload(make_delivery(incident)), separators=(",", ":"), ensure_ascii=True).encode()
    assert with_snapshot == render(make_delivery(incident)) == expected
    older = json.dumps(incident.to_dict(), separators=(",", ":"), ensure_ascii=False)  # a version-1 snapshot
    assert render(make_delivery(incident, snapshot=older)) == expected
