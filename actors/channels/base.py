"""The contract every channel implements, and the routing receivers channels serve.

A channel turns a :class:`Delivery` into an :class:`Outcome`: it renders the payload with
its pure formatter (``actors.formatting.<name>``), sends it with its transport, and
classifies what happened. Expected failures (timeouts, refusals, error statuses) are
*outcomes*, never exceptions: an exception escaping ``deliver`` is a bug, and crashes the
sender actor so its supervisor replaces it.
"""
from __future__ import annotations

from typing import Callable, Mapping, Protocol, runtime_checkable

from ..domain.config import NotificationSettings
from ..domain.models import Delivery, Outcome
from ..domain.routing import Receiver


class Channel(Protocol):
    """One configured destination kind (e.g. all webhooks) able to deliver notifications."""

    #: Channel name as used in configuration and the store: "webhook", "slack", …
    name: str
    #: Destinations this channel serves; each becomes a routing receiver.
    destinations: tuple[str, ...]
    #: True when a delivery needs the per-incident channel state (a Slack thread's root, a
    #: PagerDuty trigger, an email thread's Message-ID): the sender then reads it from the
    #: store into ``delivery.state`` just before each send. False skips that store read.
    needs_state: bool

    def deliver(self, delivery: Delivery) -> Outcome:
        """Send one delivery and say how it went; must not raise for expected failures."""
        ...

    def open(self) -> None:
        """Get ready to send (e.g. start a worker process); called by the sender that owns the
        instance when it starts. An exception here fails that sender's start."""
        ...

    def close(self) -> None:
        """Release connections; called once when the engine stops."""
        ...


@runtime_checkable
class PipelinedChannel(Channel, Protocol):
    """A channel that can start a delivery and answer later, so its sender keeps several in
    flight (the webhook channel with worker processes)."""

    def deliver_later(self, delivery: Delivery, done: Callable[[Outcome | Exception], None]) -> Outcome | None:
        """Start one delivery. Either its outcome now (when it could not be pipelined; ``done``
        is then not called), or None and, exactly once, later and from another thread,
        ``done`` with its outcome or with the exception that ended the transport (the sender
        raises it: a supervised crash). What was started goes out by the next :meth:`flush`."""
        ...

    def flush(self) -> None:
        """Send off every delivery started since the last flush (the sender calls it once per
        message it handles, so many go out in one write)."""
        ...


def receivers_for(channels: Mapping[str, Channel], settings: NotificationSettings) -> tuple[Receiver, ...]:
    """Every (channel, destination) with the channel's minimum severity."""
    return tuple(
        Receiver(channel=name, destination=destination,
                 min_severity=settings.tuning(name).severity_floor)
        for name, channel in channels.items()
        for destination in channel.destinations
    )
