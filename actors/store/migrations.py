"""Schema versions of the SQLite store, and the steps between them.

``PRAGMA user_version`` says which version a file has: 0 is a new file or one written before
versions were kept (version 1: a ``leased`` flag instead of a named lease, every incident
snapshot stored twice; version 2: no incremental vacuum, notifications counted by a GROUP BY;
version 3: no routing record with lifecycle events; version 4: no group notifications, whose
tables the schema script adds; version 5: no silences).
:func:`migrate` brings a file to :data:`VERSION` in one transaction; if a step fails, the
transaction is rolled back and the file is left as it was.

Version 3 needs ``auto_vacuum = INCREMENTAL``, which SQLite sets only on a file whose header
is not written yet or by a VACUUM (a rewrite of the whole file, outside any transaction,
needing as much free disk as the file takes). An older file is VACUUMed first, once: if that
fails or is interrupted, the file is unchanged and still at its old version, and the next
start does it.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

VERSION = 6
#: ``PRAGMA auto_vacuum`` value of a file whose free pages ``PRAGMA incremental_vacuum`` returns.
INCREMENTAL = 2
SCHEMA = (Path(__file__).with_name("schema.sql")).read_text(encoding="utf-8")

#: Version 1 → 2: named leases (the old flag is dropped: whatever it held is simply owed) and
#: incident rows that point at their last notifying event's snapshot instead of copying it.
_V1_TO_V2 = """
DROP INDEX IF EXISTS notifications_due;
ALTER TABLE notifications ADD COLUMN lease TEXT;
ALTER TABLE notifications DROP COLUMN leased;
CREATE TABLE incidents_v2 (
    id TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, active INTEGER NOT NULL, state INTEGER NOT NULL,
    severity INTEGER NOT NULL, source TEXT NOT NULL, created_at REAL NOT NULL, data TEXT, event_id INTEGER);
INSERT INTO incidents_v2 (id, fingerprint, active, state, severity, source, created_at, data)
    SELECT id, fingerprint, active, state, severity, source, created_at, data FROM incidents;
DROP TABLE incidents;
ALTER TABLE incidents_v2 RENAME TO incidents;
"""

#: Version 3 → 4: the routing record of each lifecycle event (events stored before have none).
_V3_TO_V4 = "ALTER TABLE timeline ADD COLUMN routing TEXT;"

#: Version 5 → 6: silenced and inhibited notifications name what stopped them (the silences
#: table and the index come with the schema script).
_V5_TO_V6 = "ALTER TABLE notifications ADD COLUMN suppressed_by TEXT;"

#: Version 2 → 3 (after the schema script made the table and its triggers): count what is there.
_FILL_COUNTS = """
DELETE FROM notification_counts;
INSERT INTO notification_counts (channel, status, count)
    SELECT channel, status, COUNT(*) FROM notifications GROUP BY channel, status;
"""


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the store behind ``conn`` (autocommit mode) to :data:`VERSION`; returns the version
    it had. Raises sqlite3.DatabaseError for a file that is not a store of ours."""
    found = conn.execute("PRAGMA user_version").fetchone()[0]
    if found >= VERSION:
        return found
    _vacuum_incrementally(conn)
    steps = _V1_TO_V2 if _has_column(conn, "notifications", "leased") else ""
    if _has_column(conn, "timeline", "id") and not _has_column(conn, "timeline", "routing"):
        steps += _V3_TO_V4
    if _has_column(conn, "notifications", "id") and not _has_column(conn, "notifications", "suppressed_by"):
        steps += _V5_TO_V6
    try:  # one script, one transaction (executescript would commit an outer one first)
        conn.executescript(f"BEGIN IMMEDIATE;\n{steps}\n{SCHEMA}\n{_FILL_COUNTS}\n"
                           f"PRAGMA user_version = {VERSION};\nCOMMIT;")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return found


def file_version(path: str) -> int:
    """The schema version of the store file at ``path``, read only: 0 when the file is missing
    or empty (a new store is made there at start). Raises sqlite3.DatabaseError for a file
    that is not a SQLite database."""
    if not Path(path).is_file() or Path(path).stat().st_size == 0:
        return 0
    conn = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
    try:
        return conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()


def _vacuum_incrementally(conn: sqlite3.Connection) -> None:
    """Make the file hand freed pages back on ``PRAGMA incremental_vacuum``, unless it does
    already. Takes a VACUUM even for a new file: once WAL mode has written its header, the
    setting changes no other way (for a file without rows that is instant)."""
    if conn.execute("PRAGMA auto_vacuum").fetchone()[0] != INCREMENTAL:
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        conn.execute("VACUUM")


def _has_column(conn: sqlite3.Connection, table: str, column: str) -> bool:
    return any(row[1] == column for row in conn.execute(f"PRAGMA table_info({table})"))
