"""Silence matching, its index, and inhibition (pure domain code)."""
from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta

import pytest

from actors.domain.config import settings_from_mapping
from actors.domain.errors import ConfigError, InvalidArgument
from actors.domain.inhibition import Inhibitors, compile_rules
from actors.domain.matchers import parse_matchers
from actors.domain.models import Incident, IncidentState, IncidentType, Severity, utc_now
from actors.domain.routing import Decision, Receiver, Routed, Verdict, decisions_in
from actors.domain.silences import ActiveSilences, Silence, checked_matchers, ended, matches, _compiled

NOW = utc_now()


def incident(incident_id: str = "i-1", severity: Severity = Severity.P2, services: tuple[str, ...] = ("db",),
             state: IncidentState = IncidentState.DETECTED, **labels: str) -> Incident:
    return Incident(incident_id, "fp", "t", "", severity, IncidentType.DATA, state, "sentinel", NOW, NOW, NOW,
                    labels=labels, affected_services=services)


def silence(silence_id: str, *matchers: str, starts: timedelta = timedelta(0),
            ends: timedelta = timedelta(hours=1)) -> Silence:
    return Silence(silence_id, checked_matchers(matchers), NOW + starts, NOW + ends, "alice", "why", NOW, NOW)


@pytest.mark.parametrize("matchers, target, holds", [
    (['service="db"'], incident(), True),
    (['service="db"'], incident(services=("api", "db")), True),
    (['service="db"'], incident(services=()), False),
    (['service!="db"', 'team="a"'], incident(services=("api",), team="a"), True),
    (['service!="db"', 'team="a"'], incident(services=("api", "db"), team="a"), False),
    (['service=~"d.*"'], incident(services=("web", "db")), True),
    (['severity="P2"'], incident(), True),
    (['severity=~"P0|P1"'], incident(), False),
    (['severity!="P0"', 'type="data"'], incident(), True),
    (['state="detected"'], incident(), True),
    (['state="detected"'], incident(state=IncidentState.TRIAGED), False),
    (['source="sentinel"', 'region="eu"'], incident(region="eu"), True),
    (['region="eu"'], incident(region="us"), False),
    (['region=~"eu-.*"'], incident(region="eu-west"), True),
    (['region=~"eu"'], incident(region="eu-west"), False),  # anchored, as Alertmanager
    (['region!~"eu.*"', 'service="db"'], incident(), True),  # a missing label is ""
    (['{region="eu", team="a"}'], incident(region="eu", team="a"), True),
    (['{region="eu", team="a"}'], incident(region="eu"), False),
])
def test_a_silence_matches_when_every_matcher_holds(matchers, target, holds):
    parsed = [m for text in checked_matchers(matchers) for m in parse_matchers(text)]
    assert matches(_compiled(parsed), target) is holds
    held = ActiveSilences()
    held.put(silence("s-1", *matchers))
    assert (held.silencing(target, NOW) is not None) is holds


@pytest.mark.parametrize("matchers, reason", [
    ([], "at least one matcher"),
    (['region=~".*"'], "must not match the empty value"),
    (['region=""', 'team!="a"'], "must not match the empty value"),
    (['severity="P9"'], "is not a severity"),
    (['region="eu'], "never closed"),
    (['1bad="x"'], "not a matcher"),
])
def test_bad_matchers_are_refused_naming_them(matchers, reason):
    with pytest.raises(InvalidArgument) as refused:
        checked_matchers(matchers)
    assert refused.value.field == "matchers" and reason in refused.value.reason


def test_matchers_are_kept_one_each_in_canonical_form():
    assert checked_matchers(['{service=db, severity=~"P2|P3"}', "team!=a"]) == (
        'service="db"', 'severity=~"P2|P3"', 'team!="a"')


def test_a_silence_holds_only_within_its_window_and_the_one_ending_last_wins():
    held = ActiveSilences()
    held.put(silence("soon", 'service="db"', starts=timedelta(minutes=10)))
    assert held.silencing(incident(), NOW) is None
    assert held.silencing(incident(), NOW + timedelta(minutes=10)).id == "soon"
    assert held.silencing(incident(), NOW + timedelta(hours=1)) is None
    held.put(silence("longer", "team=a", ends=timedelta(hours=2)))
    held.put(silence("shorter", 'service="db"'))
    assert held.silencing(incident(team="a"), NOW + timedelta(minutes=20)).id == "longer"


def test_an_ended_pending_silence_never_starts():
    pending = silence("s", 'service="db"', starts=timedelta(hours=1), ends=timedelta(hours=2))
    expired = ended(pending, NOW)
    assert expired.starts_at == expired.ends_at == NOW and expired.state_at(NOW) == "expired"
    assert pending.state_at(NOW) == "pending" and silence("a", "team=a").state_at(NOW) == "active"


def test_the_index_answers_as_trying_every_silence_would():
    rng = random.Random(7)
    shapes = ['service="svc-{k}"', 'team="t{k}"', 'severity="P{p}"', 'team=~"t{k}|t1"', 'service!="svc-{k}"',
              'region="r{k}"']
    silences = []
    for k in range(300):
        chosen = rng.sample(shapes, rng.randint(1, 3))
        texts = [s.format(k=rng.randrange(10), p=rng.randrange(0, 5)) for s in chosen]
        if all(parse_matchers(t)[0].matches("") for t in texts):
            texts.append(f'region="r{k % 10}"')
        silences.append(silence(f"s-{k:03}", *texts, ends=timedelta(minutes=rng.randint(1, 100))))
    held = ActiveSilences()
    for one in silences:
        held.put(one)
    for one in silences[::3]:
        held.drop(one.id)
    kept = silences[1::3] + silences[2::3]
    for i in range(500):
        target = incident(f"i-{i}", Severity(rng.randrange(1, 6)), tuple(f"svc-{rng.randrange(10)}" for _ in range(
            rng.randrange(3))), team=f"t{rng.randrange(10)}", region=f"r{rng.randrange(10)}")
        expected = [s for s in kept if matches(_compiled(
            [m for t in s.matchers for m in parse_matchers(t)]), target)]
        best = max(expected, key=lambda s: s.ends_at, default=None)
        found = held.silencing(target, NOW)
        assert (found and found.ends_at) == (best and best.ends_at)
    assert len(held) == len(kept)


def test_a_released_silence_is_not_held():
    held = ActiveSilences()
    held.put(silence("s", 'service="db"'))
    held.put(replace(held.get("s"), released=True))
    assert len(held) == 0 and held.silencing(incident(), NOW) is None


RULES = [{"source_matchers": ['severity="P0"'], "target_matchers": ['severity=~"P2|P3"'],
          "equal": ["service", "region"]}]


def inhibitors() -> Inhibitors:
    return Inhibitors(compile_rules(settings_from_mapping({"inhibit_rules": RULES}).inhibit_rules))


def test_an_active_source_inhibits_targets_with_equal_values_only():
    rules = inhibitors()
    source = incident("src", Severity.P0, region="eu")
    rules.observe(source)
    assert rules.inhibitor(incident("t", Severity.P2, region="eu")) == ("src", 0)
    assert rules.inhibitor(incident("t", Severity.P2, region="us")) is None  # region differs
    assert rules.inhibitor(incident("t", Severity.P2, ("api",), region="eu")) is None  # service differs
    assert rules.inhibitor(incident("t", Severity.P1, region="eu")) is None  # not a target
    rules.observe(replace(source, state=IncidentState.RESOLVED))
    assert rules.inhibitor(incident("t", Severity.P2, region="eu")) is None


def test_missing_equal_labels_agree_and_an_incident_never_inhibits_itself():
    rules = Inhibitors(compile_rules(settings_from_mapping({"inhibit_rules": [
        {"source_matchers": ['service="db"'], "target_matchers": ['service="db"'], "equal": ["cluster"]}]})
        .inhibit_rules))
    rules.observe(incident("a"))
    assert rules.inhibitor(incident("a")) is None
    assert rules.inhibitor(incident("b")) == ("a", 0)
    rules.observe(incident("a", services=("web",)))  # no longer matches the source matchers
    assert rules.inhibitor(incident("b")) is None


@pytest.mark.parametrize("rule, key", [
    ({"target_matchers": ['service="db"']}, "inhibit_rules[0].source_matchers"),
    ({"source_matchers": ['service="db"']}, "inhibit_rules[0].target_matchers"),
    ({"source_matchers": ['severity="P7"'], "target_matchers": ["a=b"]}, "inhibit_rules[0].source_matchers[0]"),
    ({"source_matchers": ["a=b"], "target_matchers": ['a="b']}, "inhibit_rules[0].target_matchers[0]"),
    ({"source_matchers": ["a=b"], "target_matchers": ["a=c"], "equals": ["x"]}, "inhibit_rules[0].equals"),
])
def test_bad_inhibit_rules_fail_the_configuration_naming_the_key(rule, key):
    with pytest.raises(ConfigError) as refused:
        settings_from_mapping({"inhibit_rules": [rule]})
    assert refused.value.key == key


def test_a_held_answer_keeps_the_route_and_names_what_held_it():
    hook = Receiver("webhook", "default")
    decisions = (Decision("webhook", "default", Verdict.ROUTED, "root/db"),
                 Decision("slack", "team", Verdict.NO_ROUTE))
    held = Routed((hook,), decisions, "").held(Verdict.SILENCED, "s-1")
    assert held.owed == () and decisions_in(held.record) == held.decisions
    assert [(d.verdict, d.route, d.by) for d in held.decisions] == [(Verdict.SILENCED, "root/db", "s-1"),
                                                                   (Verdict.NO_ROUTE, "", "")]
    assert held.decisions[0].reason == "route root/db matched, but silence s-1 held it"
    inhibited = Decision("webhook", "default", Verdict.INHIBITED, "root", "i-9", "inhibit_rules[1]")
    assert inhibited.reason == "route root matched, but active incident i-9 inhibited it (inhibit_rules[1])"
    assert Routed((), (inhibited,), "").held(Verdict.SILENCED, "x").decisions == (inhibited,)  # only routed ones
    assert Decision.from_dict(inhibited.to_dict()) == inhibited
