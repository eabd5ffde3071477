"""Generic webhook channel: the event as JSON, POSTed once per attempt, optionally signed.

Signing follows Standard Webhooks v1: ``webhook-id`` is the notification id (the same on
every retry, so receivers can drop duplicates), ``webhook-timestamp`` is this attempt's Unix
time and ``webhook-signature`` covers exactly the bytes sent. Redirects are never followed.

Transport: by default (``webhook_worker_processes``) each sender's instance makes its HTTP
exchanges in a worker process of its own (actors/channels/post_worker.py), so they run beside
the main interpreter; otherwise in-process, where one instance may be shared by every sender
of the pool and each thread keeps its own persistent connection (actors/channels/keepalive.py,
the channels' one HTTP client). :meth:`WebhookChannel.close` ends them. The URL, the signing
secret and custom header values are treated as secrets: they never appear in outcomes,
exceptions or logs.
"""
from __future__ import annotations

import re
import time
from typing import Callable, Mapping

import structlog

from ..domain.config import NotificationSettings, read_secret
from ..domain.errors import ConfigError
from ..domain.models import Delivery, Outcome
from ..formatting.signing import MIN_SECRET_BYTES, SECRET_PREFIX, decode_secret, sign
from ..formatting.webhook import render
from .http import classify_status
from .keepalive import KeepAlivePoster, Reply
from .post_worker import ProcessPoster, WorkerDied
from .redact import longest_first, url_secrets

NAME = "webhook"
#: The only destination today: ``notifications.default_webhook_url``.
DESTINATION = "default"
USER_AGENT = "llm-incident-manager/0.1"
#: Headers the channel sets itself; ``webhook_headers`` may not replace them.
RESERVED_HEADERS = frozenset({"content-type", "content-length", "host", "transfer-encoding",
                              "webhook-id", "webhook-timestamp", "webhook-signature"})

_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEADER_VALUE_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
#: Words of a header value at least this long are redacted on their own as well.
_MIN_HEADER_WORD = 8

log = structlog.get_logger(__name__)


def build(settings: NotificationSettings, environ: Mapping[str, str]) -> "WebhookChannel":
    """The webhook channel for these settings; cheap (no network).

    Raises ConfigError naming the key when ``webhook_secret_env`` names an unset variable
    or one that does not hold a base64 secret, when ``default_webhook_url`` is not a usable
    URL, or when a ``webhook_headers`` entry is not a valid, non-reserved header. Without a
    URL the channel serves no destination (the start-up warns).
    """
    secret = read_secret("notifications.webhook_secret_env", settings.webhook_secret_env, environ,
                         required=bool(settings.webhook_secret_env))
    return WebhookChannel(settings.default_webhook_url, secret=secret, headers=settings.webhook_headers,
                          timeout=settings.timeout(NAME), worker_process=settings.webhook_worker_processes)


class WebhookChannel:
    """POSTs rendered events to one URL; see the module docstring for headers and signing."""

    name = NAME
    needs_state = False

    def __init__(self, url: str | None, *, secret: str | None = None,
                 headers: Mapping[str, str] | None = None, timeout: float = 10.0,
                 clock: Callable[[], float] = time.time, worker_process: bool = False) -> None:
        """Raises ConfigError (naming the setting, never its value) for a bad URL, secret or
        header. With ``worker_process`` the HTTP exchanges are made by a worker process of this
        instance's own (actors/channels/post_worker.py); an instance is then for one thread."""
        self.destinations: tuple[str, ...] = (DESTINATION,) if url else ()
        self._secret = secret
        self._headers = _checked_headers(headers or {})
        self._clock = clock
        if secret is not None:
            _check_secret(secret)
        secret_texts = {secret, secret.strip().removeprefix(SECRET_PREFIX)} if secret else set()
        self._secrets = longest_first({*url_secrets(url or ""), *secret_texts, *_header_secrets(self._headers)})
        try:
            self._poster: KeepAlivePoster | ProcessPoster | None = None
            if url:
                self._poster = ProcessPoster(url, timeout, self._secrets) if worker_process else KeepAlivePoster(url, timeout)
        except ValueError:
            raise ConfigError("notifications.default_webhook_url", "is not a usable http(s) URL") from None

    def deliver(self, delivery: Delivery) -> Outcome:
        """One POST of the rendered event; every expected failure is an Outcome.

        2xx delivered; 3xx failed (redirects are not followed); 410 failed and asks to
        disable the destination; 408/425/429/5xx (except 501), timeouts and connection
        errors retry, passing on Retry-After; anything else failed. A destination other
        than ``default`` (or no URL) fails, naming the setting to fix.
        """
        if self._poster is None or delivery.destination != DESTINATION:
            return _not_configured(delivery)
        body = render(delivery)
        return self._outcome(self._poster.post(body, self._request_headers(delivery.notification_id, body),
                                               self._secrets))

    def deliver_later(self, delivery: Delivery, done: Callable[[Outcome | WorkerDied], None]) -> Outcome | None:
        """:meth:`deliver` without waiting when a worker process sends: None now, and ``done``
        called later from its reader thread (with WorkerDied if the worker ended); the request
        goes out with the next :meth:`flush`. Without a worker, the outcome at once (``done``
        is not called)."""
        if not isinstance(self._poster, ProcessPoster) or delivery.destination != DESTINATION:
            return self.deliver(delivery)
        body = render(delivery)
        self._poster.submit(body, self._request_headers(delivery.notification_id, body),
                            lambda answer: done(answer if isinstance(answer, WorkerDied) else self._outcome(answer)))
        return None

    def flush(self) -> None:
        """Hand the worker what :meth:`deliver_later` queued (one write for all of it)."""
        if isinstance(self._poster, ProcessPoster):
            self._poster.flush()

    def _outcome(self, reply: Reply | Outcome) -> Outcome:
        if isinstance(reply, Outcome):
            return reply
        return classify_status(reply.status, reply.text, reply.retry_after, self._secrets)

    def open(self) -> None:
        """Start the worker process now (when there is one), so the first send does not wait
        for it; raises WorkerDied if it does not start."""
        if isinstance(self._poster, ProcessPoster):
            self._poster.open()

    def close(self) -> None:
        """Close every thread's connection; a later deliver opens a new one."""
        if self._poster is not None:
            self._poster.close()

    def _request_headers(self, notification_id: str, body: bytes) -> dict[str, str]:
        timestamp = int(self._clock())
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **self._headers,
                   "webhook-id": notification_id, "webhook-timestamp": str(timestamp)}
        if self._secret is not None:
            headers["webhook-signature"] = sign(self._secret, notification_id, timestamp, body)
        return headers


def _not_configured(delivery: Delivery) -> Outcome:
    return Outcome.failed(f"webhook destination {delivery.destination!r} is not configured "
                          "(set notifications.default_webhook_url)")


def _check_secret(secret: str) -> None:
    try:
        key = decode_secret(secret)
    except ValueError as exc:
        raise ConfigError("notifications.webhook_secret_env",
                          f"the variable it names holds no usable secret: {exc}") from None
    if len(key) < MIN_SECRET_BYTES:
        log.warning("webhook signing secret is shorter than recommended",
                    key="notifications.webhook_secret_env", min_bytes=MIN_SECRET_BYTES)


def _checked_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The configured extra headers, or ConfigError naming the offending one (not its value)."""
    for name, value in headers.items():
        key = f"notifications.webhook_headers.{name}"
        if not _HEADER_NAME.fullmatch(name):
            raise ConfigError(key, "header names must be HTTP tokens (letters, digits and !#$%&'*+-.^_`|~)")
        if name.lower() in RESERVED_HEADERS:
            raise ConfigError(key, "is set by the webhook channel itself and cannot be configured")
        if _HEADER_VALUE_CONTROL.search(value) or value != value.strip(" \t"):
            raise ConfigError(key, "value must not contain line breaks or control characters, "
                              "nor start or end with whitespace")
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            raise ConfigError(key, "value must be Latin-1 text (HTTP header encoding)") from None
    return dict(headers)


def _header_secrets(headers: Mapping[str, str]) -> set[str]:
    """Each header value, and each long word of it (``Bearer <token>`` → the token alone too)."""
    values = {value for value in headers.values() if value}
    return values | {word for value in values for word in value.split() if len(word) >= _MIN_HEADER_WORD}
