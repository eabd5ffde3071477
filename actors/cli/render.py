"""Human-readable text for the API's messages (the --json output is json_format's)."""
from __future__ import annotations

import json
from datetime import timezone
from typing import Any, Iterable, Sequence

from google.protobuf import json_format
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from protos import incidents_pb2, notifications_pb2


def to_json(message: Message, one_line: bool = False) -> str:
    return json_format.MessageToJson(message, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True, indent=None if one_line else 2)


def to_json_object(**messages: Message) -> str:
    """One JSON object holding each message (as :func:`to_json` prints it) under its name."""
    return json.dumps({name: json.loads(to_json(message)) for name, message in messages.items()}, indent=2)


def clean(value: Any, keep_newlines: bool = False) -> str:
    """Text safe for a terminal: control characters (escape sequences from an alert's title,
    say) are shown escaped, and newlines are folded unless kept."""
    out = []
    for ch in str(value):
        if ch == "\n" and keep_newlines:
            out.append(ch)
        elif ch in "\n\t":
            out.append(" ")
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(out)


def severity(number: int) -> str:
    return _name(incidents_pb2.Severity, number)


def state(number: int) -> str:
    return _name(incidents_pb2.IncidentState, number)


def incident_type(number: int) -> str:
    name = _name(incidents_pb2.IncidentType, number)
    return name.title() if name != "-" else name


def method(number: int) -> str:
    return _name(incidents_pb2.ResolutionMethod, number).lower()


def delivery_status(number: int) -> str:
    return _name(notifications_pb2.DeliveryStatus, number).lower()


def _name(enum: Any, number: int) -> str:
    if number == 0:
        return "-"
    try:
        return enum.Name(number)
    except ValueError:  # a value newer than this client's protos
        return str(number)


def when(message: Message, field: str) -> str:
    if not message.HasField(field):
        return "-"
    stamp: Timestamp = getattr(message, field)
    return stamp.ToDatetime(tzinfo=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    cells = [list(headers), *([clean(cell) for cell in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in cells)


def fields(pairs: Iterable[tuple[str, Any]]) -> str:
    pairs = list(pairs)
    width = max(len(name) for name, _ in pairs)
    lines = []
    for name, value in pairs:
        text = clean(value if value not in ("", None) else "-", keep_newlines=True)
        lines.append(f"{name.ljust(width)}  " + text.replace("\n", "\n" + " " * (width + 2)))
    return "\n".join(lines)


def pairs_text(values: Any) -> str:
    return ", ".join(f"{key}={values[key]}" for key in sorted(values))


def incident(i: incidents_pb2.Incident) -> str:
    rows: list[tuple[str, Any]] = [
        ("id", i.id), ("title", i.title), ("severity", severity(i.severity)), ("state", state(i.state)),
        ("type", incident_type(i.type)), ("source", i.source), ("alerts", i.alert_count),
        ("created", when(i, "created_at")), ("updated", when(i, "updated_at")),
        ("last alert", when(i, "last_alert_at")), ("services", ", ".join(i.affected_services)),
        ("assignees", ", ".join(i.assignees)), ("labels", pairs_text(i.labels)), ("fingerprint", i.fingerprint),
        ("description", i.description)]
    if i.HasField("resolution"):
        r = i.resolution
        rows += [("resolved by", r.resolved_by), ("resolved", when(r, "resolved_at")), ("method", method(r.method)),
                 ("notes", r.notes), ("root cause", r.root_cause)]
    return fields(rows)


def incidents(items: Sequence[incidents_pb2.Incident]) -> str:
    if not items:
        return "no incidents"
    return table(("ID", "SEV", "STATE", "TYPE", "ALERTS", "SOURCE", "CREATED", "TITLE"),
                 ((i.id, severity(i.severity), state(i.state), incident_type(i.type), i.alert_count, i.source,
                   when(i, "created_at"), i.title) for i in items))


def detail(entry: incidents_pb2.TimelineEntry) -> str:
    """The entry's detail JSON as compact ``key=value`` text."""
    try:
        values = json.loads(entry.detail_json or "{}")
    except ValueError:
        return entry.detail_json
    if not isinstance(values, dict):
        return entry.detail_json
    return " ".join(f"{key}={value if isinstance(value, str) else json.dumps(value)}"
                    for key, value in values.items() if value not in ("", None))


def timeline(entries: Sequence[incidents_pb2.TimelineEntry]) -> str:
    if not entries:
        return "no timeline entries"
    return table(("#", "AT", "KIND", "ACTOR", "DETAIL"),
                 ((e.id, when(e, "at"), e.kind, e.actor, detail(e)) for e in entries))


def event(e: incidents_pb2.IncidentEvent) -> str:
    i = e.incident
    return clean(f"{when(e.entry, 'at')} {i.id} {severity(i.severity)} {state(i.state)} {e.entry.kind} "
                 f"by={e.entry.actor or '-'} {i.title}")


def stats(s: notifications_pb2.Stats) -> str:
    """Channels (with the number of destinations, or "disabled"), any warning about a
    channel that delivers nowhere, then actors, then the store."""
    channels = table(("CHANNEL", "QUEUED", "IN_FLIGHT", "RETRYING", "DELIVERED", "SKIPPED", "DEAD", "SILENCED",
                      "INHIBITED", "P50_MS", "P99_MS", "DESTINATIONS"),
                     ((c.channel, c.queued, c.in_flight, c.retrying, c.delivered, c.skipped, c.dead, c.silenced,
                       c.inhibited, f"{c.latency_p50_ms:.1f}", f"{c.latency_p99_ms:.1f}",
                       len(c.destinations) if c.enabled else "disabled") for c in s.channels)) \
        if s.channels else "no channels enabled"
    channels += "".join(f"\nwarning: {clean(c.warning)}" for c in s.channels if c.warning)
    if any(a.replica for a in s.actors):  # replicas sharing a store: each one's actors
        actors = table(("REPLICA", "ACTOR", "ALIVE", "RESTARTS", "LAST_FAILURE"),
                       ((a.replica, a.name, "yes" if a.alive else "NO", a.restarts, a.last_failure or "-")
                        for a in s.actors))
    else:
        actors = table(("ACTOR", "ALIVE", "RESTARTS", "LAST_FAILURE"),
                       ((a.name, "yes" if a.alive else "NO", a.restarts, a.last_failure or "-") for a in s.actors))
    parts = [channels, actors] if s.actors else [channels]
    return "\n\n".join(parts + [store(s.store)]) if s.HasField("store") else "\n\n".join(parts)


def store(s: notifications_pb2.StoreStats) -> str:
    if s.unavailable:
        return f"store unavailable: {clean(s.unavailable)}"
    retention = f"{s.retention_days} days" if s.retention_days else "forever"
    return fields([("store size", size(s.size_bytes)), ("free in it", size(s.free_bytes)),
                   ("oldest record", when(s, "oldest_record_at")), ("kept for", retention)])


def size(n: int) -> str:
    """Bytes in binary units: 812 B, 4.0 KiB, 1.5 GiB."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def notifications(items: Sequence[notifications_pb2.Notification]) -> str:
    if not items:
        return "no notifications"
    return table(("ID", "INCIDENT", "CHANNEL", "DESTINATION", "EVENT", "STATUS", "ATTEMPTS", "UPDATED", "LAST_ERROR"),
                 ((n.id, n.incident_id, n.channel, n.destination, n.event_type, delivery_status(n.status),
                   n.attempts, when(n, "updated_at"), n.last_error or "-") for n in items))


def silences(items: Sequence[notifications_pb2.Silence]) -> str:
    if not items:
        return "no silences"
    return table(("ID", "STATE", "MATCHERS", "STARTS", "ENDS", "CREATED_BY", "COMMENT"),
                 ((s.id, s.state, ", ".join(s.matchers), when(s, "starts_at"), when(s, "ends_at"), s.created_by,
                   s.comment) for s in items))


def notification(d: notifications_pb2.NotificationDetail) -> str:
    """The notification, its attempts, and what routing decided about its event for every
    destination (the route that reached it, or why it heard nothing)."""
    n = d.notification
    head = fields([("id", n.id), ("incident", n.incident_id), ("channel", n.channel),
                   ("destination", n.destination), ("event", n.event_type), ("status", delivery_status(n.status)),
                   ("attempts", n.attempts), ("created", when(n, "created_at")), ("updated", when(n, "updated_at")),
                   ("next attempt", when(n, "next_attempt_at")), ("last error", n.last_error),
                   ("held by", n.suppressed_by),
                   ("route", d.route or "(not recorded)")])
    attempts = table(("#", "AT", "OUTCOME", "STATUS_CODE", "MS", "ERROR"),
                     ((a.number, when(a, "at"), a.outcome, a.status_code or "-", f"{a.duration_ms:.1f}",
                       a.error or "-") for a in d.attempts)) if d.attempts else "no attempts yet"
    routing = table(("RECEIVER", "CHANNEL", "DECISION"), ((r.receiver, r.channel, r.reason) for r in d.routing)) \
        if d.routing else "no routing record (owed before routing was recorded)"
    return "\n\n".join((head, attempts, "routing of this event:\n" + routing))


def rendered_templates(response: notifications_pb2.RenderTemplateResponse) -> str:
    """Each field under a ``== channel field (setting)`` line: its text, or ``error: …``."""
    return "\n\n".join(
        f"== {t.channel} {t.field} ({t.setting})\n" + clean(t.text if not t.error else f"error: {t.error}",
                                                          keep_newlines=True)
        for t in response.templates)
