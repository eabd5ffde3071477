"""PagerDuty Events API v2: an event snapshot → the JSON event to enqueue (pure).

Lifecycle → ``event_action``: Detected/Triaged trigger, Investigating/Remediating
acknowledge, Resolved/Closed resolve. Severity P0 → critical, P1 → error, P2 → warning,
P3/P4 → info. Every event about one incident carries the same ``dedup_key``
(``llm-im-<incident id>``), so PagerDuty folds them into one alert.

A trigger carries the PD-CEF ``payload``; acknowledge and resolve carry only
``routing_key``, ``dedup_key`` and ``event_action``, as PagerDuty's own examples do.

A test notification always *triggers* an alert whose summary starts with ``[TEST]`` and
whose dedup_key (``llm-im-test-<notification id>``) is its own, so it never touches a real
incident's alert. It stays open in PagerDuty until someone resolves it there.

The whole request must fit in 512 KB: ``custom_details`` is shrunk step by step (long
strings cut, long lists and tables capped, finally only the core fields) until it does;
if even that is too big, :func:`render` raises ValueError.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

from ..domain.models import Delivery, Incident, IncidentState, Severity, to_iso

#: Limits from PagerDuty's Events API v2 documentation.
MAX_BODY_BYTES = 512 * 1024
MAX_SUMMARY_CHARS = 1024
MAX_DEDUP_KEY_CHARS = 255
INTEGRATION_KEY_CHARS = 32

CLIENT = "LLM Incident Manager"
DEFAULT_SOURCE = "llm-incident-manager"
DEDUP_PREFIX = "llm-im-"
TEST_DEDUP_PREFIX = "llm-im-test-"
TEST_MARK = "[TEST]"
ELLIPSIS = "…"

TRIGGER, ACKNOWLEDGE, RESOLVE = "trigger", "acknowledge", "resolve"

ACTIONS: Mapping[str, str] = {
    IncidentState.DETECTED.event_type: TRIGGER,
    IncidentState.TRIAGED.event_type: TRIGGER,
    IncidentState.INVESTIGATING.event_type: ACKNOWLEDGE,
    IncidentState.REMEDIATING.event_type: ACKNOWLEDGE,
    IncidentState.RESOLVED.event_type: RESOLVE,
    IncidentState.CLOSED.event_type: RESOLVE,
}

SEVERITIES: Mapping[Severity, str] = {
    Severity.P0: "critical",
    Severity.P1: "error",
    Severity.P2: "warning",
    Severity.P3: "info",
    Severity.P4: "info",
}

#: (max chars per string, max items per list or table) tried in turn; None = unlimited.
_SHRINK_STEPS: tuple[tuple[int | None, int | None], ...] = (
    (None, None), (4096, 1000), (1024, 100), (256, 20), (64, 5))


def event_action(event_type: str) -> str:
    """The PagerDuty action for an event type; ValueError for one PagerDuty has no action for."""
    try:
        return ACTIONS[event_type]
    except KeyError:
        raise ValueError(f"no PagerDuty action for event type {event_type!r}") from None


def truncate(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, ending in "…" when it was cut."""
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


def _bounded_key(prefix: str, ident: str) -> str:
    key = prefix + ident
    if len(key) <= MAX_DEDUP_KEY_CHARS:
        return key
    return f"{prefix}sha256-{hashlib.sha256(ident.encode()).hexdigest()}"


def dedup_key(incident_id: str) -> str:
    """The stable key for every event about one incident (≤ 255 characters; long ids are hashed)."""
    return _bounded_key(DEDUP_PREFIX, incident_id)


def dedup_key_for_test(notification_id: str) -> str:
    """A key of its own for one test notification, distinct from every incident's key."""
    return _bounded_key(TEST_DEDUP_PREFIX, notification_id)


def encode(event: Mapping[str, Any]) -> bytes:
    """The exact bytes sent (compact UTF-8 JSON); the size limit applies to these."""
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def summary(incident: Incident, is_test: bool = False, text: str | None = None) -> str:
    """``[P0] <title>``, or ``text`` (a receiver's template rendered), prefixed ``[TEST]``
    for a test, cut to at most 1024 characters."""
    text = f"[{incident.severity.label}] {incident.title}" if text is None else text
    return truncate(f"{TEST_MARK} {text}" if is_test else text, MAX_SUMMARY_CHARS)


def _details(incident: Incident) -> dict[str, Any]:
    details: dict[str, Any] = {
        "incident_id": incident.id,
        "severity": incident.severity.label,
        "type": incident.type.label,
        "state": incident.state.label,
        "alert_count": incident.alert_count,
        "description": incident.description,
        "labels": dict(incident.labels),
        "affected_services": list(incident.affected_services),
    }
    if incident.resolution is not None:
        r = incident.resolution
        details["resolution"] = {
            "resolved_by": r.resolved_by,
            "method": r.method.label,
            "root_cause": r.root_cause,
            "notes": r.notes,
            "resolved_at": to_iso(r.resolved_at),
        }
    return details


def _core_details(incident: Incident) -> dict[str, Any]:
    keep = ("incident_id", "severity", "type", "state", "alert_count")
    core = {k: v for k, v in _details(incident).items() if k in keep}
    core["truncated"] = "details omitted: the event exceeded PagerDuty's 512 KB limit"
    return core


def _shrink(value: Any, max_chars: int | None, max_items: int | None) -> Any:
    """A copy of ``value`` with strings and collections cut to the given sizes."""
    if isinstance(value, str):
        return value if max_chars is None else truncate(value, max_chars)
    if isinstance(value, Mapping):
        items = list(value.items())
        kept = {_shrink(str(k), max_chars, None): _shrink(v, max_chars, max_items)
                for k, v in items[:max_items]}
        if max_items is not None and len(items) > max_items:
            kept[ELLIPSIS] = f"{len(items) - max_items} more omitted"
        return kept
    if isinstance(value, (list, tuple)):
        kept_list = [_shrink(v, max_chars, max_items) for v in value[:max_items]]
        if max_items is not None and len(value) > max_items:
            kept_list.append(f"{ELLIPSIS} {len(value) - max_items} more omitted")
        return kept_list
    return value


def _payload(incident: Incident, occurred_at_iso: str, is_test: bool, summary_text: str | None) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "summary": summary(incident, is_test, summary_text),
        "source": incident.source.strip() or DEFAULT_SOURCE,
        "severity": SEVERITIES[incident.severity],
        "timestamp": occurred_at_iso,
    }
    if incident.affected_services:
        payload["component"] = incident.affected_services[0]
    group = incident.labels.get("team") or incident.source.strip()
    if group:
        payload["group"] = group
    payload["class"] = incident.type.label
    return payload


def _fit_trigger(event: dict[str, Any], incident: Incident) -> dict[str, Any]:
    """``event`` with custom_details shrunk until it fits 512 KB; ValueError if nothing fits."""
    full = _details(incident)
    for max_chars, max_items in _SHRINK_STEPS:
        details = _shrink(full, max_chars, max_items)
        if max_chars is not None:
            details["truncated"] = "details cut to fit PagerDuty's 512 KB limit"
        event["payload"]["custom_details"] = details
        if len(encode(event)) <= MAX_BODY_BYTES:
            return event
    event["payload"]["custom_details"] = _core_details(incident)
    size = len(encode(event))
    if size <= MAX_BODY_BYTES:
        return event
    raise ValueError(f"PagerDuty event is {size} bytes even without details; the limit is "
                     f"{MAX_BODY_BYTES} (source, component or group is too long)")


def render(delivery: Delivery, routing_key: str, stored_dedup_key: str | None = None,
           action: str | None = None, summary_text: str | None = None) -> dict[str, Any]:
    """The event for one delivery (``action`` overrides the one its event type maps to;
    ``summary_text``, a receiver's summary template rendered, the built-in summary).

    ``stored_dedup_key`` is the key PagerDuty returned for the incident's trigger; it is used
    for acknowledge and resolve (the incident's stable key otherwise). A test delivery always
    renders a marked trigger with its own key. Raises ValueError for an event type without a
    PagerDuty action, or a trigger that cannot be made to fit 512 KB.
    """
    incident = delivery.incident
    if delivery.is_test:
        action, key = TRIGGER, dedup_key_for_test(delivery.notification_id)
    else:
        action = action or event_action(delivery.event_type)
        key = stored_dedup_key or dedup_key(incident.id)
    event: dict[str, Any] = {"routing_key": routing_key, "event_action": action, "dedup_key": key}
    if action != TRIGGER:
        return event
    event["payload"] = _payload(incident, to_iso(delivery.occurred_at), delivery.is_test, summary_text)
    event["client"] = CLIENT
    return _fit_trigger(event, incident)
