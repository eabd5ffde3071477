"""The routing tree: which routes an incident matches (pure; compiled once, at load).

Alertmanager's semantics. Every incident enters at the root route, which matches everything.
Under a route whose matchers all hold, its routes are tried in order, and the first that
matches ends the search among its siblings unless it says ``continue = true``. A route none of
whose own routes matches is itself a match. A route without receivers inherits its parent's.

Matchers (actors/domain/matchers.py) test incident fields and labels:

========== ====================================================================================
severity   ``P0`` … ``P4``
type       ``infrastructure``, ``application``, ``security``, ``data``, ``performance``,
           ``availability``, ``compliance``
state      ``detected``, ``triaged``, ``investigating``, ``remediating``, ``resolved``,
           ``closed``: the state the event enters (``incident.resolved`` has ``resolved``)
source     the alert's source
service    the affected services: ``=`` and ``=~`` hold when one of them matches, ``!=`` and
           ``!~`` when none does (with no services, the one value is ``""``)
any other  the incident's label of that name (``""`` when it has none, as Alertmanager)
========== ====================================================================================

A field name shadows a label of the same name. An ``=``/``!=`` value of severity, type or
state must be one of its values (a typo is an error, not a route that never matches).

:func:`compile_tree` refuses, with a ConfigError naming the route's key, an unknown receiver,
a bad matcher or regular expression, and a route that can never be reached: its matchers (with
its ancestors') contradict each other, or an earlier sibling without ``continue`` matches every
incident it would.
"""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

from .errors import ConfigError
from .grouping import DEFAULT_INTERVAL_SECS, DEFAULT_REPEAT_SECS, DEFAULT_WAIT_SECS, Grouping
from .matchers import Matcher, MatcherError, Op, parse_matchers
from .models import Incident, IncidentState, IncidentType, Severity

if TYPE_CHECKING:
    from .config import RouteSettings

ROOT = "root"
#: Routes under one parent from which on their tests are dispatched on a value (see _Dispatch).
DISPATCH_AT = 4
#: What a route's name may be: it is one segment of a path such as ``root/team-db``.
ROUTE_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


class Kind(enum.Enum):
    CHOICE = "choice"  # one of a fixed set of values
    TEXT = "text"      # one free text
    LIST = "list"      # several free texts


@dataclass(frozen=True)
class Field:
    """One thing a matcher can test: how to read it from an incident, and its values' texts
    (CHOICE fields: text → value)."""

    name: str
    kind: Kind
    read: Callable[[Incident], Any]
    choices: Mapping[str, Any] | None = None


FIELDS: Mapping[str, Field] = {
    "severity": Field("severity", Kind.CHOICE, attrgetter("severity"), {s.name: s for s in Severity}),
    "type": Field("type", Kind.CHOICE, attrgetter("type"), {t.name.lower(): t for t in IncidentType}),
    "state": Field("state", Kind.CHOICE, attrgetter("state"), {s.name.lower(): s for s in IncidentState}),
    "source": Field("source", Kind.TEXT, attrgetter("source")),
    "service": Field("service", Kind.LIST, attrgetter("affected_services")),
}


def field_named(name: str) -> Field:
    """The incident field of that name, else the label of that name."""
    return FIELDS.get(name) or Field(name, Kind.TEXT, lambda incident: incident.labels.get(name, ""))


@dataclass(frozen=True, slots=True, eq=False)
class Route:
    """A compiled route: ``tests`` are (index into the facts, test of that fact; a false
    answer, None included, fails it). Equal only to itself, so it hashes at once."""

    path: str
    receivers: tuple[str, ...]
    tests: tuple[tuple[int, Callable[[Any], bool]], ...]
    continues: bool
    routes: tuple["Route", ...]
    #: Which of ``routes`` can match, by the value of one fact (many routes only).
    dispatch: "_Dispatch | None" = None
    #: How its events are grouped (actors/domain/grouping.py); None: one notification per event.
    grouping: Grouping | None = None

    def match(self, facts: tuple[Any, ...]) -> list["Route"]:
        """The routes the facts end at under this one (Alertmanager's order); [] if this one's
        matchers do not hold."""
        for index, test in self.tests:
            if not test(facts[index]):
                return []
        return self._below(facts)

    def _below(self, facts: tuple[Any, ...]) -> list["Route"]:
        """:meth:`match` once this route's own tests held. Each child's tests are tried here,
        so a child that does not match costs no call; with a dispatch, only the children that
        can match are tried at all."""
        found: list[Route] = []
        for route in self.routes if self.dispatch is None else self.dispatch.candidates(facts):
            for index, test in route.tests:
                if not test(facts[index]):
                    break
            else:
                found += route._below(facts)
                if not route.continues:
                    break
        return found or [self]

    def walk(self) -> Iterator["Route"]:
        yield self
        for route in self.routes:
            yield from route.walk()


@dataclass(frozen=True, slots=True)
class _Dispatch:
    """The routes of one parent that can match, by the value of the fact ``index``: those
    whose test on it admits that value (``service="db"``, ``severity=~"P0|P1"``), with, in
    their order, those that do not test it so. A route left out has a test the value fails,
    so a parent with 50 routes on 50 services tries two or three, not 50."""

    index: int
    listed: bool  # the fact is a list of values (the services): a route is tried for any of them
    by_value: Mapping[Any, tuple[Route, ...]]
    others: tuple[Route, ...]
    order: Mapping[Route, int]

    def candidates(self, facts: tuple[Any, ...]) -> tuple[Route, ...] | list[Route]:
        fact = facts[self.index]
        if not self.listed:
            return self.by_value.get(fact, self.others)
        if len(fact) < 2:  # no services: only routes not testing for one can match
            return self.by_value.get(fact[0], self.others) if fact else self.others
        found = {route for value in fact for route in self.by_value.get(value, self.others)}
        return sorted(found, key=self.order.__getitem__)


@dataclass(frozen=True)
class Tree:
    """The compiled tree and the facts it reads: ``fields[0]`` is always severity."""

    root: Route
    fields: tuple[Field, ...]

    def facts(self, incident: Incident) -> tuple[Any, ...]:
        """What the tree's answer depends on, read from the incident (a cache key)."""
        return tuple([field.read(incident) for field in self.fields])

    def match(self, facts: tuple[Any, ...]) -> list[Route]:
        return self.root.match(facts)


@dataclass(frozen=True)
class _Test:
    """A parsed matcher on its field; ``allowed`` is the set of values it admits (CHOICE)."""

    field: Field
    matcher: Matcher
    allowed: frozenset[Any] | None

    def check(self) -> Callable[[Any], Any]:
        """The test of one fact, as cheap as it gets: a set lookup, a string comparison or a
        regex search in C where the operator allows (a false answer fails the route)."""
        op, value = self.matcher.op, self.matcher.value
        if self.allowed is not None:
            return self.allowed.__contains__
        if self.field.kind is Kind.TEXT:
            return self.matcher.pattern.fullmatch if op is Op.REGEX else self.matcher.matches
        if op in (Op.EQUAL, Op.NOT_EQUAL):  # a list of services; none stands for the one value ""
            holds: Callable[[Any], bool] = (lambda values: value in values) if value else (lambda values: not values)
        else:
            positive = self.matcher.matches_positively
            holds = lambda values: any(positive(v) for v in values or ("",))  # noqa: E731
        return (lambda values: not holds(values)) if op.negative else holds


def compile_tree(settings: "RouteSettings | None", receivers: Sequence[str]) -> Tree:
    """The tree of ``[route]``; without one, a root sending everything to every receiver.
    Raises ConfigError naming the route's key (``route.routes[0].matchers[1]``) for what the
    module docstring lists."""
    compiler = _Compiler(receivers)
    if settings is None:
        return Tree(Route(ROOT, tuple(receivers), (), False, ()), compiler.fields())
    if settings.matchers:
        raise ConfigError("route.matchers", "the root route matches every incident: put matchers on its routes")
    if settings.continue_:
        raise ConfigError("route.continue", "the root route has no siblings to continue to")
    if settings.name not in (None, ROOT):
        raise ConfigError("route.name", f"the root route is always called {ROOT!r}")
    if not (settings.receiver or settings.receivers):
        raise ConfigError("route.receiver", "the root route needs a receiver (where what no route matches goes): "
                                            f"one of {', '.join(receivers)}")
    root, _ = compiler.route(settings, "route", ROOT, (), [], _Timing())
    return Tree(root, compiler.fields())


class _Compiler:
    def __init__(self, receivers: Sequence[str]) -> None:
        self.receivers = receivers
        self._fields: dict[str, int] = {"severity": 0}

    def fields(self) -> tuple[Field, ...]:
        return tuple(field_named(name) for name in self._fields)

    def route(self, settings: "RouteSettings", key: str, path: str, inherited: tuple[str, ...],
              above: list[_Test], timing: "_Timing") -> tuple[Route, list[_Test]]:
        """The compiled route and its own tests; checks it and its routes."""
        timing = timing.under(settings, key)
        own = self._tests(settings.matchers, key, path)
        tests = above + own
        _check_satisfiable(tests, key, path)
        receivers = self._receivers(settings, key, path) or inherited
        children: list[tuple[Route, list[_Test]]] = []
        names: set[str] = set()
        for index, child in enumerate(settings.routes):
            child_key = f"{key}.routes[{index}]"
            name = child.name if child.name is not None else str(index)
            if not ROUTE_NAME.fullmatch(name):
                raise ConfigError(f"{child_key}.name", "must be 1 to 64 letters, digits or _.:- "
                                                       f"(it is one segment of the route's path), got {name!r}")
            if name in names:
                raise ConfigError(f"{child_key}.name", f"another route under {path!r} is called {name!r} too")
            names.add(name)
            compiled, child_own = self.route(child, child_key, f"{path}/{name}", receivers, tests, timing)
            for earlier, earlier_own in children:
                if not earlier.continues and _covers(earlier_own, tests + child_own):
                    raise ConfigError(child_key, f"route {compiled.path!r} can never be reached: the route before "
                                                 f"it, {earlier.path!r}, matches every incident it would and does "
                                                 "not continue (continue = true)")
            children.append((compiled, child_own))
        route = Route(path, receivers, tuple((self._fields[t.field.name], t.check()) for t in own),
                      settings.continue_, tuple(c[0] for c in children), self._dispatch(children),
                      timing.grouping())
        return route, own

    def _dispatch(self, children: list[tuple[Route, list[_Test]]]) -> _Dispatch | None:
        """A dispatch on the field most of the routes test for given values, when there are
        :data:`DISPATCH_AT` or more of those; else None (trying each route is as cheap)."""
        keyed = [{t.field.name: _values(t) for t in reversed(tests) if _values(t) is not None}  # the first
                 for _, tests in children]                                                      # test wins
        counts: dict[str, int] = {}
        for keys in keyed:
            for name in keys:
                counts[name] = counts.get(name, 0) + 1
        name = max(counts, key=counts.__getitem__, default=None)
        if name is None or counts[name] < DISPATCH_AT:
            return None
        order = {route: position for position, (route, _) in enumerate(children)}
        others = tuple(route for (route, _), keys in zip(children, keyed) if name not in keys)
        listed: dict[Any, list[Route]] = {}
        for (route, _), keys in zip(children, keyed):
            for value in keys.get(name, ()):
                listed.setdefault(value, []).append(route)
        by_value = {value: tuple(sorted((*routes, *others), key=order.__getitem__)) for value, routes in listed.items()}
        return _Dispatch(self._fields[name], field_named(name).kind is Kind.LIST, by_value, others, order)

    def _receivers(self, settings: "RouteSettings", key: str, path: str) -> tuple[str, ...]:
        if settings.receiver and settings.receivers:
            raise ConfigError(f"{key}.receivers", "give receiver or receivers, not both")
        names = (settings.receiver,) if settings.receiver else settings.receivers
        for name in names:
            if name not in self.receivers:
                raise ConfigError(f"{key}.receiver" if settings.receiver else f"{key}.receivers",
                                  f"route {path!r} names receiver {name!r}, which is not defined; the receivers "
                                  f"are {', '.join(self.receivers)} ([receivers.<name>], and 'default' for "
                                  "the [notifications] destinations)")
        return tuple(dict.fromkeys(names))

    def _tests(self, texts: Sequence[str], key: str, path: str) -> list[_Test]:
        tests = []
        for index, text in enumerate(texts):
            try:
                matchers = parse_matchers(text)
            except MatcherError as error:
                raise ConfigError(f"{key}.matchers[{index}]", f"route {path!r}: {error}") from None
            for matcher in matchers:
                field = field_named(matcher.name)
                self._fields.setdefault(field.name, len(self._fields))
                tests.append(_Test(field, matcher, _allowed(field, matcher, f"{key}.matchers[{index}]",
                                                            f"route {path!r}")))
        return tests


@dataclass(frozen=True)
class _Timing:
    """A route's grouping settings, each its own or inherited from its parent's."""

    by: tuple[str, ...] = ()
    wait_secs: float = DEFAULT_WAIT_SECS
    interval_secs: float = DEFAULT_INTERVAL_SECS
    repeat_secs: float = DEFAULT_REPEAT_SECS

    def under(self, settings: "RouteSettings", key: str) -> "_Timing":
        """This timing as ``settings`` overrides it; ConfigError for a negative wait, an
        interval that is not positive, or a ``group_by`` name given twice or empty."""
        for name in ("group_interval_secs", "repeat_interval_secs"):
            value = getattr(settings, name)
            if value is not None and value <= 0:
                raise ConfigError(f"{key}.{name}", f"must be greater than 0, got {value!r}")
        if settings.group_wait_secs is not None and settings.group_wait_secs < 0:
            raise ConfigError(f"{key}.group_wait_secs", f"must not be negative, got {settings.group_wait_secs!r}")
        by = self.by if settings.group_by is None else settings.group_by
        if len(set(by)) != len(by) or "" in by:
            raise ConfigError(f"{key}.group_by", f"names each field or label once, got {list(by)!r}")
        return _Timing(by, self.wait_secs if settings.group_wait_secs is None else settings.group_wait_secs,
                       self.interval_secs if settings.group_interval_secs is None else settings.group_interval_secs,
                       self.repeat_secs if settings.repeat_interval_secs is None else settings.repeat_interval_secs)

    def grouping(self) -> Grouping | None:
        if not self.by:
            return None
        return Grouping(self.by, tuple(field_named(name).read for name in self.by), self.wait_secs,
                        self.interval_secs, self.repeat_secs)


def _values(test: _Test) -> frozenset[Any] | None:
    """The values a test admits when they are few and known (a choice, or ``=`` a value), else
    None. For the services, ``=`` holds when one of them is the value (never for none)."""
    if test.allowed is not None:
        return test.allowed
    if test.matcher.op is Op.EQUAL and (test.field.kind is Kind.TEXT or test.matcher.value):
        return frozenset((test.matcher.value,))
    return None


def fact_test(matcher: Matcher, key: str, owner: str) -> tuple[Field, Callable[[Any], Any]]:
    """A matcher as the incident field (or label) it reads and the test of that fact, as a
    route tests it (silences and inhibit rules match incidents so too). ConfigError naming
    ``key`` and ``owner`` ("silence", "route 'root/db'") for a choice that is not one."""
    field = field_named(matcher.name)
    return field, _Test(field, matcher, _allowed(field, matcher, key, owner)).check()


def _allowed(field: Field, matcher: Matcher, key: str, owner: str) -> frozenset[Any] | None:
    """For a CHOICE field, the values the matcher admits; ConfigError for ``=``/``!=`` with a
    value that is not one of the field's."""
    if field.choices is None:
        return None
    if matcher.op in (Op.EQUAL, Op.NOT_EQUAL) and matcher.value not in field.choices:
        raise ConfigError(key, f"{owner}: {matcher}: {matcher.value!r} is not a {field.name}; "
                               f"one of {', '.join(field.choices)}")
    return frozenset(value for text, value in field.choices.items() if matcher.matches(text))


def _check_satisfiable(tests: list[_Test], key: str, path: str) -> None:
    """ConfigError when no incident can satisfy every test (a route's with its ancestors')."""
    by_field: dict[str, list[_Test]] = {}
    for test in tests:
        by_field.setdefault(test.field.name, []).append(test)
    for name, group in by_field.items():
        matchers = ", ".join(str(t.matcher) for t in group)
        if group[0].field.choices is not None:
            if not frozenset.intersection(*(t.allowed for t in group if t.allowed is not None)):
                raise ConfigError(key, f"route {path!r} can never match: no {name} satisfies {matchers}")
            continue
        for value in (t.matcher.value for t in group if t.matcher.op is Op.EQUAL):
            if group[0].field.kind is Kind.TEXT:
                refused = [t.matcher for t in group if not t.matcher.matches(value)]
            else:  # one of the services is value: only a matcher refusing every such service contradicts
                refused = [t.matcher for t in group if t.matcher.op.negative and t.matcher.matches_positively(value)]
            if refused:
                raise ConfigError(key, f"route {path!r} can never match: {name} cannot be {value!r} and also "
                                       f"satisfy {', '.join(map(str, refused))}")


def _covers(earlier: list[_Test], later: list[_Test]) -> bool:
    """True when every incident that satisfies ``later`` also satisfies ``earlier``: each of
    the earlier tests is one of the later ones, or (CHOICE) admits every value they leave."""
    for test in earlier:
        if test.allowed is not None:
            left = frozenset(test.field.choices.values())  # type: ignore[union-attr]
            for other in later:
                if other.field.name == test.field.name and other.allowed is not None:
                    left &= other.allowed
            if not left <= test.allowed:
                return False
        elif not any(other.field.name == test.field.name and other.matcher == test.matcher for other in later):
            return False
    return True
