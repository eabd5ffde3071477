"""The email formatter: multipart structure, escaping, threading headers, injection, limits."""
from __future__ import annotations

import ast
import re
import sys
from datetime import datetime, timezone
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from actors.domain.models import (Delivery, Incident, IncidentState, IncidentType, Resolution,
                                  ResolutionMethod, Severity)
from actors.formatting import email as fmt

SENDER = "incidents@example.com"
RECIPIENTS = ("oncall@example.com", "sre@example.org")
INCIDENT_ID = "3f2a9c1e-7b4d-4e8a-9f00-123456789abc"
ROOT = f"<incident-{INCIDENT_ID}.root@example.com>"
T0 = datetime(2024, 1, 15, 14, 32, tzinfo=timezone.utc)


def incident(**changes: object) -> Incident:
    base = Incident(
        id=INCIDENT_ID, fingerprint="fp", title="High latency on checkout",
        description="p99 above 2 s for 10 minutes", severity=Severity.P1,
        type=IncidentType.AVAILABILITY, state=IncidentState.DETECTED, source="sentinel",
        created_at=T0, updated_at=T0, last_alert_at=T0, alert_count=3,
        labels={"region": "eu-west-1"}, affected_services=("checkout", "payments"),
        assignees=("alice@example.com",))
    return base.evolve(**changes)


def delivery(notification_id: str = "n-1", channel_state: dict[str, str] | None = None,
             is_test: bool = False, **changes: object) -> Delivery:
    snapshot = incident(**changes)
    return Delivery(notification_id=notification_id, incident_id=snapshot.id, channel="email",
                    destination="default", event_type=snapshot.state.event_type, occurred_at=T0,
                    incident=snapshot, state=channel_state or {}, is_test=is_test)


def render(d: Delivery, sender_name: str | None = "Incident Bot") -> EmailMessage:
    return fmt.render(d, SENDER, sender_name, RECIPIENTS)


def wire(message: EmailMessage) -> bytes:
    return message.as_bytes()


def reparsed(message: EmailMessage) -> EmailMessage:
    parsed = message_from_bytes(wire(message), policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def parts(message: EmailMessage) -> tuple[str, str]:
    text_part, html_part = reparsed(message).iter_parts()
    return text_part.get_content(), html_part.get_content()


def test_message_is_multipart_alternative_with_plain_text_first_and_html_last() -> None:
    message = reparsed(render(delivery()))
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]


def test_headers_name_sender_recipients_and_date_of_the_event() -> None:
    message = reparsed(render(delivery()))
    assert message["From"] == f"Incident Bot <{SENDER}>"
    assert [a.addr_spec for a in message["To"].addresses] == list(RECIPIENTS)
    assert message["Date"].datetime == T0
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-Incident-ID"] == INCIDENT_ID


def test_sender_name_defaults_to_the_brand() -> None:
    assert reparsed(render(delivery(), sender_name=None))["From"] == f"LLM Incident Manager <{SENDER}>"


def test_subject_names_the_incident_and_stays_the_same_whatever_the_status() -> None:
    detected = render(delivery())["Subject"]
    resolved = render(delivery("n-2", {"root_message_id": ROOT}, state=IncidentState.RESOLVED))["Subject"]
    assert detected == resolved == "[INC-3f2a9c1e] High latency on checkout"


def test_status_and_event_are_in_the_body() -> None:
    text, html = parts(render(delivery("n-2", {"root_message_id": ROOT}, state=IncidentState.INVESTIGATING)))
    assert "Status:" in text and "Investigating" in text
    assert "Incident investigating at 2024-01-15 14:32:00 UTC" in text
    assert "<strong>Investigating</strong>" in html


def test_first_mail_for_an_incident_carries_the_deterministic_root_message_id() -> None:
    message = render(delivery())
    assert message["Message-ID"] == ROOT
    assert message["In-Reply-To"] is None and message["References"] is None
    assert fmt.thread_for(delivery(), "example.com") == fmt.Thread(ROOT, None, True)


def test_follow_up_replies_to_the_stored_root_with_an_id_of_its_own() -> None:
    follow_up = render(delivery("n-2", {"root_message_id": ROOT, "root_notification_id": "n-1"},
                                state=IncidentState.RESOLVED))
    assert follow_up["In-Reply-To"] == ROOT
    assert follow_up["References"] == ROOT
    assert follow_up["Message-ID"] == "<notification-n-2@example.com>"


def test_a_retried_follow_up_has_the_same_message_id() -> None:
    state = {"root_message_id": ROOT, "root_notification_id": "n-1"}
    first = render(delivery("n-2", state))
    retry = render(delivery("n-2", state).next_attempt())
    assert first["Message-ID"] == retry["Message-ID"] == "<notification-n-2@example.com>"
    assert parts(first) == parts(retry)


def test_a_retry_of_the_root_mail_is_the_root_again() -> None:
    message = render(delivery("n-1", {"root_message_id": ROOT, "root_notification_id": "n-1"}))
    assert message["Message-ID"] == ROOT
    assert message["In-Reply-To"] is None


def test_ids_that_are_unsafe_in_a_message_id_are_hashed() -> None:
    odd = delivery("n 1@<x>", {"root_message_id": ROOT})
    message_id = render(odd)["Message-ID"]
    assert re.fullmatch(r"<notification-[0-9a-f]{32}@example\.com>", message_id)


def test_html_part_escapes_everything_user_supplied() -> None:
    evil = "<script>alert('x')</script> & \"q\""
    resolution = Resolution(resolved_by=evil, method=ResolutionMethod.MANUAL, notes=evil,
                            root_cause=evil, resolved_at=T0)
    d = delivery(title=evil, description=evil, source=evil, labels={evil: evil},
                 affected_services=(evil,), assignees=(evil,), resolution=resolution,
                 state=IncidentState.RESOLVED)
    _, html = parts(render(d))
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;q&quot;" in html
    assert html.count("&lt;script&gt;") >= 9


@pytest.mark.parametrize("severity,colour", [
    (Severity.P0, "#d00000"), (Severity.P1, "#ff6b35"), (Severity.P2, "#f7b801"),
    (Severity.P3, "#0077b6"), (Severity.P4, "#00b4d8")])
def test_severity_badge_has_the_severity_colour(severity: Severity, colour: str) -> None:
    _, html = parts(render(delivery(severity=severity)))
    assert re.search(rf'<span style="background:{colour};[^"]*">{severity.label}</span>', html)


def test_details_use_human_names_and_carry_the_branding() -> None:
    resolution = Resolution(resolved_by="bob", method=ResolutionMethod.AUTO_ASSISTED_MANUAL,
                            notes="rolled back", root_cause="bad deploy", resolved_at=T0)
    text, html = parts(render(delivery(state=IncidentState.RESOLVED, resolution=resolution)))
    for body in (text, html):
        assert "P1" in body and "Availability" in body and "Resolved" in body
        assert "Auto-assisted manual" in body and "checkout, payments" in body
        assert "LLM Incident Manager" in body
        assert "AUTO_ASSISTED_MANUAL" not in body and "AVAILABILITY" not in body
    assert "Incident resolved at" in text
    assert "<table" in html


@pytest.mark.parametrize("bad", ["\r\nBcc: victim@example.net", "\nX-Evil: 1", "line\rbreak", "nul\0"])
def test_a_line_break_or_nul_in_the_title_is_refused_naming_the_subject(bad: str) -> None:
    with pytest.raises(ValueError, match="Subject"):
        render(delivery(title=f"Outage{bad}"))


def test_a_line_break_in_the_stored_root_is_refused_naming_in_reply_to() -> None:
    with pytest.raises(ValueError, match="In-Reply-To"):
        render(delivery("n-2", {"root_message_id": f"{ROOT}\r\nBcc: victim@example.net"}))


def test_a_line_break_in_the_sender_name_is_refused_naming_from() -> None:
    with pytest.raises(ValueError, match="From"):
        render(delivery(), sender_name="Bot\r\nBcc: victim@example.net")


def test_a_line_break_in_the_incident_id_is_refused() -> None:
    with pytest.raises(ValueError, match="Subject|X-Incident-ID"):
        render(delivery(id="abc\ndef"))


def test_a_2000_character_body_line_is_encoded_so_no_wire_line_exceeds_998() -> None:
    message = render(delivery(description="x" * 2000, title="T" * 300))
    lines = wire(message).split(b"\r\n")
    assert max(len(line) for line in lines) <= fmt.MAX_LINE_CHARS
    text, html = parts(message)
    assert "x" * 2000 in text and "x" * 2000 in html


def test_non_ascii_text_survives_and_the_wire_is_seven_bit() -> None:
    message = render(delivery(title="Datenbank überlastet ✓", description="Grüße"))
    raw = wire(message)
    raw.decode("ascii")
    assert reparsed(message)["Subject"] == "[INC-3f2a9c1e] Datenbank überlastet ✓"
    text, _ = parts(message)
    assert "Grüße" in text


def test_control_characters_are_dropped_from_the_body() -> None:
    text, html = parts(render(delivery(description="bell\x07 and nul\x00 here")))
    assert "bell and nul here" in text and "bell and nul here" in html


def test_a_test_notification_is_marked_and_never_threaded() -> None:
    d = delivery("t-1", {"root_message_id": ROOT, "root_notification_id": "n-1"}, is_test=True)
    message = render(d)
    assert message["Subject"].startswith("[TEST] [INC-3f2a9c1e]")
    assert message["Message-ID"] == "<notification-t-1@example.com>"
    assert message["In-Reply-To"] is None
    text, html = parts(message)
    assert "[TEST]" in text and "[TEST]" in html
    assert fmt.thread_for(d, "example.com").starts_thread is False


def test_the_formatter_imports_only_the_standard_library_and_the_domain() -> None:
    tree = ast.parse(Path(fmt.__file__).read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add("." * node.level + (node.module or ""))
    relative = {name for name in imported if name.startswith(".")}
    assert relative == {"..domain.models"}
    assert all(name.split(".")[0] in sys.stdlib_module_names | {"__future__"}
               for name in imported - relative)
