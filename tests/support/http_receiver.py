"""A real HTTP server on loopback that records requests and answers from a script.

Used by every HTTP channel's tests (webhook, Slack, PagerDuty) so they exercise the real
network path. Answers come from ``respond`` (a callable taking the recorded request) or,
by default, 200 with body ``ok``. ``wait_for(n)`` blocks until n requests arrived.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    arrived: float = field(default_factory=time.monotonic)

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: bytes | str = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay_secs: float = 0.0


Responder = Callable[[Recorded], Reply]


class HttpReceiver:
    """Start with ``with HttpReceiver() as rx:``; ``rx.url`` is ``http://127.0.0.1:<port>``."""

    def __init__(self, respond: Responder | None = None) -> None:
        self.respond: Responder = respond or (lambda request: Reply())
        self.requests: list[Recorded] = []
        self._arrived = threading.Condition()
        self._release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_POST(self) -> None:  # noqa: N802 (http.server naming)
                length = int(self.headers.get("Content-Length") or 0)
                recorded = Recorded("POST", self.path, {k.lower(): v for k, v in self.headers.items()},
                                    self.rfile.read(length))
                reply = receiver.respond(recorded)
                if reply.delay_secs:
                    receiver._release.wait(reply.delay_secs)
                body = reply.body.encode() if isinstance(reply.body, str) else reply.body
                with receiver._arrived:  # recorded before the client can see the answer
                    receiver.requests.append(recorded)
                    receiver._arrived.notify_all()
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_PUT = do_POST

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # A client that gave up (timeout tests) breaks the pipe; that is expected, not news.
        self._server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Recorded]:
        """The first ``count`` requests; raises AssertionError if they do not arrive in time."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.requests) >= count, timeout):
                raise AssertionError(f"expected {count} requests, got {len(self.requests)} in {timeout}s")
            return list(self.requests[:count])

    def __enter__(self) -> "HttpReceiver":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
