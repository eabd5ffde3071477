"""RetentionActor: keeps the store from growing forever, off the hot path.

Once at start and then every ``every_secs``, it runs a pass: settled notifications and closed
incidents last changed more than ``[state] retention_days`` ago are deleted (what exactly goes
is in actors/store/retention.py), one transaction of at most ``batch_rows`` rows per message it
sends itself, so the store's write lock is free between batches and intake waits at most one
small batch. Then the freed pages go back to the file system the same way, ``reclaim_pages`` at
a time. With ``retention_days = 0`` it does nothing.

It keeps nothing the store does not: a crash mid-pass (a store error) is restarted by its
supervisor, and the next pass starts over where the deleted rows left off. A store whose
database cannot be reached ends it the same way, and it is restarted once the outage may be
over, however long that takes (actors/supervision.py).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import pykka
import structlog

from .faults import ActorFaults
from .scheduler import Scheduler, TimerHandle
from .store.retention import Cursor
from .store.base import Store
from .supervision import SupervisedActor, tell_quietly

log = structlog.get_logger(__name__)

DAY_SECS = 86_400.0
#: How often a pass runs.
EVERY_SECS = 3600.0
#: Rows one transaction may delete.
BATCH_ROWS = 500
#: Free pages one transaction gives back (4 MiB with SQLite's default 4 KiB pages).
RECLAIM_PAGES = 1024


@dataclass(frozen=True, slots=True)
class Prune:
    """Start a pass now (unless one is running)."""


@dataclass(frozen=True, slots=True)
class _Batch:
    cutoff: float
    cursor: Cursor


@dataclass(frozen=True, slots=True)
class _Reclaim:
    pass


class RetentionActor(SupervisedActor):
    def __init__(self, supervisor: pykka.ActorRef | None, name: str, store: Store, retention_days: int,
                 scheduler: Scheduler, every_secs: float = EVERY_SECS, batch_rows: int = BATCH_ROWS,
                 reclaim_pages: int = RECLAIM_PAGES, clock: Callable[[], float] = time.time,
                 faults: ActorFaults | None = None) -> None:
        super().__init__(supervisor, name, faults)
        self.store = store
        self.retention_days = retention_days
        self.retention_secs = retention_days * DAY_SECS
        self.scheduler = scheduler
        self.every_secs = every_secs
        self.batch_rows = batch_rows
        self.reclaim_pages = reclaim_pages
        self.clock = clock
        self._running = False
        self._deleted = 0
        self._free_pages = 0
        self._started_at = 0.0
        self._timer: TimerHandle | None = None

    def started(self) -> None:
        if self.retention_secs:
            self.actor_ref.tell(Prune())

    def cleanup(self) -> None:
        if self._timer:
            self._timer.cancel()

    def receive(self, message: Any) -> Any:
        if isinstance(message, Prune):
            self._start_pass()
        elif isinstance(message, _Batch):
            self._batch(message)
        elif isinstance(message, _Reclaim):
            self._reclaim()
        else:
            return super().receive(message)
        return None

    def _start_pass(self) -> None:
        if self._running or not self.retention_secs:
            return
        self._running, self._deleted, self._started_at = True, 0, time.monotonic()
        self.actor_ref.tell(_Batch(self.clock() - self.retention_secs, Cursor()))

    def _batch(self, message: _Batch) -> None:
        deleted, cursor = self.store.prune(message.cutoff, self.batch_rows, message.cursor)
        self._deleted += deleted
        if cursor is not None:
            self.actor_ref.tell(_Batch(message.cutoff, cursor))
        elif self._deleted:
            self._free_pages = -1
            self.actor_ref.tell(_Reclaim())
        else:
            self._end_pass()

    def _reclaim(self) -> None:
        """Another step while free pages are left and the last step gave some back (a file
        that is not incremental gives none: it is not asked forever)."""
        free, before = self.store.reclaim_space(self.reclaim_pages), self._free_pages
        self._free_pages = free
        if free and (before < 0 or free < before):
            self.actor_ref.tell(_Reclaim())
        else:
            self._end_pass()

    def _end_pass(self) -> None:
        if self._deleted:
            log.info("store_pruned", rows=self._deleted, seconds=round(time.monotonic() - self._started_at, 3),
                     retention_days=self.retention_days)
        self._running = False
        ref = self.actor_ref
        self._timer = self.scheduler.call_later(self.every_secs, lambda: tell_quietly(ref, Prune()))
