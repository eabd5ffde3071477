"""One server per SQLite store: an exclusive advisory lock held for the server's lifetime.

The lock is taken on ``<store>.lock`` (beside the database, so SQLite's own files are left
alone) before anything reads or recovers the store, and is released by :meth:`StoreLock.release`
or, whatever happens, by the operating system when the process ends (``kill -9`` included),
so a crashed server never blocks the next one.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Callable

from .files import make_private_directories


class StoreInUse(Exception):
    """Another live process holds the store; this one must not touch it."""


class StoreLock:
    def __init__(self, store_path: str | Path) -> None:
        """Take the lock now. Raises StoreInUse if another process holds it, OSError if the
        lock file cannot be created."""
        self.path = Path(f"{store_path}.lock")
        make_private_directories(self.path.parent)
        self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            self._fd = None
            raise StoreInUse(f"the store {store_path} is in use by another server "
                             f"(it holds {self.path}); one server per store") from None

    def watch(self, on_retaken: Callable[[str], None], on_lost: Callable[[str], None]) -> None:
        """Nothing to watch: a file lock is held as long as the process lives."""

    def release(self) -> None:
        """Let the next server have the store; harmless when already released."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
