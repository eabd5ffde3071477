"""The lean keep-alive poster: reuse, one silent reconnect, reading every shape of answer,
refusing headers it cannot send, TLS, and failures as outcomes."""
from __future__ import annotations

import re
import socket
import ssl
import threading
import time

import pytest

from actors.channels import keepalive
from actors.channels.keepalive import KeepAlivePoster, Reply
from actors.domain.models import Outcome, OutcomeKind
from tests.support.certs import Authority
from tests.support.http_receiver import HttpReceiver

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class ScriptedServer:
    """Reads requests (head and Content-Length body) and answers each with the next of
    ``answers``, as raw bytes (``b""``: none); hangs up after each answer when ``close`` says so,
    and sends each a byte at a time ``drip_secs`` apart when that is set.
    With ``tls`` (an ssl.SSLContext) it speaks TLS. ``requests`` holds each request's bytes."""

    def __init__(self, answers: list[bytes], close: bool = False, tls: ssl.SSLContext | None = None,
                 drip_secs: float = 0.0) -> None:
        self.answers, self.close_after, self.tls, self.drip_secs = list(answers), close, tls, drip_secs
        self.connections = 0
        self.requests: list[bytes] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
                if self.tls is not None:
                    conn = self.tls.wrap_socket(conn, server_side=True)
            except OSError:  # closed, or a client that refused our certificate
                if self._listener.fileno() < 0:
                    return
                continue
            self.connections += 1
            with conn:
                self._answer(conn)

    def _answer(self, conn: socket.socket) -> None:
        data = b""
        while self.answers:
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, data = data.partition(b"\r\n\r\n")
            length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
            while len(data) < length:
                data += conn.recv(65536)
            self.requests.append(head + b"\r\n\r\n" + data[:length])
            data = data[length:]
            self._send(conn, self.answers.pop(0))
            if self.close_after:
                return

    def _send(self, conn: socket.socket, answer: bytes) -> None:
        """The answer at once, or with ``drip_secs`` a byte at a time, that long apart (a slow
        server); a client that hung up ends it."""
        if not self.drip_secs:
            conn.sendall(answer)
            return
        for byte in answer:
            time.sleep(self.drip_secs)  # the server's pace, not a wait for the test
            try:
                conn.sendall(bytes([byte]))
            except OSError:
                return

    def close(self) -> None:
        self._listener.close()


def post_all(server: ScriptedServer, count: int, scheme: str = "http") -> list[Reply | Outcome]:
    poster = KeepAlivePoster(f"{scheme}://127.0.0.1:{server.port}/hook", timeout=5)
    try:
        return [poster.post(b'{"n":1}', {"Content-Type": "application/json"}) for _ in range(count)]
    finally:
        poster.close()
        server.close()


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
    server = ScriptedServer([ANSWER, ANSWER], close=True)  # as a server timing out idle connections
    first, second = post_all(server, 2)
    assert isinstance(first, Reply) and isinstance(second, Reply) and second.text == "ok"
    assert server.connections == 2


def test_a_server_that_closes_without_answering_is_a_retry_not_a_loop():
    server = ScriptedServer([b""], close=True)
    (outcome,) = post_all(server, 1)
    assert isinstance(outcome, Outcome) and outcome.kind is OutcomeKind.RETRY
    assert server.connections == 1


@pytest.mark.parametrize("url", ["ftp://example.com/x", "http:///nohost", "hooks.example.com/x"])
def test_urls_it_cannot_post_to_are_refused_up_front(url):
    with pytest.raises(ValueError):
        KeepAlivePoster(url, timeout=1)


def test_a_chunked_answer_is_read_whole_and_its_connection_reused():
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n"
    server = ScriptedServer([chunked, ANSWER])
    first, second = post_all(server, 2)
    assert isinstance(first, Reply) and first.text == "abcde"
    assert isinstance(second, Reply) and second.text == "ok"
    assert server.connections == 1


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end",      # no length: ends with the connection
    b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 13\r\n\r\nuntil the end",
    b"HTTP/1.0 200 OK\r\nContent-Length: 13\r\n\r\nuntil the end",
], ids=["no-length", "connection-close", "http-1.0"])
def test_an_answer_that_ends_its_connection_is_read_and_the_next_post_reconnects(answer):
    server = ScriptedServer([answer, ANSWER], close=True)
    first, second = post_all(server, 2)
    assert isinstance(first, Reply) and first.text == "until the end"
    assert isinstance(second, Reply) and second.text == "ok"
    assert server.connections == 2


def test_interim_answers_are_skipped_and_headers_read_case_blind():
    answer = (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
              b"HTTP/1.1 429 Too Many Requests\r\nretry-AFTER: 7\r\nContent-Length: 4\r\n\r\nslow")
    (reply,) = post_all(ScriptedServer([answer]), 1)
    assert reply == Reply(429, "slow", "7")


def test_the_request_names_its_host_and_port_and_asks_for_no_compression():
    server = ScriptedServer([ANSWER])
    post_all(server, 1)
    head = server.requests[0].split(b"\r\n\r\n")[0].split(b"\r\n")
    assert head[0] == b"POST /hook HTTP/1.1"
    assert f"Host: 127.0.0.1:{server.port}".encode() in head and b"Accept-Encoding: identity" in head
    assert b"Content-Length: 7" in head and server.requests[0].endswith(b'{"n":1}')


@pytest.mark.parametrize("answer, why", [
    (b"ICY 200 OK\r\n\r\n", "not an HTTP/1.x status line"),
    (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "not a header line"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", "closed before the end of the body"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "not a chunk size"),
], ids=["status-line", "header-line", "short-body", "chunk-size"])
def test_an_answer_it_cannot_read_is_a_retry_that_says_why(answer, why):
    (outcome,) = post_all(ScriptedServer([answer], close=True), 1)
    assert isinstance(outcome, Outcome) and outcome.kind is OutcomeKind.RETRY
    assert why in outcome.detail


def test_a_body_beyond_the_limit_is_cut_and_its_connection_not_reused(monkeypatch):
    monkeypatch.setattr(keepalive, "MAX_BODY_BYTES", 10)
    server = ScriptedServer([b"HTTP/1.1 500 Oops\r\nContent-Length: 30\r\n\r\n" + b"x" * 30, ANSWER])
    first, second = post_all(server, 2)
    assert first == Reply(500, "x" * 10, None)
    assert isinstance(second, Reply) and server.connections == 2


@pytest.mark.parametrize("headers, why", [
    ({"X-Token": "abc\r\nX-Injected: 1"}, "the value of header X-Token holds a line break"),
    ({"Bad Name": "v"}, "'Bad Name' is not a header name"),
    ({"X-Name": "caf\u00e9 \u2603"}, "outside Latin-1"),
], ids=["line-break", "bad-name", "not-latin-1"])
def test_headers_that_cannot_be_sent_fail_the_request_without_sending_or_naming_the_value(headers, why):
    server = ScriptedServer([ANSWER])
    poster = KeepAlivePoster(f"http://127.0.0.1:{server.port}/hook", timeout=5)
    try:
        outcome = poster.post(b"{}", headers)
    finally:
        poster.close()
        server.close()
    assert isinstance(outcome, Outcome) and outcome.kind is OutcomeKind.FAILED
    assert why in outcome.detail and "abc" not in outcome.detail and "X-Injected" not in outcome.detail
    assert server.requests == []


@pytest.fixture
def tls_server_context(tmp_path):
    authority = Authority("Test HTTPS CA")
    issued = authority.issue(tmp_path, "server")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(issued.cert_file, issued.key_file)
    return context, authority.write(tmp_path / "ca.pem")


def test_https_posts_to_a_server_whose_certificate_the_system_trusts(tls_server_context, monkeypatch):
    context, ca_file = tls_server_context
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))  # what the default context trusts
    server = ScriptedServer([ANSWER, ANSWER], tls=context)
    replies = post_all(server, 2, scheme="https")
    assert [r.status for r in replies if isinstance(r, Reply)] == [200, 200]
    assert server.connections == 1


def test_https_to_an_untrusted_certificate_fails_for_good(tls_server_context):
    context, _ = tls_server_context
    (outcome,) = post_all(ScriptedServer([ANSWER], tls=context), 1, scheme="https")
    assert isinstance(outcome, Outcome) and outcome.kind is OutcomeKind.FAILED
    assert "TLS certificate not trusted" in outcome.detail


def test_an_answer_dripping_in_past_the_timeout_is_cut_off_there():
    # each byte comes well within the timeout, the whole answer (40 bytes, 2 s) well past it
    server = ScriptedServer([ANSWER], drip_secs=0.05)
    poster = KeepAlivePoster(f"http://127.0.0.1:{server.port}/hook", timeout=0.5)
    try:
        outcome = poster.post(b"{}", {})
    finally:
        poster.close()
        server.close()
    assert isinstance(outcome, Outcome) and outcome.kind is OutcomeKind.RETRY and "timeout" in outcome.detail


def test_a_server_answering_only_interim_answers_is_a_retry_that_says_so():
    (outcome,) = post_all(ScriptedServer([b"HTTP/1.1 100 Continue\r\n\r\n" * 20], close=True), 1)
    assert isinstance(outcome, Outcome) and outcome.kind is OutcomeKind.RETRY
    assert "more than 10 interim (1xx) answers" in outcome.detail


def test_endless_trailer_fields_are_cut_off():
    trailers = (b"X-T: " + b"t" * 1000 + b"\r\n") * 80  # 80 kB, and no end
    server = ScriptedServer([b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n" + trailers], close=True)
    (outcome,) = post_all(server, 1)
    assert isinstance(outcome, Outcome) and "trailer fields are longer than" in outcome.detail
