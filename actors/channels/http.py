"""HTTP pieces shared by the HTTP channels: one session per sender, status classification,
Retry-After parsing and exception → outcome mapping.

The classifier is data-driven (as Alertmanager's ``Retrier``): 2xx delivered; 408, 425,
429 and 5xx except 501 retry; everything else (3xx included: redirects are never followed)
fails for good. Channels extend it by inspecting the body before calling it.
"""
from __future__ import annotations

import email.utils
import threading
import time
import urllib.parse
from datetime import datetime, timezone
from typing import Iterable

import requests

from ..domain.models import Outcome
from .redact import redact

RETRYABLE_STATUSES = frozenset({408, 425, 429}) | frozenset(range(500, 600)) - {501}


def new_session() -> requests.Session:
    """A keep-alive session that ignores proxy variables (faster; no surprise egress)."""
    session = requests.Session()
    session.trust_env = False
    return session


class ThreadSessions:
    """One keep-alive session per sending thread (requests sessions are not thread-safe), so
    one channel instance can serve a whole sender pool. ``close`` closes them all; a later
    ``get`` opens a new one."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._all: list[requests.Session] = []
        self._lock = threading.Lock()

    def get(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = new_session()
            with self._lock:
                self._all.append(session)
        return session

    def close(self) -> None:
        with self._lock:
            sessions, self._all = self._all, []
        self._local = threading.local()
        for session in sessions:
            session.close()


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delay-seconds or HTTP-date); None if absent
    or unparseable. A date in the past gives 0."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    current = datetime.fromtimestamp(time.time() if now is None else now, timezone.utc)
    return max(0.0, (moment - current).total_seconds())


def classify_status(status: int, body_hint: str = "", retry_after: str | None = None,
                    secrets: Iterable[str | None] = ()) -> Outcome:
    """The outcome of a completed HTTP exchange, from its status alone."""
    hint = redact(body_hint.strip(), secrets)[:200]
    detail = f"HTTP {status}" + (f": {hint}" if hint else "")
    if 200 <= status < 300:
        return Outcome.delivered(detail, status)
    if status in RETRYABLE_STATUSES:
        return Outcome.retry(detail, status, parse_retry_after(retry_after))
    if 300 <= status < 400:
        return Outcome.failed(f"{detail} (redirects are not followed; fix the URL)", status)
    return Outcome.failed(detail, status, disable_destination=status == 410)


def classify_exception(exc: requests.RequestException, secrets: Iterable[str | None] = ()) -> Outcome:
    """Network trouble is always worth a retry; the text is redacted (URLs are credentials)."""
    kind = "timeout" if isinstance(exc, requests.Timeout) else (
        "connection error" if isinstance(exc, requests.ConnectionError) else "request error")
    if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                        requests.exceptions.InvalidSchema)):
        return Outcome.failed(f"invalid URL: {redact(str(exc), secrets)}")
    return Outcome.retry(f"{kind}: {redact(str(exc), secrets)}")


def url_secrets(url: str) -> list[str]:
    """The parts of a URL that requests may print on their own in an error ("with url:
    /path?query"); a credential-bearing URL must have each of them redacted."""
    parts = urllib.parse.urlsplit(url)
    pieces = [parts.query, f"{parts.path}?{parts.query}" if parts.query else ""]
    if parts.path not in ("", "/"):
        pieces.append(parts.path)
    return [p for p in pieces if p]


def post_json(session: requests.Session, url: str, body: bytes, headers: dict[str, str],
              timeout: float, secrets: Iterable[str | None] = ()) -> tuple[requests.Response | None, Outcome | None]:
    """POST bytes; returns (response, None) or (None, retry/failed outcome) on an exception."""
    try:
        response = session.post(url, data=body, headers=headers, timeout=timeout, allow_redirects=False)
    except requests.RequestException as exc:
        return None, classify_exception(exc, [url, *url_secrets(url), *secrets])
    return response, None
