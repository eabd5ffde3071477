"""What GetStats' store reads cost with a long history, and what keeping its counters costs
each insert.

    .venv/bin/python bench/stats_cost.py              # 1,000,000 notifications (about a minute)
    .venv/bin/python bench/stats_cost.py --n 100000

1. Writes ``--n`` notifications (80 % delivered, 10 % dead, 10 % still owed, over 4 channels)
   straight into a fresh store made from actors/store/schema.sql, as bench/run.py's
   make_backlog does, then times ``SqliteStore.channel_counts`` (the counters plus the
   bounded latency sample) and ``SqliteStore.usage`` against the GROUP BY over every
   notification that GetStats ran before schema version 3.
2. Times inserting notifications and alerts in transactions of ``--batch`` rows, as the hot
   path writes them, with and without the counting triggers version 3 added to notifications
   (alerts are unchanged, as a baseline), and prints the cost per row.
"""
from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from actors.store.migrations import SCHEMA  # noqa: E402
from actors.store.sqlite import SqliteStore  # noqa: E402

CHANNELS = ("webhook", "slack", "email", "pagerduty")
GROUP_BY = "SELECT channel, status, COUNT(*) FROM notifications GROUP BY channel, status"
V3_ADDITIONS = ("DROP TRIGGER notification_counted; DROP TRIGGER notification_recounted; "
                "DROP TRIGGER notification_uncounted;")


def fill(path: Path, n: int) -> float:
    """``n`` notifications into a new store at ``path``; returns seconds taken."""
    t0 = time.perf_counter()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.executescript(SCHEMA)
    now = time.time() - n * 0.001
    conn.execute("BEGIN")
    for start in range(0, n, 50_000):
        rows = []
        for i in range(start, min(n, start + 50_000)):
            at = now + i * 0.001
            kind = i % 10
            status = "queued" if kind == 0 else "dead" if kind == 1 else "delivered"
            rows.append((i + 1, f"n-{i:012d}", f"i-{i // 4:012d}", i + 1, CHANNELS[i % 4], "default",
                         "incident.detected", at, status, at if kind == 0 else None, at, at + 0.05,
                         at + 0.05 if status == "delivered" else None))
        conn.executemany("INSERT INTO notifications (seq, id, incident_id, timeline_id, channel, destination, "
                         "event_type, occurred_at, status, due_at, created_at, updated_at, delivered_at) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    conn.execute("COMMIT")
    conn.execute("PRAGMA user_version = 3")
    conn.close()
    return time.perf_counter() - t0


def timed(call: Callable[[], object], repeat: int) -> float:
    """Median seconds of ``repeat`` calls (after one warm-up call)."""
    call()
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        call()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def insert_cost(path: Path, rows: int, batch: int, with_v3: bool) -> tuple[float, float]:
    """µs per notification row and per alert row, inserted ``batch`` to a transaction."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(SCHEMA)
    if not with_v3:
        conn.executescript(V3_ADDITIONS)
    costs = []
    for table in ("notifications", "alerts"):
        t0 = time.perf_counter()
        for start in range(0, rows, batch):
            conn.execute("BEGIN IMMEDIATE")
            if table == "notifications":
                conn.executemany(
                    "INSERT INTO notifications (id, incident_id, timeline_id, channel, destination, event_type, "
                    "occurred_at, status, due_at, lease, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, 'incident.detected', ?, 'queued', ?, 'x', ?, ?)",
                    [(str(uuid.uuid4()), str(uuid.uuid4()), i, CHANNELS[i % 4], "default", 1.0, 1.0, 1.0, 1.0)
                     for i in range(start, start + batch)])
            else:
                conn.executemany("INSERT INTO alerts (alert_id, incident_id, received_at, data) VALUES (?, ?, ?, ?)",
                                 [(str(uuid.uuid4()), str(uuid.uuid4()), 1.0, "{}") for _ in range(batch)])
            conn.execute("COMMIT")
        costs.append((time.perf_counter() - t0) / rows * 1e6)
    conn.close()
    return costs[0], costs[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="notifications in the store (default 10^6)")
    parser.add_argument("--insert-rows", type=int, default=100_000, help="rows per table for the insert cost")
    parser.add_argument("--batch", type=int, default=100, help="rows per transaction for the insert cost")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="stats-cost-") as tmp:
        path = Path(tmp) / "store.db"
        built = fill(path, args.n)
        store = SqliteStore(path)
        counts = timed(store.channel_counts, 20)
        usage = timed(store.usage, 20)
        group_by = timed(lambda: store._connection().execute(GROUP_BY).fetchall(), 3)
        store.close()
        size = path.stat().st_size
        print(f"store: {args.n:,} notifications, {size / 2**20:.0f} MiB, built in {built:.1f} s")
        print(f"GetStats channel_counts (counters + latency sample): {counts * 1e3:.2f} ms")
        print(f"GetStats usage (size, free, oldest record):           {usage * 1e3:.2f} ms")
        print(f"before v3, GROUP BY over every notification:          {group_by * 1e3:.1f} ms")
        for with_v3 in (False, True):
            notification_us, alert_us = insert_cost(Path(tmp) / f"insert-{with_v3}.db", args.insert_rows,
                                                    args.batch, with_v3)
            label = "with v3 counting triggers" if with_v3 else "without (v2)"
            print(f"insert, {args.batch} per transaction, {label:25}: notification {notification_us:.1f} µs/row, "
                  f"alert {alert_us:.1f} µs/row")
    return 0


if __name__ == "__main__":
    sys.exit(main())
