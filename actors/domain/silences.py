"""Silences: matchers and a time window during which an incident's notifications are recorded
as ``silenced`` instead of sent (pure).

A silence matches an incident when every one of its matchers holds, read as a route reads
them (actors/domain/routes.py: severity, type, state, source, service, else a label). It
applies from ``starts_at`` (a future start makes it a maintenance window) until ``ends_at``.
As in Alertmanager, at least one matcher must not match the empty value, so that a silence
never matches every incident by accident.

:class:`ActiveSilences` holds the silences not yet ended, indexed by the fact each one's
first ``=`` matcher names, so that finding the silence of an incident tries only the few
silences whose key it has (plus those without an ``=`` matcher): microseconds with a thousand.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Callable, Iterable, Sequence

from .errors import ConfigError, InvalidArgument
from .matchers import Matcher, MatcherError, Op, parse_matchers
from .models import Incident
from .routes import Field, Kind, fact_test

#: Most matchers one silence may have, and longest comment and author.
MAX_MATCHERS = 32
MAX_COMMENT = 4096


@dataclass(frozen=True, slots=True)
class Silence:
    """One silence. ``released`` is set once its end has been acted on (the incidents it held
    that are still open were notified), so a restart does not act on it twice."""

    id: str
    matchers: tuple[str, ...]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str
    created_at: datetime
    updated_at: datetime
    released: bool = False

    def active_at(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def state_at(self, now: datetime) -> str:
        """``pending`` (not started), ``active`` or ``expired``."""
        return "pending" if now < self.starts_at else "active" if now < self.ends_at else "expired"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "matchers": list(self.matchers), "starts_at": self.starts_at.timestamp(),
                "ends_at": self.ends_at.timestamp(), "created_by": self.created_by, "comment": self.comment}


def checked_matchers(texts: Sequence[str]) -> tuple[str, ...]:
    """The matchers of ``texts`` (each a matcher string, maybe of several), one per item in
    canonical form. InvalidArgument naming ``matchers`` for a bad one, none, too many, or
    when every one of them matches the empty value."""
    try:
        matchers = [matcher for text in texts for matcher in parse_matchers(text)]
    except MatcherError as error:
        raise InvalidArgument("matchers", str(error)) from None
    if not matchers:
        raise InvalidArgument("matchers", "a silence needs at least one matcher")
    if len(matchers) > MAX_MATCHERS:
        raise InvalidArgument("matchers", f"at most {MAX_MATCHERS} matchers, got {len(matchers)}")
    if all(matcher.matches("") for matcher in matchers):
        raise InvalidArgument("matchers", "at least one matcher must not match the empty value "
                                          "(else the silence could match every incident)")
    _compiled(matchers)  # a choice that is not one (severity="P9") is an error now, not later
    return tuple(str(matcher) for matcher in matchers)


def check_window(starts_at: datetime, ends_at: datetime) -> None:
    """InvalidArgument naming ``ends_at`` unless the silence ends after it starts."""
    if ends_at <= starts_at:
        raise InvalidArgument("ends_at", "must be after starts_at")


Test = tuple[Field, Callable[[Any], Any]]


def _compiled(matchers: Iterable[Matcher]) -> tuple[Test, ...]:
    try:
        return tuple(fact_test(matcher, "matchers", "silence") for matcher in matchers)
    except ConfigError as error:
        raise InvalidArgument("matchers", error.reason) from None


def matches(tests: Sequence[Test], incident: Incident) -> bool:
    """Whether every test holds for the incident (an empty sequence holds)."""
    return all(test(field.read(incident)) for field, test in tests)


@dataclass(slots=True)
class _Held:
    silence: Silence
    tests: tuple[Test, ...]
    key: tuple[Field, Any] | None  # the fact and value its first ``=`` matcher needs


def _key(matchers: Sequence[Matcher]) -> tuple[Field, Any] | None:
    for matcher, (fact, _) in zip(matchers, _compiled(matchers)):
        if matcher.op is Op.EQUAL and (fact.kind is not Kind.LIST or matcher.value):
            return fact, fact.choices[matcher.value] if fact.choices else matcher.value
    return None


@dataclass
class ActiveSilences:
    """The silences not yet released, indexed for :meth:`silencing` (one thread: the processor's)."""

    _by_id: dict[str, _Held] = field(default_factory=dict)
    #: field name → (the field, value → ids of the silences keyed on it)
    _keyed: dict[str, tuple[Field, dict[Any, dict[str, _Held]]]] = field(default_factory=dict)
    _unkeyed: dict[str, _Held] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return (held.silence for held in self._by_id.values())

    def get(self, silence_id: str) -> Silence | None:
        held = self._by_id.get(silence_id)
        return held.silence if held else None

    def put(self, silence: Silence) -> None:
        """Hold ``silence`` (replacing one of its id); a released one is dropped instead."""
        self.drop(silence.id)
        if silence.released:
            return
        matchers = [matcher for text in silence.matchers for matcher in parse_matchers(text)]
        held = _Held(silence, _compiled(matchers), _key(matchers))
        self._by_id[silence.id] = held
        if held.key is None:
            self._unkeyed[silence.id] = held
        else:
            fact, value = held.key
            self._keyed.setdefault(fact.name, (fact, {}))[1].setdefault(value, {})[silence.id] = held

    def drop(self, silence_id: str) -> None:
        held = self._by_id.pop(silence_id, None)
        if held is None:
            return
        if held.key is None:
            del self._unkeyed[silence_id]
            return
        fact, value = held.key
        by_value = self._keyed[fact.name][1]
        del by_value[value][silence_id]
        if not by_value[value]:
            del by_value[value]
            if not by_value:
                del self._keyed[fact.name]

    def silencing(self, incident: Incident, now: datetime) -> Silence | None:
        """The silence in force at ``now`` that matches the incident (the one ending last when
        several do), or None."""
        found: Silence | None = None
        for candidates in self._candidates(incident):
            for held in candidates:
                silence = held.silence
                if silence.starts_at <= now < silence.ends_at and (found is None or silence.ends_at > found.ends_at):
                    for fact, test in held.tests:
                        if not test(fact.read(incident)):
                            break
                    else:
                        found = silence
        return found

    def _candidates(self, incident: Incident) -> list[Iterable[_Held]]:
        """The silences that can match: those keyed on a value the incident has, and the unkeyed."""
        found: list[Iterable[_Held]] = [self._unkeyed.values()] if self._unkeyed else []
        for fact, by_value in self._keyed.values():
            value = fact.read(incident)
            for one in (value if fact.kind is Kind.LIST else (value,)):
                held = by_value.get(one)
                if held:
                    found.append(held.values())
        return found


def ended(silence: Silence, now: datetime) -> Silence:
    """The silence as expired at ``now``: a pending one never starts (it starts and ends now)."""
    return replace(silence, starts_at=min(silence.starts_at, now), ends_at=min(silence.ends_at, now),
                   updated_at=now)
