"""Reading a server stream on a helper thread, so Ctrl-C never lands inside grpc.

A KeyboardInterrupt raised while the main thread is inside grpc's stream machinery can leave
the call half-finished, and closing the channel then waits forever. So the call is started
and read on a daemon thread; the main thread only waits on a queue, and on Ctrl-C (or when
it has seen enough) cancels the call from outside, which grpc supports.
"""
from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Iterator

import grpc

_END = object()
POLL_SECS = 0.25  # the main thread's wait slice (keeps Ctrl-C prompt on every platform)
JOIN_SECS = 5.0


class StreamReader:
    """Iterate to receive the stream's messages; raises the call's grpc.RpcError, if any.
    Use as a context manager: leaving it cancels the call."""

    def __init__(self, start: Callable[[], Any]) -> None:
        self._start = start
        self._items: queue.Queue[object] = queue.Queue()
        self._lock = threading.Lock()
        self._call: Any = None
        self._cancelled = False
        self._thread = threading.Thread(target=self._read, name="imctl-stream", daemon=True)

    def _read(self) -> None:
        try:
            call = self._start()
            with self._lock:
                self._call = call
                if self._cancelled:
                    call.cancel()
            for message in call:
                self._items.put(message)
            self._items.put(_END)
        except Exception as error:  # grpc.RpcError, or a bug: either way the main thread raises it
            self._items.put(error)

    def __enter__(self) -> "StreamReader":
        self._thread.start()
        return self

    def __iter__(self) -> Iterator[Any]:
        while True:
            try:
                item = self._items.get(timeout=POLL_SECS)
            except queue.Empty:
                continue
            if item is _END:
                return
            if isinstance(item, Exception):
                raise item
            yield item

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            call = self._call
        if call is not None:
            call.cancel()

    def __exit__(self, *exc: object) -> None:
        self.cancel()
        self._thread.join(JOIN_SECS)


def is_deadline(error: BaseException) -> bool:
    return isinstance(error, grpc.RpcError) and error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
