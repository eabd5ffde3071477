"""The lean keep-alive poster: reuse, one silent reconnect, and failures as outcomes."""
from __future__ import annotations

import socket
import threading

import pytest

from actors.channels.keepalive import KeepAlivePoster, Reply
from actors.domain.models import Outcome, OutcomeKind
from tests.support.http_receiver import HttpReceiver

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class OneShotServer:
    """Answers the first request of each connection, then closes it without saying so
    (as a server that times out idle keep-alive connections does)."""

    def __init__(self, answer: bytes | None = ANSWER) -> None:
        self.answer = answer
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                if self.answer is not None and data:
                    conn.sendall(self.answer)

    def close(self) -> None:
        self._listener.close()


def test_one_connection_serves_many_posts():
    with HttpReceiver() as rx:
        poster = KeepAlivePoster(rx.url + "/hook", timeout=5)
        replies = [poster.post(b"{}", {"Content-Type": "application/json"}) for _ in range(3)]
        poster.close()
    assert [r.status for r in replies if isinstance(r, Reply)] == [200, 200, 200]


class CountingSocket:
    """A socket that counts the writes made on it."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.writes = sock, []

    def sendall(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self.sock.sendall(data)

    def __getattr__(self, name: str):
        return getattr(self.sock, name)


def test_a_request_goes_out_in_one_write_head_and_body_together():
    with HttpReceiver() as rx:
        poster = KeepAlivePoster(rx.url + "/hook", timeout=5)
        assert isinstance(poster.post(b"{}", {}), Reply)  # opens the connection
        connection = poster._local.connection
        connection.sock = counting = CountingSocket(connection.sock)
        reply = poster.post(b'{"a": 1}', {"Content-Type": "application/json", "webhook-id": "n-1"})
        poster.close()
    assert isinstance(reply, Reply) and reply.status == 200
    assert len(counting.writes) == 1
    head, _, body = counting.writes[0].partition(b"\r\n\r\n")
    assert head.startswith(b"POST /hook HTTP/1.1") and b"webhook-id: n-1" in head and b"Content-Length: 8" in head
    assert body == b'{"a": 1}'
    assert rx.requests[-1].body == b'{"a": 1}'


def test_a_connection_closed_while_idle_is_reopened_once_without_failing_the_post():
    server = OneShotServer()
    poster = KeepAlivePoster(f"http://127.0.0.1:{server.port}/hook", timeout=5)
    try:
        first = poster.post(b"{}", {})
        second = poster.post(b"{}", {})
    finally:
        poster.close()
        server.close()
    assert isinstance(first, Reply) and isinstance(second, Reply) and second.text == "ok"
    assert server.connections == 2


def test_a_server_that_never_answers_is_a_retry_not_a_loop():
    server = OneShotServer(answer=None)
    poster = KeepAlivePoster(f"http://127.0.0.1:{server.port}/hook", timeout=5)
    try:
        outcome = poster.post(b"{}", {})
    finally:
        poster.close()
        server.close()
    assert isinstance(outcome, Outcome) and outcome.kind is OutcomeKind.RETRY
    assert server.connections == 1


@pytest.mark.parametrize("url", ["ftp://example.com/x", "http:///nohost", "hooks.example.com/x"])
def test_urls_it_cannot_post_to_are_refused_up_front(url):
    with pytest.raises(ValueError):
        KeepAlivePoster(url, timeout=1)
