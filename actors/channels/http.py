"""HTTP outcomes shared by the HTTP channels: status classification, Retry-After parsing,
and the outcomes of a request that got no answer (also what fault injection reports).
The transport itself is actors/channels/keepalive.py.

The classifier is data-driven (as Alertmanager's ``Retrier``): 2xx delivered; 408, 425,
429 and 5xx except 501 retry; everything else (3xx included: redirects are never followed)
fails for good. Channels extend it by inspecting the body before calling it.
"""
from __future__ import annotations

import email.utils
import time
from datetime import datetime, timezone
from typing import Iterable

from ..domain.models import Outcome
from .redact import redact

RETRYABLE_STATUSES = frozenset({408, 425, 429}) | frozenset(range(500, 600)) - {501}


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


def timed_out(why: str = "no answer within the timeout") -> Outcome:
    """No answer in time: worth a retry."""
    return Outcome.retry(f"timeout: {why}")


def connection_error(text: str, secrets: Iterable[str | None] = ()) -> Outcome:
    """The connection failed or broke: worth a retry; ``text`` is redacted (URLs are credentials)."""
    return Outcome.retry(f"connection error: {redact(text, secrets)}")
