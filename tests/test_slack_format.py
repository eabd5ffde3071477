"""The Slack formatter: Block Kit layout, human names, limits, escaping, test marks, replies."""
from __future__ import annotations

import ast
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest

from actors.domain.models import (Delivery, Incident, IncidentState, IncidentType, Resolution,
                                  ResolutionMethod, Severity)
from actors.formatting import slack as fmt

T0 = datetime(2024, 1, 15, 14, 32, tzinfo=timezone.utc)
T1 = datetime(2024, 1, 15, 15, 5, 9, tzinfo=timezone.utc)


def make_incident(**changes: Any) -> Incident:
    return Incident(
        id="550e8400-e29b-41d4-a716-446655440000", fingerprint="fp", title="API Gateway Down",
        description="All requests returning 503", severity=Severity.P0, type=IncidentType.AVAILABILITY,
        state=IncidentState.DETECTED, source="llm-sentinel", created_at=T0, updated_at=T0,
        last_alert_at=T0).evolve(**changes)


def make_delivery(is_test: bool = False, attempt: int = 1, notification_id: str = "n-1",
                  **changes: Any) -> Delivery:
    incident = make_incident(**changes)
    return Delivery(notification_id=notification_id, incident_id=incident.id, channel="slack",
                    destination="default", event_type=incident.state.event_type, occurred_at=T1,
                    incident=incident, attempt=attempt, is_test=is_test)


RESOLVED = dict(state=IncidentState.RESOLVED, resolution=Resolution(
    resolved_by="oncall@example.com", method=ResolutionMethod.AUTO_ASSISTED_MANUAL, notes="Restarted pods",
    root_cause="Bad deploy", resolved_at=T1))


def blocks_of(message: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [b for b in message["blocks"] if b["type"] == kind]


def texts(message: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(type, text) of every text object in the blocks, plus the top-level text as mrkdwn."""
    yield "mrkdwn", message["text"]
    for block in message["blocks"]:
        if isinstance(block.get("text"), dict):
            yield block["text"]["type"], block["text"]["text"]
        for item in block.get("fields", []) + block.get("elements", []):
            yield item["type"], item["text"]


def test_the_root_message_has_the_originals_header_description_fields_and_context() -> None:
    message = fmt.root_message(make_delivery())
    header, = blocks_of(message, "header")
    assert header["text"] == {"type": "plain_text", "text": "🔴 API Gateway Down", "emoji": True}
    description, facts = blocks_of(message, "section")
    assert description["text"] == {"type": "mrkdwn", "text": "All requests returning 503"}
    assert [f["text"] for f in facts["fields"]] == [
        "*Severity:*\nP0", "*State:*\nDetected", "*Type:*\nAvailability", "*Source:*\nllm-sentinel"]
    context, = blocks_of(message, "context")
    assert context["elements"] == [{"type": "mrkdwn", "text": (
        "Incident ID: 550e8400-e29b-41d4-a716-446655440000 | Created: 2024-01-15 14:32:00 UTC")}]
    assert [b["type"] for b in message["blocks"]] == ["header", "section", "section", "context"]


def test_the_top_level_text_fallback_names_severity_state_and_title_and_carries_the_description() -> None:
    message = fmt.root_message(make_delivery())
    assert message["text"] == "🔴 P0 Detected: API Gateway Down\nAll requests returning 503"


@pytest.mark.parametrize("severity, emoji, colour", [
    (Severity.P0, "🔴", "#d00000"), (Severity.P1, "🟠", "#ff6b35"), (Severity.P2, "🟡", "#f7b801"),
    (Severity.P3, "🔵", "#0077b6"), (Severity.P4, "⚪", "#00b4d8")])
def test_each_severity_has_its_emoji_in_the_header_and_its_colour_on_the_legacy_attachment(
        severity: Severity, emoji: str, colour: str) -> None:
    message = fmt.root_message(make_delivery(severity=severity))
    assert blocks_of(message, "header")[0]["text"]["text"] == f"{emoji} API Gateway Down"
    attachment, = message["attachments"]
    assert attachment["color"] == colour
    assert attachment["fallback"] == f"{severity.label} Detected: API Gateway Down"
    assert attachment["text"] == f"{severity.label} · Detected · Availability · llm-sentinel"


def test_a_resolved_incident_shows_who_resolved_it_how_and_why_in_human_words() -> None:
    message = fmt.root_message(make_delivery(**RESOLVED))
    resolution = blocks_of(message, "section")[2]
    assert resolution["text"]["text"] == "*Resolution*"
    assert [f["text"] for f in resolution["fields"]] == [
        "*Resolved by:*\noncall@example.com", "*Method:*\nAuto-assisted manual", "*Notes:*\nRestarted pods",
        "*Root cause:*\nBad deploy"]
    assert "*State:*\nResolved" in [f["text"] for f in blocks_of(message, "section")[1]["fields"]]
    dumped = json.dumps(message, ensure_ascii=False)
    for identifier in ("AUTO_ASSISTED_MANUAL", "AutoAssistedManual", "AVAILABILITY", "RESOLVED", "Severity.P0"):
        assert identifier not in dumped


def test_an_active_incident_has_no_resolution_section() -> None:
    assert "Resolution" not in json.dumps(fmt.root_message(make_delivery(state=IncidentState.INVESTIGATING)))


def test_affected_services_and_assignees_are_listed_when_present() -> None:
    message = fmt.root_message(make_delivery(affected_services=("api", "db"), assignees=("ana",)))
    fields = [f["text"] for f in blocks_of(message, "section")[1]["fields"]]
    assert fields[4:] == ["*Affected services:*\napi, db", "*Assignees:*\nana"]


def test_an_empty_description_still_gives_a_non_empty_section_text() -> None:
    message = fmt.root_message(make_delivery(description=""))
    assert blocks_of(message, "section")[0]["text"]["text"] == fmt.NO_DESCRIPTION
    assert message["text"] == "🔴 P0 Detected: API Gateway Down"


def test_a_151_character_title_gives_a_150_character_header_ending_in_an_ellipsis() -> None:
    header = blocks_of(fmt.root_message(make_delivery(title="t" * 151)), "header")[0]["text"]["text"]
    assert len(header) == 150 and header.endswith("t…") and header.startswith("🔴 ttt")


def test_a_3001_character_description_is_cut_to_3000_characters_visibly() -> None:
    text = blocks_of(fmt.root_message(make_delivery(description="d" * 3001)), "section")[0]["text"]["text"]
    assert len(text) == 3000 and text == "d" * 2999 + "…"


def test_a_40001_character_text_is_cut_to_40000_characters() -> None:
    assert fmt.fit({"text": "x" * 40_001})["text"] == "x" * 39_999 + "…"
    message = fmt.root_message(make_delivery(description="d" * 40_001))
    assert len(message["text"]) == 40_000 and message["text"].endswith("d…")


def test_eleven_fields_become_ten_with_the_last_saying_how_many_were_dropped() -> None:
    fields = [{"type": "mrkdwn", "text": f"f{i}"} for i in range(11)]
    fitted = fmt.fit({"text": "t", "blocks": [{"type": "section", "fields": fields}]})
    kept = fitted["blocks"][0]["fields"]
    assert len(kept) == 10
    assert [f["text"] for f in kept[:9]] == [f"f{i}" for i in range(9)]
    assert kept[9]["text"] == "… 2 more fields omitted"


def test_a_field_over_2000_characters_is_cut_to_2000() -> None:
    fitted = fmt.fit({"blocks": [{"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * 2001}]}]})
    assert fitted["blocks"][0]["fields"][0]["text"] == "f" * 1999 + "…"
    long_notes = fmt.root_message(make_delivery(state=IncidentState.RESOLVED, resolution=Resolution(
        "me", ResolutionMethod.MANUAL, "n" * 5000, "r", T1)))
    notes = blocks_of(long_notes, "section")[2]["fields"][2]["text"]
    assert len(notes) == 2000 and notes.endswith("n…")


def test_more_than_50_blocks_become_50_with_the_last_saying_how_many_were_dropped() -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": f"b{i}"}} for i in range(60)]
    fitted = fmt.fit({"text": "t", "blocks": blocks})
    assert len(fitted["blocks"]) == 50
    assert fitted["blocks"][48]["text"]["text"] == "b48"
    assert fitted["blocks"][49] == {"type": "context",
                                    "elements": [{"type": "mrkdwn", "text": "… 11 more blocks omitted"}]}


def test_fit_leaves_its_input_untouched_and_messages_within_limits_unchanged() -> None:
    message = {"text": "x" * 40_001, "blocks": [{"type": "header", "text": {"type": "plain_text", "text": "h"}}]}
    before = json.dumps(message)
    fitted = fmt.fit(message)
    assert json.dumps(message) == before
    root = fmt.root_message(make_delivery())
    assert fmt.fit(root) == root and fitted["blocks"] == message["blocks"]


def test_user_text_is_escaped_for_mrkdwn_so_it_cannot_ping_or_link() -> None:
    evil = "<!channel> & <https://evil.example|click>"
    message = fmt.root_message(make_delivery(title=evil, description=evil, source=evil, **RESOLVED))
    escaped = "&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;"
    assert blocks_of(message, "section")[0]["text"]["text"] == escaped
    assert f"*Source:*\n{escaped}" in [f["text"] for f in blocks_of(message, "section")[1]["fields"]]
    assert message["text"].startswith(f"🔴 P0 Resolved: {escaped}")
    for kind, text in texts(message):
        if kind == "mrkdwn":
            assert "<" not in text and ">" not in text
    header = blocks_of(message, "header")[0]["text"]
    assert header == {"type": "plain_text", "text": f"🔴 {evil}", "emoji": True}  # plain_text is not parsed


def test_cutting_escaped_text_never_splits_an_entity() -> None:
    text = blocks_of(fmt.root_message(make_delivery(description="&" * 3000)), "section")[0]["text"]["text"]
    assert len(text) <= 3000 and text.endswith("&amp;…")
    assert text[:-1].replace("&amp;", "") == ""


def test_a_test_notification_is_marked_in_the_header_the_text_and_a_notice() -> None:
    message = fmt.root_message(make_delivery(is_test=True))
    assert blocks_of(message, "header")[0]["text"]["text"] == "🔴 [TEST] API Gateway Down"
    assert message["text"].startswith("[TEST] 🔴 P0 Detected")
    assert message["attachments"][0]["fallback"].startswith("[TEST] ")
    assert blocks_of(message, "context")[0]["elements"][0]["text"] == fmt.TEST_NOTICE
    assert "[TEST]" not in json.dumps(fmt.root_message(make_delivery()), ensure_ascii=False)


def test_block_ids_are_unique_in_a_message_and_new_for_every_revision() -> None:
    first = fmt.root_message(make_delivery(**RESOLVED))
    ids = [b["block_id"] for b in first["blocks"]]
    assert len(set(ids)) == len(ids) and all(len(i) <= fmt.MAX_BLOCK_ID_CHARS for i in ids)
    for other in (make_delivery(notification_id="n-2", **RESOLVED), make_delivery(attempt=2, **RESOLVED)):
        assert not set(ids) & {b["block_id"] for b in fmt.root_message(other)["blocks"]}
    assert ids == [b["block_id"] for b in fmt.root_message(make_delivery(**RESOLVED))["blocks"]]


def test_a_thread_reply_announces_the_state_change_with_the_same_facts() -> None:
    reply = fmt.thread_reply(make_delivery(state=IncidentState.INVESTIGATING))
    event = reply["blocks"][0]
    assert event["text"]["text"] == "*State changed to Investigating*"
    assert [f["text"] for f in event["fields"]] == [
        "*Severity:*\nP0", "*State:*\nInvestigating", "*Type:*\nAvailability", "*Source:*\nllm-sentinel"]
    assert reply["text"] == "State changed to Investigating — 🔴 P0 Investigating: API Gateway Down"
    assert blocks_of(reply, "context")[0]["elements"][0]["text"] == (
        "Incident ID: 550e8400-e29b-41d4-a716-446655440000 | At: 2024-01-15 15:05:09 UTC")
    assert "attachments" not in reply


def test_a_resolution_reply_carries_the_resolution_section() -> None:
    reply = fmt.thread_reply(make_delivery(**RESOLVED))
    assert reply["blocks"][0]["text"]["text"] == "*State changed to Resolved*"
    assert "*Method:*\nAuto-assisted manual" in [f["text"] for f in reply["blocks"][1]["fields"]]


def test_an_event_type_without_a_state_still_gets_a_readable_headline() -> None:
    assert fmt.event_headline("incident.note<x>", make_incident()) == \
        "Update: incident.note&lt;x&gt; (state Detected)"
    assert fmt.event_headline("incident.detected", make_incident()) == "Incident detected"


def test_the_formatter_imports_only_the_standard_library_and_the_domain() -> None:
    tree = ast.parse(Path(fmt.__file__).read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add("." * node.level + (node.module or ""))
    third_party = {name for name in imported if not name.startswith(".")
                   and name.split(".")[0] not in {"__future__", "copy", "hashlib", "datetime", "typing"}}
    assert third_party == set()
    assert {name for name in imported if name.startswith(".")} == {"..domain.models"}
