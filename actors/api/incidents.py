"""incidents.IncidentService: create, read, list, change and watch incidents."""
from __future__ import annotations

from typing import Iterator

import grpc

from protos import incidents_pb2, incidents_pb2_grpc

from ..domain.commands import AddNote, CreateIncident, ResolveIncident, TransitionIncident, UpdateIncident
from ..domain.errors import InvalidArgument, Unavailable
from ..domain.models import EventKind, IncidentState, IncidentType, Severity
from ..engine import Engine
from ..events import Event, IncidentChanged
from .auth import attributed
from .convert import (enum_value, incident_query, incident_to_proto, method_from_proto, page_size,
                      timeline_to_proto)
from .errors import translate, translate_stream
from .ids import full_id

#: Who did it, when a request names no actor or author.
DEFAULT_ACTOR = "api"

#: Timeline kinds written when a delivery settles: in GetTimeline, never published to watchers.
UNSTREAMED_KINDS = frozenset({EventKind.NOTIFICATION_DELIVERED, EventKind.NOTIFICATION_DEAD})


class IncidentServicer(incidents_pb2_grpc.IncidentServiceServicer):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.max_text = engine.settings.processing.max_field_bytes

    def _id(self, value: str) -> str:
        return full_id(self.engine, "incident", "id", value)

    @translate
    def CreateIncident(self, request: incidents_pb2.CreateIncidentRequest,
                       context: grpc.ServicerContext) -> incidents_pb2.Incident:
        return incident_to_proto(self.engine.create_incident(CreateIncident.checked(
            title=request.title, description=request.description,
            severity=enum_value("severity", Severity, request.severity),  # type: ignore[arg-type]
            type=enum_value("type", IncidentType, request.type),  # type: ignore[arg-type]
            source=request.source, labels=request.labels, affected_services=request.affected_services,
            assignees=request.assignees, actor=attributed(request.actor), default_actor=DEFAULT_ACTOR,
            max_text=self.max_text)))

    @translate
    def GetIncident(self, request: incidents_pb2.GetIncidentRequest,
                    context: grpc.ServicerContext) -> incidents_pb2.Incident:
        return incident_to_proto(self.engine.incident(self._id(request.id)))

    @translate
    def ListIncidents(self, request: incidents_pb2.ListIncidentsRequest,
                      context: grpc.ServicerContext) -> incidents_pb2.ListIncidentsResponse:
        incidents, token = self.engine.incidents(incident_query(request), page_size(request.page_size),
                                                 request.page_token)
        return incidents_pb2.ListIncidentsResponse(incidents=[incident_to_proto(i) for i in incidents],
                                                   next_page_token=token)

    @translate
    def UpdateIncident(self, request: incidents_pb2.UpdateIncidentRequest,
                       context: grpc.ServicerContext) -> incidents_pb2.Incident:
        return incident_to_proto(self.engine.update_incident(UpdateIncident.checked(
            incident_id=self._id(request.id), actor=attributed(request.actor), default_actor=DEFAULT_ACTOR,
            max_text=self.max_text,
            title=request.title if request.HasField("title") else None,
            description=request.description if request.HasField("description") else None,
            severity=enum_value("severity", Severity, request.severity, required=False),  # type: ignore[arg-type]
            assignees=request.assignees.values if request.HasField("assignees") else None,
            labels=request.labels.values if request.HasField("labels") else None)))

    @translate
    def TransitionIncident(self, request: incidents_pb2.TransitionIncidentRequest,
                           context: grpc.ServicerContext) -> incidents_pb2.Incident:
        return incident_to_proto(self.engine.transition(TransitionIncident.checked(
            incident_id=self._id(request.id),
            to_state=enum_value("to_state", IncidentState, request.to_state),  # type: ignore[arg-type]
            actor=attributed(request.actor), default_actor=DEFAULT_ACTOR, note=request.note, max_text=self.max_text)))

    @translate
    def ResolveIncident(self, request: incidents_pb2.ResolveIncidentRequest,
                        context: grpc.ServicerContext) -> incidents_pb2.Incident:
        return incident_to_proto(self.engine.resolve(ResolveIncident.checked(
            incident_id=self._id(request.id), resolved_by=attributed(request.resolved_by),
            method=method_from_proto(request.method), notes=request.notes, root_cause=request.root_cause,
            max_text=self.max_text)))

    @translate
    def AddNote(self, request: incidents_pb2.AddNoteRequest,
                context: grpc.ServicerContext) -> incidents_pb2.TimelineEntry:
        return timeline_to_proto(self.engine.add_note(AddNote.checked(
            incident_id=self._id(request.id), author=attributed(request.author), default_actor=DEFAULT_ACTOR,
            note=request.text, max_text=self.max_text)))

    @translate
    def GetTimeline(self, request: incidents_pb2.GetTimelineRequest,
                    context: grpc.ServicerContext) -> incidents_pb2.Timeline:
        return incidents_pb2.Timeline(entries=[timeline_to_proto(e) for e in self.engine.timeline(self._id(request.id))])

    @translate_stream
    def WatchIncidents(self, request: incidents_pb2.WatchIncidentsRequest,
                       context: grpc.ServicerContext) -> Iterator[incidents_pb2.IncidentEvent]:
        """Stream incident events matching the filter until the client cancels. A watcher that
        falls too far behind is ended with RESOURCE_EXHAUSTED rather than slowing the engine."""
        states = {enum_value("states", IncidentState, s) for s in request.states}
        floor = enum_value("min_severity", Severity, request.min_severity, required=False)
        kinds = set(request.kinds)
        streamed = [kind.value for kind in EventKind if kind not in UNSTREAMED_KINDS]
        unknown = kinds - {kind.value for kind in EventKind}
        if unknown:
            raise InvalidArgument("kinds", f"unknown {sorted(unknown)}; streamed: {', '.join(streamed)}")
        unstreamed = kinds - set(streamed)
        if unstreamed:
            raise InvalidArgument("kinds", f"{sorted(unstreamed)} are timeline entries of deliveries, which "
                                           "WatchIncidents does not stream (GetTimeline shows them); streamed: "
                                           f"{', '.join(streamed)}")
        incident_id = full_id(self.engine, "incident", "incident_id", request.incident_id, required=False)

        def accept(event: Event) -> bool:
            if not isinstance(event, IncidentChanged):
                return False
            incident = event.incident
            return ((not incident_id or incident.id == incident_id)
                    and (not states or incident.state in states)
                    and (floor is None or incident.severity <= floor)
                    and (not kinds or event.event.kind.value in kinds))

        subscription = self.engine.subscribe(accept, bound=1000)
        context.add_callback(subscription.close)
        context.send_initial_metadata(())  # tells the client the watch is live
        for event in subscription:
            assert isinstance(event, IncidentChanged)
            yield incidents_pb2.IncidentEvent(entry=timeline_to_proto(event.event),
                                              incident=incident_to_proto(event.incident))
        if subscription.lagged:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "watcher fell behind; re-subscribe")
        if context.is_active():
            raise Unavailable("server is shutting down")
