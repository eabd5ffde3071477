"""Routing: which destinations owe a notification for an incident event, and why the others
do not (pure).

:class:`Routing` joins the routing tree (actors/domain/routes.py), the receivers' destinations
(actors/domain/destinations.py) and each channel's floor (``[notifications.<channel>]
min_severity``). For an incident it answers :class:`Routed`: the destinations owed a
notification, and a :class:`Decision` for every configured destination — the route that
reached it, or why it hears nothing. That explain record is stored with the event (one JSON
text) and shown by GetNotification.

Speed: the answer depends only on the facts the tree reads (severity, and the fields and
labels its matchers name), so it is remembered per distinct facts, up to :data:`CACHED` of
them (the oldest is dropped first): an event then costs reading those facts and one dict
lookup, whatever the size of the tree. Facts seen for the first time (a label unique to each
alert, say) walk the tree, and the answer is then remembered per (severity, routes matched),
which a tree has few of: the decisions and their record are never built twice. A walk tries
only the routes that can match where a parent has many (actors/domain/routes.py _Dispatch).

A silence or an inhibition (decided by the processor, actors/domain/silences.py and
inhibition.py) turns each ``routed`` decision into ``silenced`` or ``inhibited``
(:meth:`Routed.held`): ``by`` is the silence's id or the inhibiting incident's, ``route`` the
route that would have sent it; :attr:`Decision.reason` says each in words.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from .config import CHANNELS, DEFAULT_RECEIVER, Settings
from .destinations import channel_targets
from .grouping import GROUPED_CHANNELS, Grouping
from .jsontext import ascii_compact, parse
from .models import Incident, Severity
from .routes import Route, Tree, compile_tree

#: Distinct facts whose answer is kept (each answer is a few small tuples).
CACHED = 4096


@dataclass(frozen=True, slots=True)
class Receiver:
    """One destination: a channel and a receiver's name (the delivery's destination), with
    the channel's floor (P0 is the most severe and has the smallest number)."""

    channel: str
    destination: str
    min_severity: Severity = Severity.P4


class Verdict(str, enum.Enum):
    ROUTED = "routed"
    NO_ROUTE = "no_route"
    BELOW_MIN_SEVERITY = "below_min_severity"
    SILENCED = "silenced"
    INHIBITED = "inhibited"


@dataclass(frozen=True, slots=True)
class Decision:
    """What routing decided for one destination about one event. ``route`` is the path of the
    route that reached the receiver (``root/team-db``); ``by`` what stopped it (the floor, the
    silence's id, the inhibiting incident's id); ``rule`` the inhibit rule (``inhibit_rules[0]``)."""

    channel: str
    receiver: str
    verdict: Verdict
    route: str = ""
    by: str = ""
    rule: str = ""

    @property
    def reason(self) -> str:
        if self.verdict is Verdict.ROUTED:
            return f"route {self.route}"
        if self.verdict is Verdict.NO_ROUTE:
            return "no route matched"
        if self.verdict is Verdict.SILENCED:
            return f"route {self.route} matched, but silence {self.by} held it"
        if self.verdict is Verdict.INHIBITED:
            return f"route {self.route} matched, but active incident {self.by} inhibited it ({self.rule})"
        return (f"route {self.route} matched, but the incident is less severe than "
                f"[notifications.{self.channel}] min_severity {self.by}")

    def to_dict(self) -> dict[str, str]:
        data = {"channel": self.channel, "receiver": self.receiver, "verdict": self.verdict.value}
        if self.route:
            data["route"] = self.route
        if self.by:
            data["by"] = self.by
        if self.rule:
            data["rule"] = self.rule
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Decision":
        """Raises KeyError or ValueError for anything :meth:`to_dict` did not write."""
        return cls(data["channel"], data["receiver"], Verdict(data["verdict"]), data.get("route", ""),
                   data.get("by", ""), data.get("rule", ""))


def record_of(decisions: Iterable[Decision]) -> str:
    """The decisions as the JSON text stored with their event ("" when there are none)."""
    items = [decision.to_dict() for decision in decisions]
    return ascii_compact(items) if items else ""


def decisions_in(record: str | None) -> tuple[Decision, ...]:
    """The decisions of a stored record (none for an empty one, e.g. an event stored before
    routing was recorded). Raises ValueError for text :func:`record_of` did not write."""
    if not record:
        return ()
    try:
        return tuple(Decision.from_dict(item) for item in parse(record))
    except (KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"not a routing record: {error}") from None


@dataclass(frozen=True, slots=True)
class Routed:
    """The answer for one event: who is owed a notification of its own, every decision, and
    their record; ``grouped`` are the destinations owed a share of a group notification
    instead, with the path and grouping of the route that reached them."""

    owed: tuple[Receiver, ...]
    decisions: tuple[Decision, ...]
    record: str
    grouped: tuple[tuple[Receiver, str, Grouping], ...] = ()

    def held(self, verdict: Verdict, by: str, rule: str = "") -> "Routed":
        """This answer with nobody owed: each routed decision becomes ``verdict`` (silenced or
        inhibited) by ``by`` (under the inhibit rule ``rule``)."""
        decisions = tuple(Decision(d.channel, d.receiver, verdict, d.route, by, rule)
                          if d.verdict is Verdict.ROUTED else d for d in self.decisions)
        return Routed((), decisions, record_of(decisions))


class Routing:
    """The compiled routing of a configuration. :meth:`route` is for one thread (the processor's)."""

    def __init__(self, tree: Tree, destinations: tuple[Receiver, ...]) -> None:
        self.tree = tree
        #: Every destination, receiver by receiver in configuration order (``default`` first).
        self.destinations = destinations
        self._by_facts: dict[tuple[Any, ...], Routed] = {}
        self._by_routes: dict[tuple[Any, ...], Routed] = {}

    @classmethod
    def of(cls, settings: Settings) -> "Routing":
        """The routing of validated settings (the tree compiles; ConfigError if it does not)."""
        n = settings.notifications
        targets = {channel: channel_targets(n, settings.receivers, channel)
                   for channel in CHANNELS if n.enabled(channel)}
        destinations = tuple(Receiver(channel, name, n.tuning(channel).severity_floor)
                             for name in settings.receiver_names for channel in targets if name in targets[channel])
        return cls(compile_tree(settings.route, settings.receiver_names), destinations)

    @property
    def reads(self) -> tuple[str, ...]:
        """The incident fields and labels the answer depends on (severity first)."""
        return tuple(field.name for field in self.tree.fields)

    def route(self, incident: Incident) -> Routed:
        facts = self.tree.facts(incident)
        routed = self._by_facts.get(facts)
        if routed is None:
            routes = (facts[0], *self.tree.match(facts))
            routed = self._by_routes.get(routes)
            if routed is None:
                routed = _remember(self._by_routes, routes, self._decide(routes))
            _remember(self._by_facts, facts, routed)
        return routed

    def _decide(self, routes: tuple[Any, ...]) -> Routed:
        """The answer for an incident of severity ``routes[0]`` ending at ``routes[1:]``."""
        severity = routes[0]
        reached: dict[str, Route] = {}  # receiver → the first route that reached it
        for route in routes[1:]:
            for name in route.receivers:
                reached.setdefault(name, route)
        decisions = []
        grouped = []
        for destination in self.destinations:
            route = reached.get(destination.destination)
            path = route.path if route is not None else ""
            if route is None:
                decisions.append(Decision(destination.channel, destination.destination, Verdict.NO_ROUTE))
            elif severity <= destination.min_severity:
                decisions.append(Decision(destination.channel, destination.destination, Verdict.ROUTED, path))
                if route.grouping is not None and destination.channel in GROUPED_CHANNELS:
                    grouped.append((destination, path, route.grouping))
            else:
                decisions.append(Decision(destination.channel, destination.destination, Verdict.BELOW_MIN_SEVERITY,
                                          path, destination.min_severity.name))
        in_groups = {destination for destination, _, _ in grouped}
        owed = tuple(d for d, decision in zip(self.destinations, decisions)
                     if decision.verdict is Verdict.ROUTED and d not in in_groups)
        return Routed(owed, tuple(decisions), record_of(decisions), tuple(grouped))


def _remember(cache: dict[tuple[Any, ...], Routed], key: tuple[Any, ...], routed: Routed) -> Routed:
    """Keep ``routed`` under ``key``, dropping the oldest answer when the cache is full."""
    if len(cache) >= CACHED:
        del cache[next(iter(cache))]
    cache[key] = routed
    return routed


def routing_warnings(settings: Settings) -> list[str]:
    """With a ``[route]``: a sentence for each receiver with destinations that no route names
    (it would hear about nothing)."""
    if settings.route is None:
        return []
    routing = Routing.of(settings)
    named = {name for route in routing.tree.root.walk() for name in route.receivers}
    with_destinations = {destination.destination for destination in routing.destinations}
    return [f"receiver {name!r} is named by no route, so it hears about nothing"
            + (" (it is the [notifications] destinations)" if name == DEFAULT_RECEIVER else "")
            for name in settings.receiver_names if name in with_destinations and name not in named]
