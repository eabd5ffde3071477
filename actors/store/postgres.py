"""The store on PostgreSQL (``[state] url``), through psycopg 3 and its connection pool.

What the store does is in actors/store/base.py, in SQL both engines speak; this module gives it
PostgreSQL's connections (a pool, each in autocommit mode, a transaction per write), the
statements that differ, and the schema (actors/store/postgres_migrations.py). psycopg is
imported only here, and this module only when a ``postgresql://`` store is configured
(actors/store/opening.py), so a server on SQLite runs without it.

Isolation is PostgreSQL's default, READ COMMITTED; the statements that must not lose a race say
so themselves: an attempt is recorded only if the row still expects it (a compare-and-set on
``attempts``), and deliveries are leased with ``FOR UPDATE SKIP LOCKED``.

A lost connection (the server restarted, the backend terminated, the network broke) costs
nothing until it is used: then the pool's connections are checked, the broken ones discarded,
and the read or the transaction is run once more on a fresh connection — a transaction that
failed before COMMIT was rolled back by the server, so running it again is running it once.
One that failed *during* COMMIT is not run again: whether it committed is unknown, and
StoreUnavailable says so. When no connection can be had within ``POOL_WAIT_SECS``,
StoreUnavailable too (the gRPC edge answers UNAVAILABLE); the pool keeps reconnecting in the
background, so the next call after the database is back succeeds.
"""
from __future__ import annotations

import functools
import threading
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence, TypeVar

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from ..domain.changes import Change, StoreUsage
from ..domain.errors import OutcomeUnknown, StoreUnavailable
from ..domain.jsontext import parse
from ..domain.models import Delivery, DeliveryStatus, to_iso
from ..domain.silences import Silence
from .base import (_INCIDENT_DATA, _INCIDENT_FROM, DUE_SQL, AttemptRecord, Applied, Conflict, Guard, StaleSilence, Store,
                   due_sql, leased_delivery)
from .dialect import POSTGRES, Session
from .lock import StoreInUse
from .postgres_migrations import OUR_TABLES, found_version, lock_keys, migrate
from .retention import Cursor

#: Counter changes summed by a read before they are folded into one row per (channel, status).
FOLD_AFTER = 1000
#: Seconds to wait for a connection of the pool (at start, when all are busy, and when the
#: database cannot be reached: then StoreUnavailable).
POOL_WAIT_SECS = 10.0
#: Seconds the pool keeps trying one lost connection again (backing off) before it gives up on
#: it; the next call that finds the pool empty starts a new try, so a database back after a long
#: outage is found again within about this long.
RECONNECT_SECS = 10.0
#: The database's clock, which every replica reads alike (their own clocks may differ).
_DB_NOW = "extract(epoch FROM clock_timestamp())"
#: Free to a router of replicas sharing the store (parameters: its lease, its instance): held by
#: no lease, or by an earlier router of its own instance, or by a replica no longer alive.
_FREE_TO_REPLICA = (
    "(n.lease IS NULL OR (n.lease != ? AND (split_part(n.lease, ':', 1) = ? OR NOT EXISTS ("
    "SELECT 1 FROM replicas r WHERE r.instance = split_part(n.lease, ':', 1) "
    f"AND r.alive_until >= {_DB_NOW}))))")
_SHARED_DUE_SQL = due_sql(_FREE_TO_REPLICA)
#: Timeline ids per NOTIFY (its payload holds under 8000 bytes).
_IDS_PER_NOTIFY = 400
#: How often a listener looks whether it is asked to stop.
_LISTEN_WAKE_SECS = 0.5
#: Seconds a replica's row is kept after it was last alive (its leases are free long before).
_FORGET_REPLICA_SECS = 86400.0


T = TypeVar("T")


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

    def __init__(self, conninfo: str, pool_size: int = 10, shared: bool = False) -> None:
        """Bring the schema to the current version (under the migration lock), then open a
        pool of up to ``pool_size`` connections; ``shared``: replicas write this store too.
        Raises psycopg.Error when the database cannot be reached or changed, SchemaError when
        its schema is not ours to use; nothing is left open then. ``conninfo`` may hold the
        password: it is never logged or shown."""
        self.shared = shared
        self._conninfo = conninfo
        with psycopg.connect(conninfo, autocommit=True) as conn:
            migrate(conn)
            #: The channels of this store's news to replicas (NOTIFY is per database): the
            #: timeline entries each commit wrote, and the silences that changed.
            suffix = lock_keys(conn, "changes")[1] & 0xFFFFFFFF
            self._channel = "im_changes_%d" % suffix
            self._silence_channel = "im_silences_%d" % suffix
        self._pool = ConnectionPool(conninfo, min_size=1, max_size=pool_size, kwargs={"autocommit": True},
                                    timeout=POOL_WAIT_SECS, reconnect_timeout=RECONNECT_SECS,
                                    name="incident-store", open=True)
        try:
            self._pool.wait(POOL_WAIT_SECS)
        except BaseException:
            self._pool.close()
            raise

    # -- connections -------------------------------------------------------------------
    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self._reading(lambda conn: conn.execute(pg_sql(sql), params).fetchall())

    def _row(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._reading(lambda conn: conn.execute(pg_sql(sql), params).fetchone())

    def _reading(self, read: Callable[[psycopg.Connection[Any]], T]) -> T:
        """``read`` on a connection of the pool; run once more on a fresh one if the
        connection turns out lost (a read changes nothing). StoreUnavailable when that fails
        too or no connection can be had."""
        for last_try in (False, True):
            with self._connection() as conn:
                try:
                    return read(conn)
                except psycopg.OperationalError as error:
                    if not conn.broken:
                        raise
                    if last_try:
                        raise _lost(error) from None
            self._pool.check()
        raise AssertionError("unreachable")

    @contextmanager
    def _transaction(self) -> Iterator[Session]:
        """One transaction on a connection of the pool, not run again: :meth:`_in_transaction`
        is the one that recovers from a lost connection."""
        with self._connection() as conn, conn.transaction():
            yield _Session(conn)

    def _in_transaction(self, work: Callable[[Session], T]) -> T:
        """As :meth:`Store._in_transaction`; when the connection is lost before COMMIT (the
        server rolled the transaction back), ``work`` runs once more, in a new transaction on a
        fresh connection. StoreUnavailable when that fails too, when no connection can be
        had, or when the connection is lost during COMMIT (the message says it may have
        committed)."""
        for last_try in (False, True):
            with self._connection() as conn:
                committing = False
                try:
                    with conn.transaction():
                        result = work(_Session(conn))
                        committing = True
                    return result
                except psycopg.OperationalError as error:
                    if not conn.broken:
                        raise
                    if committing:
                        raise OutcomeUnknown(
                            f"the connection to the store's database was lost while committing "
                            f"({type(error).__name__}): the change may or may not have been made; "
                            "sending it again is safe where it names itself (an alert's alert_id)") from None
                    if last_try:
                        raise _lost(error) from None
            self._pool.check()
        raise AssertionError("unreachable")

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection of the pool (a broken one is discarded when it comes back);
        StoreUnavailable when none can be had within ``POOL_WAIT_SECS``."""
        try:
            conn = self._pool.getconn()
        except PoolTimeout:
            raise StoreUnavailable(f"the store's database cannot be reached: no connection within "
                                   f"{POOL_WAIT_SECS:g} s; try again") from None
        try:
            yield conn
        finally:
            self._pool.putconn(conn)

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
        recorded or leased elsewhere is left for the next pull instead of waited for. Shared
        by replicas, a row another replica holds is free only once that replica is no longer
        alive (:meth:`beat`); ``lease`` is ``"<instance>:<epoch>"``."""

        def take(conn: Session) -> list[Any]:
            if self.shared:
                rows = conn.execute(_SHARED_DUE_SQL + " FOR UPDATE OF n SKIP LOCKED",
                                    (channel, destination, now, lease, lease.partition(":")[0], limit)).fetchall()
            else:
                rows = conn.execute(DUE_SQL + " FOR UPDATE OF n SKIP LOCKED",
                                    (channel, destination, now, lease, limit)).fetchall()
            if rows:
                conn.execute("UPDATE notifications SET lease = ? WHERE id = ANY(?)",
                             (lease, [row[0] for row in rows]))
            return rows
        return [leased_delivery(row, channel, destination, lease) for row in self._in_transaction(take)]

    def apply(self, changes: Sequence[Change], lease: str = "", guard: Guard | None = None) -> Applied:
        """As :meth:`Store.apply`; with a ``guard``, first locks the incidents the processor
        read (in id order, so two replicas never deadlock) and checks they are as it read them,
        lets the incidents the batch supersedes go of their fingerprint, then writes, telling
        the other replicas of its timeline entries when it commits (:meth:`listen`). Raises
        Conflict, nothing written, when one changed or when a unique key (an alert id, a
        fingerprint's claim) was taken by another replica first. With ``guard.releases``, marks
        that silence released first (telling the other replicas), or raises StaleSilence when
        another replica released it or changed its end, and Conflict when it held an incident
        the processor did not read. StaleSilence too when a silence that held back some of the
        batch's notifications was released meanwhile (its release did not see them)."""
        if guard is None:
            return super().apply(changes, lease)

        def write(conn: Session) -> Applied:
            if guard.releases is not None:
                _release(conn, guard.releases, guard.read)
                self._silence_changed(conn, guard.releases.id)
            _rest_on_silences(conn, changes)
            _hold(conn, changes, guard)
            applied = self._write_changes(conn, changes, lease, claim_fingerprints=guard.dedup)
            self._announce(conn, guard.origin, [e.id for events in applied.events for e in events])
            return applied
        try:
            return self._in_transaction(write)
        except psycopg.errors.UniqueViolation as error:
            raise Conflict(f"another replica wrote first ({error.diag.constraint_name})") from None

    # -- replicas ------------------------------------------------------------------------
    def beat(self, instance: str, lease_secs: float, report: str) -> None:
        """Say replica ``instance`` is alive for ``lease_secs`` more seconds (by the
        database's clock), with its report (JSON: actors, in flight); forget replicas gone
        for a day."""

        def write(conn: Session) -> None:
            conn.execute(f"INSERT INTO replicas (instance, started_at, alive_until, report) "
                         f"VALUES (?, {_DB_NOW}, {_DB_NOW} + ?, ?) ON CONFLICT (instance) DO UPDATE "
                         "SET alive_until = excluded.alive_until, report = excluded.report",
                         (instance, lease_secs, report))
            conn.execute(f"DELETE FROM replicas WHERE alive_until < {_DB_NOW} - ?", (_FORGET_REPLICA_SECS,))
        self._in_transaction(write)

    def _announce(self, conn: Session, origin: str, timeline_ids: list[int]) -> None:
        """NOTIFY the store's channel, delivered when the transaction commits (never if it is
        rolled back): ``"<origin> <id> <id> …"``, split to fit PostgreSQL's payload limit."""
        for start in range(0, len(timeline_ids), _IDS_PER_NOTIFY):
            ids = " ".join(map(str, timeline_ids[start:start + _IDS_PER_NOTIFY]))
            conn.execute("SELECT pg_notify(?, ?)", (self._channel, f"{origin} {ids}"))

    def _silence_changed(self, conn: Session, silence_id: str) -> None:
        """NOTIFY the store's silence channel with the silence's id when the transaction
        commits, where replicas share the store (every replica hears it, the writer too)."""
        if self.shared:
            conn.execute("SELECT pg_notify(?, ?)", (self._silence_channel, silence_id))

    def listen(self, instance: str, on_changes: Callable[[list[int]], None], on_silence: Callable[[str], None],
               stop: threading.Event, on_listening: Callable[[], None]) -> None:
        """Until ``stop`` is set, call ``on_changes`` with the timeline ids each commit of
        another replica wrote, and ``on_silence`` with the id of each silence any replica
        changed, as they commit (LISTEN on a connection of its own; ``on_listening`` is called
        once it listens). Raises psycopg.Error when the connection is lost (what was committed
        meanwhile is not heard of). The connection shows in ``pg_stat_activity`` as
        ``im-relay <instance>``."""
        with psycopg.connect(self._conninfo, autocommit=True, application_name=f"im-relay {instance}") as conn:
            conn.execute(f'LISTEN "{self._channel}"')
            conn.execute(f'LISTEN "{self._silence_channel}"')
            on_listening()
            while not stop.is_set():
                for notice in conn.notifies(timeout=_LISTEN_WAKE_SECS):
                    if notice.channel == self._silence_channel:
                        on_silence(notice.payload)
                    else:
                        origin, _, ids = notice.payload.partition(" ")
                        if origin != instance and ids:
                            on_changes([int(i) for i in ids.split()])
                    if stop.is_set():
                        break

    def leave(self, instance: str) -> None:
        """Replica ``instance`` stopped: whatever it still held is free to the others now."""
        self._in_transaction(lambda conn: conn.execute("DELETE FROM replicas WHERE instance = ?", (instance,)))

    def replicas(self) -> list[tuple[str, float, float, str]]:
        """(instance, started at, seconds it stays alive from now, its last report) of every
        replica alive now, oldest first."""
        return self._rows(f"SELECT instance, started_at, alive_until - {_DB_NOW}, report FROM replicas "
                          f"WHERE alive_until >= {_DB_NOW} ORDER BY started_at, instance")

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
        self._in_transaction(lambda conn: conn.execute("WITH gone AS (DELETE FROM notification_counts RETURNING channel, status, count) "
                         "INSERT INTO notification_counts (channel, status, count) "
                         "SELECT channel, status, sum(count) FROM gone GROUP BY channel, status "
                         "HAVING sum(count) <> 0"))

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


#: How often the lock's watcher looks whether it is asked to stop.
_LOCK_WAKE_SECS = 0.25
#: Seconds between tries to take the lock again while the database cannot be reached.
RELOCK_SECS = 1.0
#: TCP keepalives on the lock's connection, so that a network silently gone is noticed too
#: (within about 11 s) and not only a session the server ended.
_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3}


class ServerLock:
    """One server per PostgreSQL store (database and schema), or any number of replicas: a
    session-level advisory lock, exclusive for a lone server and shared by replicas, on a
    connection of its own, held until :meth:`release` or until that session ends (a server
    that dies, ``kill -9`` included, lets go at once).

    The session can also end under a live server (the database restarted, the backend was
    terminated, the network failed), and the lock with it: :meth:`watch` notices at once and
    takes the lock again on a new connection, unless another server took it meanwhile."""

    def __init__(self, conninfo: str, shown_as: str, replicas: bool = False) -> None:
        """Take the lock now. Raises StoreInUse if a server holds it that this one cannot
        share it with, psycopg.Error if the database cannot be reached."""
        self._conninfo = conninfo
        self._shown_as = shown_as
        self._replicas = replicas
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._conn: psycopg.Connection[Any] | None = self._take()

    def _take(self) -> psycopg.Connection[Any]:
        """A new connection holding the lock. StoreInUse (nothing left open) when a server
        holds it that this one cannot share it with; psycopg.Error when unreachable."""
        conn = psycopg.connect(self._conninfo, autocommit=True, **_KEEPALIVES)
        take = "pg_try_advisory_lock_shared" if self._replicas else "pg_try_advisory_lock"
        try:
            taken = conn.execute(f"SELECT {take}(%s, %s)", lock_keys(conn, "server")).fetchone()[0]
        except BaseException:
            conn.close()
            raise
        if not taken:
            conn.close()
            raise StoreInUse(
                f"the store {self._shown_as} is in use by a server without [state] replicas = true (it holds "
                "the store's advisory lock alone); replicas share a store only with replicas" if self._replicas
                else f"the store {self._shown_as} is in use by another server (it holds the store's advisory "
                "lock); one server per store unless every one of them sets [state] replicas = true")
        return conn

    def watch(self, on_retaken: Callable[[str], None], on_lost: Callable[[str], None]) -> None:
        """From now on, in a thread of its own, notice at once when the lock's session ends
        and take the lock again on a new connection (trying every ``RELOCK_SECS`` while the
        database cannot be reached), then call ``on_retaken(reason)``. If another server took
        it meanwhile, call ``on_lost(reason)`` (that server owns the store now: this one must
        stop) and stop watching."""
        self._watcher = threading.Thread(target=self._watch, args=(on_retaken, on_lost), name="store-lock",
                                         daemon=True)
        self._watcher.start()

    def _watch(self, on_retaken: Callable[[str], None], on_lost: Callable[[str], None]) -> None:
        while not self._stop.is_set():
            conn = self._conn
            if conn is None:
                return  # released meanwhile
            try:
                for _ in conn.notifies(timeout=_LOCK_WAKE_SECS):
                    pass  # nothing is sent on this connection: this waits for its end
                continue
            except psycopg.OperationalError as error:
                ended = f"the store lock's session ended ({type(error).__name__})"
            conn.close()
            self._conn = None
            while not self._stop.is_set():
                try:
                    self._conn = self._take()
                except StoreInUse as taken:
                    on_lost(f"{ended} and another server took the store meanwhile: {taken}")
                    return
                except psycopg.Error:  # still unreachable
                    self._stop.wait(RELOCK_SECS)
                    continue
                on_retaken(f"{ended}; taken again")
                break

    def release(self) -> None:
        """Let the next server have the store; harmless when already released."""
        self._stop.set()
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join()
        if self._conn is not None:
            try:  # at once: a closed session's locks are let go only when its backend has ended
                self._conn.execute("SELECT pg_advisory_unlock_all()")
            except psycopg.Error:
                pass  # the session is gone, and its locks with it
            self._conn.close()
            self._conn = None


def _lost(error: psycopg.OperationalError) -> StoreUnavailable:
    """The error of an operation whose connection was lost twice: nothing of it was made."""
    return StoreUnavailable(f"the store's database cannot be reached: the connection was lost "
                            f"({type(error).__name__}) and so was a fresh one; nothing was changed; try again")


def _hold(conn: Session, changes: Sequence[Change], guard: Guard) -> None:
    """Lock the incidents ``guard`` read and check each is still as read (its ``updated_at``);
    the ones the batch opens a new incident in place of let go of their fingerprint's claim.
    Conflict when one changed or is gone."""
    if not guard.read:
        return
    ids = sorted(guard.read)
    conn.execute("SELECT id FROM incidents WHERE id = ANY(?) ORDER BY id FOR UPDATE", (ids,))
    stored = dict(conn.execute(f"SELECT i.id, {_INCIDENT_DATA} FROM {_INCIDENT_FROM} WHERE i.id = ANY(?)",
                               (ids,)).fetchall())
    for incident_id, incident in guard.read.items():
        data = stored.get(incident_id)
        if data is None or parse(data)["updated_at"] != to_iso(incident.updated_at):
            raise Conflict(f"incident {incident_id} changed since it was read")
    if guard.dedup:
        changed = {change.incident.id for change in changes}
        opened = {change.incident.fingerprint for change in changes if change.is_new}
        superseded = [i.id for i in guard.read.values() if i.id not in changed and i.fingerprint in opened]
        if superseded:
            conn.execute("UPDATE incidents SET dedup_key = NULL WHERE id = ANY(?)", (superseded,))


def _release(conn: _Session, silence: Silence, read: Mapping[str, Any]) -> None:
    """Mark the ended silence released if the store still holds it unreleased with the same
    end (the silence row stays locked until the transaction ends, so two replicas releasing it
    at once take turns and the second finds it released); StaleSilence otherwise. Conflict
    when it held an incident that is not among those ``read`` (a batch another replica
    silenced with it committed since the processor asked which incidents it held)."""
    if not conn.execute("UPDATE silences SET released = 1 WHERE id = ? AND released = 0 AND ends_at = ?",
                        (silence.id, silence.ends_at.timestamp())).rowcount:
        raise StaleSilence(silence.id)
    held = conn.execute("SELECT DISTINCT incident_id FROM notifications WHERE suppressed_by = ?",
                        (silence.id,)).fetchall()
    if any(incident_id not in read for incident_id, in held):
        raise Conflict(f"silence {silence.id} held another incident since its release was decided")


def _rest_on_silences(conn: _Session, changes: Sequence[Change]) -> None:
    """Share-lock the silences that held back the batch's notifications (a release of one of
    them waits for this transaction, and then sees what it held); StaleSilence when one was
    released already."""
    silences = sorted({event.suppression.by for change in changes for event in change.events
                       if event.suppression is not None and event.suppression.status is DeliveryStatus.SILENCED})
    if not silences:
        return
    unreleased = {row[0] for row in conn.execute(
        "SELECT id FROM silences WHERE id = ANY(?) AND released = 0 ORDER BY id FOR SHARE", (silences,))}
    for silence_id in silences:
        if silence_id not in unreleased:
            raise StaleSilence(silence_id)


def _without_nul(record: AttemptRecord) -> AttemptRecord:
    detail = record.outcome.detail
    if "\x00" not in detail:
        return record
    return record._replace(outcome=replace(record.outcome, detail=detail.replace("\x00", "\ufffd")))
