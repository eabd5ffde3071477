"""Retention ([state] retention_days): what goes, what stays, in bounded batches, the space
given back, the notification counters that GetStats reads, and what GetStats says of the store.
What every store does runs on each engine (the ``store`` fixture); the file's pages and the
query plans are SQLite's own."""
from __future__ import annotations

import sqlite3
import time
from datetime import datetime, timezone

import pytest

from actors.cli import main
from actors.cli.render import size
from actors.domain.changes import Change, PendingEvent
from actors.domain.config import settings_from_mapping
from actors.domain.errors import ConfigError, NotFound
from actors.domain.models import (Alert, DeliveryStatus, EventKind, Incident, IncidentState, IncidentType, Outcome,
                                  Severity)
from actors.domain.routing import Receiver
from actors.retention import Prune, RetentionActor
from actors.scheduler import Scheduler
from actors.store.migrations import INCREMENTAL, VERSION
from actors.store.base import AttemptRecord, Store
from actors.store.sqlite import SqliteStore
from protos import notifications_pb2
from tests.support.server import TIMEOUT, make_settings, running
from tests.test_cli import engine_logs_kept_off_stdout  # noqa: F401 (autouse: imctl's stdout stays its own)
from tests.support.waiting import wait_until

HOOK = Receiver("webhook", "default")
DAY = 86_400.0
NOW = time.time()
OLD = NOW - 40 * DAY       # beyond a 30-day retention
RECENT = NOW - 2 * DAY     # within it
CUTOFF = NOW - 30 * DAY
LEASE = "test:1"


def at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)


@pytest.fixture
def sqlite_store(tmp_path):
    store = SqliteStore(tmp_path / "s.db")
    yield store
    store.close()


def history(store: Store, iid: str, when: float, state: IncidentState = IncidentState.CLOSED,
            alerts: int = 1, settle: DeliveryStatus | None = DeliveryStatus.DELIVERED) -> str:
    """An incident opened at ``when`` by ``alerts`` alerts, owing one webhook notification that
    is settled as ``settle`` at ``when`` (None: still owed), with channel state, and moved to
    ``state`` at ``when``. Returns the notification's id."""
    opened = Incident(iid, f"fp-{iid}", "title", "", Severity.P1, IncidentType.DATA, IncidentState.DETECTED,
                      "src", at(when), at(when), at(when))
    changes = []
    for n in range(alerts):
        alert = Alert(f"{iid}-a{n}", "src", "title", "", Severity.P1, IncidentType.DATA, fired_at=at(when))
        if n == 0:
            event = PendingEvent(EventKind.CREATED, at(when), "src", {"alert_id": alert.alert_id},
                                 "incident.detected", (HOOK,))
        else:
            event = PendingEvent(EventKind.ALERT_JOINED, at(when), "src", {"alert_id": alert.alert_id})
        changes.append(Change(opened, n == 0, (event,), alert))
    (delivery,) = store.apply(changes, lease=LEASE).deliveries
    if settle is not None:
        outcome = Outcome.delivered(state={"root": iid}) if settle is DeliveryStatus.DELIVERED \
            else Outcome.failed("HTTP 400", 400)
        store.record_attempts([AttemptRecord(delivery, outcome, settle, when, 1.0)])
    if state is not IncidentState.DETECTED:
        moved = opened.evolve(state=state, updated_at=at(when))
        store.apply([Change(moved, False, (PendingEvent(EventKind.STATE_CHANGED, at(when), "t",
                                                        {"to": state.name}),))])
    return delivery.notification_id


def rows(store: Store, table: str, where: str = "1 = 1", *params: object) -> int:
    return store._row(f"SELECT count(*) FROM {table} WHERE {where}", params)[0]


def everything(store: Store) -> dict[str, int]:
    return {t: rows(store, t) for t in ("incidents", "alerts", "timeline", "notifications", "attempts",
                                        "channel_state")}


def prune_all(store: Store, cutoff: float = CUTOFF, max_rows: int = 500) -> list[int]:
    """Batches until the pass is over; the rows each deleted."""
    deleted, cursor = store.prune(cutoff, max_rows)
    batches = [deleted]
    while cursor is not None:
        deleted, cursor = store.prune(cutoff, max_rows, cursor)
        batches.append(deleted)
    return batches


def counted(store: Store) -> dict[tuple[str, str], int]:
    return {(c.channel, status): n for c in store.channel_counts() for status, n in c.counts.items()}


def grouped(store: Store) -> dict[tuple[str, str], int]:
    return {(channel, status): n for channel, status, n in store._rows(
        "SELECT channel, status, count(*) FROM notifications GROUP BY channel, status")}


# -- what goes and what stays ------------------------------------------------------------------
def test_pruning_removes_old_settled_notifications_and_old_closed_incidents_and_nothing_else(store):
    gone_closed = history(store, "old-closed", OLD, alerts=3)
    gone_dead = history(store, "old-closed-dead", OLD, settle=DeliveryStatus.DEAD)
    kept_owed = history(store, "old-closed-owed", OLD, settle=None)
    kept_open = history(store, "old-open", OLD, state=IncidentState.INVESTIGATING)
    kept_resolved = history(store, "old-resolved", OLD, state=IncidentState.RESOLVED)
    kept_recent = history(store, "recent-closed", RECENT)

    assert sum(prune_all(store)) > 0

    for iid in ("old-closed", "old-closed-dead"):
        with pytest.raises(NotFound):
            store.incident(iid)
        for table in ("alerts", "timeline", "channel_state", "notifications"):
            assert rows(store, table, "incident_id = ?", iid) == 0, (iid, table)
    for nid in (gone_closed, gone_dead):
        assert rows(store, "attempts", "notification_id = ?", nid) == 0
    # owed: the notification, its incident and its whole history stay, closed and old as it is
    assert store.notification(kept_owed).status is DeliveryStatus.QUEUED
    assert store.incident("old-closed-owed").state is IncidentState.CLOSED
    assert rows(store, "timeline", "incident_id = 'old-closed-owed'") == 2
    # not closed: the incident and its alerts stay; its old settled notification goes
    for iid, nid in (("old-open", kept_open), ("old-resolved", kept_resolved)):
        assert store.incident(iid).id == iid and rows(store, "alerts", "incident_id = ?", iid) == 1
        assert store.channel_state("webhook", "default", iid) == {"root": iid}
        with pytest.raises(NotFound):
            store.notification(nid)
    # recent: everything stays
    assert store.notification(kept_recent).status is DeliveryStatus.DELIVERED
    assert len(store.attempts(kept_recent)) == 1 and store.incident("recent-closed").state is IncidentState.CLOSED


def test_an_incident_with_a_recent_entry_stays_though_it_was_closed_long_ago(store):
    history(store, "noted", OLD)
    closed = store.incident("noted")
    store.apply([Change(closed, False, (PendingEvent(EventKind.NOTE_ADDED, at(RECENT), "ana", {"text": "x"}),))])
    prune_all(store)
    assert store.incident("noted").id == "noted" and rows(store, "alerts", "incident_id = 'noted'") == 1


def test_a_second_pass_finds_nothing_more(store):
    history(store, "old", OLD)
    history(store, "recent", RECENT)
    assert sum(prune_all(store)) > 0
    assert sum(prune_all(store)) == 0


def test_batches_never_delete_more_rows_than_asked_and_get_through_a_big_incident(store):
    history(store, "storm", OLD, alerts=25)             # 25 alerts + 27 timeline entries
    for n in range(6):
        history(store, f"old-{n}", OLD, alerts=2)
    before = sum(everything(store).values())
    batches = prune_all(store, max_rows=7)
    assert max(batches) <= 7 and len(batches) > 10
    assert sum(batches) == before - sum(everything(store).values())
    assert everything(store) == dict.fromkeys(everything(store), 0)


def test_the_space_pruning_frees_is_given_back_to_the_file_system(sqlite_store):
    store = sqlite_store
    for n in range(60):
        history(store, f"old-{n}", OLD, alerts=20)
    conn = store._connection()
    assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == INCREMENTAL
    prune_all(store)
    free, pages = conn.execute("PRAGMA freelist_count").fetchone()[0], conn.execute("PRAGMA page_count").fetchone()[0]
    assert free > 10
    left = store.reclaim_space(4)
    assert left == free - 4
    while left:
        left = store.reclaim_space(1000)
    assert conn.execute("PRAGMA page_count").fetchone()[0] == pages - free


# -- the actor ---------------------------------------------------------------------------------
def settle_mailbox(ref) -> None:
    """Asks return in mailbox order: after two, whatever the first one started has run."""
    ref.ask(Prune(), timeout=TIMEOUT)
    ref.ask(Prune(), timeout=TIMEOUT)


@pytest.mark.parametrize("days, kept", [(0, 3), (30, 1)])
def test_the_actor_prunes_beyond_retention_days_and_zero_keeps_everything(store, days, kept):
    history(store, "old-1", OLD)
    history(store, "old-2", OLD)
    history(store, "recent", RECENT)
    scheduler = Scheduler()
    try:
        ref = RetentionActor.start(None, "retention", store, days, scheduler, batch_rows=3)
        if days:
            wait_until(lambda: rows(store, "incidents") == kept)
        else:
            settle_mailbox(ref)
        assert rows(store, "incidents") == kept and rows(store, "notifications") == kept
        ref.stop()
    finally:
        scheduler.stop()


def test_the_server_prunes_an_old_store_on_its_own(tmp_path, store_place):
    settings = make_settings(tmp_path, state={"retention_days": 30, **store_place.state})
    old = store_place.open()
    history(old, "old", OLD)
    history(old, "recent", RECENT)
    old.close()
    with running(settings) as (engine, _, client):
        wait_until(lambda: rows(engine.store, "incidents") == 1)
        assert engine.incident("recent").id == "recent"
        assert {a.name for a in engine.actor_statuses()} >= {"retention"}


def test_retention_days_must_be_a_whole_number_not_negative():
    assert settings_from_mapping({}).state.retention_days == 30
    assert settings_from_mapping({"state": {"retention_days": 0}}).state.retention_days == 0
    for bad in (-1, "30", 1.5):
        with pytest.raises(ConfigError) as error:
            settings_from_mapping({"state": {"retention_days": bad}})
        assert error.value.key == "state.retention_days"


# -- counters ----------------------------------------------------------------------------------
def test_the_counters_equal_a_group_by_after_inserts_deliveries_deaths_retries_requeues_and_pruning(store):
    history(store, "old", OLD)
    history(store, "old-dead", OLD, settle=DeliveryStatus.DEAD)
    history(store, "owed", RECENT, settle=None)
    dead = history(store, "dead", RECENT, settle=DeliveryStatus.DEAD)
    slack = Receiver("slack", "default")
    opened = store.incident("owed")
    (retrying, gone) = store.apply([Change(opened, False, (PendingEvent(
        EventKind.UPDATED, at(RECENT), "t", {}, "incident.detected", (HOOK, slack)),))], lease=LEASE).deliveries
    store.record_attempts([AttemptRecord(retrying, Outcome.retry("HTTP 503", 503), DeliveryStatus.RETRYING,
                                         RECENT, 1.0, RECENT + 60)])
    store.record_attempts([AttemptRecord(retrying.next_attempt(), Outcome.retry("HTTP 503", 503),
                                         DeliveryStatus.RETRYING, RECENT, 1.0, RECENT + 60)])
    store.requeue(dead, NOW)
    store.give_up_unrouted({("webhook", "default")}, NOW)
    assert counted(store) == grouped(store) and counted(store)[("slack", "dead")] == 1
    prune_all(store)
    assert counted(store) == grouped(store)
    assert counted(store) == {("webhook", "queued"): 2, ("webhook", "retrying"): 1, ("slack", "dead"): 1}


def test_a_version_2_store_is_vacuumed_once_and_its_counters_filled(tmp_path):
    path = tmp_path / "v2.db"
    first = SqliteStore(path)
    history(first, "a", RECENT)
    history(first, "b", RECENT, settle=None)
    history(first, "c", RECENT, settle=DeliveryStatus.DEAD)
    first.close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript("""
        DROP TRIGGER notification_counted; DROP TRIGGER notification_recounted; DROP TRIGGER notification_uncounted;
        DROP TABLE notification_counts; DROP INDEX channel_state_incident;
        PRAGMA auto_vacuum = NONE; VACUUM; PRAGMA user_version = 2;""")
    assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
    conn.close()

    again = SqliteStore(path)
    try:
        assert counted(again) == grouped(again) == {("webhook", "delivered"): 1, ("webhook", "queued"): 1,
                                                    ("webhook", "dead"): 1}
        conn = again._connection()
        assert conn.execute("PRAGMA user_version").fetchone()[0] == VERSION == 6
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == INCREMENTAL
    finally:
        again.close()


def test_counting_reads_the_counters_not_the_outbox_in_sqlite(sqlite_store):
    store = sqlite_store
    history(store, "a", RECENT)
    statements: list[str] = []
    store._connection().set_trace_callback(statements.append)
    store.channel_counts()
    assert not any("GROUP BY" in s.upper() for s in statements), statements
    plans = [row[-1] for s in statements if "delivered_at IS NOT NULL" in s
             for row in store._connection().execute("EXPLAIN QUERY PLAN " + s)]
    assert plans and all("notifications_delivered" in plan for plan in plans), plans


# -- GetStats ----------------------------------------------------------------------------------
def test_get_stats_and_imctl_show_the_store_size_and_its_oldest_record(tmp_path, capsys):
    settings = make_settings(tmp_path, state={"retention_days": 45})
    old = SqliteStore(settings.state.path)
    history(old, "open", OLD, state=IncidentState.INVESTIGATING)
    old.close()
    with running(settings) as (engine, api, client):
        before = file_size(engine.store)
        stats = client.notifications.GetStats(notifications_pb2.StatsRequest(), timeout=TIMEOUT)
        assert before <= stats.store.size_bytes <= file_size(engine.store) and before > 0
        capsys.readouterr()
        assert main(["--server", f"127.0.0.1:{api.port}", "notifications", "stats"]) == 0
        out = capsys.readouterr().out
    assert stats.store.retention_days == 45
    assert abs(stats.store.oldest_record_at.ToDatetime(tzinfo=timezone.utc).timestamp() - OLD) < 0.001
    shown = dict(line.split("  ", 1) for line in out.splitlines()[-4:])
    assert {name.strip(): value.strip() for name, value in shown.items()} == {
        "store size": size(stats.store.size_bytes), "free in it": size(stats.store.free_bytes),
        "oldest record": at(OLD).strftime("%Y-%m-%dT%H:%M:%SZ"), "kept for": "45 days"}


def file_size(store: SqliteStore) -> int:
    conn = store._connection()
    return conn.execute("PRAGMA page_count").fetchone()[0] * conn.execute("PRAGMA page_size").fetchone()[0]
