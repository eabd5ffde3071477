"""The one HTTP client of the channels: a lean HTTP/1.1 POST client on the standard library.

Webhook, Slack (incoming webhook and Web API) and PagerDuty all post through it. Per POST on
loopback this machine spent about 780 µs of CPU in ``requests``, 200 µs in ``http.client``
(its header parsing goes through the ``email`` package), and spends about 50 µs here: with
one GIL, and the worker processes sharing the same cores, that cost is the delivery ceiling.
:class:`KeepAlivePoster` keeps one persistent connection per thread and per origin, sends a
request's head and body in one write, reads answers with a Content-Length, chunked, or
ending with the connection (bodies kept up to ``MAX_BODY_BYTES``), skips interim 1xx answers
(up to ``MAX_INTERIM_ANSWERS``), gives the whole answer the timeout (not each read),
never follows redirects, ignores proxy variables, verifies TLS certificates with the default
context, and turns every failure into an :class:`Outcome`.
"""
from __future__ import annotations

import functools
import json
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterable
from urllib.parse import urlsplit

from ..domain.models import Outcome
from .http import connection_error, timed_out

#: What a request target may not hold (a request line cannot carry it).
_BAD_TARGET = re.compile(r"[\x00-\x20\x7f]")
#: A header name (an RFC 9110 token).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: What a header value may not hold: it would end the header line (or the head).
_BAD_VALUE = re.compile(r"[\r\n\x00]")
#: The longest response head read (status line and headers).
MAX_HEAD_BYTES = 65_536
#: The most of a response body kept; a longer body is cut there and its connection not reused.
MAX_BODY_BYTES = 1_048_576
RECEIVE_BYTES = 65_536
#: Interim (1xx) answers read before the real one; more is a server that never answers.
MAX_INTERIM_ANSWERS = 10


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    text: str
    retry_after: str | None

    def json_object(self) -> dict[str, Any]:
        """The body as a JSON object; {} when it is empty, not JSON or not an object."""
        try:
            body = json.loads(self.text or "{}")
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}


class Malformed(Exception):
    """The server's answer is not an HTTP/1.x response this client can read."""


class _Closed(Exception):
    """The server closed the connection before answering at all (as one closing an idle
    keep-alive connection does)."""


class _Connection:
    """One persistent HTTP/1.1 connection (plain or TLS). :meth:`exchange` sends a request in
    one write and reads its answer, all of it within ``timeout`` (a server dripping its answer
    byte by byte is cut off there too); it raises OSError (TimeoutError and ssl errors
    included), :class:`_Closed` or :class:`Malformed`, after which the connection must be
    closed."""

    def __init__(self, host: str, port: int, timeout: float, tls: ssl.SSLContext | None) -> None:
        sock = socket.create_connection((host, port), timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock = tls.wrap_socket(sock, server_hostname=host) if tls else sock
        except BaseException:
            sock.close()
            raise
        self._timeout = timeout
        self._deadline = 0.0  # when the answer being read must be whole (time.monotonic())
        self._received = bytearray()  # read from the socket, not yet consumed

    def exchange(self, request: bytes) -> tuple[int, dict[str, str], bytes, bool]:
        """Status, headers (names lower-case), body, and whether the connection may be reused."""
        self.sock.settimeout(self._timeout)
        self._deadline = time.monotonic() + self._timeout
        self.sock.sendall(request)
        status, version, headers = self._head(first=True)
        for _ in range(MAX_INTERIM_ANSWERS):  # interim answers (100 Continue, 103 Early Hints) come first
            if not 100 <= status < 200:
                break
            status, version, headers = self._head(first=False)
        else:
            raise Malformed(f"more than {MAX_INTERIM_ANSWERS} interim (1xx) answers")
        body, complete = self._body(status, headers)
        connection = headers.get("connection", "").lower()
        reusable = complete and version == "HTTP/1.1" and "close" not in connection
        return status, headers, body, reusable

    def _head(self, first: bool) -> tuple[int, str, dict[str, str]]:
        end = self._received.find(b"\r\n\r\n")
        while end < 0:
            if len(self._received) > MAX_HEAD_BYTES:
                raise Malformed(f"the response head is longer than {MAX_HEAD_BYTES} bytes")
            if not self._fill():
                if first and not self._received:
                    raise _Closed("the server closed the connection without answering")
                raise Malformed("the connection closed in the middle of the response head")
            end = self._received.find(b"\r\n\r\n")
        head = self._received[:end].decode("latin-1")
        del self._received[:end + 4]
        status_line, *lines = head.split("\r\n")
        version, _, rest = status_line.partition(" ")
        code = rest[:3]
        if version not in ("HTTP/1.1", "HTTP/1.0") or not code.isdigit() or rest[3:4] not in ("", " "):
            raise Malformed(f"not an HTTP/1.x status line: {status_line[:80]!r}")
        headers: dict[str, str] = {}
        for line in lines:
            name, colon, value = line.partition(":")
            if not colon or not name or name != name.strip():
                raise Malformed(f"not a header line: {line[:80]!r}")
            name, value = name.lower(), value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        return int(code), version, headers

    def _body(self, status: int, headers: dict[str, str]) -> tuple[bytes, bool]:
        """The body (its first MAX_BODY_BYTES), and whether it was read to its end."""
        if status in (204, 304):
            return b"", True
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return self._chunked()
        length = headers.get("content-length")
        if length is None:  # the body ends where the connection does
            while len(self._received) <= MAX_BODY_BYTES and self._fill():
                pass
            return bytes(self._received[:MAX_BODY_BYTES]), False
        if not length.isdigit():
            raise Malformed(f"Content-Length is not a number: {length[:40]!r}")
        size = int(length)
        if size > MAX_BODY_BYTES:
            return self._take(MAX_BODY_BYTES), False
        return self._take(size), True

    def _chunked(self) -> tuple[bytes, bool]:
        body = bytearray()
        while True:
            size_line = self._line()
            size_text = size_line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise Malformed(f"not a chunk size: {size_text[:20]!r}") from None
            if size == 0:
                trailer = 0
                while line := self._line():  # trailer fields, up to the empty line
                    trailer += len(line)
                    if trailer > MAX_HEAD_BYTES:
                        raise Malformed(f"the trailer fields are longer than {MAX_HEAD_BYTES} bytes")
                return bytes(body), True
            if len(body) + size > MAX_BODY_BYTES:
                body += self._take(MAX_BODY_BYTES - len(body))
                return bytes(body), False
            body += self._take(size)
            if self._line():
                raise Malformed("a chunk is longer than its size says")

    def _line(self) -> bytes:
        end = self._received.find(b"\r\n")
        while end < 0:
            if len(self._received) > MAX_HEAD_BYTES or not self._fill():
                raise Malformed("the chunked body is cut short or its lines are too long")
            end = self._received.find(b"\r\n")
        line = bytes(self._received[:end])
        del self._received[:end + 2]
        return line

    def _take(self, size: int) -> bytes:
        while len(self._received) < size:
            if not self._fill():
                raise Malformed("the connection closed before the end of the body")
        taken = bytes(self._received[:size])
        del self._received[:size]
        return taken

    def _fill(self) -> bool:
        """Read what has arrived (waiting until the exchange's deadline, TimeoutError past it);
        False when the server closed."""
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the answer did not arrive whole within the timeout")
        self.sock.settimeout(left)
        data = self.sock.recv(RECEIVE_BYTES)
        self._received += data
        return bool(data)

    def close(self) -> None:
        self.sock.close()


class KeepAlivePoster:
    """POSTs to one URL (or to other paths of its origin). Thread-safe: each thread has its
    own connection."""

    def __init__(self, url: str, timeout: float) -> None:
        """Raises ValueError when the URL is not http(s) with a host, has a bad port, or holds
        characters a request line cannot carry (spaces, control characters)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("not an http(s) URL with a host")
        https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if https else 80)
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._host_header = host if self._port == (443 if https else 80) else f"{host}:{self._port}"
        #: The URL's path (and query): where :meth:`post` sends unless told another path.
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if _BAD_TARGET.search(self.target):
            raise ValueError("the URL holds spaces or control characters")
        self._timeout = timeout
        self._tls = ssl.create_default_context() if https else None
        self._local = threading.local()
        self._all: list[_Connection] = []
        self._lock = threading.Lock()

    def post(self, body: bytes, headers: dict[str, str], secrets: Iterable[str | None] = (),
             target: str | None = None) -> Reply | Outcome:
        """The server's reply, or a retry/failed outcome when there was none. ``target`` is
        another path on the same origin (e.g. a Slack Web API method); default the URL's.

        A connection that the server closed while idle is reopened once before the request
        is reported as failed (nothing reached the server, so this cannot send twice).
        Headers that cannot be sent (a bad name, a line break in a value) fail the request
        without naming the value. Error texts are redacted with ``secrets``.
        """
        try:
            request = self._request(body, headers, target or self.target)
        except ValueError as error:
            return Outcome.failed(f"the request cannot be sent: {error}")
        for reused in (True, False):
            was_open = getattr(self._local, "connection", None) is not None
            try:
                status, answer_headers, answer, reusable = self._connection().exchange(request)
            except (TimeoutError, socket.timeout):
                self._discard()
                return timed_out()
            except ssl.SSLCertVerificationError as exc:
                self._discard()
                return Outcome.failed(f"TLS certificate not trusted: {exc.verify_message}")
            except (_Closed, BrokenPipeError, ConnectionResetError) as exc:
                self._discard()
                if was_open and reused:
                    continue
                return connection_error(str(exc) or type(exc).__name__, secrets)
            except (OSError, Malformed) as exc:
                self._discard()
                return connection_error(str(exc) or type(exc).__name__, secrets)
            if not reusable:
                self._discard()
            return Reply(status, answer.decode("utf-8", "replace"), answer_headers.get("retry-after"))
        raise AssertionError("unreachable: the second pass always returns")  # pragma: no cover

    def _request(self, body: bytes, headers: dict[str, str], target: str) -> bytes:
        """The request's bytes; ValueError naming what cannot be sent."""
        if target is not self.target and _BAD_TARGET.search(target):
            raise ValueError("the request target holds spaces or control characters")
        for name, value in headers.items():
            if not _is_token(name):
                raise ValueError(f"{name[:40]!r} is not a header name")
            if _BAD_VALUE.search(value):
                raise ValueError(f"the value of header {name} holds a line break or NUL")
        lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        head = (f"POST {target} HTTP/1.1\r\nHost: {self._host_header}\r\nAccept-Encoding: identity\r\n"
                f"{lines}Content-Length: {len(body)}\r\n\r\n")
        try:
            return head.encode("latin-1") + body
        except UnicodeEncodeError:
            raise ValueError("a header holds characters outside Latin-1") from None

    def _connection(self) -> _Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = _Connection(self._host, self._port, self._timeout, self._tls)
            self._local.connection = connection
            with self._lock:
                self._all.append(connection)
        return connection

    def _discard(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None
            with self._lock:
                if connection in self._all:
                    self._all.remove(connection)

    def close(self) -> None:
        """Close every thread's connection; later posts open new ones."""
        with self._lock:
            connections, self._all = self._all, []
        self._local = threading.local()
        for connection in connections:
            connection.close()


@functools.lru_cache(maxsize=256)
def _is_token(name: str) -> bool:
    return _TOKEN.fullmatch(name) is not None
