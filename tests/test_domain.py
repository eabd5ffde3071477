"""Pure domain rules: lifecycle, deduplication, routing, retry policy, pacing."""
from __future__ import annotations

import random
from datetime import timedelta

import pytest

from actors.domain.dedup import fingerprint, fingerprints, joins_incident, legacy_fingerprint
from actors.domain.errors import IllegalTransition
from actors.domain.hostnames import address_literal, is_address_literal, is_fully_qualified, is_helo_name
from actors.domain.models import Alert, Incident, IncidentState as S, IncidentType, Severity, utc_now
from actors.domain.ratelimit import TokenBucket
from actors.domain.retry import RetryPolicy
from actors.domain.state_machine import ALLOWED, check_transition


def make_alert(**overrides) -> Alert:
    fields = dict(alert_id="a-1", source="sentinel", title="High Latency", description="", severity=Severity.P1,
                  type=IncidentType.PERFORMANCE, affected_services=("api", "db"))
    fields.update(overrides)
    return Alert(**fields)


def make_incident(state: S = S.DETECTED, last_alert_age: float = 0.0, severity: Severity = Severity.P1) -> Incident:
    now = utc_now()
    return Incident(id="i-1", fingerprint="fp", title="t", description="", severity=severity,
                    type=IncidentType.PERFORMANCE, state=state, source="s", created_at=now - timedelta(hours=5),
                    updated_at=now, last_alert_at=now - timedelta(seconds=last_alert_age))


@pytest.mark.parametrize("current", list(S))
@pytest.mark.parametrize("target", list(S))
def test_every_transition_is_allowed_exactly_when_the_table_says_so(current, target):
    if target in ALLOWED[current]:
        check_transition(current, target)
    else:
        with pytest.raises(IllegalTransition, match=f"from {current.name} to {target.name}"):
            check_transition(current, target)


def test_closed_is_final_and_resolving_twice_is_illegal():
    assert ALLOWED[S.CLOSED] == frozenset()
    assert S.RESOLVED not in ALLOWED[S.RESOLVED]


def test_fingerprint_ignores_service_order_and_labels_but_not_title():
    base = fingerprint(make_alert())
    assert fingerprint(make_alert(affected_services=("db", "api"), labels={"pod": "x"})) == base
    assert fingerprint(make_alert(title="Other")) != base
    assert fingerprint(make_alert(type=IncidentType.DATA)) != base


@pytest.mark.parametrize("one, other", [
    (dict(title="Disk\x1fdb", affected_services=()), dict(title="Disk", affected_services=("db",))),
    (dict(affected_services=("api\x1fdb",)), dict(affected_services=("api", "db"))),
    (dict(source="sentinel\x1fPERFORMANCE", title="x"), dict(source="sentinel", title="PERFORMANCE\x1fx")),
], ids=["title-services", "within-services", "source-title"])
def test_no_field_content_can_make_two_different_alerts_share_a_fingerprint(one, other):
    first, second = make_alert(**one), make_alert(**other)
    assert legacy_fingerprint(first) == legacy_fingerprint(second)  # the flaw the v2 form removes
    assert fingerprint(first) != fingerprint(second)


def test_fingerprints_give_the_current_form_first_and_the_legacy_form_unchanged():
    alert = make_alert()
    current, legacy = fingerprints(alert)
    assert current == fingerprint(alert) and current.startswith("v2:") and legacy == legacy_fingerprint(alert)
    # the values stored for incidents opened before v2 (computed with that version's code)
    assert legacy == "6892925864a8ea9ad4cbfb569292daa4b4e629c090ad6a190ce84e7ccdc6982f"
    assert legacy_fingerprint(make_alert(title="Disk \u00e9 full", source="prom", affected_services=(),
                                         type=IncidentType.INFRASTRUCTURE)) == \
        "3e38925a7ae76884c6c7a0dab4358ddf9a2b2cc9dfaf074093535d2c8c5e4f8f"


@pytest.mark.parametrize("name, qualified", [
    ("mail.example.com", True), ("alerts-7.eu.example.net", True),
    ("localhost", False), ("localhost.localdomain", False), ("buildbox.localdomain", False),
    ("app.localhost", False), ("buildbox", False), ("127.0.0.1", False), ("bad_name.example.com", False),
    ("-x.example.com", False), ("mail.example.com.", False), ("", False),
])
def test_only_a_fully_qualified_non_local_name_counts_as_fully_qualified(name, qualified):
    assert is_fully_qualified(name) is qualified


def test_address_literals_follow_rfc_5321():
    assert address_literal("192.0.2.7") == "[192.0.2.7]"
    assert address_literal("fe80::1%eth0") == "[IPv6:fe80::1]"
    assert is_address_literal("[192.0.2.7]") and is_address_literal("[IPv6:2001:db8::7]")
    assert not is_address_literal("[2001:db8::7]") and not is_address_literal("[IPv6:192.0.2.7]")
    assert not is_address_literal("192.0.2.7") and not is_address_literal("[localhost]")
    assert is_helo_name("[127.0.0.1]") and is_helo_name("mail.example.com") and not is_helo_name("localhost")
    with pytest.raises(ValueError):
        address_literal("localhost")


def test_an_alert_joins_while_the_last_alert_is_within_the_window_even_if_creation_is_older():
    incident = make_incident(last_alert_age=800)  # created 5 h ago, last alert 800 s ago
    assert joins_incident(incident, utc_now(), 900, enabled=True)


def test_an_alert_opens_a_new_incident_after_the_window_or_when_resolved_or_disabled():
    now = utc_now()
    assert not joins_incident(make_incident(last_alert_age=901), now, 900, enabled=True)
    assert not joins_incident(make_incident(S.RESOLVED), now, 900, enabled=True)
    assert not joins_incident(make_incident(), now, 900, enabled=False)
    assert not joins_incident(None, now, 900, enabled=True)


def test_retry_delay_is_full_jitter_below_the_exponential_ceiling():
    policy = RetryPolicy(max_retries=5, base_secs=5, cap_secs=300)
    rng = random.Random(7)
    for attempt, ceiling in ((1, 5), (2, 10), (3, 20), (8, 300)):
        delays = [policy.delay(attempt, rng=rng) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8  # spread over the whole range, not fixed


def test_retry_after_is_a_floor_clamped_to_the_maximum():
    policy = RetryPolicy(base_secs=1, max_retry_after_secs=60)
    assert policy.delay(1, retry_after=30) >= 30
    assert policy.delay(1, retry_after=10_000) == 60


def test_the_policy_gives_up_after_max_retries():
    policy = RetryPolicy(max_retries=3)
    assert [policy.gives_up_after(n) for n in (1, 2, 3, 4)] == [False, False, False, True]


def test_token_bucket_paces_to_the_rate_after_the_burst():
    bucket = TokenBucket(rate=2.0, burst=1)
    assert bucket.reserve(100.0) == 0.0
    assert bucket.reserve(100.0) == pytest.approx(0.5)
    assert bucket.reserve(100.0) == pytest.approx(1.0)
    assert bucket.reserve(102.0) == 0.0


def test_recent_alert_ids_are_bounded_and_forget_the_oldest():
    from actors.domain.indexes import RecentAlerts
    recent = RecentAlerts(capacity=2)
    for n in range(3):
        recent.add(f"a-{n}", f"i-{n}")
    assert (recent.get("a-0"), recent.get("a-1"), recent.get("a-2")) == (None, "i-1", "i-2")


def test_active_incidents_answer_misses_while_complete_and_send_unsure_ones_to_the_store():
    from actors.domain.indexes import ActiveIncidents
    now = utc_now()

    def incident(n: int, fp: str, state: S = S.DETECTED, age: int = 0) -> Incident:
        at = now - timedelta(seconds=age)
        return Incident(f"i-{n}", fp, "t", "", Severity.P2, IncidentType.DATA, state, "s", at, at, at)

    index = ActiveIncidents(capacity=2)
    index.load([incident(1, "fp-a", age=10), incident(2, "fp-a")], complete=True)
    assert index.lookup("fp-a")[0].id == "i-2" and index.lookup("fp-none") == (None, True)
    index.put(incident(2, "fp-a", S.RESOLVED))  # the newest left: an older one may be active
    assert index.lookup("fp-a") == (None, False)
    index.found("fp-a", incident(1, "fp-a", age=10))  # what the store said
    assert index.lookup("fp-a")[0].id == "i-1"
    index.put(incident(3, "fp-b"))
    index.put(incident(4, "fp-c"))  # more than it holds: the least recently used goes
    assert not index.complete and index.lookup("fp-none") == (None, False)


def test_joined_is_evolve_with_one_more_alert():
    now = utc_now()
    incident = Incident("i-1", "fp", "t", "d", Severity.P1, IncidentType.DATA, S.INVESTIGATING, "s",
                        now - timedelta(minutes=5), now - timedelta(minutes=1), now - timedelta(minutes=1),
                        alert_count=3, labels={"a": "b"}, affected_services=("db",), assignees=("ana",))
    assert incident.joined(now) == incident.evolve(alert_count=4, last_alert_at=now, updated_at=now)


def test_new_ids_are_random_version_4_uuids_in_their_text_form():
    import uuid
    from actors.domain.models import new_id
    ids = [new_id() for _ in range(2000)]
    parsed = [uuid.UUID(i) for i in ids]
    assert all(str(p) == i and p.version == 4 and p.variant == uuid.RFC_4122 for p, i in zip(parsed, ids))
    assert len(set(ids)) == len(ids) and {i[19] for i in ids} == set("89ab")
    assert len({i[:8] for i in ids}) == len(ids)  # 8 characters tell them apart (imctl, e-mail subjects)


def test_to_iso_writes_utc_to_the_millisecond_whatever_the_zone():
    from datetime import datetime, timedelta, timezone
    from actors.domain.models import from_iso, to_iso
    moment = datetime(2024, 1, 15, 14, 32, 0, 123456, tzinfo=timezone.utc)
    assert to_iso(moment) == "2024-01-15T14:32:00.123Z"
    assert to_iso(moment.replace(microsecond=0)) == "2024-01-15T14:32:00.000Z"
    assert to_iso(moment.astimezone(timezone(timedelta(hours=-5)))) == "2024-01-15T14:32:00.123Z"
    assert from_iso(to_iso(moment)) == moment.replace(microsecond=123000)


