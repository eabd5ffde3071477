"""Slack Block Kit messages for an event snapshot (pure: no I/O, no clock).

Two renderings:

* :func:`root_message` — the incident message, as the original drew it: a header block
  ``<severity emoji> <title>``, the description, ``fields`` with Severity / State / Type /
  Source (human names: "P0", "Detected", "Availability"), a resolution section once the
  incident is resolved (resolved by, method such as "Auto-assisted manual", notes, root
  cause), a context block ``Incident ID: <id> | Created: 2024-01-15 14:32:00 UTC``, a
  legacy attachment carrying the severity colour, and a top-level ``text`` fallback.
  Posted as the thread root (bot token) or as each webhook message.
* :func:`thread_reply` — a short follow-up for the incident's thread, e.g. "State changed
  to Investigating", with the same facts.
* :func:`group_message` — a group notification (actors/domain/grouping.py): a header
  ``<worst severity emoji> 50 incidents: service=db`` and one line per incident, a message of
  its own (never a thread).

User-supplied text is escaped for mrkdwn (``&``, ``<``, ``>``), so a title such as
``<!channel>`` cannot ping anyone; ``plain_text`` (the header) is sent as is. Every message
goes through :func:`fit`, which enforces Slack's limits before anything is sent, cutting
visibly with "…" (never inside an ``&amp;``-style entity). A test notification is marked
"[TEST]" in the header, the fallback text and a context line.

Block ids are derived from the notification id and attempt number, so each revision of a
message (each chat.update) carries new ones, as Slack asks.
"""
from __future__ import annotations

import copy
import hashlib
from datetime import datetime, timezone
from typing import Any, Mapping

from ..domain.models import Delivery, Incident, IncidentState, Severity

#: Block Kit and chat.postMessage limits (PROTOCOLS.md 2b, 2c).
MAX_HEADER_CHARS = 150
MAX_TEXT_OBJECT_CHARS = 3000
MAX_FIELDS = 10
MAX_FIELD_CHARS = 2000
MAX_CONTEXT_ELEMENTS = 10
MAX_BLOCKS = 50
MAX_BLOCK_ID_CHARS = 255
MAX_MESSAGE_TEXT_CHARS = 40_000
MAX_ATTACHMENTS = 100

ELLIPSIS = "…"
TEST_MARK = "[TEST]"
TEST_NOTICE = f"*{TEST_MARK}* This is a test notification from LLM Incident Manager; no incident is affected."
NO_DESCRIPTION = "_No description provided._"

EMOJI: Mapping[Severity, str] = {
    Severity.P0: "🔴",
    Severity.P1: "🟠",
    Severity.P2: "🟡",
    Severity.P3: "🔵",
    Severity.P4: "⚪",
}

COLOURS: Mapping[Severity, str] = {
    Severity.P0: "#d00000",
    Severity.P1: "#ff6b35",
    Severity.P2: "#f7b801",
    Severity.P3: "#0077b6",
    Severity.P4: "#00b4d8",
}

_STATES_BY_EVENT: Mapping[str, IncidentState] = {state.event_type: state for state in IncidentState}


def escape(text: str) -> str:
    """``text`` safe inside mrkdwn: ``&``, ``<`` and ``>`` become HTML entities."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def truncate(text: str, limit: int, *, escaped: bool = False) -> str:
    """``text`` cut to at most ``limit`` characters, ending in "…" when it was cut.

    With ``escaped=True`` (text that went through :func:`escape`) the cut never splits an
    entity: every ``&`` in such text starts one, so a trailing ``&`` without ``;`` is dropped.
    """
    if len(text) <= limit:
        return text
    kept = text[: limit - 1]
    if escaped:
        amp = kept.rfind("&")
        if amp != -1 and ";" not in kept[amp:]:
            kept = kept[:amp]
    return kept + ELLIPSIS


def _mrkdwn(text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": text}


def _field(label: str, value: str) -> dict[str, str]:
    return _mrkdwn(f"*{label}:*\n{escape(value) if value else '—'}")


def _block_id(name: str, revision: str) -> str:
    return f"{name}-{revision}"


def revision(delivery: Delivery) -> str:
    """A short id unique to this delivery attempt, used in block ids (new on every update)."""
    seed = f"{delivery.notification_id}/{delivery.attempt}".encode("utf-8", "surrogatepass")
    return hashlib.sha256(seed).hexdigest()[:16]


def _created(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _title(incident: Incident, is_test: bool) -> str:
    return f"{TEST_MARK} {incident.title}" if is_test else incident.title


def _fact_fields(incident: Incident) -> list[dict[str, str]]:
    fields = [
        _field("Severity", incident.severity.label),
        _field("State", incident.state.label),
        _field("Type", incident.type.label),
        _field("Source", incident.source),
    ]
    if incident.affected_services:
        fields.append(_field("Affected services", ", ".join(incident.affected_services)))
    if incident.assignees:
        fields.append(_field("Assignees", ", ".join(incident.assignees)))
    return fields


def _resolution_block(incident: Incident, rev: str) -> dict[str, Any] | None:
    resolution = incident.resolution
    if resolution is None:
        return None
    return {
        "type": "section",
        "block_id": _block_id("resolution", rev),
        "text": _mrkdwn("*Resolution*"),
        "fields": [
            _field("Resolved by", resolution.resolved_by),
            _field("Method", resolution.method.label),
            _field("Notes", resolution.notes),
            _field("Root cause", resolution.root_cause),
        ],
    }


def _context_block(incident: Incident, rev: str) -> dict[str, Any]:
    line = f"Incident ID: {escape(incident.id)} | Created: {_created(incident.created_at)}"
    return {"type": "context", "block_id": _block_id("context", rev), "elements": [_mrkdwn(line)]}


def _test_notice(rev: str) -> dict[str, Any]:
    return {"type": "context", "block_id": _block_id("test", rev), "elements": [_mrkdwn(TEST_NOTICE)]}


def _summary(incident: Incident, is_test: bool) -> str:
    """One mrkdwn line: ``🔴 P0 Detected: <title>`` (escaped, marked for a test)."""
    line = f"{EMOJI[incident.severity]} {incident.severity.label} {incident.state.label}: {escape(incident.title)}"
    return f"{TEST_MARK} {line}" if is_test else line


def _plain_summary(incident: Incident, is_test: bool) -> str:
    """The attachment's plain-text fallback: ``P0 Detected: <title>`` (not parsed, so unescaped)."""
    line = f"{incident.severity.label} {incident.state.label}: {incident.title}"
    return f"{TEST_MARK} {line}" if is_test else line


def root_message(delivery: Delivery) -> dict[str, Any]:
    """The incident message (``text``, ``blocks``, ``attachments``) showing the snapshot's
    current state, already fitted to Slack's limits."""
    incident, is_test, rev = delivery.incident, delivery.is_test, revision(delivery)
    blocks: list[dict[str, Any]] = [{
        "type": "header",
        "block_id": _block_id("header", rev),
        "text": {"type": "plain_text", "text": f"{EMOJI[incident.severity]} {_title(incident, is_test)}",
                 "emoji": True},
    }]
    if is_test:
        blocks.append(_test_notice(rev))
    blocks.append({"type": "section", "block_id": _block_id("description", rev),
                   "text": _mrkdwn(escape(incident.description) if incident.description else NO_DESCRIPTION)})
    blocks.append({"type": "section", "block_id": _block_id("facts", rev), "fields": _fact_fields(incident)})
    resolution = _resolution_block(incident, rev)
    if resolution is not None:
        blocks.append(resolution)
    blocks.append(_context_block(incident, rev))
    summary = _summary(incident, is_test)
    text = f"{summary}\n{escape(incident.description)}" if incident.description else summary
    attachment = {
        "color": COLOURS[incident.severity],
        "fallback": _plain_summary(incident, is_test),
        "text": escape(" · ".join((incident.severity.label, incident.state.label, incident.type.label,
                                   incident.source))),
    }
    return fit({"text": text, "blocks": blocks, "attachments": [attachment]})


def event_headline(event_type: str, incident: Incident) -> str:
    """``State changed to Investigating`` for a state event; a generic line otherwise."""
    state = _STATES_BY_EVENT.get(event_type)
    if state is None:
        return f"Update: {escape(event_type)} (state {incident.state.label})"
    if state is IncidentState.DETECTED:
        return "Incident detected"
    return f"State changed to {state.label}"


def thread_reply(delivery: Delivery) -> dict[str, Any]:
    """A follow-up for the incident's thread (``text``, ``blocks``), fitted to Slack's limits."""
    incident, rev = delivery.incident, revision(delivery)
    headline = event_headline(delivery.event_type, incident)
    blocks: list[dict[str, Any]] = [
        {"type": "section", "block_id": _block_id("event", rev), "text": _mrkdwn(f"*{headline}*"),
         "fields": _fact_fields(incident)},
    ]
    resolution = _resolution_block(incident, rev)
    if resolution is not None:
        blocks.append(resolution)
    blocks.append({"type": "context", "block_id": _block_id("context", rev), "elements": [
        _mrkdwn(f"Incident ID: {escape(incident.id)} | At: {_created(delivery.occurred_at)}")]})
    text = f"{headline} — {_summary(incident, delivery.is_test)}"
    return fit({"text": text, "blocks": blocks})


def group_message(delivery: Delivery) -> dict[str, Any]:
    """The group notification's message (``text``, ``blocks``): one summary line per incident
    (as many per section as fit), fitted to Slack's limits (beyond 50 blocks the last says how
    many were left out)."""
    group = delivery.group
    assert group is not None
    incidents, rev = group.incidents(), revision(delivery)
    worst = min((incident.severity for incident in incidents), default=Severity.P4)
    title = f"{len(incidents)} incident{'s' if len(incidents) != 1 else ''}: {group.describe() or group.route}"
    blocks: list[dict[str, Any]] = [{"type": "header", "block_id": _block_id("header", rev),
                                     "text": {"type": "plain_text", "text": f"{EMOJI[worst]} {title}", "emoji": True}}]
    lines = [f"{_summary(incident, False)} ({escape(incident.id)})" for incident in incidents]
    chunk: list[str] = []
    for line in lines + [""]:
        if chunk and (not line or sum(len(kept) + 1 for kept in chunk) + len(line) > MAX_TEXT_OBJECT_CHARS):
            blocks.append({"type": "section", "block_id": _block_id(f"incidents{len(blocks)}", rev),
                           "text": _mrkdwn("\n".join(chunk))})
            chunk = []
        if line:
            chunk.append(line)
    blocks.append({"type": "context", "block_id": _block_id("context", rev),
                   "elements": [_mrkdwn(f"Route {escape(group.route)} | At: {_created(delivery.occurred_at)}")]})
    return fit({"text": escape(title), "blocks": blocks})


# -- limits ---------------------------------------------------------------------------------

def _fit_text_object(obj: dict[str, Any], limit: int) -> dict[str, Any]:
    text = obj.get("text")
    if isinstance(text, str):
        obj["text"] = truncate(text, limit, escaped=obj.get("type") == "mrkdwn")
    return obj


def _fit_list(items: list[Any], limit: int, omitted: Any) -> list[Any]:
    """At most ``limit`` items; when some are dropped the last kept slot says how many."""
    if len(items) <= limit:
        return items
    return items[: limit - 1] + [omitted(len(items) - limit + 1)]


def _fit_block(block: dict[str, Any]) -> dict[str, Any]:
    if isinstance(block.get("block_id"), str):
        block["block_id"] = block["block_id"][:MAX_BLOCK_ID_CHARS]
    kind = block.get("type")
    if kind == "header" and isinstance(block.get("text"), dict):
        _fit_text_object(block["text"], MAX_HEADER_CHARS)
    elif kind == "section":
        if isinstance(block.get("text"), dict):
            _fit_text_object(block["text"], MAX_TEXT_OBJECT_CHARS)
        if isinstance(block.get("fields"), list):
            fields = _fit_list(block["fields"], MAX_FIELDS,
                               lambda n: _mrkdwn(f"{ELLIPSIS} {n} more fields omitted"))
            block["fields"] = [_fit_text_object(f, MAX_FIELD_CHARS) if isinstance(f, dict) else f
                               for f in fields]
    elif kind == "context" and isinstance(block.get("elements"), list):
        elements = _fit_list(block["elements"], MAX_CONTEXT_ELEMENTS,
                             lambda n: _mrkdwn(f"{ELLIPSIS} {n} more omitted"))
        block["elements"] = [_fit_text_object(e, MAX_TEXT_OBJECT_CHARS)
                             if isinstance(e, dict) and e.get("type") in ("mrkdwn", "plain_text") else e
                             for e in elements]
    return block


def _omitted_blocks(count: int) -> dict[str, Any]:
    return {"type": "context", "elements": [_mrkdwn(f"{ELLIPSIS} {count} more blocks omitted")]}


def fit(message: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``message`` within Slack's limits, cut visibly with "…".

    Header text ≤ 150 characters; section text ≤ 3000; ``fields`` ≤ 10 items of ≤ 2000
    characters; context ≤ 10 elements; ≤ 50 blocks (the last one then says how many were
    omitted); block ids ≤ 255; ≤ 100 attachments; top-level ``text`` ≤ 40,000 characters.
    mrkdwn text is assumed escaped (see :func:`escape`) and is never cut inside an entity.
    """
    fitted = copy.deepcopy(dict(message))
    if isinstance(fitted.get("blocks"), list):
        blocks = _fit_list(fitted["blocks"], MAX_BLOCKS, _omitted_blocks)
        fitted["blocks"] = [_fit_block(b) if isinstance(b, dict) else b for b in blocks]
    if isinstance(fitted.get("attachments"), list):
        fitted["attachments"] = fitted["attachments"][:MAX_ATTACHMENTS]
        for attachment in fitted["attachments"]:
            if isinstance(attachment, dict) and isinstance(attachment.get("text"), str):
                attachment["text"] = truncate(attachment["text"], MAX_TEXT_OBJECT_CHARS, escaped=True)
            if isinstance(attachment, dict) and isinstance(attachment.get("fallback"), str):
                attachment["fallback"] = truncate(attachment["fallback"], MAX_TEXT_OBJECT_CHARS)
    if isinstance(fitted.get("text"), str):
        fitted["text"] = truncate(fitted["text"], MAX_MESSAGE_TEXT_CHARS, escaped=True)
    return fitted
