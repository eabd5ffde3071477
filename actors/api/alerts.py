"""alerts.AlertIngestion: unary and bidirectional-stream alert intake."""
from __future__ import annotations

from typing import Iterator

import grpc

from protos import alerts_pb2, alerts_pb2_grpc

from ..domain.errors import DomainError, InvalidArgument, Overloaded
from ..engine import Engine
from ..messages import AlertResult
from .convert import alert_from_proto
from .errors import translate


def _ack(result: AlertResult) -> alerts_pb2.AlertAck:
    status = alerts_pb2.DUPLICATE if result.duplicate else alerts_pb2.ACCEPTED
    return alerts_pb2.AlertAck(alert_id=result.alert_id, status=status, incident_id=result.incident_id,
                               new_incident=result.new_incident)


class AlertIngestionServicer(alerts_pb2_grpc.AlertIngestionServicer):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.max_field_bytes = engine.settings.processing.max_field_bytes

    @translate
    def SubmitAlert(self, request: alerts_pb2.AlertRequest, context: grpc.ServicerContext) -> alerts_pb2.AlertAck:
        return _ack(self.engine.submit_alert(alert_from_proto(request, self.max_field_bytes)))

    def StreamAlerts(self, requests: Iterator[alerts_pb2.AlertRequest],
                     context: grpc.ServicerContext) -> Iterator[alerts_pb2.AlertAck]:
        """One ack per alert, in order. Bad alerts are REJECTED with the reason and the stream
        goes on; over the intake bound they are RATE_LIMITED (the client resends them)."""
        for request in requests:
            try:
                yield _ack(self.engine.submit_alert(alert_from_proto(request, self.max_field_bytes)))
            except InvalidArgument as error:
                yield alerts_pb2.AlertAck(alert_id=request.alert_id, status=alerts_pb2.REJECTED, reason=str(error))
            except Overloaded as error:
                yield alerts_pb2.AlertAck(alert_id=request.alert_id, status=alerts_pb2.RATE_LIMITED,
                                          reason=str(error))
            except DomainError as error:
                context.abort(grpc.StatusCode.UNAVAILABLE, str(error))
