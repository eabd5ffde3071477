"""admin.AdminService: fault injection into single actors and transports, actor inspection.

Registered only when ``[server] admin_enabled = true`` (otherwise clients get UNIMPLEMENTED):
it lets a caller crash actors and fail deliveries, so it is for test and chaos setups.

Names are checked before anything is planned: an actor that is not in the tree or a channel
that is not enabled is NOT_FOUND (the message lists the valid names); a bad kind, code,
count or delay is INVALID_ARGUMENT naming the field. Faults go to worker actors (router,
processor, senders); a pool supervisor can only be stopped (its supervisor then restarts it
with fresh senders).
"""
from __future__ import annotations

import threading

import grpc

from protos import admin_pb2, admin_pb2_grpc

from ..domain.errors import InvalidArgument, NotFound, Unavailable
from ..domain.limits import MAX_NAME, text
from ..engine import Engine, TransportFault
from .errors import translate

MAX_TIMES = 10_000
MAX_DELAY_MS = 60_000
STOP_WAIT_SECS = 10.0
SUPERVISOR_PREFIX = "pool:"

_TRANSPORT_KINDS = {
    admin_pb2.TIMEOUT: "timeout",
    admin_pb2.CONNECTION_REFUSED: "connection_refused",
    admin_pb2.HTTP_STATUS: "http_status",
    admin_pb2.SMTP_CODE: "smtp_code",
    admin_pb2.SLOW: "slow",
}


def _kind(enum_type: object, number: int, allowed: object) -> int:
    """The kind's number if it is one of ``allowed``; InvalidArgument naming ``kind`` otherwise."""
    names = ", ".join(enum_type.Name(n) for n in allowed)  # type: ignore[attr-defined]
    if number == 0:
        raise InvalidArgument("kind", f"is required; allowed: {names}")
    if number not in allowed:  # type: ignore[operator]
        raise InvalidArgument("kind", f"has unknown value {number}; allowed: {names}")
    return number


def _times(number: int) -> int:
    if number > MAX_TIMES:
        raise InvalidArgument("times", f"must be at most {MAX_TIMES}")
    return number or 1


def _delay_ms(number: int, required: bool) -> int:
    if number > MAX_DELAY_MS:
        raise InvalidArgument("delay_ms", f"must be at most {MAX_DELAY_MS}")
    if required and number == 0:
        raise InvalidArgument("delay_ms", "is required for this kind (1-60000)")
    return number


class AdminServicer(admin_pb2_grpc.AdminServiceServicer):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._stopped = 0

    # -- names -------------------------------------------------------------------------
    def _actor(self, name: str) -> str:
        name = text("actor", name, MAX_NAME, required=True)
        known = [status.name for status in self.engine.actor_statuses()]
        if name not in known:
            raise NotFound(f"actor {name!r} not found; actors: {', '.join(known) or 'none'}")
        return name

    def _channel(self, name: str) -> str:
        name = text("channel", name, MAX_NAME, required=True)
        enabled = sorted({receiver.channel for receiver in self.engine.receivers})
        if name not in enabled:
            raise NotFound(f"channel {name!r} is not enabled; enabled: {', '.join(enabled) or 'none'}")
        return name

    # -- actor faults ------------------------------------------------------------------
    @translate
    def InjectActorFault(self, request: admin_pb2.InjectActorFaultRequest,
                         context: grpc.ServicerContext) -> admin_pb2.FaultInjected:
        kind = _kind(admin_pb2.ActorFaultKind, request.kind, admin_pb2.ActorFaultKind.values()[1:])
        actor = self._actor(request.actor)
        if kind == admin_pb2.STOP:
            return admin_pb2.FaultInjected(target=actor, detail=self._stop(actor))
        if actor.startswith(SUPERVISOR_PREFIX):
            raise InvalidArgument("actor", f"{actor!r} is a supervisor; only STOP applies to it "
                                           "(inject crashes and delays into its senders)")
        faults = self.engine.faults
        if kind == admin_pb2.DELAY_MESSAGES:
            delay = _delay_ms(request.delay_ms, required=False)
            faults.delay_messages(actor, delay)
            detail = f"waits {delay} ms before each message" if delay else "no longer delays its messages"
        elif kind == admin_pb2.CRASH_ON_START:
            times = _times(request.times)
            faults.crash_on_start(actor, times)
            detail = f"fails its next {times} start(s)"
        else:
            times = _times(request.times)
            faults.crash_next_message(actor, times)
            detail = f"crashes on its next {times} message(s)"
        return admin_pb2.FaultInjected(target=actor, detail=detail)

    def _stop(self, actor: str) -> str:
        """Stop the current instance from outside; it handles what is already in its mailbox
        first. Its supervisor restarts it, as after any exit."""
        ref = self.engine.directory.lookup(actor)
        if ref is None or not ref.is_alive():
            raise Unavailable(f"actor {actor!r} is not running (being restarted); retry")
        ref.stop(block=False)
        with self._lock:
            self._stopped += 1
        if ref.actor_stopped.wait(STOP_WAIT_SECS):
            return "stopped; its supervisor restarts it"
        return f"stop requested; still busy after {STOP_WAIT_SECS:g}s with earlier messages"

    # -- transport faults --------------------------------------------------------------
    @translate
    def InjectTransportFault(self, request: admin_pb2.InjectTransportFaultRequest,
                             context: grpc.ServicerContext) -> admin_pb2.FaultInjected:
        number = _kind(admin_pb2.TransportFaultKind, request.kind, list(_TRANSPORT_KINDS))
        kind = _TRANSPORT_KINDS[number]
        channel = self._channel(request.channel)
        if kind == "http_status" and channel == "email":
            raise InvalidArgument("kind", "HTTP_STATUS applies to HTTP channels; use SMTP_CODE for email")
        if kind == "smtp_code" and channel != "email":
            raise InvalidArgument("kind", f"SMTP_CODE applies to email only; use HTTP_STATUS for {channel}")
        if request.code and kind not in ("http_status", "smtp_code"):
            raise InvalidArgument("code", "applies to HTTP_STATUS and SMTP_CODE only")
        retry_after = text("retry_after", request.retry_after, 64)
        if retry_after and kind != "http_status":
            raise InvalidArgument("retry_after", "applies to HTTP_STATUS only")
        if request.delay_ms and kind != "slow":
            raise InvalidArgument("delay_ms", "applies to SLOW only")
        delay = _delay_ms(request.delay_ms, required=kind == "slow")
        times = _times(request.times)
        try:
            fault = TransportFault(kind, request.code, float(delay), retry_after or None)
        except ValueError as error:
            raise InvalidArgument("code", str(error)) from None
        self.engine.channel_faults.fail_next(channel, times, fault)
        detail = admin_pb2.TransportFaultKind.Name(number) + (f" {request.code}" if request.code else "")
        return admin_pb2.FaultInjected(target=channel, detail=f"next {times} send(s): {detail}")

    # -- clearing and inspection -------------------------------------------------------
    @translate
    def ClearFaults(self, request: admin_pb2.ClearFaultsRequest,
                    context: grpc.ServicerContext) -> admin_pb2.FaultsCleared:
        actor, channel = request.actor.strip(), request.channel.strip()
        if not actor and not channel:
            self.engine.faults.clear()
            self.engine.channel_faults.clear()
        if actor:
            self.engine.faults.clear(self._actor(actor))
        if channel:
            self.engine.channel_faults.clear(self._channel(channel))
        return admin_pb2.FaultsCleared()

    @translate
    def ListActors(self, request: admin_pb2.ListActorsRequest, context: grpc.ServicerContext) -> admin_pb2.ActorList:
        return admin_pb2.ActorList(actors=[
            admin_pb2.ActorStatus(name=s.name, alive=s.alive, restarts=s.restarts, last_failure=s.last_failure,
                                  fenced=s.fenced)
            for s in self.engine.actor_statuses()])

    @translate
    def GetFaultStats(self, request: admin_pb2.FaultStatsRequest,
                      context: grpc.ServicerContext) -> admin_pb2.FaultStats:
        with self._lock:
            stopped = self._stopped
        return admin_pb2.FaultStats(injected_crashes=self.engine.faults.injected_crashes,
                                    injected_transport_faults=self.engine.channel_faults.injected,
                                    actors_stopped=stopped)
