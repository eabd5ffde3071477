#!/usr/bin/env python3
"""Loopback webhook receiver for the benchmark (asyncio Protocol, HTTP/1.1 keep-alive).

Answers every POST with ``200`` and an empty body, and records ``time.monotonic()`` at
arrival (CLOCK_MONOTONIC is system-wide on Linux, so it compares with the load generator's
clock in another process). Bodies are kept raw and parsed only when ``/_dump`` is asked for,
so the hot path stays cheap. Modelled on ../shared/bench/alertmanager/receiver.py, but it
understands this project's webhook body: ``{"event_type", "timestamp", "incident": {...},
"notification_id"}``.

Control endpoints (GET, answered as JSON):
  /_stats          count, connections, first/last arrival time
  /_dump           arrivals: [[t, incident.title, notification_id, incident.id, event_type], ...]
  /_reset          forget everything
  /_store?on=0|1   stop/start keeping bodies (counts and times are always kept)

Usage: receiver.py [--host 127.0.0.1] [--port 0]   (prints "receiver listening on HOST:PORT pid=N")
Only loopback addresses are accepted.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import time

_mono = time.monotonic
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
MAX_BUFFER = 16 * 1024 * 1024


class State:
    __slots__ = ("count", "conns", "first", "last", "times", "bodies", "store")

    def __init__(self) -> None:
        self.store = True
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.conns = 0
        self.first = None
        self.last = None
        self.times: list[float] = []
        self.bodies: list[bytes] = []


def _describe(body: bytes) -> list:
    try:
        d = json.loads(body)
        inc = d.get("incident") or {}
        return [inc.get("title"), d.get("notification_id"), inc.get("id"), d.get("event_type")]
    except (ValueError, AttributeError):
        return [None, None, None, None]


def make_protocol(state: State) -> type[asyncio.Protocol]:
    class Proto(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.tr = transport
            self.buf = b""
            self.posted = False

        def data_received(self, data: bytes) -> None:
            buf = self.buf + data if self.buf else data
            out = []
            while True:
                he = buf.find(b"\r\n\r\n")
                if he < 0:
                    break
                head = buf[:he]
                cl = 0
                i = head.lower().find(b"content-length:")
                if i >= 0:
                    j = head.find(b"\r\n", i)
                    cl = int(head[i + 15:(j if j >= 0 else len(head))].strip())
                end = he + 4 + cl
                if len(buf) < end:
                    break
                body = buf[he + 4:end]
                buf = buf[end:]
                if head.startswith(b"GET "):
                    out.append(self.control(head))
                    continue
                now = _mono()
                state.count += 1
                if state.first is None:
                    state.first = now
                state.last = now
                if not self.posted:
                    self.posted = True
                    state.conns += 1
                state.times.append(now)
                state.bodies.append(body if state.store else b"")
                out.append(OK)
            if len(buf) > MAX_BUFFER:  # malformed client; drop it rather than grow forever
                self.tr.close()
                return
            self.buf = buf
            if out:
                self.tr.write(b"".join(out))

        def control(self, head: bytes) -> bytes:
            path = head.split(b" ", 2)[1].decode("latin-1")
            if path.startswith("/_stats"):
                payload = {"count": state.count, "conns": state.conns, "first": state.first,
                           "last": state.last, "pid": os.getpid()}
            elif path.startswith("/_dump"):
                payload = {"count": state.count,
                           "arrivals": [[t, *_describe(b)] for t, b in zip(state.times, state.bodies)]}
            elif path.startswith("/_reset"):
                state.reset()
                payload = {"reset": True}
            elif path.startswith("/_store"):
                state.store = not path.endswith("on=0")
                payload = {"store": state.store}
            else:
                payload = {"count": state.count}
            body = json.dumps(payload).encode()
            return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                    + str(len(body)).encode() + b"\r\n\r\n" + body)

    return Proto


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()
    if a.host not in ("127.0.0.1", "::1", "localhost"):
        raise SystemExit("receiver.py listens on loopback only")
    state = State()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    srv = loop.run_until_complete(
        loop.create_server(make_protocol(state), a.host, a.port, backlog=1024, reuse_address=True))
    port = srv.sockets[0].getsockname()[1]
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    loop.add_signal_handler(signal.SIGINT, loop.stop)
    print(f"receiver listening on {a.host}:{port} pid={os.getpid()}", flush=True)
    try:
        loop.run_forever()
    finally:
        srv.close()


if __name__ == "__main__":
    main()
