"""Generic webhook payload: the original's documented default body, as exact bytes.

``{"event_type", "timestamp", "incident", "notification_id"}`` plus ``"test": true`` for a
user's test notification. A group notification (actors/domain/grouping.py) has
``{"event_type": "incident.group", "timestamp", "group": {"route", "labels"}, "incidents": [...],
"notification_id"}``, each incident as it stood after its last event the notification carries.
The bytes returned are the ones that get signed and sent, so the serialisation is fixed here
(compact, ASCII-only) and never redone by the transport. Pure: renders only from the
delivery's snapshots, never from the incidents' current state.
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
    """The bytes sent for one delivery: :func:`_render_event`, or for a group notification
    :func:`_render_group`."""
    return _render_group(delivery) if delivery.group is not None else _render_event(delivery)


def _render_event(delivery: Delivery) -> bytes:
    """Compact JSON bytes of :func:`payload`, with the stored snapshot embedded as it is.

    ASCII-only (non-ASCII text, even a lone surrogate, becomes a ``\\u`` escape), so this
    never fails on odd incident text. The snapshot the store holds is already compact ASCII
    JSON (:func:`~actors.domain.models.snapshot_json`), so it is not serialised again; one
    stored by an older version may hold non-ASCII text, and is then re-encoded.
    """
    snapshot = _ascii(delivery.snapshot or snapshot_json(delivery.incident))
    test = ',"test":true' if delivery.is_test else ""
    quote = json.encoder.encode_basestring_ascii  # what json.dumps does with a string, without its set-up
    return (f'{{"event_type":{quote(delivery.event_type)},"timestamp":"{to_iso(delivery.occurred_at)}",'
            f'"incident":{snapshot},"notification_id":{quote(delivery.notification_id)}{test}}}').encode("ascii")


def _render_group(delivery: Delivery) -> bytes:
    """Compact ASCII JSON of a group notification, its incidents' stored snapshots embedded as
    they are (as :func:`_render_event` does)."""
    group = delivery.group
    assert group is not None
    head = json.dumps({"route": group.route, "labels": dict(group.labels)}, separators=(",", ":"), ensure_ascii=True)
    incidents = ",".join(_ascii(snapshot) for snapshot in group.snapshots)
    quote = json.encoder.encode_basestring_ascii
    return (f'{{"event_type":{quote(delivery.event_type)},"timestamp":"{to_iso(delivery.occurred_at)}",'
            f'"group":{head},"incidents":[{incidents}],"notification_id":{quote(delivery.notification_id)}}}'
            ).encode("ascii")


def _ascii(snapshot: str) -> str:
    """A stored snapshot as ASCII JSON: as it is, or re-encoded when an older version stored
    non-ASCII text."""
    if snapshot.isascii():
        return snapshot
    return json.dumps(json.loads(snapshot), separators=(",", ":"), ensure_ascii=True)
