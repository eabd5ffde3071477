"""Receivers' templates: compiled once in Jinja2's sandbox, rendered per delivery, escaped per channel.

Each field a receiver templates (actors/domain/templates.py names them) is compiled when its
channel is built, in an :class:`ImmutableSandboxedEnvironment` with :class:`StrictUndefined`:
a syntax error stops the start naming the key, an unknown name fails the render instead of
printing nothing, and attribute games (``{{ ''.__class__.__mro__ }}``) fail with a
SecurityError. What ``{{ … }}`` prints is escaped for where the text goes:

=================  ==============================================================
``email.html``     HTML (autoescape)
``slack.text``     mrkdwn: ``&``, ``<``, ``>`` become entities (no ``<!channel>``)
``slack.blocks``   mrkdwn, then JSON string escaping; the output must be a JSON
                   list of blocks
``webhook.body``   JSON string escaping (write ``"{{ incident.title }}"``, or
                   ``{{ incident.labels | tojson }}`` for a whole value); the output
                   must be JSON
others             none (plain text: the email subject and text body, the
                   PagerDuty summary)
=================  ==============================================================

``| safe`` prints a value as it is. The channel's limits apply after rendering (the
formatters cut as they do their own text). A render that fails for any reason raises
:class:`TemplateFailure` naming the setting and the error; the channels turn it into a failed
outcome (the notification is dead, with that reason), never an exception of theirs.

The context (:func:`context`): ``incident`` (the event's snapshot, as in webhook bodies:
``id``, ``title``, ``description``, ``severity`` ``"P0"``…, ``type`` ``"SECURITY"``…,
``state`` ``"DETECTED"``…, ``source``, ``labels``, ``affected_services``, ``assignees``,
``alert_count``, ``created_at``…, ``resolution`` or None), ``display`` (human names:
``severity``, ``type``, ``state``, ``event``, ``emoji``, ``short_id``), ``event_type``,
``occurred_at``, ``notification_id``, ``receiver``, ``channel`` and ``is_test``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

from jinja2 import StrictUndefined, Template, TemplateSyntaxError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup

from ..domain.config import CHANNELS, ReceiverSettings
from ..domain.errors import ConfigError
from ..domain.models import (Delivery, Incident, IncidentState, IncidentType, Resolution, ResolutionMethod, Severity,
                             to_iso)
from ..domain.templates import file_key, inline_key, template_sources
from . import email as email_format
from . import slack as slack_format

#: A template's output is refused beyond this many characters (before the channel's own limits).
MAX_OUTPUT_CHARS = 1_000_000
#: Longest error text kept in a notification's reason.
MAX_REASON_CHARS = 300


class TemplateFailure(Exception):
    """A template that failed to render (or rendered what its channel cannot send)."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"template {key} failed: {reason}"[:MAX_REASON_CHARS])
        self.key = key
        self.reason = reason


class _Sandbox(ImmutableSandboxedEnvironment):
    """The sandbox, also refusing ``*`` and ``**`` whose result would be huge (``'x' * 10**9``)."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int) and abs(right) > 100:
            raise SecurityError("exponent too large")
        if operator == "*":
            sized, count = (left, right) if isinstance(right, int) else (right, left)
            if isinstance(sized, (str, list, tuple)) and isinstance(count, int) \
                    and len(sized) * count > MAX_OUTPUT_CHARS:
                raise SecurityError("the repeated value would be too large")
        return super().call_binop(context, operator, left, right)


def _printing(escape: Callable[[str], str]) -> Callable[[Any], str]:
    """A ``finalize`` that escapes what ``{{ … }}`` prints, unless marked ``| safe`` (or ``tojson``)."""
    def finalize(value: Any) -> str:
        return str(value) if isinstance(value, Markup) else escape(str(value))
    return finalize


def json_string_escape(text: str) -> str:
    """``text`` as it stands inside a JSON string, without the quotes."""
    return json.encoder.encode_basestring(text)[1:-1]


def _environment(**options: Any) -> ImmutableSandboxedEnvironment:
    return _Sandbox(undefined=StrictUndefined, **options)


_PLAIN = _environment(autoescape=False)
_HTML = _environment(autoescape=True)
_MRKDWN = _environment(autoescape=False, finalize=_printing(slack_format.escape))
_JSON = _environment(autoescape=False, finalize=_printing(json_string_escape))
_JSON_MRKDWN = _environment(autoescape=False,
                            finalize=_printing(lambda text: json_string_escape(slack_format.escape(text))))

#: (channel, field) → the environment its template is compiled in (others: plain text).
_ENVIRONMENTS: Mapping[tuple[str, str], ImmutableSandboxedEnvironment] = {
    ("email", "html"): _HTML,
    ("slack", "text"): _MRKDWN,
    ("slack", "blocks"): _JSON_MRKDWN,
    ("webhook", "body"): _JSON,
}
#: Fields whose output must parse as JSON.
JSON_FIELDS = frozenset({("slack", "blocks"), ("webhook", "body")})


def context(delivery: Delivery) -> dict[str, Any]:
    """What a template sees for ``delivery`` (see the module docstring)."""
    incident = delivery.incident
    return {
        "incident": incident.to_dict(),
        "display": {"severity": incident.severity.label, "type": incident.type.label,
                    "state": incident.state.label, "event": email_format.event_label(delivery.event_type),
                    "emoji": slack_format.EMOJI[incident.severity], "short_id": incident.id[:8]},
        "event_type": delivery.event_type,
        "occurred_at": to_iso(delivery.occurred_at),
        "notification_id": delivery.notification_id,
        "receiver": delivery.destination,
        "channel": delivery.channel,
        "is_test": delivery.is_test,
    }


@dataclass(frozen=True)
class Templates:
    """One receiver's compiled templates on one channel (only the fields it templates)."""

    channel: str
    compiled: Mapping[str, Template]
    #: field → the setting it came from (``receivers.<name>.<channel>.<field>_template[_file]``).
    keys: Mapping[str, str]

    def __contains__(self, field: str) -> bool:
        return field in self.compiled

    def render(self, field: str, delivery: Delivery) -> str:
        """The rendered ``field``, escaped for the channel; for a JSON field, checked to parse.
        Raises TemplateFailure (naming ``<key>.<field>_template``) for any error."""
        key = self.keys[field]
        parts: list[str] = []
        size = 0
        try:
            for part in self.compiled[field].generate(context(delivery)):  # stops as soon as it is too long
                size += len(part)
                if size > MAX_OUTPUT_CHARS:
                    raise TemplateFailure(key, f"rendered more than {MAX_OUTPUT_CHARS} characters")
                parts.append(part)
        except TemplateFailure:
            raise
        except Exception as exc:  # a template may raise anything (1/0, a filter's TypeError…)
            raise TemplateFailure(key, f"{type(exc).__name__}: {exc}") from None
        text = "".join(parts)
        if (self.channel, field) in JSON_FIELDS:
            try:
                json.loads(text)
            except ValueError as exc:
                raise TemplateFailure(key, f"did not render valid JSON: {exc}") from None
        return text


def compile_templates(key: str, channel: str, target: Any) -> Templates | None:
    """The compiled templates of one receiver's ``target`` on ``channel`` (``key``:
    ``receivers.<name>.<channel>``), or None when it templates nothing (its channel then uses
    only the built-in formatters, without any Jinja2 work). Raises ConfigError naming the key
    of a template that does not compile (with its line) or a file that cannot be read."""
    sources = template_sources(key, channel, target)
    if not sources:
        return None
    compiled: dict[str, Template] = {}
    keys = {field: f"{key}.{inline_key(field) if getattr(target, inline_key(field)) is not None else file_key(field)}"
            for field in sources}
    for field, source in sources.items():
        environment = _ENVIRONMENTS.get((channel, field), _PLAIN)
        try:
            compiled[field] = environment.from_string(source)
        except TemplateSyntaxError as exc:
            raise ConfigError(keys[field], f"line {exc.lineno}: {exc.message}") from None
    return Templates(channel, compiled, keys)


# -- per channel: the rendered fields in place of the built-in ones ------------------------------

def webhook_body(templates: Templates, delivery: Delivery) -> bytes:
    """The webhook's body from its ``body`` template (JSON, checked), as UTF-8 bytes."""
    return templates.render("body", delivery).encode("utf-8", "surrogatepass")


def slack_message(templates: Templates, delivery: Delivery, message: Mapping[str, Any]) -> dict[str, Any]:
    """``message`` (a built-in Slack message) with ``text`` and ``blocks`` rendered from the
    templates that exist, fitted to Slack's limits afterwards. TemplateFailure when ``blocks``
    is not a JSON list of objects."""
    templated = dict(message)
    if "text" in templates:
        templated["text"] = templates.render("text", delivery)
    if "blocks" in templates:
        templated["blocks"] = _blocks(templates, templates.render("blocks", delivery))
    return slack_format.fit(templated)


def _blocks(templates: Templates, rendered: str) -> list[Any]:
    """The blocks a rendered ``blocks`` template holds; TemplateFailure unless a JSON list of objects."""
    blocks = json.loads(rendered)
    if not isinstance(blocks, list) or not all(isinstance(block, dict) for block in blocks):
        raise TemplateFailure(templates.keys["blocks"], "must render a JSON list of block objects")
    return blocks


def one_line(templates: Templates, field: str, delivery: Delivery) -> str:
    """A field that must be one non-empty line (the email subject, the PagerDuty summary):
    rendered and stripped; TemplateFailure when it is empty or holds a line break."""
    text = templates.render(field, delivery).strip()
    if not text:
        raise TemplateFailure(templates.keys[field], "rendered an empty text")
    if any(char in text for char in "\r\n\0"):
        raise TemplateFailure(templates.keys[field], "rendered a line break (it must be one line)")
    return text


#: Fields that must be one line: the email subject, the PagerDuty summary.
_ONE_LINE = frozenset({"subject", "summary"})


def rendered_fields(templates: Templates | None, delivery: Delivery) -> dict[str, str]:
    """Field → its rendering, for every field ``templates`` has (none when it is None); the
    one-line ones (subject, summary) through :func:`one_line`."""
    if templates is None:
        return {}
    return {field: one_line(templates, field, delivery) if field in _ONE_LINE else templates.render(field, delivery)
            for field in templates.compiled}


# -- every receiver's templates: compiled together, previewed, checked -----------------------------

def compile_receivers(receivers: Mapping[str, ReceiverSettings]) -> dict[tuple[str, str], Templates]:
    """(receiver, channel) → compiled templates, for every receiver's destination that templates
    something. ConfigError as :func:`compile_templates`."""
    compiled: dict[tuple[str, str], Templates] = {}
    for name, receiver in receivers.items():
        for channel in CHANNELS:
            target = receiver.target(channel)
            templates = None if target is None else compile_templates(f"receivers.{name}.{channel}", channel, target)
            if templates is not None:
                compiled[(name, channel)] = templates
    return compiled


@dataclass(frozen=True)
class Rendered:
    """One field rendered for a preview: its text, or why it failed (then ``text`` is "")."""

    channel: str
    field: str
    setting: str
    text: str = ""
    error: str = ""


def preview(templates: Templates, delivery: Delivery) -> list[Rendered]:
    """Every field of ``templates`` rendered for ``delivery`` as the channel would (escaped,
    JSON checked, one-line fields stripped), before the channel's limits; a field that fails
    carries its error instead of raising."""
    shown = []
    for field in templates.compiled:
        try:
            text = one_line(templates, field, delivery) if field in _ONE_LINE else templates.render(field, delivery)
            if (templates.channel, field) == ("slack", "blocks"):
                _blocks(templates, text)  # the same check as a send
            shown.append(Rendered(templates.channel, field, templates.keys[field], text=text))
        except TemplateFailure as failure:
            shown.append(Rendered(templates.channel, field, templates.keys[field], error=failure.reason))
    return shown


def sample_deliveries(channel: str, receiver: str) -> list[Delivery]:
    """Sample deliveries of one incident for checking templates: its detection, and its
    resolution (with a resolution, labels, services and assignees), so both branches of
    ``{% if incident.resolution %}`` are rendered."""
    at = datetime(2024, 1, 15, 14, 32, tzinfo=timezone.utc)
    detected = Incident(id="00000000-sample-incident", fingerprint="sample", title="Sample: High latency on <api>",
                        description="Latency p99 above 2 s & rising.", severity=Severity.P1,
                        type=IncidentType.PERFORMANCE, state=IncidentState.DETECTED, source="sentinel",
                        created_at=at, updated_at=at, last_alert_at=at, labels={"team": "web", "env": "prod"},
                        affected_services=("api", "db"), assignees=("ana",))
    resolved = replace(detected, state=IncidentState.RESOLVED, resolution=Resolution(
        "oncall@example.com", ResolutionMethod.MANUAL, "Rolled back \"v2\"", "a bad deploy", at))
    return [Delivery(f"sample-{incident.state.name.lower()}", incident.id, channel, receiver,
                     incident.state.event_type, at, incident) for incident in (detected, resolved)]


def check_rendering(compiled: Mapping[tuple[str, str], Templates]) -> None:
    """Render every template against :func:`sample_deliveries`; raise ConfigError naming the
    setting (receiver, channel and field) of the first one that fails, with its error."""
    for (receiver, channel), templates in compiled.items():
        for delivery in sample_deliveries(channel, receiver):
            for rendered in preview(templates, delivery):
                if rendered.error:
                    raise ConfigError(rendered.setting, f"does not render for a sample {delivery.event_type} "
                                                        f"event: {rendered.error}")
