"""The store on PostgreSQL (``[state] url``), through psycopg 3 and its connection pool.

What the store does is in actors/store/base.py, in SQL both engines speak; this module gives it
PostgreSQL's connections (a pool, each in autocommit mode, a transaction per write), the
statements that differ, and the schema (actors/store/postgres_migrations.py). psycopg is
imported only here, and this module only when a ``postgresql://`` store is configured
(actors/store/opening.py), so a server on SQLite runs without it.

Isolation is PostgreSQL's default, READ COMMITTED; the statements that must not lose a race say
so themselves: an attempt is recorded only if the row still expects it (a compare-and-set on
``attempts``), and deliveries are leased with ``FOR UPDATE SKIP LOCKED``.
"""
from __future__ import annotations

import functools
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, Iterable, Iterator, Sequence

import psycopg
from psycopg_pool import ConnectionPool

from ..domain.changes import StoreUsage
from ..domain.models import Delivery
from .base import DUE_SQL, AttemptRecord, Store, leased_delivery
from .dialect import POSTGRES, Session
from .lock import StoreInUse
from .postgres_migrations import OUR_TABLES, found_version, lock_keys, migrate
from .retention import Cursor

#: Counter changes summed by a read before they are folded into one row per (channel, status).
FOLD_AFTER = 1000
#: Seconds to wait for a connection of the pool (at start, and when all are busy).
POOL_WAIT_SECS = 10.0


@functools.lru_cache(maxsize=1024)
def pg_sql(sql: str) -> str:
    """The store's SQL with psycopg's placeholders: ``?`` becomes ``%s``, a literal ``%`` ``%%``."""
    return sql.replace("%", "%%").replace("?", "%s")


class _Session:
    """A psycopg connection that runs the store's ``?`` SQL (a :class:`~.dialect.Session`)."""

    __slots__ = ("_conn",)

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor[Any]:
        return self._conn.execute(pg_sql(sql), params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> psycopg.Cursor[Any]:
        cursor = self._conn.cursor()
        cursor.executemany(pg_sql(sql), rows)
        return cursor


class PostgresStore(Store):
    """Safe to call from any thread: each call borrows a connection of the pool."""

    dialect = POSTGRES

    def __init__(self, conninfo: str, pool_size: int = 10) -> None:
        """Bring the schema to the current version (under the migration lock), then open a
        pool of up to ``pool_size`` connections. Raises psycopg.Error when the database cannot
        be reached or changed, SchemaError when its schema is not ours to use; nothing is
        left open then. ``conninfo`` may hold the password: it is never logged or shown."""
        with psycopg.connect(conninfo, autocommit=True) as conn:
            migrate(conn)
        self._pool = ConnectionPool(conninfo, min_size=1, max_size=pool_size, kwargs={"autocommit": True},
                                    timeout=POOL_WAIT_SECS, name="incident-store", open=True)
        try:
            self._pool.wait(POOL_WAIT_SECS)
        except BaseException:
            self._pool.close()
            raise

    # -- connections -------------------------------------------------------------------
    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._pool.connection() as conn:
            return conn.execute(pg_sql(sql), params).fetchall()

    def _row(self, sql: str, params: Sequence[Any] = ()) -> Any:
        with self._pool.connection() as conn:
            return conn.execute(pg_sql(sql), params).fetchone()

    @contextmanager
    def _transaction(self) -> Iterator[Session]:
        with self._pool.connection() as conn, conn.transaction():
            yield _Session(conn)

    def _timeline_ids(self, conn: Session, count: int) -> Iterable[int]:
        """Taken from the table's sequence, so concurrent writers never share one."""
        return sorted(row[0] for row in conn.execute(
            "SELECT nextval('timeline_id_seq') FROM generate_series(1, ?)", (count,)))

    def close(self) -> None:
        """Close the pool's connections (waiting for those in use to come back)."""
        self._pool.close()

    # -- what differs from SQLite ----------------------------------------------------------
    def lease_due(self, channel: str, destination: str, now: float, limit: int, lease: str) -> list[Delivery]:
        """As :meth:`Store.lease_due`, in one transaction that locks the rows it chooses and
        skips those another transaction holds (``FOR UPDATE SKIP LOCKED``): a row being
        recorded or leased elsewhere is left for the next pull instead of waited for."""
        with self._transaction() as conn:
            rows = conn.execute(DUE_SQL + " FOR UPDATE OF n SKIP LOCKED",
                                (channel, destination, now, lease, limit)).fetchall()
            if rows:
                conn.execute("UPDATE notifications SET lease = ? WHERE id = ANY(?)",
                             (lease, [row[0] for row in rows]))
        return [leased_delivery(row, channel, destination, lease) for row in rows]

    def record_attempts(self, records: Sequence[AttemptRecord]) -> list[bool]:
        """As :meth:`Store.record_attempts`; a NUL in an outcome's text (PostgreSQL's text
        cannot hold one, a receiver's answer can) is stored as U+FFFD."""
        return super().record_attempts([_without_nul(record) for record in records])

    def _status_counts(self) -> Iterable[tuple[str, str, int]]:
        """The sums of the counter changes; folded into one row per (channel, status) once
        there are many."""
        rows = self._rows("SELECT channel, status, CAST(sum(count) AS BIGINT), count(*) FROM notification_counts "
                          "GROUP BY channel, status")
        if sum(row[3] for row in rows) > FOLD_AFTER:
            self._fold_counts()
        return [(channel, status, count) for channel, status, count, _ in rows if count > 0]

    def _fold_counts(self) -> None:
        """Replace the counter changes by their sums, one statement: changes appended
        meanwhile by other transactions are not in its snapshot and stay as they are."""
        with self._transaction() as conn:
            conn.execute("WITH gone AS (DELETE FROM notification_counts RETURNING channel, status, count) "
                         "INSERT INTO notification_counts (channel, status, count) "
                         "SELECT channel, status, sum(count) FROM gone GROUP BY channel, status "
                         "HAVING sum(count) <> 0")

    def prune(self, cutoff: float, max_rows: int, cursor: Cursor = Cursor()) -> tuple[int, Cursor | None]:
        """As :meth:`Store.prune`; the counter changes are folded when a pass is over."""
        deleted, following = super().prune(cutoff, max_rows, cursor)
        if following is None:
            self._fold_counts()
        return deleted, following

    def reclaim_space(self, max_pages: int) -> int:
        """Nothing to do: PostgreSQL's autovacuum makes deleted rows' space reusable by itself."""
        return 0

    def usage(self) -> StoreUsage:
        """The size of the store's tables with their indexes; free space is not measured (0)."""
        size = self._row("SELECT CAST(coalesce(sum(pg_total_relation_size(to_regclass(name))), 0) AS BIGINT) "
                         "FROM unnest(CAST(? AS text[])) AS name", (list(OUR_TABLES),))[0]
        return StoreUsage(size, 0, self._oldest_record())


def inspect(conninfo: str) -> tuple[int, str]:
    """The schema version of the store at ``conninfo`` and the server's version, read only.
    Raises psycopg.Error when it cannot be reached, SchemaError when its schema is not ours."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        return found_version(conn), conn.execute("SHOW server_version").fetchone()[0].split()[0]


class ServerLock:
    """One server per PostgreSQL store (database and schema) until replicas can share one:
    a session-level advisory lock, on a connection of its own, held until :meth:`release`
    or until that session ends (a server that dies, ``kill -9`` included, lets go at once)."""

    def __init__(self, conninfo: str, shown_as: str) -> None:
        """Take the lock now. Raises StoreInUse if another server holds it, psycopg.Error if
        the database cannot be reached."""
        self._conn: psycopg.Connection[Any] | None = psycopg.connect(conninfo, autocommit=True)
        try:
            taken = self._conn.execute("SELECT pg_try_advisory_lock(%s, %s)",
                                       lock_keys(self._conn, "server")).fetchone()[0]
        except BaseException:
            self.release()
            raise
        if not taken:
            self.release()
            raise StoreInUse(f"the store {shown_as} is in use by another server (it holds the store's "
                             "advisory lock); one server per store")

    def release(self) -> None:
        """Let the next server have the store; harmless when already released."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _without_nul(record: AttemptRecord) -> AttemptRecord:
    detail = record.outcome.detail
    if "\x00" not in detail:
        return record
    return record._replace(outcome=replace(record.outcome, detail=detail.replace("\x00", "\ufffd")))
