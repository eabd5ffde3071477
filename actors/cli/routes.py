"""``imctl routes test``: where an incident with the given fields would be notified.

Worked out offline from the configuration file, like ``amtool config routes test``: no server
is asked, nothing is read from the environment (no secret is needed), and the answer comes
from the very routing code the server runs (actors/domain/routing.py).

The first line names the receivers the matching routes send to (comma-separated, as amtool
prints them); a table then gives, for every destination, the route that reaches it or why it
hears nothing. Exit status 0; 1 when ``--verify-receivers`` names other receivers than those;
2 for an unreadable or invalid configuration or a bad field.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..domain.config import ConfigError, load_settings
from ..domain.models import Incident, IncidentType, utc_now
from ..domain.routes import FIELDS
from ..domain.routing import Routing
from . import render

#: The state an incident is in when it is first notified (``incident.detected``).
DEFAULT_STATE = "detected"


def test(args: argparse.Namespace) -> int:
    try:
        routing = Routing.of(load_settings(args.config))
    except ConfigError as error:
        print(f"error: {args.config}: {error}", file=sys.stderr)
        return 2
    try:
        incident = incident_from(args.fields, routing.reads)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    routes = routing.tree.match(routing.tree.facts(incident))
    receivers = list(dict.fromkeys(name for route in routes for name in route.receivers))
    decisions = routing.route(incident).decisions
    if args.json:
        print(json.dumps({"receivers": receivers, "routes": [route.path for route in routes],
                          "decisions": [{**d.to_dict(), "reason": d.reason} for d in decisions]}, indent=2))
    else:
        print(",".join(receivers))
        if decisions:
            print(render.table(("RECEIVER", "CHANNEL", "DECISION"),
                               ((d.receiver, d.channel, d.reason) for d in decisions)))
    if args.verify_receivers is not None:
        expected = [name.strip() for name in args.verify_receivers.split(",") if name.strip()]
        if sorted(expected) != sorted(receivers):
            print(f"error: expected receivers {','.join(expected) or '(none)'}, got {','.join(receivers) or '(none)'}",
                  file=sys.stderr)
            return 1
    return 0


def incident_from(fields: list[tuple[str, str]], reads: tuple[str, ...]) -> Incident:
    """An incident with the given fields (``service`` may repeat; any other name is a label).
    ``severity`` is required, ``type`` too when the routes match on it; ``state`` defaults
    to detected. Raises ValueError naming a bad or missing field."""
    given: dict[str, str] = {}
    services: list[str] = []
    labels: dict[str, str] = {}
    for name, value in fields:
        if name == "service":
            services.append(value)
        elif name in FIELDS:
            given[name] = value
        else:
            labels[name] = value
    choices = {name: _choice(name, value) for name, value in given.items() if name != "source"}
    if "severity" not in choices:
        raise ValueError("give the incident's severity (severity=P0 .. severity=P4)")
    if "type" not in choices and "type" in reads:
        raise ValueError(f"the routes match on type: give it (type={'|'.join(t.name.lower() for t in IncidentType)})")
    now = utc_now()
    return Incident(
        id="routes-test", fingerprint="", title="", description="", severity=choices["severity"],
        type=choices.get("type", IncidentType.APPLICATION),  # read by no route, so any will do
        state=choices.get("state", _choice("state", DEFAULT_STATE)), source=given.get("source", ""),
        created_at=now, updated_at=now, last_alert_at=now, labels=labels, affected_services=tuple(services))


def _choice(name: str, text: str) -> Any:
    """The value of a severity, type or state, whatever its case; ValueError listing the choices."""
    choices = FIELDS[name].choices or {}
    found = {key.lower(): value for key, value in choices.items()}.get(text.strip().lower())
    if found is None:
        raise ValueError(f"{name}={text!r}: not a {name}; one of {', '.join(choices)}")
    return found
