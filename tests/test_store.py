"""The store, on each engine (the ``store`` fixture: SQLite and PostgreSQL): one transaction
per change, named leases, order per (incident, destination), fenced attempts, one copy of each
snapshot, the routing record of each event; and SQLite's own: no write transaction when nothing
is due, WAL, and the migrations from the first schema and from the one before routing records."""
from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import timedelta

import pytest

from actors.domain.changes import Change, IncidentQuery, PendingEvent, Suppression
from actors.domain.errors import IllegalTransition, NotFound
from actors.domain.models import (Alert, DeliveryStatus, EventKind, Incident, IncidentState, IncidentType, Outcome,
                                  Severity, utc_now)
from actors.domain.routing import Decision, Receiver, Verdict, record_of
from actors.domain.silences import Silence
from actors.store.migrations import VERSION
from actors.store.base import AttemptRecord, Store
from actors.store.sqlite import SqliteStore

HOOK = Receiver("webhook", "default")
OURS, EARLIER = "server-a:2", "server-a:1"


def lease(store: Store, at: float, token: str = OURS, limit: int = 10):
    return store.lease_due("webhook", "default", at, limit, token)


def record(store: Store, delivery, outcome: Outcome, status: DeliveryStatus, at: float,
           next_attempt_at: float | None = None) -> bool:
    (recorded,) = store.record_attempts([AttemptRecord(delivery, outcome, status, at, 1.0, next_attempt_at)])
    return recorded


@pytest.fixture
def sqlite_store(tmp_path):
    store = SqliteStore(tmp_path / "s.db")
    yield store
    store.close()


def incident(incident_id: str = "i-1", state: IncidentState = IncidentState.DETECTED) -> Incident:
    now = utc_now()
    return Incident(incident_id, "fp", "title", "", Severity.P1, IncidentType.DATA, state, "src", now, now, now)


def lifecycle_change(inc: Incident, is_new: bool = True) -> Change:
    event = PendingEvent(EventKind.CREATED if is_new else EventKind.STATE_CHANGED, utc_now(), "t", {},
                         inc.state.event_type, (HOOK,))
    return Change(inc, is_new, (event,))


def test_an_incident_its_event_and_its_outbox_row_are_written_together(store):
    store.apply([lifecycle_change(incident())])
    assert store.incident("i-1").title == "title"
    assert [e.kind for e in store.timeline("i-1")] == [EventKind.CREATED]
    (delivery,) = lease(store, utc_now().timestamp() + 1)  # written without a lease: free to take
    assert (delivery.event_type, delivery.incident.state) == ("incident.detected", IncidentState.DETECTED)


def test_apply_hands_back_the_deliveries_it_owes_leased_to_the_router_it_names(store):
    applied = store.apply([lifecycle_change(incident())], lease=OURS)
    (delivery,) = applied.deliveries
    assert (delivery.lease, delivery.attempt, delivery.incident.id) == (OURS, 1, "i-1")
    assert [e.kind for e in applied.events[0]] == [EventKind.CREATED]
    now = utc_now().timestamp() + 1
    assert lease(store, now) == []  # ours already: nothing to pull back
    (again,) = lease(store, now, token="server-a:3")  # a later epoch takes what an earlier one held
    assert again.notification_id == delivery.notification_id and again.snapshot == delivery.snapshot


def test_each_snapshot_is_stored_once_and_the_incident_reads_through_it(store):
    store.apply([lifecycle_change(incident())], lease=OURS)
    data, event_id = store._row("SELECT data, event_id FROM incidents")
    (snapshot,) = store._row("SELECT snapshot FROM timeline WHERE id = ?", (event_id,))
    assert data is None and snapshot.startswith('{"id":"i-1"')
    assert store.incident("i-1").title == "title"
    joined = incident().evolve(alert_count=2)  # a change that notifies nobody keeps its own copy
    store.apply([Change(joined, False, (PendingEvent(EventKind.ALERT_JOINED, utc_now(), "t", {}),))])
    assert store._row("SELECT data IS NOT NULL, event_id FROM incidents") == (True, None)
    assert store.incident("i-1").alert_count == 2 and store.list_incidents(IncidentQuery(), 10)[0][0].alert_count == 2


def test_an_attempt_is_recorded_only_as_the_next_one_of_a_delivery_still_owed(store):
    (delivery,) = store.apply([lifecycle_change(incident())], lease=OURS).deliveries
    now = utc_now().timestamp()
    assert record(store, delivery, Outcome.delivered("HTTP 200", 200), DeliveryStatus.DELIVERED, now)
    # the same attempt again (a stale sender, or a repeat after a router restart) changes nothing
    assert not record(store, delivery, Outcome.failed("HTTP 400", 400), DeliveryStatus.DEAD, now)
    assert store.notification(delivery.notification_id).status is DeliveryStatus.DELIVERED
    assert len(store.attempts(delivery.notification_id)) == 1
    kinds = [e.kind for e in store.timeline("i-1")]
    assert kinds.count(EventKind.NOTIFICATION_DELIVERED) == 1 and EventKind.NOTIFICATION_DEAD not in kinds


def test_settling_clears_the_lease_and_a_retry_keeps_it(store):
    (delivery,) = store.apply([lifecycle_change(incident())], lease=OURS).deliveries
    now = utc_now().timestamp()
    assert record(store, delivery, Outcome.retry("HTTP 503", 503), DeliveryStatus.RETRYING, now, now + 60)
    assert store._row("SELECT lease FROM notifications") == (OURS,)
    assert record(store, delivery.next_attempt(), Outcome.delivered(), DeliveryStatus.DELIVERED, now)
    assert store._row("SELECT lease, due_at FROM notifications") == (None, None)


def test_a_retry_recorded_after_its_router_let_go_leaves_the_row_free(store):
    (delivery,) = store.apply([lifecycle_change(incident())], lease=OURS).deliveries
    store.release([delivery.notification_id])  # the router forgot it (its sender was replaced)
    now = utc_now().timestamp()
    assert record(store, delivery, Outcome.retry("HTTP 503", 503), DeliveryStatus.RETRYING, now, now)
    (again,) = lease(store, now)  # free to the router, which has to pull it again
    assert (again.notification_id, again.attempt) == (delivery.notification_id, 2)


def test_nothing_due_means_no_write_transaction_in_sqlite(sqlite_store):
    store = sqlite_store
    store.apply([lifecycle_change(incident())], lease=OURS)
    statements: list[str] = []
    store._connection().set_trace_callback(statements.append)
    assert lease(store, utc_now().timestamp() + 1) == []
    assert not any(s.startswith(("BEGIN", "UPDATE")) for s in statements), statements


def test_a_store_of_the_first_schema_is_migrated_keeping_what_is_owed(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(V1_SCHEMA)
    snap = '{"id":"i-1","fingerprint":"fp","title":"old","description":"","severity":"P1","type":"DATA",' \
           '"state":"DETECTED","source":"src","created_at":"2024-01-01T00:00:00.000Z",' \
           '"updated_at":"2024-01-01T00:00:00.000Z","last_alert_at":"2024-01-01T00:00:00.000Z","alert_count":1,' \
           '"labels":{},"affected_services":[],"assignees":[],"resolution":null}'
    conn.execute("INSERT INTO incidents VALUES ('i-1', 'fp', 1, 1, 2, 'src', 1.0, ?)", (snap,))
    conn.execute("INSERT INTO timeline VALUES (1, 'i-1', 'created', 1.0, 'src', '{}', ?)", (snap,))
    conn.execute("INSERT INTO notifications (id, incident_id, timeline_id, channel, destination, event_type, "
                 "occurred_at, status, due_at, leased, created_at, updated_at) "
                 "VALUES ('n-1', 'i-1', 1, 'webhook', 'default', 'incident.detected', 1.0, 'queued', 1.0, 1, 1.0, 1.0)")
    conn.close()
    store = SqliteStore(path)
    try:
        assert store.incident("i-1").title == "old"
        (owed,) = lease(store, 2.0)  # the old lease flag held nothing of a live router
        assert owed.notification_id == "n-1"
        assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == VERSION
    finally:
        store.close()


def test_the_routing_record_of_an_event_is_found_from_each_notification_it_owed(store):
    decisions = (Decision("webhook", "default", Verdict.ROUTED, "root/all"),
                 Decision("pagerduty", "pager", Verdict.NO_ROUTE))
    change = lifecycle_change(incident())
    change = replace(change, events=(replace(change.events[0], routing=record_of(decisions)),))
    (delivery,) = store.apply([change]).deliveries
    assert store.routing_of(delivery.notification_id) == decisions
    with pytest.raises(NotFound):
        store.routing_of("no-such-notification")


def test_a_store_from_before_routing_records_gains_the_column_and_keeps_its_notifications(tmp_path):
    path = tmp_path / "v3.db"
    first = SqliteStore(path)
    (old,) = first.apply([lifecycle_change(incident("i-old"))]).deliveries
    first.close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript("ALTER TABLE timeline DROP COLUMN routing; PRAGMA user_version = 3;")
    conn.close()
    again = SqliteStore(path)
    try:
        assert again._connection().execute("PRAGMA user_version").fetchone()[0] == VERSION == 6
        assert again.routing_of(old.notification_id) == ()  # owed before routing was recorded
        change = lifecycle_change(incident("i-new"))
        decisions = (Decision("webhook", "default", Verdict.ROUTED, "root"),)
        (new,) = again.apply([replace(change, events=(replace(change.events[0], routing=record_of(decisions)),))]
                             ).deliveries
        assert again.routing_of(new.notification_id) == decisions
        assert [d.notification_id for d in lease(again, utc_now().timestamp() + 1)] == [
            old.notification_id, new.notification_id]
    finally:
        again.close()


V1_SCHEMA = """
CREATE TABLE incidents (id TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, active INTEGER NOT NULL,
    state INTEGER NOT NULL, severity INTEGER NOT NULL, source TEXT NOT NULL, created_at REAL NOT NULL,
    data TEXT NOT NULL);
CREATE TABLE alerts (alert_id TEXT PRIMARY KEY, incident_id TEXT NOT NULL, received_at REAL NOT NULL,
    data TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE timeline (id INTEGER PRIMARY KEY, incident_id TEXT NOT NULL, kind TEXT NOT NULL, at REAL NOT NULL,
    actor TEXT NOT NULL, detail TEXT NOT NULL, snapshot TEXT);
CREATE TABLE notifications (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, incident_id TEXT NOT NULL,
    timeline_id INTEGER NOT NULL, channel TEXT NOT NULL, destination TEXT NOT NULL, event_type TEXT NOT NULL,
    occurred_at REAL NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, due_at REAL,
    leased INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL, updated_at REAL NOT NULL, delivered_at REAL,
    last_error TEXT NOT NULL DEFAULT '');
CREATE INDEX notifications_due ON notifications (channel, destination, due_at, seq)
    WHERE due_at IS NOT NULL AND leased = 0;
CREATE TABLE attempts (id INTEGER PRIMARY KEY, notification_id TEXT NOT NULL, number INTEGER NOT NULL,
    at REAL NOT NULL, outcome TEXT NOT NULL, status_code INTEGER, detail TEXT NOT NULL, duration_ms REAL NOT NULL);
CREATE TABLE channel_state (channel TEXT NOT NULL, destination TEXT NOT NULL, incident_id TEXT NOT NULL,
    data TEXT NOT NULL, PRIMARY KEY (channel, destination, incident_id)) WITHOUT ROWID;
"""


def test_a_failing_change_rolls_back_the_whole_transaction(store):
    good = lifecycle_change(incident("i-1"))
    broken = replace(lifecycle_change(incident("i-2")), events=(PendingEvent(
        EventKind.CREATED, utc_now(), "t", {"unserialisable": object()}),))
    with pytest.raises(TypeError):
        store.apply([good, broken])
    with pytest.raises(NotFound):
        store.incident("i-1")


def test_a_statement_failing_mid_transaction_rolls_back_what_the_transaction_wrote(store):
    first = incident("i-1")
    alert = Alert("a-1", "src", "title", "", Severity.P1, IncidentType.DATA)
    store.apply([replace(lifecycle_change(first), alert=alert)])
    again = replace(lifecycle_change(incident("i-2")), alert=alert)  # the same alert id: its insert fails
    with pytest.raises(Exception) as error:
        store.apply([again])
    assert type(error.value).__name__ in ("IntegrityError", "UniqueViolation")  # sqlite3's, psycopg's
    with pytest.raises(NotFound):  # its incident and timeline rows, written before, are gone
        store.incident("i-2")
    assert store._row("SELECT count(*) FROM timeline")[0] == 1
    assert store._row("SELECT count(*) FROM notifications")[0] == 1


def test_a_later_event_waits_until_the_earlier_one_for_the_same_incident_is_settled(store):
    store.apply([lifecycle_change(incident())])
    store.apply([lifecycle_change(incident(state=IncidentState.RESOLVED), is_new=False)])
    now = utc_now().timestamp() + 1
    (first,) = lease(store, now)
    assert lease(store, now) == []  # leased, and the resolve must wait
    record(store, first, Outcome.retry("HTTP 503", 503), DeliveryStatus.RETRYING, now, now + 60)
    assert lease(store, now + 120) == []  # still owed: order holds
    record(store, first.next_attempt(), Outcome.delivered("HTTP 200", 200), DeliveryStatus.DELIVERED, now)
    (second,) = lease(store, now)
    assert second.event_type == "incident.resolved"


def test_released_leases_are_handed_out_again_and_a_free_row_is_seen(store):
    store.apply([lifecycle_change(incident())])
    now = utc_now().timestamp() + 1
    assert store.has_free_owed("webhook", "default", OURS)
    (leased,) = lease(store, now)
    assert not store.has_free_owed("webhook", "default", OURS)
    assert lease(store, now) == []
    store.release([leased.notification_id])
    assert [d.notification_id for d in lease(store, now)] == [leased.notification_id]


def test_only_dead_notifications_can_be_requeued(store):
    store.apply([lifecycle_change(incident())])
    now = utc_now().timestamp() + 1
    (delivery,) = lease(store, now)
    with pytest.raises(IllegalTransition):
        store.requeue(delivery.notification_id, now)
    record(store, delivery, Outcome.failed("HTTP 400", 400), DeliveryStatus.DEAD, now)
    assert store.requeue(delivery.notification_id, now).status is DeliveryStatus.QUEUED
    (again,) = lease(store, now)
    assert again.attempt == 2


def test_channel_state_is_stored_with_an_attempt(store):
    store.apply([lifecycle_change(incident())])
    now = utc_now().timestamp() + 1
    (first,) = lease(store, now)
    assert store.channel_state("webhook", "default", "i-1") == {}
    record(store, first, Outcome.delivered(state={"ts": "1.2"}), DeliveryStatus.DELIVERED, now)
    assert store.channel_state("webhook", "default", "i-1") == {"ts": "1.2"}


def test_the_store_survives_a_reopen_with_everything_owed(store_place):
    first = store_place.open()
    first.apply([lifecycle_change(incident())])
    first.close()
    again = store_place.open()
    assert len(lease(again, (utc_now() + timedelta(seconds=1)).timestamp())) == 1


def test_sqlite_keeps_a_write_ahead_log(sqlite_store):
    assert sqlite3.connect(sqlite_store.path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_owed_deliveries_of_a_destination_no_longer_configured_are_given_up_visibly(store):
    slack = Receiver("slack", "default")
    event = PendingEvent(EventKind.CREATED, utc_now(), "t", {}, "incident.detected", (HOOK, slack))
    store.apply([Change(incident(), True, (event,))])
    assert store.give_up_unrouted({("webhook", "default")}, utc_now().timestamp()) == 1
    (dead,), _ = store.list_notifications(status="dead")
    assert dead.channel == "slack" and "no longer configured" in dead.last_error
    assert store.timeline("i-1")[-1].kind is EventKind.NOTIFICATION_DEAD
    assert len(lease(store, utc_now().timestamp() + 1)) == 1  # still owed


def test_held_notifications_are_final_rows_naming_what_held_them(store):
    change = lifecycle_change(incident("i-held"))
    held = replace(change.events[0], receivers=(), suppressed=(HOOK,),
                   suppression=Suppression(DeliveryStatus.SILENCED, "s-1"))
    applied = store.apply([replace(change, events=(held,))])
    (row,), _ = store.list_notifications("i-held")
    assert applied.deliveries == [] and lease(store, utc_now().timestamp() + 1) == []
    assert (row.status, row.suppressed_by, row.destination, row.attempts) == (DeliveryStatus.SILENCED, "s-1",
                                                                              "default", 0)
    assert store.held_by("s-1") == ["i-held"] and store.held_by("s-2") == []
    assert {c.channel: dict(c.counts) for c in store.channel_counts()} == {"webhook": {"silenced": 1}}


def test_silences_are_kept_and_a_new_version_replaces_the_old(store):
    now = utc_now()
    first = Silence("s-1", ('service="db"',), now, now + timedelta(hours=1), "alice", "why", now, now)
    store.save_silence(first)
    store.save_silence(replace(first, id="s-2", created_at=now + timedelta(seconds=1)))
    assert store.save_silence(replace(first, comment="changed", released=True))
    assert not store.save_silence(replace(first, comment="again"))  # a released silence never changes
    assert store.silence("s-1") == replace(first, comment="changed", released=True)
    assert [s.id for s in store.silences()] == ["s-2", "s-1"]
    assert [s.id for s in store.silences(unreleased_only=True)] == ["s-2"]
    assert store.ids_starting_with("silence", "s-", 5) == ["s-1", "s-2"]
    with pytest.raises(NotFound):
        store.silence("s-3")


def test_a_store_from_before_silences_gains_them_and_keeps_its_notifications(tmp_path):
    path = tmp_path / "v4.db"
    first = SqliteStore(path)
    (old,) = first.apply([lifecycle_change(incident("i-old"))]).deliveries
    first.close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript("DROP TABLE silences; DROP INDEX notifications_suppressed; "
                       "ALTER TABLE notifications DROP COLUMN suppressed_by; PRAGMA user_version = 4;")
    conn.close()
    again = SqliteStore(path)
    try:
        assert again._connection().execute("PRAGMA user_version").fetchone()[0] == VERSION
        assert again.notification(old.notification_id).suppressed_by == ""
        assert again.silences() == [] and again.held_by("s-1") == []
    finally:
        again.close()
