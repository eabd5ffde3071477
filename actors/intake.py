"""Group commit for alert intake, without an extra thread.

Callers (gRPC worker threads, embedding programs) each hand in their alerts; whoever finds
no batch in progress becomes the leader, takes *everything* queued so far and sends it to
the processor as one command — one store transaction. The others wait; when the leader is
done one of those still waiting leads the next batch. Under load, batches grow by
themselves; when idle, a lone alert goes through at once.
"""
from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Callable, Sequence

from .domain.commands import AlertResult
from .domain.models import Alert

Flush = Callable[[list[Alert]], list[AlertResult]]


class GroupCommit:
    def __init__(self, flush: Flush, max_batch: int = 1000) -> None:
        self._flush = flush
        self._max_batch = max_batch
        self._pending: list[tuple[Sequence[Alert], Future[list[AlertResult]]]] = []
        self._flushing = False
        self._changed = threading.Condition()

    def submit(self, alerts: Sequence[Alert]) -> list[AlertResult]:
        """Results for ``alerts`` in order; raises what the flush raised for the whole batch.
        Never waits forever: every flush ends (the processor ask has a timeout)."""
        item: tuple[Sequence[Alert], Future[list[AlertResult]]] = (alerts, Future())
        with self._changed:
            self._pending.append(item)
        while not item[1].done():
            with self._changed:
                batch = self._take_batch() if not self._flushing and not item[1].done() else None
                if batch is None:
                    self._changed.wait_for(lambda: item[1].done() or not self._flushing)
                    continue
            try:
                self._run(batch)
            finally:
                with self._changed:
                    self._flushing = False
                    self._changed.notify_all()
        return item[1].result(timeout=0)

    def _take_batch(self) -> list[tuple[Sequence[Alert], Future[list[AlertResult]]]]:
        batch, size = [], 0
        while self._pending and (not batch or size + len(self._pending[0][0]) <= self._max_batch):
            entry = self._pending.pop(0)
            batch.append(entry)
            size += len(entry[0])
        self._flushing = True
        return batch

    def _run(self, batch: list[tuple[Sequence[Alert], Future[list[AlertResult]]]]) -> None:
        try:
            results = self._flush([alert for alerts, _ in batch for alert in alerts])
        except BaseException as error:  # every waiter learns why its alerts were not recorded
            for _, future in batch:
                future.set_exception(error)
            if not isinstance(error, Exception):
                raise
            return
        offset = 0
        for alerts, future in batch:
            future.set_result(results[offset:offset + len(alerts)])
            offset += len(alerts)
