"""notifications.NotificationService: delivery stats, history, dead letters, test sends, template
previews, silences."""
from __future__ import annotations

import grpc

from protos import notifications_pb2, notifications_pb2_grpc

from ..domain.changes import ChannelCounts
from ..domain.channel_setup import missing_destination
from ..domain.commands import CreateSilence, ExpireSilence, UpdateSilence
from ..domain.config import CHANNELS
from ..domain.limits import MAX_NAME, text
from ..domain.models import utc_now
from ..engine import Engine
from .auth import attributed
from .convert import (attempt_to_proto, decision_to_proto, delivery_status_from_proto, notification_to_proto,
                      page_size, silence_to_proto, to_datetime, to_timestamp)
from .errors import translate
from .ids import full_id


#: Who did it, when a request names no one.
DEFAULT_ACTOR = "api"


class NotificationServicer(notifications_pb2_grpc.NotificationServiceServicer):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @translate
    def GetStats(self, request: notifications_pb2.StatsRequest,
                 context: grpc.ServicerContext) -> notifications_pb2.Stats:
        stats = self.engine.stats()
        settings = self.engine.settings.notifications
        destinations: dict[str, list[str]] = {}
        for receiver in self.engine.receivers:
            destinations.setdefault(receiver.channel, []).append(receiver.destination)
        counted = {counts.channel: counts for counts in stats.channels}
        channels = []
        listed = set() if stats.store_unavailable else counted.keys() | {n for n in CHANNELS if settings.enabled(n)}
        for name in sorted(listed):  # none while the store cannot be read: its counts are unknown, not 0
            in_flight, waiting = stats.in_flight.get(name, (0, 0))
            counts = counted.get(name, ChannelCounts(name, {}, 0.0, 0.0))
            c = counts.counts
            channels.append(notifications_pb2.ChannelStats(
                channel=name, queued=max(0, c.get("queued", 0) - in_flight), in_flight=in_flight,
                delivered=c.get("delivered", 0), retrying=c.get("retrying", 0), dead=c.get("dead", 0),
                skipped=c.get("skipped", 0), silenced=c.get("silenced", 0), inhibited=c.get("inhibited", 0),
                latency_p50_ms=counts.latency_p50_ms,
                latency_p99_ms=counts.latency_p99_ms, enabled=name in CHANNELS and settings.enabled(name),
                destinations=destinations.get(name, []),
                warning=missing_destination(settings, name, self.engine.settings.receivers) or ""))
        actors = [notifications_pb2.ActorStatus(name=a.name, restarts=a.restarts, last_failure=a.last_failure,
                                                alive=a.alive, fenced=a.fenced, replica=a.replica)
                  for a in stats.actors]
        store = notifications_pb2.StoreStats(
            size_bytes=stats.store.size_bytes, free_bytes=stats.store.free_bytes,
            oldest_record_at=to_timestamp(stats.store.oldest_record_at),
            retention_days=self.engine.settings.state.retention_days, unavailable=stats.store_unavailable)
        return notifications_pb2.Stats(channels=channels, actors=actors, store=store)

    @translate
    def ListNotifications(self, request: notifications_pb2.ListNotificationsRequest,
                          context: grpc.ServicerContext) -> notifications_pb2.ListNotificationsResponse:
        records, token = self.engine.notifications(
            full_id(self.engine, "incident", "incident_id", request.incident_id, required=False),
            text("channel", request.channel, MAX_NAME), delivery_status_from_proto(request.status),
            page_size(request.page_size), request.page_token, request.newest_first)
        return notifications_pb2.ListNotificationsResponse(
            notifications=[notification_to_proto(r) for r in records], next_page_token=token)

    @translate
    def GetNotification(self, request: notifications_pb2.GetNotificationRequest,
                        context: grpc.ServicerContext) -> notifications_pb2.NotificationDetail:
        notification_id = full_id(self.engine, "notification", "id", request.id)
        record, attempts = self.engine.notification(notification_id)
        decisions = self.engine.routing_of(notification_id)
        own = (record.channel, record.destination)
        route = next((d.route for d in decisions if (d.channel, d.receiver) == own), "")
        return notifications_pb2.NotificationDetail(notification=notification_to_proto(record),
                                                    attempts=[attempt_to_proto(a) for a in attempts], route=route,
                                                    routing=[decision_to_proto(d) for d in decisions])

    @translate
    def RequeueNotification(self, request: notifications_pb2.RequeueRequest,
                            context: grpc.ServicerContext) -> notifications_pb2.Notification:
        return notification_to_proto(self.engine.requeue(full_id(self.engine, "notification", "id", request.id)))

    @translate
    def SendTestNotification(self, request: notifications_pb2.TestNotificationRequest,
                             context: grpc.ServicerContext) -> notifications_pb2.TestNotificationResult:
        channel = text("channel", request.channel, MAX_NAME, required=True)
        destination, outcome = self.engine.send_test(channel, text("destination", request.destination, MAX_NAME))
        return notifications_pb2.TestNotificationResult(
            channel=channel, destination=destination, outcome=outcome.kind.value,
            status_code=outcome.status_code or 0, detail=outcome.detail)

    @translate
    def RenderTemplate(self, request: notifications_pb2.RenderTemplateRequest,
                       context: grpc.ServicerContext) -> notifications_pb2.RenderTemplateResponse:
        rendered = self.engine.render_templates(
            text("receiver", request.receiver, MAX_NAME, required=True),
            full_id(self.engine, "incident", "incident_id", request.incident_id),
            text("channel", request.channel, MAX_NAME), text("event_type", request.event_type, MAX_NAME))
        return notifications_pb2.RenderTemplateResponse(templates=[notifications_pb2.RenderedTemplate(
            channel=r.channel, field=r.field, setting=r.setting, text=r.text, error=r.error) for r in rendered])

    # -- silences ----------------------------------------------------------------------
    @translate
    def CreateSilence(self, request: notifications_pb2.CreateSilenceRequest,
                      context: grpc.ServicerContext) -> notifications_pb2.Silence:
        return silence_to_proto(self.engine.create_silence(CreateSilence.checked(
            matchers=request.matchers, starts_at=to_datetime("starts_at", request.starts_at),
            ends_at=to_datetime("ends_at", request.ends_at), created_by=attributed(request.created_by),
            comment=request.comment, default_actor=DEFAULT_ACTOR)), utc_now())

    @translate
    def UpdateSilence(self, request: notifications_pb2.UpdateSilenceRequest,
                      context: grpc.ServicerContext) -> notifications_pb2.Silence:
        return silence_to_proto(self.engine.update_silence(UpdateSilence.checked(
            silence_id=self._silence_id(request.id), matchers=request.matchers or None,
            starts_at=to_datetime("starts_at", request.starts_at), ends_at=to_datetime("ends_at", request.ends_at),
            comment=request.comment or None, actor=attributed(request.actor), default_actor=DEFAULT_ACTOR)),
            utc_now())

    @translate
    def ExpireSilence(self, request: notifications_pb2.ExpireSilenceRequest,
                      context: grpc.ServicerContext) -> notifications_pb2.Silence:
        actor = text("actor", attributed(request.actor), MAX_NAME) or DEFAULT_ACTOR
        return silence_to_proto(self.engine.expire_silence(ExpireSilence(self._silence_id(request.id), actor)),
                                utc_now())

    @translate
    def GetSilence(self, request: notifications_pb2.GetSilenceRequest,
                   context: grpc.ServicerContext) -> notifications_pb2.Silence:
        return silence_to_proto(self.engine.silence(self._silence_id(request.id)), utc_now())

    @translate
    def ListSilences(self, request: notifications_pb2.ListSilencesRequest,
                     context: grpc.ServicerContext) -> notifications_pb2.ListSilencesResponse:
        now = utc_now()
        return notifications_pb2.ListSilencesResponse(silences=[
            silence_to_proto(s, now) for s in self.engine.silences() if request.include_expired or s.ends_at > now])

    def _silence_id(self, value: str) -> str:
        return full_id(self.engine, "silence", "id", value)
