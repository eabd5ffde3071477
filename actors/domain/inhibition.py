"""Inhibition: while a source incident is active, the notifications of incidents its rule
targets are recorded as ``inhibited`` instead of sent (pure; Alertmanager's semantics).

An ``[[inhibit_rules]]`` entry has ``source_matchers``, ``target_matchers`` and ``equal``
(field or label names, read as a route reads them: actors/domain/routes.py). An incident is
inhibited while some *other* incident that is active (not resolved or closed) matches the
source matchers, it matches the target matchers, and both have the same value for every
``equal`` name (a missing label is the empty value, so two incidents without it agree).

:class:`Inhibitors` is told of every incident as it changes (:meth:`Inhibitors.observe`) and
keeps, per rule, the active sources by their ``equal`` values, so that asking who inhibits an
incident costs one lookup per rule whose target matchers it satisfies.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from .errors import ConfigError
from .matchers import MatcherError, parse_matchers
from .models import Incident
from .routes import Field, field_named, fact_test
from .silences import Test, matches

if TYPE_CHECKING:
    from .config import InhibitRuleSettings


@dataclass(frozen=True)
class InhibitRule:
    source: tuple[Test, ...]
    target: tuple[Test, ...]
    equal: tuple[Field, ...]

    def values(self, incident: Incident) -> tuple[Any, ...]:
        return tuple(fact.read(incident) for fact in self.equal)


def compile_rules(settings: Sequence["InhibitRuleSettings"]) -> tuple[InhibitRule, ...]:
    """The rules of ``[[inhibit_rules]]``; ConfigError naming the rule's key for a bad matcher,
    or a rule without source or target matchers (it would inhibit everything)."""
    return tuple(_rule(rule, f"inhibit_rules[{index}]") for index, rule in enumerate(settings))


def _rule(rule: "InhibitRuleSettings", key: str) -> InhibitRule:
    parts = []
    for name, texts in (("source_matchers", rule.source_matchers), ("target_matchers", rule.target_matchers)):
        if not texts:
            raise ConfigError(f"{key}.{name}", "needs at least one matcher")
        tests = []
        for index, text in enumerate(texts):
            try:
                tests += [fact_test(matcher, f"{key}.{name}[{index}]", "inhibit rule")
                          for matcher in parse_matchers(text)]
            except MatcherError as error:
                raise ConfigError(f"{key}.{name}[{index}]", str(error)) from None
        parts.append(tuple(tests))
    return InhibitRule(parts[0], parts[1], tuple(field_named(name) for name in rule.equal))


class Inhibitors:
    """The active source incidents of each rule (one thread: the processor's)."""

    def __init__(self, rules: Sequence[InhibitRule]) -> None:
        self.rules = tuple(rules)
        #: per rule: equal values → ids of the active sources with them
        self._sources: list[dict[tuple[Any, ...], set[str]]] = [{} for _ in self.rules]
        #: per rule: source id → its equal values
        self._keys: list[dict[str, tuple[Any, ...]]] = [{} for _ in self.rules]

    def observe(self, incident: Incident) -> None:
        """Note the incident as it now stands: a source while it is active and matches."""
        for rule, sources, keys in zip(self.rules, self._sources, self._keys):
            old = keys.pop(incident.id, None)
            if old is not None:
                ids = sources[old]
                ids.discard(incident.id)
                if not ids:
                    del sources[old]
            if incident.state.is_active and matches(rule.source, incident):
                key = rule.values(incident)
                keys[incident.id] = key
                sources.setdefault(key, set()).add(incident.id)

    def would_change(self, incident: Incident) -> bool:
        """Whether :meth:`observe` would change the sources: the incident became or stopped
        being one, or its ``equal`` values changed."""
        for rule, keys in zip(self.rules, self._keys):
            key = rule.values(incident) if incident.state.is_active and matches(rule.source, incident) else None
            if keys.get(incident.id) != key:
                return True
        return False

    def inhibitor(self, incident: Incident) -> tuple[str, int] | None:
        """The id of an active source inhibiting the incident and the index of the rule by
        which it does (the first rule, and its smallest source id, when several do), or None."""
        for index, (rule, sources) in enumerate(zip(self.rules, self._sources)):
            if not sources or not matches(rule.target, incident):
                continue
            found = min((s for s in sources.get(rule.values(incident), ()) if s != incident.id), default=None)
            if found is not None:
                return found, index
        return None
