"""Alert fingerprints and the deduplication decision (pure; the clock is passed in).

Fingerprints are versioned. The current form, ``v2:<SHA-256 hex>``, hashes every field
behind its length, so no field's content can pass for a field boundary. Incidents opened
before it carry the legacy form (bare hex over the fields joined with U+001F, which a title
containing U+001F could forge). :func:`fingerprints` gives both: an alert looks up an
active incident by the current form, then by the legacy one, so incidents opened before
the change keep collecting their alerts; new incidents always get the current form.
"""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from functools import lru_cache

from .models import Alert, Incident

FINGERPRINT_PREFIX = "v2:"
_LEGACY_SEPARATOR = "\x1f"


def _fields(alert: Alert) -> list[str]:
    return _field_list(alert.source, alert.type.name, alert.title, alert.affected_services)


def _field_list(source: str, type_name: str, title: str, services: tuple[str, ...]) -> list[str]:
    """Source, type, title and the sorted affected services.

    Labels are left out on purpose: the original grouped on these four fields, and clients
    that vary a label per firing (a timestamp, a pod name) would otherwise never deduplicate.
    """
    return [source, type_name, title, *sorted(services)]


#: Fingerprints remembered (a storm repeats a few of them many times); bounded, least recent go.
REMEMBERED = 10_000


def fingerprint(alert: Alert) -> str:
    """The current fingerprint: ``v2:`` and SHA-256 over the fields (see :func:`_fields`),
    each written as its UTF-8 length in bytes, ``:``, then its bytes."""
    return _fingerprint_of(alert.source, alert.type.name, alert.title, alert.affected_services)


@lru_cache(maxsize=REMEMBERED)
def _fingerprint_of(source: str, type_name: str, title: str, services: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    for field in _field_list(source, type_name, title, services):
        data = field.encode("utf-8")
        digest.update(b"%d:%b" % (len(data), data))
    return FINGERPRINT_PREFIX + digest.hexdigest()


def legacy_fingerprint(alert: Alert) -> str:
    """The fingerprint incidents were opened with before ``v2:``; only for finding those."""
    return hashlib.sha256(_LEGACY_SEPARATOR.join(_fields(alert)).encode("utf-8")).hexdigest()


def fingerprints(alert: Alert) -> tuple[str, str]:
    """``(current, legacy)``: look an active incident up by each, in this order."""
    return fingerprint(alert), legacy_fingerprint(alert)


def joins_incident(incident: Incident | None, now: datetime, window_secs: float, enabled: bool) -> bool:
    """True when an alert with this incident's fingerprint should join it.

    It joins only while deduplication is enabled, the incident is active, and the *last*
    alert seen for it is at most ``window_secs`` old.
    """
    if not enabled or incident is None or not incident.state.is_active:
        return False
    return now - incident.last_alert_at <= timedelta(seconds=window_secs)
