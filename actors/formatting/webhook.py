"""Generic webhook payload: the original's documented default body, as exact bytes.

``{"event_type", "timestamp", "incident", "notification_id"}`` plus ``"test": true`` for a
user's test notification. The bytes returned are the ones that get signed and sent, so the
serialisation is fixed here (compact, ASCII-only) and never redone by the transport. Pure:
renders only from the delivery's snapshot, never from the incident's current state.
"""
from __future__ import annotations

import json
from typing import Any

from ..domain.models import Delivery, snapshot_json, to_iso


def payload(delivery: Delivery) -> dict[str, Any]:
    """The JSON object sent for one delivery (``incident`` is the event-time snapshot)."""
    body: dict[str, Any] = {
        "event_type": delivery.event_type,
        "timestamp": to_iso(delivery.occurred_at),
        "incident": delivery.incident.to_dict(),
        "notification_id": delivery.notification_id,
    }
    if delivery.is_test:
        body["test"] = True
    return body


def render(delivery: Delivery) -> bytes:
    """Compact JSON bytes of :func:`payload`, with the stored snapshot embedded as it is.

    ASCII-only (non-ASCII text, even a lone surrogate, becomes a ``\\u`` escape), so this
    never fails on odd incident text. The snapshot the store holds is already compact ASCII
    JSON (:func:`~actors.domain.models.snapshot_json`), so it is not serialised again; one
    stored by an older version may hold non-ASCII text, and is then re-encoded.
    """
    snapshot = delivery.snapshot or snapshot_json(delivery.incident)
    if not snapshot.isascii():
        snapshot = json.dumps(json.loads(snapshot), separators=(",", ":"), ensure_ascii=True)
    test = ',"test":true' if delivery.is_test else ""
    quote = json.encoder.encode_basestring_ascii  # what json.dumps does with a string, without its set-up
    return (f'{{"event_type":{quote(delivery.event_type)},"timestamp":"{to_iso(delivery.occurred_at)}",'
            f'"incident":{snapshot},"notification_id":{quote(delivery.notification_id)}{test}}}').encode("ascii")
