"""The hot path in one pass: bounded store statements per delivered notification, no read-back.

Every statement any store connection runs is counted with SQLite's trace callback while a
burst of new alerts is taken in and delivered, so a change that reads rows back per alert or
per delivery (or writes more than it must) fails here instead of quietly costing throughput.
"""
from __future__ import annotations

import sqlite3
import threading
from collections import Counter

import pytest

from actors.domain.models import Alert, IncidentType, Severity
from actors.engine import Engine
from actors.store.sqlite import SqliteStore
from tests.support.http_receiver import HttpReceiver
from tests.support.server import make_settings
from tests.support.waiting import wait_until

ALERTS = 400
BATCH = 50
#: Per delivered notification: the alert's incident, alert, timeline and outbox rows (4), the
#: attempt's notification update, attempt and timeline rows (3), and the statements of the
#: triggers that keep GetStats' counters, which SQLite's trace reports under the statement
#: that fired them (two on the insert, three on the status change).
MAX_WRITES_PER_NOTIFICATION = 12
#: The writes, the reads and a share of each batch's BEGIN/COMMIT.
MAX_STATEMENTS_PER_NOTIFICATION = 13
#: Reads: one per intake batch (which alert ids were seen before) and the like, never one per
#: alert or per delivery.
MAX_READS_PER_NOTIFICATION = 0.1


@pytest.fixture
def traced(monkeypatch):
    """Counts of the statements every store connection of the engine's threads runs (the test's
    own thread, which reads to wait, is left out), by their first word; and, under "INSERT INTO
    incidents", the upserts of incident rows among the INSERTs."""
    counts: Counter[str] = Counter()
    lock = threading.Lock()
    opened = SqliteStore._connection
    traced_ids: set[int] = set()
    test_thread = threading.get_ident()

    def count(statement: str) -> None:
        words = statement.split(None, 3)
        word = words[0].upper() if words else ""
        with lock:
            counts[word] += 1
            if words[:3] == ["INSERT", "INTO", "incidents"]:
                counts["INSERT INTO incidents"] += 1

    def tracing_connection(store: SqliteStore) -> sqlite3.Connection:
        conn = opened(store)
        if threading.get_ident() != test_thread and id(conn) not in traced_ids:
            conn.set_trace_callback(count)
            traced_ids.add(id(conn))
        return conn

    monkeypatch.setattr(SqliteStore, "_connection", tracing_connection)
    return counts, lock


def test_statements_per_delivered_notification_stay_bounded_and_nothing_is_read_back(tmp_path, traced):
    counts, lock = traced
    with HttpReceiver() as rx:
        settings = make_settings(tmp_path, notifications={"webhook_enabled": True,
                                                          "default_webhook_url": rx.url + "/hook"},
                                 state={"retention_days": 0})
        with Engine(settings) as engine:
            engine.submit_alert(Alert("warm-up", "sentinel", "warm-up", "", Severity.P2, IncidentType.DATA))
            rx.wait_for(1)
            wait_until(lambda: engine.store.channel_counts()[0].counts.get("delivered") == 1)
            with lock:
                counts.clear()
            for start in range(0, ALERTS, BATCH):
                engine.submit_alerts([Alert(f"a-{n}", "sentinel", f"alert {n}", "", Severity.P2, IncidentType.DATA)
                                      for n in range(start, start + BATCH)])
            rx.wait_for(ALERTS + 1)
            wait_until(lambda: engine.store.channel_counts()[0].counts.get("delivered") == ALERTS + 1)
            with lock:
                hot = Counter(counts)  # intake and delivery of the burst, and whatever ran beside
    writes = sum(n for word, n in hot.items() if word in ("INSERT", "UPDATE", "DELETE"))
    reads = hot["SELECT"]
    total = sum(n for word, n in hot.items() if word not in ("PRAGMA", "INSERT INTO incidents"))
    assert writes / ALERTS <= MAX_WRITES_PER_NOTIFICATION, hot
    assert reads / ALERTS <= MAX_READS_PER_NOTIFICATION, hot
    assert total / ALERTS <= MAX_STATEMENTS_PER_NOTIFICATION, hot


def test_a_duplicate_storm_reads_the_store_once_per_batch_not_once_per_alert(tmp_path, traced):
    counts, lock = traced
    settings = make_settings(tmp_path, state={"retention_days": 0})
    with Engine(settings) as engine:
        engine.submit_alerts([Alert(f"first-{k}", "sentinel", f"storm {k}", "", Severity.P2, IncidentType.DATA)
                              for k in range(5)])
        with lock:
            counts.clear()
        batches = 20
        for b in range(batches):
            results = engine.submit_alerts([Alert(f"a-{b}-{n}", "sentinel", f"storm {n % 5}", "", Severity.P2,
                                                  IncidentType.DATA) for n in range(BATCH)])
            assert not any(r.new_incident for r in results)  # every one joined
        with lock:
            reads, restated = counts["SELECT"], counts["INSERT INTO incidents"]
    # an alert joining rewrites only the incident's data, never its indexed state (whose
    # active-fingerprint entry would be rewritten on a random page)
    assert restated == 0
    # a few reads per batch, none per alert (that would be 1,000 here): two expected, which of
    # its alert ids were recorded before and the next timeline id; the active incidents of the
    # fingerprints are known in memory
    assert reads <= 3 * batches, reads
