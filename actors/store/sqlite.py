"""The store on SQLite: a file beside the server, one server per file (actors/store/lock.py).

One connection per thread (SQLite connections must not be shared across threads without a
lock); WAL mode so readers never block the writer, and one writer at a time. With
``synchronous=normal`` a commit is durable against the process being killed (``kill -9``);
``full`` adds an fsync per commit for power-loss durability. What the store does is in
actors/store/base.py; this module gives it SQLite's connections, transactions, counters and
space accounting.
"""
from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..domain.changes import StoreUsage
from .base import Store
from .checkpoints import Checkpointer
from .dialect import SQLITE, Session
from .files import create_private_file, make_private_directories
from .migrations import migrate


class SqliteStore(Store):
    """Safe to call from any thread; each thread gets its own connection.

    Opening migrates an older file to the current schema (actors/store/migrations.py);
    raises sqlite3.DatabaseError for a file that is not a store.
    """

    dialect = SQLITE

    def __init__(self, path: str | Path, synchronous: str = "normal") -> None:
        self.path = str(path)
        self.synchronous = synchronous.upper()
        if self.path != ":memory:":
            make_private_directories(Path(self.path).parent)
            create_private_file(self.path)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        # One writer at a time, queued on a Python lock: SQLite's own busy handler would make
        # contending writers sleep in steps of up to 100 ms.
        self._write_lock = threading.Lock()
        migrate(self._connection())
        self._checkpointer = Checkpointer(self.path) if self.path != ":memory:" else None

    # -- connections -------------------------------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.execute("PRAGMA foreign_keys=OFF")
            conn.execute("PRAGMA wal_autocheckpoint=0")  # the Checkpointer's thread does it
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self._connection().execute(sql, params).fetchall()

    def _row(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._connection().execute(sql, params).fetchone()

    def _transaction(self) -> "_Txn":
        return _Txn(self._connection(), self._write_lock)

    def _timeline_ids(self, conn: Session, count: int) -> Iterable[int]:
        """The ids after the highest one: the write lock is held, so nobody else takes them."""
        first = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM timeline").fetchone()[0]
        return range(first, first + count)

    def _status_counts(self) -> Iterable[tuple[str, str, int]]:
        """The counters the schema's triggers keep (a row per channel and status)."""
        return self._rows("SELECT channel, status, count FROM notification_counts WHERE count > 0")

    def close(self) -> None:
        """Close every connection opened by any thread, after a last checkpoint. Later calls
        reopen connections as needed (without a checkpointer: a closed store is for reading)."""
        if self._checkpointer is not None:
            self._checkpointer.close()
            self._checkpointer = None
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    # -- space -------------------------------------------------------------------------
    def reclaim_space(self, max_pages: int) -> int:
        """Give up to ``max_pages`` free pages back to the file system (the file shrinks);
        returns how many free pages are left."""
        with self._write_lock:
            conn = self._connection()
            # executescript runs the pragma to the end (execute would free one page per step)
            conn.executescript(f"BEGIN IMMEDIATE; PRAGMA incremental_vacuum({int(max_pages)}); COMMIT;")
            return conn.execute("PRAGMA freelist_count").fetchone()[0]

    def usage(self) -> StoreUsage:
        """The file's size and free space (from its page counts) and the oldest record kept."""
        page_size = self._row("PRAGMA page_size")[0]
        pages = self._row("PRAGMA page_count")[0]
        free = self._row("PRAGMA freelist_count")[0]
        return StoreUsage(pages * page_size, free * page_size, self._oldest_record())


class _Txn:
    """``with`` block running BEGIN IMMEDIATE … COMMIT, or ROLLBACK on any exception."""

    def __init__(self, conn: sqlite3.Connection, lock: threading.Lock) -> None:
        self.conn = conn
        self.lock = lock

    def __enter__(self) -> sqlite3.Connection:
        self.lock.acquire()
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.lock.release()
            raise
        return self.conn

    def __exit__(self, exc_type: object, *rest: object) -> None:
        try:
            self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self.lock.release()
