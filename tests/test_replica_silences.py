"""Silences and inhibition across replicas sharing one PostgreSQL store: two servers (engines
with their gRPC servers, in this process) on a schema of their own, a real webhook receiver on
loopback. A silence made or ended on one replica is applied by the other, an incident opened
on one inhibits on the other, and a silence's end is acted on by exactly one replica."""
from __future__ import annotations

import contextlib
import itertools
import json
from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Iterator

import pytest

from actors.domain.changes import Change, Suppression
from actors.domain.errors import NotFound
from actors.domain.models import DeliveryStatus, utc_now
from actors.domain.silences import Silence
from actors.store.base import Conflict, Guard, StaleSilence
from protos import incidents_pb2, notifications_pb2
from tests.support import postgres
from tests.support.http_receiver import HttpReceiver
from tests.support.server import TIMEOUT, Client, make_settings, running
from tests.support.waiting import wait_until
from tests.test_postgres import change
from tests.test_replicas import stores  # noqa: F401 (a fixture)
from tests.test_silences import alert, notifications_of, silence, timeline_of

N = notifications_pb2
INHIBIT_RULES = [{"source_matchers": ['severity="P0"'], "target_matchers": ['severity=~"P2|P3"'],
                  "equal": ["service"]}]


@pytest.fixture
def url():
    with postgres.fresh_schema() as schema_url:
        yield schema_url


def replica_settings(tmp_path, url: str, receiver: HttpReceiver, **sections):
    return make_settings(tmp_path, state={"url": url, "replicas": True},
                         notifications={"webhook_enabled": True, "default_webhook_url": receiver.url,
                                        "retry_backoff_secs": 0.05}, **sections)


@contextlib.contextmanager
def two_replicas(tmp_path, url: str, receiver: HttpReceiver, **sections) -> Iterator[tuple[Client, Client]]:
    settings = replica_settings(tmp_path, url, receiver, **sections)
    with running(settings) as (_, _, a), running(settings) as (_, _, b):
        yield a, b


_ids = itertools.count()


def submit(client: Client, severity: int = 2, *services: str) -> str:
    """A new incident (an alert with a title of its own) on that replica; its id."""
    request = alert(f"a-{next(_ids)}", severity, *services)  # its title names its id
    return client.alerts.SubmitAlert(request, timeout=TIMEOUT).incident_id


def statuses(client: Client, incident_id: str) -> list[int]:
    return [n.status for n in notifications_of(client, incident_id)]


#: A notification held back (else it is owed: queued, in flight or delivered by now).
HELD = {N.SILENCED, N.INHIBITED}


def until_held(client: Client, status: int | None, severity: int = 2, *services: str) -> tuple[str, list[str]]:
    """Submit new incidents to ``client`` until one's notification is recorded ``status``
    (None: owed, not held) once the news from the other replica has arrived; that one, and
    every incident submitted."""
    submitted: list[str] = []

    def held() -> bool:
        submitted.append(submit(client, severity, *services))
        (row,) = notifications_of(client, submitted[-1])
        return row.status == status if status is not None else row.status not in HELD

    wait_until(held, poll=0.02)
    return submitted[-1], submitted


def ended_entries(client: Client, incident_id: str) -> list:
    return [e for e in timeline_of(client, incident_id) if e.kind == "silence_ended"]


def test_a_silence_made_on_one_replica_holds_an_alert_sent_to_the_other(tmp_path, url):
    with HttpReceiver() as rx, two_replicas(tmp_path, url, rx) as (a, b):
        made = silence(a, 'service="db"')
        held, _ = until_held(b, N.SILENCED, 2, "db")
        (row,) = notifications_of(b, held)
        updated = b.notifications.UpdateSilence(N.UpdateSilenceRequest(id=made.id, matchers=['service="web"']),
                                                timeout=TIMEOUT)
        moved, _ = until_held(a, N.SILENCED, 2, "web")  # a holds b's version of it
        (moved_row,) = notifications_of(a, moved)
    assert (row.status, row.suppressed_by) == (N.SILENCED, made.id)
    assert list(updated.matchers) == ['service="web"'] and moved_row.suppressed_by == made.id


def test_a_silence_expired_on_one_replica_is_released_on_the_other_and_notifies_once(tmp_path, url):
    with HttpReceiver() as rx, two_replicas(tmp_path, url, rx) as (a, b):
        made = silence(a, 'service="db"')
        held = submit(a, 2, "db")
        assert statuses(a, held) == [N.SILENCED]
        expired = b.notifications.ExpireSilence(N.ExpireSilenceRequest(id=made.id), timeout=TIMEOUT)
        free, _ = until_held(a, None, 2, "db")  # a no longer holds it
        for client in (a, b):  # each replica's processor has acted on the end by now
            client.incidents.AddNote(incidents_pb2.AddNoteRequest(id=held, text="synced", author="t"),
                                     timeout=TIMEOUT)
        entries = ended_entries(a, held)
        wait_until(lambda: statuses(a, held) == [N.SILENCED, N.DELIVERED])
        with pytest.raises(Exception, match="has ended"):
            a.notifications.ExpireSilence(N.ExpireSilenceRequest(id=made.id), timeout=TIMEOUT)
    assert expired.state == "expired"
    assert len(entries) == 1 and json.loads(entries[0].detail_json)["silence_id"] == made.id
    assert Counter(r.json()["incident"]["id"] for r in rx.requests)[held] == 1


def test_an_incident_opened_on_one_replica_inhibits_its_targets_on_the_other(tmp_path, url):
    with HttpReceiver() as rx, two_replicas(tmp_path, url, rx, inhibit_rules=INHIBIT_RULES) as (a, b):
        source = submit(a, 1, "db")
        target, _ = until_held(b, N.INHIBITED, 3, "db")
        (row,) = notifications_of(b, target)
        a.incidents.ResolveIncident(incidents_pb2.ResolveIncidentRequest(id=source, resolved_by="bob"),
                                    timeout=TIMEOUT)
        until_held(b, None, 3, "db")  # resolved on a: b inhibits no more
    assert (row.status, row.suppressed_by) == (N.INHIBITED, source)


def test_a_silence_ending_with_both_replicas_up_notifies_what_it_held_exactly_once(tmp_path, url):
    with HttpReceiver() as rx, two_replicas(tmp_path, url, rx) as (a, b):
        made = silence(a, 'service="db"', ends=timedelta(seconds=3))
        _, on_b = until_held(b, N.SILENCED, 2, "db")  # b holds it too (its earlier ones went out)
        on_a = [submit(a, 2, "db") for _ in range(3)]
        end = made.ends_at.ToDatetime(timezone.utc)
        wait_until(lambda: datetime.now(timezone.utc) >= end + timedelta(seconds=0.2))
        for client in (a, b):  # each replica's processor has acted on the end by now
            client.incidents.AddNote(incidents_pb2.AddNoteRequest(id=on_a[0], text="synced", author="t"),
                                     timeout=TIMEOUT)
        incidents = on_a + on_b
        ended = {incident: len(ended_entries(a, incident)) for incident in incidents}
        rx.wait_for(len(incidents))
        wait_until(lambda: all(statuses(a, i)[-1] == N.DELIVERED for i in incidents))
    went_out = on_b[:-1]  # submitted before b held the silence: notified at once, not held
    assert ended == {i: 0 if i in went_out else 1 for i in incidents}
    assert Counter(r.json()["incident"]["id"] for r in rx.requests) == Counter(incidents)


def test_a_replica_that_missed_news_reloads_silences_and_sources_when_it_listens_again(tmp_path, url):
    with HttpReceiver() as rx:
        settings = replica_settings(tmp_path, url, rx, inhibit_rules=INHIBIT_RULES)
        with running(settings) as (_, _, a), running(settings) as (deaf, _, b):
            with postgres.admin() as admin:  # b's relay loses its connection
                (pid,) = admin.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s",
                                       (f"im-relay {deaf.lease.instance}",)).fetchone()
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
                wait_until(lambda: admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s",
                                                 (pid,)).fetchone()[0] == 0)
            made = silence(a, 'service="db"')  # b's relay waits a second before it listens again
            source = submit(a, 1, "web")
            held, _ = until_held(b, N.SILENCED, 2, "db")
            inhibited, _ = until_held(b, N.INHIBITED, 3, "web")
            (silenced_row,), (inhibited_row,) = notifications_of(b, held), notifications_of(b, inhibited)
    assert (silenced_row.suppressed_by, inhibited_row.suppressed_by) == (made.id, source)


def test_an_alert_held_by_a_silence_released_unheard_is_decided_again_and_notified(tmp_path, url):
    with HttpReceiver() as rx:
        settings = replica_settings(tmp_path, url, rx)
        with running(settings) as (_, _, a), running(settings) as (deaf, _, b):
            made = silence(a, 'service="db"')
            until_held(b, N.SILENCED, 2, "db")
            deaf._relay.stop()  # b hears nothing more: it still holds the silence as made
            a.notifications.ExpireSilence(N.ExpireSilenceRequest(id=made.id), timeout=TIMEOUT)
            told = submit(b, 2, "db")
            (row,) = notifications_of(b, told)
            again = submit(b, 2, "db")  # b holds the silence as the store has it now: released
            (next_row,) = notifications_of(b, again)
    assert row.status not in HELD and next_row.status not in HELD


# -- the store's part ----------------------------------------------------------------------------------
def ended_silence(silence_id: str = "s-1") -> Silence:
    now = utc_now()
    return Silence(silence_id, ('service="db"',), now - timedelta(hours=1), now, "alice", "", now, now)


def silenced(incident_id: str, silence_id: str) -> Change:
    """A new incident whose event's notification ``silence_id`` held back."""
    opened = change(incident_id)
    event = replace(opened.events[0], receivers=(), suppressed=opened.events[0].receivers,
                    suppression=Suppression(DeliveryStatus.SILENCED, silence_id))
    return replace(opened, events=(event,))


def test_a_silence_is_released_once_and_not_once_its_end_moved(stores):
    a, b = stores
    ended = ended_silence()
    assert a.save_silence(ended)
    with pytest.raises(StaleSilence):  # another replica moved its end meanwhile
        a.apply([], "", Guard({}, True, "a", replace(ended, ends_at=ended.ends_at - timedelta(seconds=1))))
    a.apply([], "", Guard({}, True, "a", ended))
    with pytest.raises(StaleSilence):
        b.apply([], "", Guard({}, True, "b", ended))
    assert a.silence("s-1").released
    assert not b.save_silence(replace(ended, ends_at=ended.ends_at + timedelta(hours=1)))  # never changes again
    assert b.silence("s-1") == replace(ended, released=True)
    with pytest.raises(StaleSilence):  # a release that lost writes none of its changes
        b.apply([change("i-1")], "", Guard({}, True, "b", ended))
    with pytest.raises(NotFound):
        b.incident("i-1")


def test_a_batch_held_by_a_silence_released_meanwhile_and_a_release_missing_what_it_held_write_nothing(stores):
    a, b = stores
    first, second = ended_silence("s-1"), ended_silence("s-2")
    for silence_ in (first, second):
        a.save_silence(silence_)
    a.apply([], "", Guard({}, True, "a", first))
    with pytest.raises(StaleSilence) as stale:  # b decided it before it heard that s-1 was released
        b.apply([silenced("i-1", "s-1")], "", Guard({}, True, "b"))
    assert stale.value.silence_id == "s-1"
    b.apply([silenced("i-2", "s-2")], "", Guard({}, True, "b"))  # committed after a asked what s-2 held
    with pytest.raises(Conflict, match="held another incident"):
        a.apply([], "", Guard({}, True, "a", second))
    assert not a.silence("s-2").released
    with pytest.raises(NotFound):
        a.incident("i-1")
