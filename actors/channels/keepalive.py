"""The one HTTP client of the channels: a lean HTTP/1.1 POST client on the standard library.

Webhook, Slack (incoming webhook and Web API) and PagerDuty all post through it.
``requests`` spends about three times the CPU of a bare ``http.client`` exchange per POST
(measured in bench/: ~780 µs against ~260 µs on loopback), and with one GIL that cost is
the whole delivery ceiling. :class:`KeepAlivePoster` keeps one persistent connection per
thread and per origin, never follows redirects, ignores proxy variables, verifies TLS
certificates with the default context, and turns every failure into an :class:`Outcome`.
"""
from __future__ import annotations

import http.client
import json
import re
import socket
import ssl
import threading
from dataclasses import dataclass
from typing import Any, Iterable
from urllib.parse import urlsplit

from ..domain.models import Outcome
from .http import connection_error, timed_out

#: What http.client refuses in a request target (it would raise at every send).
_BAD_TARGET = re.compile(r"[\x00-\x20\x7f]")


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


class _OneWrite:
    """Sends a request's head and its bytes body in one write. http.client writes them apart,
    which costs a second TCP segment per request (and, on loopback, the receiver's wake-up
    and a second pass through the network stack, about a sixth of a POST's CPU). Hooks
    http.client's ``_send_output``, whose signature has been the same since Python 3.6; any
    other body (none, chunked, a file) goes the standard way."""

    def _send_output(self, message_body: Any = None, encode_chunked: bool = False) -> None:
        if not isinstance(message_body, bytes) or encode_chunked:
            super()._send_output(message_body, encode_chunked=encode_chunked)  # type: ignore[misc]
            return
        self._buffer.extend((b"", b""))  # type: ignore[attr-defined]
        head = b"\r\n".join(self._buffer)  # type: ignore[attr-defined]
        del self._buffer[:]  # type: ignore[attr-defined]
        self.send(head + message_body)  # type: ignore[attr-defined]


class _Connection(_OneWrite, http.client.HTTPConnection):
    pass


class _TlsConnection(_OneWrite, http.client.HTTPSConnection):
    pass


class KeepAlivePoster:
    """POSTs to one URL (or to other paths of its origin). Thread-safe: each thread has its
    own connection."""

    def __init__(self, url: str, timeout: float) -> None:
        """Raises ValueError when the URL is not http(s) with a host, has a bad port, or holds
        characters a request line cannot carry (spaces, control characters)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("not an http(s) URL with a host")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        #: The URL's path (and query): where :meth:`post` sends unless told another path.
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if _BAD_TARGET.search(self.target):
            raise ValueError("the URL holds spaces or control characters")
        self._timeout = timeout
        self._tls = ssl.create_default_context() if self._https else None
        self._local = threading.local()
        self._all: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def post(self, body: bytes, headers: dict[str, str], secrets: Iterable[str | None] = (),
             target: str | None = None) -> Reply | Outcome:
        """The server's reply, or a retry/failed outcome when there was none. ``target`` is
        another path on the same origin (e.g. a Slack Web API method); default the URL's.

        A connection that the server closed while idle is reopened once before the request
        is reported as failed (nothing reached the server, so this cannot send twice).
        Error texts are redacted with ``secrets``.
        """
        for reused in (True, False):
            connection, was_open = self._connection()
            try:
                connection.request("POST", target or self.target, body=body, headers=headers)
                response = connection.getresponse()
                text = response.read().decode("utf-8", "replace")
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                self._discard()
                if was_open and reused:
                    continue
                return connection_error(str(exc) or type(exc).__name__, secrets)
            except (TimeoutError, socket.timeout):
                self._discard()
                return timed_out()
            except ssl.SSLCertVerificationError as exc:
                self._discard()
                return Outcome.failed(f"TLS certificate not trusted: {exc.verify_message}")
            except (OSError, http.client.HTTPException) as exc:
                self._discard()
                return connection_error(str(exc) or type(exc).__name__, secrets)
            if response.will_close:
                self._discard()
            return Reply(response.status, text, response.getheader("Retry-After"))
        raise AssertionError("unreachable: the second pass always returns")  # pragma: no cover

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            return connection, True
        if self._https:
            connection = _TlsConnection(self._host, self._port, timeout=self._timeout, context=self._tls)
        else:
            connection = _Connection(self._host, self._port, timeout=self._timeout)
        self._local.connection = connection
        with self._lock:
            self._all.append(connection)
        return connection, False

    def _discard(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def close(self) -> None:
        """Close every thread's connection; later posts open new ones."""
        with self._lock:
            connections, self._all = self._all, []
        self._local = threading.local()
        for connection in connections:
            connection.close()
