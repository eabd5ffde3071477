"""One function per ``imctl`` command: build the request, call the server, print the answer.

Each takes the :class:`Api` and the parsed arguments and returns the exit status. gRPC
errors propagate to :func:`actors.cli.main`, which prints them.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, TypeVar

import grpc
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from protos import (alerts_pb2, alerts_pb2_grpc, incidents_pb2, incidents_pb2_grpc, notifications_pb2,
                    notifications_pb2_grpc)

from . import prometheus, render
from .stream import StreamReader, is_deadline

M = TypeVar("M", bound=Message)
MAX_PAGE = 500  # the server's largest page


@dataclass
class Api:
    alerts: alerts_pb2_grpc.AlertIngestionStub
    incidents: incidents_pb2_grpc.IncidentServiceStub
    notifications: notifications_pb2_grpc.NotificationServiceStub
    timeout: float
    json: bool

    @classmethod
    def over(cls, channel: grpc.Channel, timeout: float, json: bool) -> "Api":
        return cls(alerts_pb2_grpc.AlertIngestionStub(channel), incidents_pb2_grpc.IncidentServiceStub(channel),
                   notifications_pb2_grpc.NotificationServiceStub(channel), timeout, json)

    def show(self, message: Message, text: Callable[[Any], str]) -> None:
        """Print ``message`` as JSON with --json, else as ``text(message)``."""
        print(render.to_json(message) if self.json else text(message), flush=True)


def alert(api: Api, args: argparse.Namespace) -> int:
    request = alerts_pb2.AlertRequest(
        alert_id=args.alert_id, source=args.source, title=args.title, description=args.description,
        severity=args.severity, type=args.incident_type, labels=dict(args.label),
        annotations=dict(args.annotation), affected_services=args.service)
    ack = api.alerts.SubmitAlert(request, timeout=api.timeout)
    api.show(ack, _ack_text)
    return 0 if ack.status in (alerts_pb2.ACCEPTED, alerts_pb2.DUPLICATE) else 1


def _ack_text(ack: alerts_pb2.AlertAck) -> str:
    if ack.status == alerts_pb2.ACCEPTED:
        outcome = "opened new incident" if ack.new_incident else "joined incident"
        return f"accepted: alert {ack.alert_id} {outcome} {ack.incident_id}"
    if ack.status == alerts_pb2.DUPLICATE:
        return f"duplicate: alert {ack.alert_id} was already recorded (incident {ack.incident_id})"
    status = alerts_pb2.AckStatus.Name(ack.status).lower().replace("_", " ")
    return render.clean(f"{status}: alert {ack.alert_id}: {ack.reason or 'no reason given'}")


def _pages(fetch: Callable[[int, str], tuple[list[M], str]], args: argparse.Namespace) -> tuple[list[M], str]:
    """Items from one server-sized page by default; with --limit up to that many and with --all
    to the end, following page tokens. Also the token that continues after them ("" at the end)."""
    items: list[M] = []
    token = args.page_token
    while True:
        wanted = min(args.limit - len(items), MAX_PAGE) if args.limit else 0  # 0: the server's default size
        page, token = fetch(wanted, token)
        items.extend(page)
        if not token or (len(items) >= args.limit if args.limit else not args.all):
            return items, token


def _more(api: Api, token: str) -> None:
    if token and not api.json:
        print(f"(more: --all, --limit N or --page-token {token})", file=sys.stderr)


def incidents_list(api: Api, args: argparse.Namespace) -> int:
    def fetch(size: int, token: str) -> tuple[list[incidents_pb2.Incident], str]:
        page = api.incidents.ListIncidents(incidents_pb2.ListIncidentsRequest(
            states=args.states, severities=args.severities, source=args.source, page_size=size, page_token=token),
            timeout=api.timeout)
        return list(page.incidents), page.next_page_token

    items, token = _pages(fetch, args)
    api.show(incidents_pb2.ListIncidentsResponse(incidents=items, next_page_token=token),
             lambda r: render.incidents(r.incidents))
    _more(api, token)
    return 0


def incidents_create(api: Api, args: argparse.Namespace) -> int:
    incident = api.incidents.CreateIncident(incidents_pb2.CreateIncidentRequest(
        title=args.title, description=args.description, severity=args.severity, type=args.incident_type,
        source=args.source, labels=dict(args.label), affected_services=args.service, assignees=args.assignee,
        actor=args.actor), timeout=api.timeout)
    api.show(incident, lambda i: f"created incident {i.id} ({render.severity(i.severity)}, {render.state(i.state)})")
    return 0


def incidents_update(api: Api, args: argparse.Namespace) -> int:
    """Exit 2 when no change is given (the server would accept it and change nothing)."""
    request = incidents_pb2.UpdateIncidentRequest(id=args.id, actor=args.actor, severity=args.severity or 0)
    if args.title is not None:
        request.title = args.title
    if args.description is not None:
        request.description = args.description
    if args.label is not None or args.no_labels:
        request.labels.SetInParent()
        request.labels.values.update(dict(args.label or []))
    changed = [name for name in ("title", "description", "severity", "labels")
               if (request.severity != 0 if name == "severity" else request.HasField(name))]
    if not changed:
        print("error: nothing to change; give --title, --description, --severity, --label or --no-labels",
              file=sys.stderr)
        return 2
    incident = api.incidents.UpdateIncident(request, timeout=api.timeout)
    api.show(incident, lambda i: f"incident {i.id} updated: {', '.join(changed)}")
    return 0


def incidents_get(api: Api, args: argparse.Namespace) -> int:
    """With --timeline, the incident and then its timeline (as one JSON object with --json)."""
    incident = api.incidents.GetIncident(incidents_pb2.GetIncidentRequest(id=args.id), timeout=api.timeout)
    if not args.timeline:
        api.show(incident, render.incident)
        return 0
    timeline = api.incidents.GetTimeline(incidents_pb2.GetTimelineRequest(id=incident.id), timeout=api.timeout)
    print(render.to_json_object(incident=incident, timeline=timeline) if api.json
          else f"{render.incident(incident)}\n\n{render.timeline(timeline.entries)}", flush=True)
    return 0


def incidents_timeline(api: Api, args: argparse.Namespace) -> int:
    timeline = api.incidents.GetTimeline(incidents_pb2.GetTimelineRequest(id=args.id), timeout=api.timeout)
    api.show(timeline, lambda t: render.timeline(t.entries))
    return 0


def incidents_transition(api: Api, args: argparse.Namespace) -> int:
    incident = api.incidents.TransitionIncident(incidents_pb2.TransitionIncidentRequest(
        id=args.id, to_state=args.to_state, actor=args.actor, note=args.note), timeout=api.timeout)
    api.show(incident, lambda i: f"incident {i.id} is now {render.state(i.state)}")
    return 0


def incidents_resolve(api: Api, args: argparse.Namespace) -> int:
    incident = api.incidents.ResolveIncident(incidents_pb2.ResolveIncidentRequest(
        id=args.id, resolved_by=args.resolved_by, method=args.method, notes=args.notes, root_cause=args.root_cause),
        timeout=api.timeout)
    api.show(incident, lambda i: render.clean(
        f"incident {i.id} is now {render.state(i.state)} (resolved by {i.resolution.resolved_by}, "
        f"{render.method(i.resolution.method)})"))
    return 0


def incidents_note(api: Api, args: argparse.Namespace) -> int:
    entry = api.incidents.AddNote(incidents_pb2.AddNoteRequest(id=args.id, author=args.author, text=args.text),
                                  timeout=api.timeout)
    api.show(entry, lambda e: render.clean(f"note #{e.id} added to incident {e.incident_id} by {e.actor}"))
    return 0


def incidents_assign(api: Api, args: argparse.Namespace) -> int:
    incident = api.incidents.UpdateIncident(incidents_pb2.UpdateIncidentRequest(
        id=args.id, assignees=incidents_pb2.AssigneeList(values=args.names), actor=args.actor), timeout=api.timeout)
    api.show(incident, lambda i: render.clean(f"incident {i.id} assigned to {', '.join(i.assignees) or 'nobody'}"))
    return 0


def watch(api: Api, args: argparse.Namespace) -> int:
    """Stream events until Ctrl-C, --count events or --duration seconds (each exits 0).

    The stream's deadline is --duration (none by default: a watch is open-ended, so the
    per-call --timeout, meant for unary calls, would cut it short)."""
    request = incidents_pb2.WatchIncidentsRequest(incident_id=args.incident, states=args.states,
                                                  min_severity=args.min_severity, kinds=args.kinds)
    seen = 0
    try:
        with StreamReader(lambda: api.incidents.WatchIncidents(request, timeout=args.duration)) as events:
            for event in events:
                print(render.to_json(event, one_line=True) if api.json else render.event(event), flush=True)
                seen += 1
                if args.count and seen >= args.count:
                    break
    except KeyboardInterrupt:
        pass
    except grpc.RpcError as error:
        if not (is_deadline(error) and args.duration is not None):
            raise
    return 0


def notifications_stats(api: Api, args: argparse.Namespace) -> int:
    stats = api.notifications.GetStats(notifications_pb2.StatsRequest(), timeout=api.timeout)
    if args.format == "prometheus":
        print(prometheus.exposition(stats), end="", flush=True)
    else:
        api.show(stats, render.stats)
    return 0


def notifications_list(api: Api, args: argparse.Namespace) -> int:
    def fetch(size: int, token: str) -> tuple[list[notifications_pb2.Notification], str]:
        page = api.notifications.ListNotifications(notifications_pb2.ListNotificationsRequest(
            incident_id=args.incident, channel=args.channel, status=args.status, page_size=size, page_token=token,
            newest_first=not args.oldest_first), timeout=api.timeout)
        return list(page.notifications), page.next_page_token

    items, token = _pages(fetch, args)
    api.show(notifications_pb2.ListNotificationsResponse(notifications=items, next_page_token=token),
             lambda r: render.notifications(r.notifications))
    _more(api, token)
    return 0


def notifications_get(api: Api, args: argparse.Namespace) -> int:
    detail = api.notifications.GetNotification(notifications_pb2.GetNotificationRequest(id=args.id),
                                               timeout=api.timeout)
    api.show(detail, render.notification)
    return 0


def notifications_requeue(api: Api, args: argparse.Namespace) -> int:
    record = api.notifications.RequeueNotification(notifications_pb2.RequeueRequest(id=args.id), timeout=api.timeout)
    api.show(record, lambda n: f"notification {n.id} requeued (now {render.delivery_status(n.status)})")
    return 0


def notifications_test(api: Api, args: argparse.Namespace) -> int:
    result = api.notifications.SendTestNotification(notifications_pb2.TestNotificationRequest(
        channel=args.channel, destination=args.destination), timeout=api.timeout)
    api.show(result, lambda r: render.clean(
        f"{r.channel} -> {r.destination}: {r.outcome}"
        + (f" ({r.detail})" if r.detail else f" (HTTP {r.status_code})" if r.status_code else "")))
    return 0 if result.outcome == "delivered" else 1


def templates_render(api: Api, args: argparse.Namespace) -> int:
    response = api.notifications.RenderTemplate(notifications_pb2.RenderTemplateRequest(
        receiver=args.receiver, incident_id=args.incident, channel=args.channel, event_type=args.event),
        timeout=api.timeout)
    api.show(response, render.rendered_templates)
    return 1 if any(t.error for t in response.templates) else 0


def silence_add(api: Api, args: argparse.Namespace) -> int:
    start = args.start or datetime.now(timezone.utc)
    request = notifications_pb2.CreateSilenceRequest(
        matchers=args.matchers, ends_at=_stamp(args.end or start + args.duration), created_by=args.author,
        comment=args.comment, starts_at=_stamp(args.start) if args.start else None)
    silence = api.notifications.CreateSilence(request, timeout=api.timeout)
    api.show(silence, lambda s: f"silence {s.id} {s.state} until {render.when(s, 'ends_at')}")
    return 0


def silence_get(api: Api, args: argparse.Namespace) -> int:
    silence = api.notifications.GetSilence(notifications_pb2.GetSilenceRequest(id=args.id), timeout=api.timeout)
    api.show(silence, lambda s: render.silences([s]))
    return 0


def silence_update(api: Api, args: argparse.Namespace) -> int:
    """Exit 2 when no change is given."""
    request = notifications_pb2.UpdateSilenceRequest(id=args.id, matchers=args.matchers or [],
                                                     comment=args.comment or "")
    for field, moment in (("starts_at", args.start), ("ends_at", args.end)):
        if moment is not None:
            getattr(request, field).CopyFrom(_stamp(moment))
    if not (args.matchers or args.comment or args.start or args.end):
        print("error: nothing to change; give --matcher, --comment, --start or --end", file=sys.stderr)
        return 2
    silence = api.notifications.UpdateSilence(request, timeout=api.timeout)
    api.show(silence, lambda s: f"silence {s.id} updated ({s.state} until {render.when(s, 'ends_at')})")
    return 0


def silence_query(api: Api, args: argparse.Namespace) -> int:
    listed = api.notifications.ListSilences(notifications_pb2.ListSilencesRequest(include_expired=args.expired),
                                            timeout=api.timeout)
    api.show(listed, lambda r: render.silences(r.silences))
    return 0


def silence_expire(api: Api, args: argparse.Namespace) -> int:
    for silence_id in args.ids:
        silence = api.notifications.ExpireSilence(notifications_pb2.ExpireSilenceRequest(id=silence_id),
                                                  timeout=api.timeout)
        api.show(silence, lambda s: f"silence {s.id} expired")
    return 0


def _stamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment.astimezone(timezone.utc))
    return stamp
