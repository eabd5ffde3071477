"""A small fake of Slack's Web API (chat.postMessage, chat.update) for HttpReceiver.

Use it as the receiver's responder: ``FakeSlack(token)`` checks the bearer token, keeps the
messages it was sent (roots and thread replies, by ``ts``) and answers as Slack does —
HTTP 200 with ``{"ok": true, "channel", "ts", ...}`` or ``{"ok": false, "error": ...}``.
``script(method, reply)`` queues a canned :class:`Reply` for the next call of a method
(e.g. a 429 or ``internal_error``), consumed in order before normal handling resumes.

:class:`SettlingReceiver` is an HttpReceiver whose ``settle()`` waits until every request it
answered is recorded (the base class records a request only after answering it, so a test
sharing a module-wide receiver could otherwise see the previous test's last request).
"""
from __future__ import annotations

import json
import threading
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from tests.support.http_receiver import HttpReceiver, Recorded, Reply, Responder


class SettlingReceiver(HttpReceiver):
    """An HttpReceiver that counts the requests it answered (see ``settle``)."""

    def __init__(self, respond: Responder | None = None) -> None:
        self._answered = 0
        self._count_lock = threading.Lock()
        super().__init__(respond)

    @property  # type: ignore[override]
    def respond(self) -> Responder:
        return self._counting

    @respond.setter
    def respond(self, responder: Responder) -> None:
        self._responder = responder

    def _counting(self, request: Recorded) -> Reply:
        with self._count_lock:
            self._answered += 1
        return self._responder(request)

    def settle(self, timeout: float = 5.0) -> None:
        """Wait until every answered request is recorded, then forget them all."""
        with self._count_lock:
            answered = self._answered
        self.wait_for(answered, timeout)
        with self._arrived:
            self.requests.clear()
            self._answered -= answered


def slack_reply(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, json.dumps(body), {"Content-Type": "application/json; charset=utf-8",
                                            **(headers or {})})


def slack_error(error: str, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    return slack_reply({"ok": False, "error": error}, status, headers)


@dataclass
class Message:
    channel: str
    ts: str
    payload: dict[str, Any]
    thread_ts: str | None = None
    revisions: list[dict[str, Any]] = field(default_factory=list)


class FakeSlack:
    """Answers like Slack's Web API for the channels in ``channels`` (name or id → id)."""

    def __init__(self, token: str, channels: dict[str, str] | None = None) -> None:
        self.token = token
        self.channels = channels or {"#incidents": "C0INCIDENTS", "C0INCIDENTS": "C0INCIDENTS"}
        self.messages: dict[str, Message] = {}
        self._scripted: dict[str, deque[Reply]] = defaultdict(deque)
        self._lock = threading.Lock()
        self._counter = 0

    def script(self, method: str, *replies: Reply) -> None:
        with self._lock:
            self._scripted[method].extend(replies)

    def delete(self, ts: str) -> None:
        with self._lock:
            del self.messages[ts]

    def roots(self) -> list[Message]:
        return [m for m in self.messages.values() if m.thread_ts is None]

    def replies(self, root_ts: str) -> list[Message]:
        return [m for m in self.messages.values() if m.thread_ts == root_ts]

    def __call__(self, request: Recorded) -> Reply:
        method = request.path.rsplit("/", 1)[-1]
        with self._lock:
            if self._scripted[method]:
                return self._scripted[method].popleft()
            if request.headers.get("authorization") != f"Bearer {self.token}":
                return slack_error("invalid_auth")
            if not request.headers.get("content-type", "").startswith("application/json"):
                return slack_error("invalid_form_data")
            payload = request.json()
            channel = self.channels.get(payload.get("channel", ""))
            if channel is None:
                return slack_error("channel_not_found")
            if method == "chat.postMessage":
                return self._post(channel, payload)
            if method == "chat.update":
                return self._update(channel, payload)
            return slack_error("unknown_method", 404)

    def _post(self, channel: str, payload: dict[str, Any]) -> Reply:
        if not payload.get("text") and not payload.get("blocks"):
            return slack_error("no_text")
        thread_ts = payload.get("thread_ts")
        if thread_ts is not None and thread_ts not in self.messages:
            return slack_error("thread_not_found")
        self._counter += 1
        ts = f"1705329120.{self._counter:06d}"
        self.messages[ts] = Message(channel, ts, payload, thread_ts, [payload])
        return slack_reply({"ok": True, "channel": channel, "ts": ts, "message": {"ts": ts}})

    def _update(self, channel: str, payload: dict[str, Any]) -> Reply:
        message = self.messages.get(payload.get("ts", ""))
        if message is None or message.channel != channel:
            return slack_error("message_not_found")
        message.payload = payload
        message.revisions.append(payload)
        return slack_reply({"ok": True, "channel": channel, "ts": message.ts, "text": payload.get("text")})
