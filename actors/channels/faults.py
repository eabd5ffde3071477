"""Transport fault injection: make a channel's next sends fail the way a real peer would.

:class:`ChannelFaults` holds, per channel, a queue of planned failures; a sender consults it
before each send, only while some plan exists (:attr:`ChannelFaults.armed`). The injected outcome is what
the real classifier makes of that failure (an HTTP status goes through the shared HTTP
classifier, an SMTP code through the email classifier), so retry, dead-letter and
Retry-After handling are exercised exactly as in production.
"""
from __future__ import annotations

import smtplib
import threading
from collections import deque
from dataclasses import dataclass

from ..domain.models import Delivery, Outcome
from .base import Channel
from .email import classify_error
from .http import classify_status, connection_error, timed_out

KINDS = ("timeout", "connection_refused", "http_status", "smtp_code", "slow")


@dataclass(frozen=True, slots=True)
class TransportFault:
    """``kind`` is one of KINDS; ``code`` is the HTTP status or SMTP reply code; ``delay_ms``
    is how long a ``slow`` send stalls before going through for real."""

    kind: str
    code: int = 0
    delay_ms: float = 0.0
    retry_after: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.kind == "http_status" and not 100 <= self.code <= 599:
            raise ValueError("code must be an HTTP status (100-599)")
        if self.kind == "smtp_code" and not 200 <= self.code <= 599:
            raise ValueError("code must be an SMTP reply code (200-599)")


class ChannelFaults:
    """Thread-safe plans: ``fail_next(channel, n, fault)`` queues n faults for that channel.

    :attr:`armed` is a plain attribute read without the lock, so a sender pays nothing per send
    while no fault is planned."""

    def __init__(self) -> None:
        self._plans: dict[str, deque[TransportFault]] = {}
        self._changed = threading.Condition()
        self._clears = 0
        self.injected = 0
        self.armed = False

    def fail_next(self, channel: str, times: int, fault: TransportFault) -> None:
        with self._changed:
            self._plans.setdefault(channel, deque()).extend([fault] * times)
            self.armed = True

    def clear(self, channel: str | None = None) -> None:
        """Drop the plans (all, or one channel's); a slow send stalled right now goes on at once."""
        with self._changed:
            if channel is None:
                self._plans.clear()
            else:
                self._plans.pop(channel, None)
            self.armed = any(self._plans.values())
            self._clears += 1
            self._changed.notify_all()

    def take(self, channel: str) -> TransportFault | None:
        with self._changed:
            plan = self._plans.get(channel)
            if not plan:
                return None
            self.injected += 1
            fault = plan.popleft()
            self.armed = any(self._plans.values())
            return fault

    def stall(self, seconds: float) -> None:
        """Wait ``seconds``, or less if the faults are cleared meanwhile."""
        with self._changed:
            clears = self._clears
            self._changed.wait_for(lambda: self._clears != clears, timeout=seconds)


def injected_delivery(fault: TransportFault, channel: Channel, delivery: Delivery,
                      faults: ChannelFaults) -> Outcome:
    """What a send with this fault comes to: a slow one stalls, then really goes out; any
    other is the outcome a real transport reports for that failure."""
    if fault.kind == "slow":
        faults.stall(fault.delay_ms / 1000.0)
        return channel.deliver(delivery)
    return injected_outcome(fault)


def injected_outcome(fault: TransportFault) -> Outcome:
    """The outcome a real transport reports for this failure."""
    if fault.kind == "timeout":
        return timed_out("injected")
    if fault.kind == "connection_refused":
        return connection_error("injected: connection refused")
    if fault.kind == "http_status":
        return classify_status(fault.code, "injected", fault.retry_after)
    return classify_error(smtplib.SMTPResponseException(fault.code, b"injected"))
