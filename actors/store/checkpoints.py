"""WAL checkpoints on a thread of their own, so no committing thread pays for them.

SQLite normally checkpoints inside whichever commit pushes the write-ahead log past 1,000
pages: that commit then copies pages into the database and fsyncs, while holding the store's
write lock. The store turns that off (``wal_autocheckpoint = 0``) and a :class:`Checkpointer`
runs a PASSIVE checkpoint (which never blocks writers or readers) every ``interval`` seconds
instead. Durability is unchanged: a commit is in the log before it returns either way.
"""
from __future__ import annotations

import logging
import sqlite3
import threading

log = logging.getLogger(__name__)

#: Seconds between checkpoints.
INTERVAL_SECS = 0.5


class Checkpointer:
    def __init__(self, path: str, interval: float = INTERVAL_SECS) -> None:
        self._path = path
        self._interval = interval
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="checkpointer", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop after a last checkpoint (within the interval); returns once it has stopped."""
        self._closed.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        conn = sqlite3.connect(self._path, timeout=30.0, isolation_level=None, check_same_thread=False)
        try:
            while not self._closed.wait(self._interval):
                self._checkpoint(conn)
            self._checkpoint(conn)
        finally:
            conn.close()

    @staticmethod
    def _checkpoint(conn: sqlite3.Connection) -> None:
        """One PASSIVE checkpoint; a failure is logged and the next one tries again (the log
        only grows meanwhile, nothing is lost)."""
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as error:
            log.warning("checkpoint_failed: %s", error)
