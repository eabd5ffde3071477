"""Email: an event snapshot → an RFC 5322 message with a text and an HTML part (pure).

The message is ``multipart/alternative``: plain text first, HTML last (RFC 2046 §5.1.4: the
reader shows the last part it supports). Every user-supplied value is HTML-escaped in the
HTML part. Bodies are encoded by ``set_content`` under :data:`POLICY` (quoted-printable or
base64 as needed), so no line on the wire exceeds 78 characters, far below the 998 limit.

Threading, so that every mail about one incident lands in one conversation:

* The Subject is stable per incident, ``[INC-<first 8 of id>] <title>``; the status goes in
  the body. (Gmail forks a thread when the Subject changes.)
* The first mail about an incident is the thread's *root*; its Message-ID is deterministic,
  ``<incident-<id>.root@<domain of email_from>>``. The channel stores it (with the id of the
  notification that carried it) as ``root_message_id`` / ``root_notification_id``.
* A follow-up gets its own Message-ID derived from its notification id (so a retry resends
  the same id) plus ``In-Reply-To`` and ``References`` naming the stored root.
* A retry of the root mail itself (``root_notification_id`` is this notification) is the
  root again, byte for byte.

A test notification (``delivery.is_test``) is marked ``[TEST]`` in the Subject and body,
never starts or joins a thread, and has a Message-ID of its own.

A group notification (actors/domain/grouping.py) is one mail listing its incidents, one line
each; its Subject, ``[GROUP-<first 8 of the group's id>] <group labels>``, and its thread are
the group's (the group's id stands for the incident's above), and ``X-Incident-Group`` names it.

Header injection: CR, LF and NUL are refused in every header value *before* the message is
built; :func:`render` raises ValueError naming the header.
"""
from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from email import policy
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Mapping, Sequence

from ..domain.models import Delivery, Incident, Severity

BRAND = "LLM Incident Manager"
TEST_MARK = "[TEST]"
#: RFC 5322 §2.1.1: a line MUST NOT exceed 998 characters (excluding CRLF).
MAX_LINE_CHARS = 998
#: How many characters of the incident id the Subject shows.
SUBJECT_ID_CHARS = 8
#: Characters that must never reach a header value.
FORBIDDEN_HEADER_CHARS = ("\r", "\n", "\0")
#: SMTP line ends and 78-column folding; non-ASCII bodies are QP/base64, never raw 8-bit,
#: so servers without 8BITMIME get a valid message too.
POLICY = policy.SMTP.clone(cte_type="7bit")

#: Keys of the channel state this module reads (written by the email channel).
ROOT_MESSAGE_ID = "root_message_id"
ROOT_NOTIFICATION_ID = "root_notification_id"

SEVERITY_COLOURS: dict[Severity, str] = {
    Severity.P0: "#d00000",
    Severity.P1: "#ff6b35",
    Severity.P2: "#f7b801",
    Severity.P3: "#0077b6",
    Severity.P4: "#00b4d8",
}
#: Badge text colour: dark on the light backgrounds, white on the others.
_BADGE_TEXT: dict[Severity, str] = {Severity.P2: "#1a1a1a", Severity.P4: "#1a1a1a"}

#: No field templated: every part is the built-in one.
NOTHING_TEMPLATED: Mapping[str, str] = {}

_ID_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")
_BODY_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class Thread:
    """Where one message sits in its incident's thread."""

    message_id: str
    #: The root this message replies to; None for a root or a test message.
    in_reply_to: str | None
    #: True when this message is the incident's root (first mail, or a retry of it).
    starts_thread: bool


def check_header(name: str, value: str) -> str:
    """``value`` unchanged; ValueError naming the header if it holds CR, LF or NUL."""
    if any(char in value for char in FORBIDDEN_HEADER_CHARS):
        raise ValueError(f"{name} header value contains a line break or NUL character")
    return value


def address(header: str, addr_spec: str, display_name: str | None = None) -> Address:
    """A parsed address for ``header``; ValueError naming the header if it is not valid."""
    check_header(header, addr_spec)
    check_header(header, display_name or "")
    try:
        return Address(display_name=display_name or "", addr_spec=addr_spec)
    except (HeaderParseError, ValueError, IndexError) as exc:
        raise ValueError(f"{header} address {addr_spec!r} is not valid: {exc}") from None


def domain_of(addr_spec: str) -> str:
    """The domain part of an address, used on the right of our Message-IDs."""
    return addr_spec.rpartition("@")[2] or "localhost"


def _id_token(value: str) -> str:
    """``value`` if it is safe on the left of a Message-ID, else a hash of it."""
    if _ID_TOKEN.fullmatch(value):
        return value
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:32]


def root_message_id(incident_id: str, domain: str) -> str:
    """The deterministic Message-ID of an incident's first mail."""
    return f"<incident-{_id_token(incident_id)}.root@{domain}>"


def notification_message_id(notification_id: str, domain: str) -> str:
    """The Message-ID of one notification (the same on every retry)."""
    return f"<notification-{_id_token(notification_id)}@{domain}>"


def thread_for(delivery: Delivery, domain: str) -> Thread:
    """The Message-ID and parent of ``delivery``'s mail, from the stored channel state."""
    if delivery.is_test:
        return Thread(notification_message_id(delivery.notification_id, domain), None, False)
    root = delivery.state.get(ROOT_MESSAGE_ID)
    if not root:
        return Thread(root_message_id(delivery.incident_id, domain), None, True)
    if delivery.state.get(ROOT_NOTIFICATION_ID) == delivery.notification_id:
        return Thread(str(root), None, True)
    return Thread(notification_message_id(delivery.notification_id, domain), str(root), False)


def subject(delivery: Delivery) -> str:
    """``[INC-<first 8 of id>] <title>``, prefixed ``[TEST]`` for a test notification;
    ``[GROUP-<first 8 of the group's id>] <labels>`` for a group notification."""
    if delivery.group is not None:
        return f"[GROUP-{delivery.incident_id[:SUBJECT_ID_CHARS]}] {delivery.group.describe() or delivery.group.route}"
    return _marked(delivery, f"[INC-{delivery.incident.id[:SUBJECT_ID_CHARS]}] {delivery.incident.title}")


def _marked(delivery: Delivery, text: str) -> str:
    return f"{TEST_MARK} {text}" if delivery.is_test else text


def render(delivery: Delivery, sender: str, sender_name: str | None,
           recipients: Sequence[str], templated: Mapping[str, str] = NOTHING_TEMPLATED) -> EmailMessage:
    """The complete message for ``delivery`` from ``sender`` to ``recipients`` (the To header).

    ``templated`` holds a receiver's renderings of ``subject`` (marked ``[TEST]`` for a
    test), ``text`` and ``html`` (actors/formatting/templates.py), used instead of the
    built-in ones (not for a group notification: templates speak of one incident). Raises ValueError naming the header when a header value holds CR, LF or
    NUL, or an address is not valid; nothing is built in that case.
    """
    thread = thread_for(delivery, domain_of(sender))
    if delivery.group is not None:
        templated = NOTHING_TEMPLATED
    title = templated.get("subject")
    headers: list[tuple[str, object]] = [
        ("From", address("From", sender, sender_name or BRAND)),
        ("To", tuple(address("To", recipient) for recipient in recipients)),
        ("Subject", check_header("Subject", subject(delivery) if title is None else _marked(delivery, title))),
        ("Date", format_datetime(delivery.occurred_at.astimezone(timezone.utc))),
        ("Message-ID", check_header("Message-ID", thread.message_id)),
    ]
    if thread.in_reply_to:
        headers.append(("In-Reply-To", check_header("In-Reply-To", thread.in_reply_to)))
        headers.append(("References", check_header("References", thread.in_reply_to)))
    headers += [
        ("Auto-Submitted", "auto-generated"),
        ("X-Auto-Response-Suppress", "All"),
        ("X-Incident-Group", check_header("X-Incident-Group", delivery.incident_id)) if delivery.group is not None
        else ("X-Incident-ID", check_header("X-Incident-ID", delivery.incident.id)),
    ]
    message = EmailMessage(policy=POLICY)
    for name, value in headers:
        message[name] = value
    if delivery.group is not None:
        message.set_content(group_text_body(delivery))
        message.add_alternative(group_html_body(delivery), subtype="html")
    else:
        text = templated.get("text")
        message.set_content(text_body(delivery) if text is None else _clean(text))
        message.add_alternative(templated.get("html") or html_body(delivery), subtype="html")
    return message


# --- body ------------------------------------------------------------------------------------

def _clean(text: str) -> str:
    """Body text without control characters other than tab and line ends."""
    return _BODY_CONTROLS.sub("", text)


def _when(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def event_label(event_type: str) -> str:
    """``incident.detected`` → ``Incident detected``."""
    words = event_type.replace(".", " ").replace("_", " ").split()
    return " ".join(words).capitalize() if words else "Incident update"


def facts(incident: Incident) -> list[tuple[str, str]]:
    """The details table, in display order, with human names (empty fields left out)."""
    rows = [
        ("Incident", incident.id),
        ("Status", incident.state.label),
        ("Severity", incident.severity.label),
        ("Type", incident.type.label),
        ("Source", incident.source),
        ("Affected services", ", ".join(incident.affected_services)),
        ("Assignees", ", ".join(incident.assignees)),
        ("Alerts", str(incident.alert_count)),
        ("Created", _when(incident.created_at)),
        ("Last alert", _when(incident.last_alert_at)),
        ("Labels", ", ".join(f"{key}={value}" for key, value in sorted(incident.labels.items()))),
    ]
    resolution = incident.resolution
    if resolution:
        rows += [
            ("Resolved by", resolution.resolved_by),
            ("Resolution method", resolution.method.label),
            ("Resolved", _when(resolution.resolved_at)),
            ("Root cause", resolution.root_cause),
            ("Resolution notes", resolution.notes),
        ]
    return [(label, _clean(value)) for label, value in rows if value]


def _headline(delivery: Delivery) -> str:
    incident = delivery.incident
    return f"{incident.severity.label} {incident.type.label} incident · {incident.state.label}"


def _test_notice() -> str:
    return f"{TEST_MARK} This is a test notification from {BRAND}; no action is needed."


def text_body(delivery: Delivery) -> str:
    """The plain-text part."""
    incident = delivery.incident
    lines: list[str] = [_test_notice(), ""] if delivery.is_test else []
    lines += [
        _headline(delivery),
        _clean(incident.title),
        "",
        f"{event_label(delivery.event_type)} at {_when(delivery.occurred_at)}",
        "",
    ]
    rows = facts(incident)
    width = max(len(label) for label, _ in rows)
    lines += [f"{label + ':':<{width + 1}} {value}" for label, value in rows]
    if incident.description:
        lines += ["", "Description:", _clean(incident.description)]
    lines += ["", "-- ", BRAND]
    return "\n".join(lines) + "\n"


def _e(text: str) -> str:
    return html.escape(_clean(text), quote=True)


def html_body(delivery: Delivery) -> str:
    """The HTML part; every value from the incident is escaped."""
    incident = delivery.incident
    colour = SEVERITY_COLOURS[incident.severity]
    badge = (f'<span style="background:{colour};color:{_BADGE_TEXT.get(incident.severity, "#ffffff")};'
             f'padding:2px 10px;border-radius:4px;font-weight:bold">{_e(incident.severity.label)}</span>')
    rows = "\n".join(
        f'<tr><th style="text-align:left;padding:4px 12px 4px 0;color:#555555;vertical-align:top">'
        f"{_e(label)}</th>\n<td style=\"padding:4px 0\">{_e(value)}</td></tr>"
        for label, value in facts(incident))
    parts = ['<!DOCTYPE html>', '<html><head><meta charset="utf-8">',
             f"<title>{_e(subject(delivery))}</title></head>",
             '<body style="margin:0;padding:16px;font-family:Arial,Helvetica,sans-serif;color:#1a1a1a">',
             f'<div style="max-width:640px;margin:0 auto;border-top:6px solid {colour}">']
    if delivery.is_test:
        parts.append('<p style="background:#fff3cd;padding:8px 12px;font-weight:bold">'
                     f"{_e(_test_notice())}</p>")
    parts += [
        f"<p>{badge} <strong>{_e(incident.state.label)}</strong> · {_e(incident.type.label)}</p>",
        f'<h2 style="margin:8px 0">{_e(incident.title)}</h2>',
        f'<p style="color:#555555">{_e(event_label(delivery.event_type))} at {_e(_when(delivery.occurred_at))}</p>',
        f'<table style="border-collapse:collapse;font-size:14px">\n{rows}\n</table>',
    ]
    if incident.description:
        parts += ['<h3 style="margin:16px 0 4px">Description</h3>',
                  f'<p style="white-space:pre-wrap;margin:0">{_e(incident.description)}</p>']
    parts += [f'<p style="margin-top:24px;color:#888888;font-size:12px">{_e(BRAND)}</p>',
              "</div></body></html>"]
    return "\n".join(parts) + "\n"


def _group_lines(delivery: Delivery) -> tuple[str, list[str]]:
    """The group's headline (``50 incidents · service=db``) and one line per incident."""
    group = delivery.group
    assert group is not None
    incidents = group.incidents()
    headline = f"{len(incidents)} incident{'s' if len(incidents) != 1 else ''} · {group.describe() or group.route}"
    return headline, [_clean(f"{i.severity.label} {i.state.label}: {i.title} ({i.id})") for i in incidents]


def group_text_body(delivery: Delivery) -> str:
    """The plain-text part of a group notification."""
    headline, lines = _group_lines(delivery)
    route = delivery.group.route if delivery.group is not None else ""
    return "\n".join([_clean(headline), f"Route {_clean(route)} at {_when(delivery.occurred_at)}", "",
                      *(f"- {line}" for line in lines), "", "-- ", BRAND]) + "\n"


def group_html_body(delivery: Delivery) -> str:
    """The HTML part of a group notification; every value from the incidents is escaped."""
    headline, lines = _group_lines(delivery)
    route = delivery.group.route if delivery.group is not None else ""
    items = "\n".join(f"<li>{_e(line)}</li>" for line in lines)
    return "\n".join([
        '<!DOCTYPE html>', '<html><head><meta charset="utf-8">', f"<title>{_e(subject(delivery))}</title></head>",
        '<body style="margin:0;padding:16px;font-family:Arial,Helvetica,sans-serif;color:#1a1a1a">',
        f'<h2 style="margin:8px 0">{_e(headline)}</h2>',
        f'<p style="color:#555555">Route {_e(route)} at {_e(_when(delivery.occurred_at))}</p>',
        f"<ul>\n{items}\n</ul>",
        f'<p style="margin-top:24px;color:#888888;font-size:12px">{_e(BRAND)}</p>', "</body></html>"]) + "\n"
