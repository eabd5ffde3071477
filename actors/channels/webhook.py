"""Generic webhook channel: the event as JSON, POSTed once per attempt, optionally signed.

Signing follows Standard Webhooks v1: ``webhook-id`` is the notification id (the same on
every retry, so receivers can drop duplicates), ``webhook-timestamp`` is this attempt's Unix
time and ``webhook-signature`` covers exactly the bytes sent. Redirects are never followed.

Transport: by default (``webhook_worker_processes``) each sender's instance makes its HTTP
exchanges in a worker process of its own (actors/channels/post_worker.py), so they run beside
the main interpreter; otherwise in-process, where one instance may be shared by every sender
of the pool and each thread keeps its own persistent connection (actors/channels/keepalive.py,
the channels' one HTTP client). :meth:`WebhookChannel.close` ends them.

Each destination has its own URL, signing secret and headers: ``default`` those of
``[notifications]``, and each receiver with ``[receivers.<name>.webhook]`` its own. URLs,
secrets and header values are treated as secrets: they never appear in outcomes, exceptions
or logs.

A receiver's ``body_template`` (actors/formatting/templates.py) replaces the built-in body
for its destination; the default path does no template work. A template that fails makes
that delivery fail, naming the setting and the error.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping

import structlog

from ..domain.config import NO_RECEIVERS, NotificationSettings, ReceiverSettings, WebhookTarget, read_secret
from ..domain.destinations import channel_targets, setting_key
from ..domain.errors import ConfigError
from ..domain.models import Delivery, Outcome
from ..formatting.signing import MIN_SECRET_BYTES, SECRET_PREFIX, decode_secret, sign
from ..formatting.templates import TemplateFailure, Templates, compile_templates, webhook_body
from ..formatting.webhook import render
from .base import unconfigured
from .http import classify_status
from .keepalive import KeepAlivePoster, Reply
from .post_worker import ProcessPoster, WorkerDied
from .redact import longest_first, url_secrets

NAME = "webhook"
USER_AGENT = "llm-incident-manager/0.1"
#: Headers the channel sets itself; ``webhook_headers`` may not replace them.
RESERVED_HEADERS = frozenset({"content-type", "content-length", "host", "transfer-encoding",
                              "webhook-id", "webhook-timestamp", "webhook-signature"})

_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEADER_VALUE_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
#: Words of a header value at least this long are redacted on their own as well.
_MIN_HEADER_WORD = 8

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Endpoint:
    """One webhook destination: where to POST, the signing secret, the extra headers."""

    url: str
    secret: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    #: The receiver's body template; None sends the built-in body.
    templates: Templates | None = None


def build(settings: NotificationSettings, environ: Mapping[str, str],
          receivers: Mapping[str, ReceiverSettings] = NO_RECEIVERS) -> "WebhookChannel":
    """The webhook channel for these settings: the ``[notifications]`` URL (destination
    ``default``) and each receiver's; cheap (no network).

    Raises ConfigError naming the key when a ``secret_env`` names an unset variable or one
    that does not hold a base64 secret, when a URL is not usable, or when a header is not a
    valid, non-reserved header. Without any URL the channel serves no destination (the
    start-up warns).
    """
    if settings.webhook_secret_env and not settings.default_webhook_url:  # checked even when unused
        _endpoint_secret("default", settings.webhook_secret_env, environ)
    endpoints = {name: _endpoint(name, target, environ)
                 for name, target in channel_targets(settings, receivers, NAME).items()
                 if isinstance(target, WebhookTarget)}
    return WebhookChannel(endpoints, timeout=settings.timeout(NAME), worker_process=settings.webhook_worker_processes)


def _endpoint(receiver: str, target: WebhookTarget, environ: Mapping[str, str]) -> Endpoint:
    url = target.url or ""
    try:
        KeepAlivePoster(url, 1.0).close()
    except ValueError:
        raise ConfigError(setting_key(receiver, NAME, "url"), "is not a usable http(s) URL") from None
    return Endpoint(url, _endpoint_secret(receiver, target.secret_env, environ),
                    _checked_headers(target.headers, setting_key(receiver, NAME, "headers")),
                    compile_templates(f"receivers.{receiver}.{NAME}", NAME, target))


def _endpoint_secret(receiver: str, env_name: str | None, environ: Mapping[str, str]) -> str | None:
    key = setting_key(receiver, NAME, "secret_env")
    secret = read_secret(key, env_name, environ, required=bool(env_name))
    if secret is not None:
        _check_secret(secret, key)
    return secret


class WebhookChannel:
    """POSTs rendered events to each destination's URL; see the module docstring for headers
    and signing."""

    name = NAME
    needs_state = False

    def __init__(self, endpoints: Mapping[str, Endpoint], *, timeout: float = 10.0,
                 clock: Callable[[], float] = time.time, worker_process: bool = False) -> None:
        """``endpoints``: destination → its endpoint, each already checked (see :func:`build`).
        With ``worker_process`` the HTTP exchanges are made by one worker process of this
        instance's own, for every endpoint (actors/channels/post_worker.py); an instance is
        then for one thread."""
        self.destinations: tuple[str, ...] = tuple(endpoints)
        self._endpoints = {name: (index, endpoint) for index, (name, endpoint) in enumerate(endpoints.items())}
        self._clock = clock
        self._secrets = longest_first(secret for endpoint in endpoints.values() for secret in (
            *url_secrets(endpoint.url), *_secret_texts(endpoint.secret), *_header_secrets(endpoint.headers)))
        urls = [endpoint.url for endpoint in endpoints.values()]
        self._worker = ProcessPoster(urls, timeout, self._secrets) if worker_process and urls else None
        self._posters = [] if worker_process else [KeepAlivePoster(url, timeout) for url in urls]

    def deliver(self, delivery: Delivery) -> Outcome:
        """One POST of the rendered event to its destination's URL; every expected failure is
        an Outcome.

        2xx delivered; 3xx failed (redirects are not followed); 410 failed and asks to
        disable the destination; 408/425/429/5xx (except 501), timeouts and connection
        errors retry, passing on Retry-After; anything else failed. A destination the
        channel does not have fails, naming the setting to fix.
        """
        found = self._endpoints.get(delivery.destination)
        if found is None:
            return unconfigured(NAME, delivery.destination)
        index, endpoint = found
        body = _body(endpoint, delivery)
        if isinstance(body, Outcome):
            return body
        headers = self._request_headers(endpoint, delivery.notification_id, body)
        if self._worker is not None:
            return self._outcome(self._worker.post(body, headers, self._secrets, to=index))
        return self._outcome(self._posters[index].post(body, headers, self._secrets))

    def deliver_later(self, delivery: Delivery, done: Callable[[Outcome | WorkerDied], None]) -> Outcome | None:
        """:meth:`deliver` without waiting when a worker process sends: None now, and ``done``
        called later from its reader thread (with WorkerDied if the worker ended); the request
        goes out with the next :meth:`flush`. Without a worker, the outcome at once (``done``
        is not called)."""
        found = self._endpoints.get(delivery.destination)
        if self._worker is None or found is None:
            return self.deliver(delivery)
        index, endpoint = found
        body = _body(endpoint, delivery)
        if isinstance(body, Outcome):
            return body
        self._worker.submit(body, self._request_headers(endpoint, delivery.notification_id, body),
                            lambda answer: done(answer if isinstance(answer, WorkerDied) else self._outcome(answer)),
                            index)
        return None

    def flush(self) -> None:
        """Hand the worker what :meth:`deliver_later` queued (one write for all of it)."""
        if self._worker is not None:
            self._worker.flush()

    def _outcome(self, reply: Reply | Outcome) -> Outcome:
        if isinstance(reply, Outcome):
            return reply
        return classify_status(reply.status, reply.text, reply.retry_after, self._secrets)

    def open(self) -> None:
        """Start the worker process now (when there is one), so the first send does not wait
        for it; raises WorkerDied if it does not start."""
        if self._worker is not None:
            self._worker.open()

    def close(self) -> None:
        """End the worker, or close every thread's connections; a later deliver opens new ones."""
        if self._worker is not None:
            self._worker.close()
        for poster in self._posters:
            poster.close()

    def _request_headers(self, endpoint: Endpoint, notification_id: str, body: bytes) -> dict[str, str]:
        timestamp = int(self._clock())
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **endpoint.headers,
                   "webhook-id": notification_id, "webhook-timestamp": str(timestamp)}
        if endpoint.secret is not None:
            headers["webhook-signature"] = sign(endpoint.secret, notification_id, timestamp, body)
        return headers


def _body(endpoint: Endpoint, delivery: Delivery) -> bytes | Outcome:
    """The bytes to POST: the built-in body, or the receiver's template rendered; a template
    that fails is the delivery's failed outcome, naming the setting and the error."""
    if endpoint.templates is None:
        return render(delivery)
    try:
        return webhook_body(endpoint.templates, delivery)
    except TemplateFailure as failure:
        return Outcome.failed(str(failure))


def _secret_texts(secret: str | None) -> set[str]:
    """The signing secret, and its key without the ``whsec_`` prefix."""
    return {secret, secret.strip().removeprefix(SECRET_PREFIX)} if secret else set()


def _check_secret(secret: str, setting: str) -> None:
    try:
        key = decode_secret(secret)
    except ValueError as exc:
        raise ConfigError(setting, f"the variable it names holds no usable secret: {exc}") from None
    if len(key) < MIN_SECRET_BYTES:
        log.warning("webhook signing secret is shorter than recommended", key=setting, min_bytes=MIN_SECRET_BYTES)


def _checked_headers(headers: Mapping[str, str], setting: str) -> dict[str, str]:
    """The configured extra headers, or ConfigError naming the offending one (not its value)."""
    for name, value in headers.items():
        key = f"{setting}.{name}"
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
