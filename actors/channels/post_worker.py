"""HTTP POSTs made by a worker process, so the exchange runs beside the main interpreter.

One Python process gets about one core (one GIL), and an HTTP exchange (headers, socket,
response parsing) is the largest cost of a webhook delivery. :class:`ProcessPoster` has the
interface of :class:`~actors.channels.keepalive.KeepAlivePoster` but hands each request to a
child process running one such poster per URL (``python -m actors.channels.post_worker``),
over its stdin/stdout pipes: a frame is a 4-byte length and a pickle. One worker serves every
URL of its sender (each webhook receiver's), one request after another. The URLs and the
secrets go in the first frame, never on the command line (``ps`` shows that). A worker ends when its input does:
when the server closes it, or dies (``kill -9`` included).

Requests are pipelined: the sender submits without waiting (one frame per batch of requests)
and a reader thread hands back each answer in order; the worker sends the answers of a batch
together, holding a finished one at most ``ANSWER_HOLD_SECS`` while the batch goes on. A worker that dies, or does not answer within the request timeout plus
a margin, answers every pending request with :class:`WorkerDied`, which the sender raises:
its actor crashes, its supervisor starts a fresh one (and with it a fresh worker), and the
router has the deliveries it held sent again, with their ids.
"""
from __future__ import annotations

import os
import pickle
import select
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from concurrent.futures import Future
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Sequence

from .keepalive import KeepAlivePoster, Reply
from ..domain.models import Outcome

_LENGTH = struct.Struct("!I")
#: How long past the request timeout a worker may take to answer before it counts as dead.
ANSWER_MARGIN_SECS = 5.0
#: How long a worker holds finished answers to send them together (one frame, one wake-up of
#: the server's reader thread and of the sender): the rest of the batch is posted meanwhile.
ANSWER_HOLD_SECS = 0.001
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


class WorkerDied(Exception):
    """The worker process ended or hung; what it was sending is still owed."""


#: What a request comes to: the worker's reply, or WorkerDied when it has none.
Answer = Reply | Outcome | WorkerDied
Done = Callable[[Answer], None]


class ProcessPoster:
    """POSTs to its URLs through one worker process (started on first use or by :meth:`open`);
    a request names its URL by its index in ``urls``.

    :meth:`submit` does not wait: requests queue in the worker's input pipe and a reader thread
    hands each answer, in order, to the callback given with it, so the worker is never idle
    waiting for its caller. Submitting is for one thread at a time (its sender actor).
    """

    def __init__(self, urls: Sequence[str], timeout: float, secrets: Iterable[str] = (),
                 answer_margin: float = ANSWER_MARGIN_SECS, answer_hold: float = ANSWER_HOLD_SECS) -> None:
        """Raises ValueError when a URL is not http(s) with a host (checked here, as the
        worker would)."""
        for url in urls:
            KeepAlivePoster(url, timeout).close()
        self._config = pickle.dumps((tuple(urls), timeout, tuple(secrets), answer_hold))
        self._answer_within = timeout + answer_margin
        self._proc: subprocess.Popen[bytes] | None = None
        #: Callbacks of the current worker's unanswered requests (each worker has its own: a
        #: worker that ends answers only its own, however late its reader finds out).
        self._pending: deque[tuple[Done, float]] = deque()
        self._outgoing: list[tuple[int, bytes, dict[str, str]]] = []  # submitted, not yet flushed
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def open(self) -> None:
        """Start the worker now and wait until it is ready, so the first send does not pay
        for its start. Raises WorkerDied if it does not come up."""
        if self._proc is None:
            self._start()

    def submit(self, body: bytes, headers: dict[str, str], done: Done, to: int = 0) -> None:
        """Queue one POST to ``urls[to]``, to be handed to the worker by the next :meth:`flush` (together with
        the others queued since: one write for many); ``done`` is later called from the reader
        thread with the worker's :meth:`KeepAlivePoster.post` result, or with WorkerDied if the
        worker ended or did not answer in time (then every request still pending gets one).
        Raises WorkerDied when the worker is already gone."""
        proc = self._proc or self._start()
        with self._lock:
            if self._proc is not proc:
                raise WorkerDied(f"webhook worker process {proc.pid} is gone")
            self._pending.append((done, time.monotonic()))
            self._outgoing.append((to, body, headers))

    def flush(self) -> None:
        """Hand the worker every request submitted since the last flush, in one write."""
        with self._lock:
            proc, requests, self._outgoing = self._proc, self._outgoing, []
        if not requests or proc is None:
            return
        assert proc.stdin is not None
        try:
            _write_frame(proc.stdin, pickle.dumps(requests))
        except OSError:
            pass  # the reader sees the worker end and answers every pending request

    def post(self, body: bytes, headers: dict[str, str], secrets: Iterable[str | None] = (),
             to: int = 0) -> Reply | Outcome:
        """:meth:`submit`, waiting for the answer; raises WorkerDied if there is none."""
        answered: Future[Answer] = Future()
        self.submit(body, headers, answered.set_result, to)
        self.flush()
        answer = answered.result()
        if isinstance(answer, WorkerDied):
            raise answer
        return answer

    def close(self) -> None:
        """End the worker now (requests still in its pipe are never sent, and get WorkerDied);
        a later post starts a new one. Thread-safe."""
        with self._lock:
            proc, self._proc, self._outgoing = self._proc, None, []
        if proc is not None:
            _stop(proc, kill=True)

    def _start(self) -> subprocess.Popen[bytes]:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (_PACKAGE_ROOT, os.environ.get("PYTHONPATH"))))}
        proc = subprocess.Popen([sys.executable, "-m", "actors.channels.post_worker"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, bufsize=0,
                                start_new_session=True)  # a terminal's Ctrl-C is for the server to handle
        assert proc.stdin is not None and proc.stdout is not None
        try:
            _write_frame(proc.stdin, self._config)
            _read_frame(proc.stdout, self._answer_within)  # "ready"
        except (OSError, EOFError, TimeoutError) as error:
            _stop(proc, kill=True)
            raise WorkerDied(f"webhook worker process {proc.pid} did not start: {_how_it_ended(proc, error)}") from None
        pending: deque[tuple[Done, float]] = deque()
        with self._lock:
            self._proc, self._pending = proc, pending
        threading.Thread(target=self._read_answers, args=(proc, pending), name=f"post-worker-{proc.pid}",
                         daemon=True).start()
        return proc

    def _read_answers(self, proc: subprocess.Popen[bytes], pending: deque[tuple[Done, float]]) -> None:
        """Hand each answer of ``proc`` to its request's callback (from ``pending``, that
        worker's), in order, until the worker ends; then every request still pending gets
        WorkerDied. A worker silent past the timeout while a request waits is killed."""
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        frames = _FrameReader(fd)
        try:
            while True:
                if not select.select([fd], [], [], 1.0)[0]:
                    with self._lock:
                        oldest = pending[0][1] if pending else None
                    if oldest is not None and time.monotonic() - oldest > self._answer_within:
                        raise TimeoutError("no answer")
                    continue
                for frame in frames.read():  # every answer that has arrived, in order
                    for answer in pickle.loads(frame):
                        with self._lock:
                            done, _ = pending.popleft()
                        done(Reply(*answer) if isinstance(answer, tuple) else answer)
        except (OSError, EOFError, TimeoutError, ValueError) as error:
            died = WorkerDied(f"webhook worker process {proc.pid} {_how_it_ended(proc, error)}")
        with self._lock:
            if self._proc is proc:  # not yet replaced: what waits to be flushed was for it
                self._proc, self._outgoing = None, []
            unanswered = list(pending)
            pending.clear()
        _stop(proc, kill=True)
        for done, _ in unanswered:
            done(died)


def _stop(proc: subprocess.Popen[bytes], kill: bool) -> None:
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            try:
                stream.close()
            except OSError:
                pass
    if kill:
        proc.kill()
    try:
        proc.wait(timeout=2)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class _FrameReader:
    """Frames from a pipe, read in chunks: one system call brings every answer waiting."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer = b""

    def read(self) -> list[bytes]:
        """The complete frames now available (at least one read; maybe none complete yet).
        Raises EOFError when the pipe has ended."""
        chunk = os.read(self._fd, 1 << 16)
        if not chunk:
            raise EOFError("the stream ended")
        buffer = self._buffer + chunk
        frames, at = [], 0
        while len(buffer) - at >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(buffer, at)
            if len(buffer) - at - _LENGTH.size < length:
                break
            frames.append(buffer[at + _LENGTH.size:at + _LENGTH.size + length])
            at += _LENGTH.size + length
        self._buffer = buffer[at:]
        return frames


def _how_it_ended(proc: subprocess.Popen[bytes], error: BaseException) -> str:
    try:  # its output ends a moment before it can be reaped
        code = proc.wait(timeout=0.5) if isinstance(error, EOFError) else proc.poll()
    except subprocess.TimeoutExpired:
        code = None
    if code is not None:
        return f"exited with {code}"
    if isinstance(error, TimeoutError):
        return "did not answer in time"
    return f"failed: {type(error).__name__}"


def _write_frame(stream: BinaryIO, payload: bytes) -> None:
    data = memoryview(_LENGTH.pack(len(payload)) + payload)
    fd = stream.fileno()
    while data:
        data = data[os.write(fd, data):]


def _read_frame(stream: BinaryIO, within: float | None = None) -> bytes:
    """One frame; EOFError at the end of the stream, TimeoutError after ``within`` seconds."""
    (length,) = _LENGTH.unpack(_read_exactly(stream, _LENGTH.size, within))
    return _read_exactly(stream, length, within)


def _read_exactly(stream: BinaryIO, count: int, within: float | None) -> bytes:
    fd = stream.fileno()
    deadline = None if within is None else time.monotonic() + within
    chunks, missing = [], count
    while missing:
        if deadline is not None:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError("no answer")
        chunk = os.read(fd, missing)
        if not chunk:
            raise EOFError("the stream ended")
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)


def main() -> int:
    """The worker: read the configuration, then answer each batch of requests until the input ends."""
    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    try:
        urls, timeout, secrets, hold = pickle.loads(_read_frame(requests))
    except EOFError:
        return 0
    posters = [KeepAlivePoster(url, timeout) for url in urls]
    _write_frame(replies, b"ready")
    while True:
        try:
            batch = pickle.loads(_read_frame(requests))
        except EOFError:
            for poster in posters:
                poster.close()
            return 0
        answers: list[Answer | tuple[int, str, str | None]] = []
        first_done = 0.0
        for to, body, headers in batch:
            if answers and time.monotonic() - first_done > hold:  # an answer waits at most hold + one POST
                _write_frame(replies, pickle.dumps(answers))
                answers = []
            answer = posters[to].post(body, headers, secrets)
            if not answers:
                first_done = time.monotonic()
            # a plain tuple unpickles several times faster than a Reply
            answers.append((answer.status, answer.text, answer.retry_after) if isinstance(answer, Reply) else answer)
        _write_frame(replies, pickle.dumps(answers))


if __name__ == "__main__":
    sys.exit(main())
