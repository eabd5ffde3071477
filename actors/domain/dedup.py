"""Alert fingerprints and the deduplication decision (pure; the clock is passed in)."""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from .models import Alert, Incident


def fingerprint(alert: Alert) -> str:
    """SHA-256 over source, type, title and the sorted affected services.

    Labels are left out on purpose: the original grouped on these four fields, and clients
    that vary a label per firing (a timestamp, a pod name) would otherwise never deduplicate.
    """
    parts = [alert.source, alert.type.name, alert.title, *sorted(alert.affected_services)]
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


def joins_incident(incident: Incident | None, now: datetime, window_secs: float, enabled: bool) -> bool:
    """True when an alert with this incident's fingerprint should join it.

    It joins only while deduplication is enabled, the incident is active, and the *last*
    alert seen for it is at most ``window_secs`` old.
    """
    if not enabled or incident is None or not incident.state.is_active:
        return False
    return now - incident.last_alert_at <= timedelta(seconds=window_secs)
