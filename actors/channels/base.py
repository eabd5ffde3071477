"""The contract every channel implements, and the one channel of several destinations.

A channel turns a :class:`Delivery` into an :class:`Outcome`: it renders the payload with
its pure formatter (``actors.formatting.<name>``), sends it with its transport, and
classifies what happened. Expected failures (timeouts, refusals, error statuses) are
*outcomes*, never exceptions: an exception escaping ``deliver`` is a bug, and crashes the
sender actor so its supervisor replaces it.
"""
from __future__ import annotations

from typing import Callable, Mapping, Protocol, runtime_checkable

from ..domain.channel_setup import DESTINATION_KEYS
from ..domain.config import DEFAULT_RECEIVER
from ..domain.models import Delivery, Outcome


class Channel(Protocol):
    """One configured destination kind (e.g. all webhooks) able to deliver notifications."""

    #: Channel name as used in configuration and the store: "webhook", "slack", …
    name: str
    #: Destinations this channel serves: the names of the receivers it delivers for.
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


def unconfigured(channel: str, destination: str) -> Outcome:
    """The failed outcome of a delivery to a destination the channel does not have (it was
    removed from the configuration, or never had one), naming what would give it one."""
    where = DESTINATION_KEYS[channel] if destination == DEFAULT_RECEIVER else \
        f"[receivers.{destination}.{channel}]"
    return Outcome.failed(f"{channel} destination {destination!r} is not configured (set {where})")


class ByDestination:
    """One channel serving several destinations, each through an instance of its own (one
    per receiver: its Slack webhook, its recipients, its integration key); a delivery goes to
    the instance of its destination."""

    def __init__(self, name: str, members: Mapping[str, Channel]) -> None:
        self.name = name
        self.destinations: tuple[str, ...] = tuple(members)
        self.needs_state = any(member.needs_state for member in members.values())
        self._members = dict(members)

    def deliver(self, delivery: Delivery) -> Outcome:
        """The outcome of its destination's instance; failed for a destination it does not have."""
        member = self._members.get(delivery.destination)
        return unconfigured(self.name, delivery.destination) if member is None else member.deliver(delivery)

    def open(self) -> None:
        for member in self._members.values():
            member.open()

    def close(self) -> None:
        for member in self._members.values():
            member.close()


def by_destination(name: str, members: Mapping[str, Channel]) -> Channel:
    """The channel serving ``members`` (destination → instance): the only instance itself
    when there is one, so a channel of one destination costs nothing more."""
    if len(members) == 1:
        return next(iter(members.values()))
    return ByDestination(name, members)
