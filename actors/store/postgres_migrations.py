"""Schema versions of the PostgreSQL store, and the steps between them.

The store lives in the connection's current schema (``public`` unless the URL's ``options``
set a ``search_path``). Its version is the one row of ``schema_version`` there; no such table
means version 0, nothing of ours yet. ``STEPS[n]`` brings version n to n + 1.

:func:`migrate` runs the missing steps in one transaction holding a transaction-level advisory
lock (``pg_advisory_xact_lock``) keyed to the schema, so servers that start together migrate
once: the others wait for the lock, then find the work done. PostgreSQL's DDL is
transactional: if a step fails, everything is rolled back and the schema is left as it was.
"""
from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

STEPS: tuple[str, ...] = (
    (Path(__file__).with_name("postgres_v1.sql")).read_text(encoding="utf-8"),
    # 1 → 2: the routing record of each lifecycle event (events stored before have none)
    "ALTER TABLE timeline ADD COLUMN routing TEXT",
    # 2 → 3: group notifications (actors/store/schema.sql says what the columns mean)
    "CREATE TABLE notification_groups (id TEXT PRIMARY KEY, channel TEXT NOT NULL, destination TEXT NOT NULL, "
    "route TEXT NOT NULL, group_key TEXT NOT NULL, open_id TEXT, last_sent_at DOUBLE PRECISION, "
    "repeat_secs DOUBLE PRECISION, "
    "UNIQUE (channel, destination, route, group_key)); "
    "CREATE INDEX notification_groups_open ON notification_groups (open_id) WHERE open_id IS NOT NULL; "
    "CREATE TABLE group_items (notification_id TEXT NOT NULL, timeline_id BIGINT NOT NULL, "
    "incident_id TEXT NOT NULL, PRIMARY KEY (notification_id, timeline_id))",
    # 3 → 4: silences, and what stopped a silenced or inhibited notification
    "ALTER TABLE notifications ADD COLUMN suppressed_by TEXT; "
    "CREATE INDEX notifications_suppressed ON notifications (suppressed_by, incident_id) "
    "WHERE suppressed_by IS NOT NULL; "
    "CREATE TABLE silences (id TEXT PRIMARY KEY, matchers TEXT NOT NULL, starts_at DOUBLE PRECISION NOT NULL, "
    "ends_at DOUBLE PRECISION NOT NULL, created_by TEXT NOT NULL, comment TEXT NOT NULL, "
    "created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL, "
    "released INTEGER NOT NULL DEFAULT 0)",
    # 4 → 5: the replicas sharing the store, each alive until its heartbeat lapses
    "CREATE TABLE replicas (instance TEXT PRIMARY KEY, started_at DOUBLE PRECISION NOT NULL, "
    "alive_until DOUBLE PRECISION NOT NULL, report TEXT NOT NULL DEFAULT '{}')",
)
VERSION = len(STEPS)
#: Tables whose presence without a ``schema_version`` means someone else's tables are here.
OUR_TABLES = ("incidents", "alerts", "timeline", "notifications", "notification_counts", "attempts",
              "channel_state", "silences", "replicas")


class SchemaError(Exception):
    """The schema cannot hold this server's store (someone else's tables, or a newer version)."""


def lock_keys(conn: Any, purpose: str) -> tuple[int, int]:
    """The two signed 32-bit keys of the advisory lock for ``purpose`` on the store behind
    ``conn``: one for the purpose, one for the schema (advisory locks are per database)."""
    return _key(f"llm-incident-manager {purpose}"), _key(schema_of(conn))


def schema_of(conn: Any) -> str:
    """The schema the store lives in; SchemaError when the search_path names none that exists."""
    schema = conn.execute("SELECT current_schema()").fetchone()[0]
    if schema is None:
        raise SchemaError("no schema to keep the store in: the search_path names none that exists")
    return schema


def _key(text: str) -> int:
    return zlib.crc32(text.encode()) - 2**31


def found_version(conn: Any) -> int:
    """The schema version of the store behind ``conn`` (a psycopg connection), 0 when it has
    none yet; reads only. Raises SchemaError when the schema holds tables of our names that we
    did not make, or a version newer than this server's."""
    if conn.execute("SELECT to_regclass('schema_version')").fetchone()[0] is None:
        clashing = [name for name, present in conn.execute(
            "SELECT name, to_regclass(name) IS NOT NULL FROM unnest(CAST(%s AS text[])) AS name",
            (list(OUR_TABLES),)) if present]
        if clashing:
            raise SchemaError(f"schema {schema_of(conn)!r} has tables named {', '.join(clashing)} that this "
                              "server did not make; give the store a database or schema of its own")
        return 0
    found = conn.execute("SELECT version FROM schema_version").fetchone()[0]
    if found > VERSION:
        raise SchemaError(f"schema {schema_of(conn)!r} is at version {found}, newer than this server's "
                          f"{VERSION}; run a newer server")
    return found


def migrate(conn: Any) -> int:
    """Bring the store behind ``conn`` (a psycopg connection in autocommit mode) to
    :data:`VERSION` under the migration lock; returns the version it had. Raises SchemaError
    (see :func:`found_version`) or the driver's error, with nothing changed."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", lock_keys(conn, "migrations"))
        found = found_version(conn)
        for step in STEPS[found:]:
            conn.execute(step)
        if found == 0:
            conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
            conn.execute("INSERT INTO schema_version VALUES (%s)", (VERSION,))
        elif found < VERSION:
            conn.execute("UPDATE schema_version SET version = %s", (VERSION,))
    return found
