"""alerts.AlertIngestion: alert intake, one at a time, in batches, or on a stream."""
from __future__ import annotations

import queue
import threading
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

import grpc

from protos import alerts_pb2, alerts_pb2_grpc

from ..domain.commands import AlertResult
from ..domain.errors import InvalidArgument, Overloaded
from ..domain.models import Alert
from ..engine import Engine
from .convert import alert_from_proto
from .errors import translate, translate_stream

T = TypeVar("T")
STREAM_BATCH = 256
#: Alerts one SubmitAlerts call may carry.
MAX_CALL_BATCH = 1000
_END = object()


def _ack(result: AlertResult) -> alerts_pb2.AlertAck:
    status = alerts_pb2.DUPLICATE if result.duplicate else alerts_pb2.ACCEPTED
    return alerts_pb2.AlertAck(alert_id=result.alert_id, status=status, incident_id=result.incident_id,
                               new_incident=result.new_incident)


def available_batches(items: Iterable[T], max_batch: int,
                      active: Callable[[], bool] = lambda: True) -> Iterator[list[T]]:
    """Lists of whatever has arrived: waits for one item, then takes what is already queued.

    A reader thread pulls from ``items`` (a blocking gRPC request iterator) so the client can
    keep sending while the previous batch is committed. An error raised by ``items`` (the
    client cancelled) ends the batches. The reader never blocks for good on a full queue: once
    ``active()`` is false (the call ended) it stops.
    """
    arrived: queue.Queue[object] = queue.Queue(maxsize=4 * max_batch)

    def offer(item: object) -> bool:
        while True:
            try:
                arrived.put(item, timeout=0.2)
                return True
            except queue.Full:
                if not active():
                    return False

    def read() -> None:
        try:
            for item in items:
                if not offer(item):
                    return
        except grpc.RpcError:
            pass
        finally:
            offer(_END)

    threading.Thread(target=read, name="stream-reader", daemon=True).start()
    while True:
        first = arrived.get()
        if first is _END:
            return
        batch = [first]
        while len(batch) < max_batch:
            try:
                item = arrived.get_nowait()
            except queue.Empty:
                break
            if item is _END:
                yield batch  # type: ignore[misc]
                return
            batch.append(item)
        yield batch  # type: ignore[misc]


class AlertIngestionServicer(alerts_pb2_grpc.AlertIngestionServicer):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.max_field_bytes = engine.settings.processing.max_field_bytes

    @translate
    def SubmitAlert(self, request: alerts_pb2.AlertRequest, context: grpc.ServicerContext) -> alerts_pb2.AlertAck:
        return _ack(self.engine.submit_alert(alert_from_proto(request, self.max_field_bytes)))

    @translate
    def SubmitAlerts(self, request: alerts_pb2.AlertBatch, context: grpc.ServicerContext) -> alerts_pb2.AlertAcks:
        """One ack per alert, in order; the valid new ones committed together. Over the intake
        bound or while draining, the whole call fails (RESOURCE_EXHAUSTED, UNAVAILABLE)."""
        if len(request.alerts) > MAX_CALL_BATCH:
            raise InvalidArgument("alerts", f"at most {MAX_CALL_BATCH} alerts per call, got {len(request.alerts)}")
        acks, valid = self._checked(request.alerts)
        return alerts_pb2.AlertAcks(acks=self._submitted(acks, valid))

    def _checked(self, requests: Sequence[alerts_pb2.AlertRequest]) -> tuple[list[alerts_pb2.AlertAck | None],
                                                                             list[Alert]]:
        """A REJECTED ack for each invalid request (None for a valid one), and the valid alerts."""
        acks: list[alerts_pb2.AlertAck | None] = []
        valid: list[Alert] = []
        for request in requests:
            try:
                valid.append(alert_from_proto(request, self.max_field_bytes))
                acks.append(None)
            except InvalidArgument as error:
                acks.append(alerts_pb2.AlertAck(alert_id=request.alert_id, status=alerts_pb2.REJECTED,
                                                reason=str(error)))
        return acks, valid

    def _submitted(self, acks: list[alerts_pb2.AlertAck | None], valid: list[Alert]) -> list[alerts_pb2.AlertAck]:
        """The acks with the valid alerts' results filled in, submitted in one call. Raises
        Overloaded or Unavailable (nothing was recorded then)."""
        results = iter(self.engine.submit_alerts(valid) if valid else [])
        return [ack or _ack(next(results)) for ack in acks]

    @translate_stream
    def StreamAlerts(self, requests: Iterator[alerts_pb2.AlertRequest],
                     context: grpc.ServicerContext) -> Iterator[alerts_pb2.AlertAck]:
        """One ack per alert, in order. Alerts that arrive together are committed together.
        Bad alerts are REJECTED with the reason and the stream goes on; over the intake bound
        they are RATE_LIMITED (the client resends them). Any other error ends the stream with
        the status the unary call would answer (UNAVAILABLE while the server drains, INTERNAL
        for a bug)."""
        for batch in available_batches(requests, STREAM_BATCH, context.is_active):
            acks, valid = self._checked(batch)
            try:
                filled = self._submitted(acks, valid)
            except Overloaded as error:
                filled = [ack or alerts_pb2.AlertAck(alert_id=request.alert_id, status=alerts_pb2.RATE_LIMITED,
                                                     reason=str(error)) for ack, request in zip(acks, batch)]
            yield from filled
