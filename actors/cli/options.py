"""The argparse tree for ``imctl``: global options, commands, and enum/value parsers.

Every leaf command sets ``handler`` (a function in :mod:`actors.cli.commands`). Global options
(--server, --timeout, --json, --token-file, --cacert, --cert, --key) are accepted before the command or after it.
"""
from __future__ import annotations

import argparse
import re
from datetime import datetime, timedelta
from typing import Any, Callable

from protos import incidents_pb2, notifications_pb2

from . import commands, routes
from .credentials import TlsFiles

DEFAULT_SERVER = "127.0.0.1:9000"
DEFAULT_TIMEOUT = 10.0
SERVER_ENV = "IMCTL_SERVER"
TOKEN_ENV = "IMCTL_TOKEN"
PREFIX_HELP = "a unique prefix of it (at least 8 characters, like git)"

EnumParser = Callable[[str], int]


def enum_parser(enum: Any, what: str, numbers: bool = True, show: Callable[[str], str] = str.lower) -> EnumParser:
    """A parser for a proto enum: names case-insensitively (``-`` may stand for ``_``) or, when
    ``numbers``, the wire number. The UNSPECIFIED value (0) is never accepted."""
    members = {name.lower(): number for name, number in enum.items() if number != 0}

    def parse(text: str) -> int:
        key = text.strip().lower().replace("-", "_")
        if key in members:
            return members[key]
        if numbers and key.isdigit() and int(key) in members.values():
            return int(key)
        choices = ", ".join(show(name) for name in members)
        extra = f" (or {min(members.values())}..{max(members.values())})" if numbers else ""
        raise argparse.ArgumentTypeError(f"invalid {what} {text!r}; choose from {choices}{extra}")

    parse.__name__ = what  # argparse names the parser in some of its messages
    return parse


_severity_name = enum_parser(incidents_pb2.Severity, "severity", numbers=False, show=str.upper)


def severity(text: str) -> int:
    """P0 (most severe) .. P4. A bare number is refused: on the wire 1 means P0, a trap."""
    if text.strip().isdigit():
        raise argparse.ArgumentTypeError(
            f"invalid severity {text!r}; write P0 (most severe) .. P4 - a bare number is refused "
            "because on the wire 1 means P0")
    return _severity_name(text)


incident_type = enum_parser(incidents_pb2.IncidentType, "type")
state = enum_parser(incidents_pb2.IncidentState, "state", show=str.upper)
method = enum_parser(incidents_pb2.ResolutionMethod, "method", numbers=False)
delivery_status = enum_parser(notifications_pb2.DeliveryStatus, "status", numbers=False)


def server_address(text: str) -> str:
    """One HOST:PORT, or several separated by commas (replicas: calls are spread over them)."""
    addresses = [address.strip() for address in text.split(",")]
    for address in addresses:
        host, sep, port = address.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise argparse.ArgumentTypeError(f"expected HOST:PORT[,HOST:PORT…], got {text!r}")
    return ",".join(addresses)


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def positive_int(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return int(text)


_SPAN = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_SPAN_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str) -> timedelta:
    """A positive span: a number and s, m, h or d (``90m``, ``2h``)."""
    found = _SPAN.fullmatch(text.strip())
    if found is None or float(found.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"not a duration (a positive number and s, m, h or d, e.g. 2h): {text!r}")
    return timedelta(seconds=float(found.group(1)) * _SPAN_SECONDS[found.group(2)])


def moment(text: str) -> datetime:
    """An ISO 8601 time with its offset (``Z`` for UTC)."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"not a time with its offset (e.g. 2026-12-01T06:00:00Z): {text!r}")
    return value


def key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value


def _global_options() -> argparse.ArgumentParser:
    """Global options with SUPPRESS defaults, so a value given before the command survives the
    sub-parser; real defaults are filled in by :func:`parse`."""
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    common.add_argument("--server", type=server_address, metavar="HOST:PORT[,HOST:PORT...]",
                        help=f"server address, or the addresses of replicas to spread calls over "
                             f"(default: ${SERVER_ENV} or {DEFAULT_SERVER})")
    common.add_argument("--timeout", type=positive_float, metavar="SECS",
                        help=f"deadline of each call in seconds (default: {DEFAULT_TIMEOUT:g})")
    common.add_argument("--json", action="store_true", help="print the server's messages as JSON")
    common.add_argument("--token-file", metavar="PATH",
                        help=f"a file holding the API token (default: ${TOKEN_ENV}; none when unset)")
    common.add_argument("--cacert", metavar="PATH",
                        help="PEM CA certificate(s) the server's certificate must be signed by: speak TLS "
                             "(default: plaintext)")
    common.add_argument("--cert", metavar="PATH",
                        help="PEM client certificate for mutual TLS (with --key; implies TLS)")
    common.add_argument("--key", metavar="PATH", help="PEM private key of --cert")
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _global_options()
    parser = argparse.ArgumentParser(prog="imctl", parents=[common],
                                     description="Command-line client for the LLM Incident Manager gRPC API.")
    groups = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def leaf(sub: Any, name: str, handler: Callable[..., int], help: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, parents=[common], help=help, description=help)
        command.set_defaults(handler=handler)
        return command

    alert = leaf(groups, "alert", commands.alert, "submit an alert (SubmitAlert)")
    _incident_fields(alert)
    alert.add_argument("--source", required=True)
    alert.add_argument("--alert-id", default="", help="your id for the alert; resending it is recorded once")
    alert.add_argument("--annotation", type=key_value, action="extend", nargs="+", default=[],
                       metavar="KEY=VALUE")

    incidents = groups.add_parser("incidents", help="list, show and change incidents")
    sub = incidents.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = leaf(sub, "list", commands.incidents_list, "list incidents, newest first")
    listing.add_argument("--state", type=state, action="extend", nargs="+", default=[], dest="states", metavar="STATE")
    listing.add_argument("--severity", type=severity, action="extend", nargs="+", default=[], dest="severities",
                         metavar="P")
    listing.add_argument("--source", default="")
    _paging(listing)
    create = leaf(sub, "create", commands.incidents_create, "open an incident by hand (no alert needed)")
    _incident_fields(create)
    create.add_argument("--source", default="manual")
    create.add_argument("--assignee", action="extend", nargs="+", default=[], metavar="NAME")
    create.add_argument("--actor", default="")
    update = leaf(sub, "update", commands.incidents_update,
                  "change an incident's title, description, severity or labels (only what is given)")
    _id(update)
    update.add_argument("--title")
    update.add_argument("--description")
    update.add_argument("--severity", type=severity, metavar="P", help="P0 (most severe)..P4")
    labels = update.add_mutually_exclusive_group()
    labels.add_argument("--label", type=key_value, action="extend", nargs="+", metavar="KEY=VALUE",
                        help="the new labels (replace all of them)")
    labels.add_argument("--no-labels", action="store_true", help="remove every label")
    update.add_argument("--actor", default="")
    get = leaf(sub, "get", commands.incidents_get, "show one incident")
    _id(get)
    get.add_argument("--timeline", action="store_true", help="also show its timeline")
    _id(leaf(sub, "timeline", commands.incidents_timeline, "show an incident's timeline"))
    transition = leaf(sub, "transition", commands.incidents_transition, "move an incident to another state")
    _id(transition)
    transition.add_argument("to_state", metavar="STATE", type=state,
                            help="TRIAGED, INVESTIGATING, REMEDIATING, RESOLVED, CLOSED, ...")
    transition.add_argument("--actor", default="")
    transition.add_argument("--note", default="")
    ack = leaf(sub, "ack", commands.incidents_transition,
               "acknowledge an incident: it moves to INVESTIGATING (PagerDuty hears 'acknowledge')")
    _id(ack)
    ack.add_argument("--actor", default="")
    ack.add_argument("--note", default="")
    ack.set_defaults(to_state=incidents_pb2.INVESTIGATING)
    resolve = leaf(sub, "resolve", commands.incidents_resolve, "resolve an incident")
    _id(resolve)
    resolve.add_argument("--by", required=True, dest="resolved_by", metavar="WHO")
    resolve.add_argument("--method", type=method, default=0, help="automated, manual (default), auto_assisted_manual")
    resolve.add_argument("--notes", default="")
    resolve.add_argument("--root-cause", default="")
    note = leaf(sub, "note", commands.incidents_note, "add a note to an incident's timeline")
    _id(note)
    note.add_argument("text")
    note.add_argument("--author", default="")
    assign = leaf(sub, "assign", commands.incidents_assign, "set an incident's assignees (replaces them)")
    _id(assign)
    assign.add_argument("names", nargs="+", metavar="NAME")
    assign.add_argument("--actor", default="")

    watch = leaf(groups, "watch", commands.watch, "print incident events as they happen (until Ctrl-C)")
    watch.add_argument("--incident", default="", metavar="ID", help=f"an incident id or {PREFIX_HELP}")
    watch.add_argument("--state", type=state, action="extend", nargs="+", default=[], dest="states", metavar="STATE")
    watch.add_argument("--min-severity", type=severity, default=0, metavar="P", help="e.g. P1: P0 and P1 only")
    watch.add_argument("--kind", action="extend", nargs="+", default=[], dest="kinds", metavar="KIND",
                       help="timeline kinds, e.g. created, state_changed")
    watch.add_argument("--count", type=positive_int, metavar="N", help="exit 0 after N events")
    watch.add_argument("--duration", type=positive_float, metavar="SECS", help="exit 0 after SECS seconds")

    notifications = groups.add_parser("notifications", help="delivery stats, history, dead letters, test sends")
    sub = notifications.add_subparsers(dest="action", metavar="ACTION", required=True)
    stats = leaf(sub, "stats", commands.notifications_stats, "per-channel counts and actor health")
    stats.add_argument("--format", choices=("table", "prometheus"), default="table",
                       help="prometheus: the text exposition format, for node_exporter's textfile collector")
    listing = leaf(sub, "list", commands.notifications_list,
                   "list notifications, newest first (the most recently owed at the top)")
    listing.add_argument("--incident", default="", metavar="ID", help=f"an incident id or {PREFIX_HELP}")
    listing.add_argument("--channel", default="")
    listing.add_argument("--status", type=delivery_status, default=0,
                         help="queued, in_flight, retrying, delivered, skipped, dead, silenced, inhibited")
    listing.add_argument("--oldest-first", action="store_true", help="in the order they were owed instead")
    _paging(listing)
    _id(leaf(sub, "get", commands.notifications_get, "show a notification and its attempts"))
    _id(leaf(sub, "requeue", commands.notifications_requeue, "owe a dead notification again"))
    test = leaf(sub, "test", commands.notifications_test, "send a marked test message now (exit 1 unless delivered)")
    test.add_argument("channel")
    test.add_argument("--destination", default="", help="default: the channel's first destination")

    templating = groups.add_parser("templates", help="preview receivers' templates")
    sub = templating.add_subparsers(dest="action", metavar="ACTION", required=True)
    preview = leaf(sub, "render", commands.templates_render,
                   "render a receiver's templates for an incident as it is now, sending nothing "
                   "(exit 1 when one fails)")
    preview.add_argument("--receiver", required=True, metavar="NAME", help="a [receivers.<name>] with templates")
    preview.add_argument("--incident", required=True, metavar="ID", help=f"an incident id or {PREFIX_HELP}")
    preview.add_argument("--channel", default="", help="only this channel's (default: every channel's)")
    preview.add_argument("--event", default="", metavar="EVENT_TYPE",
                         help="the event announced, e.g. incident.resolved (default: the incident's current state's)")

    silence = groups.add_parser("silence", help="add, list and expire silences (maintenance windows)")
    sub = silence.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = leaf(sub, "add", commands.silence_add, "hold back the notifications of matching incidents for a while")
    add.add_argument("matchers", nargs="+", metavar="MATCHER", help='e.g. service="db" severity=~"P2|P3"')
    add.add_argument("--comment", required=True, help="why (required)")
    until = add.add_mutually_exclusive_group(required=True)
    until.add_argument("--duration", type=duration, metavar="SPAN", help="how long from its start: 90m, 2h, 1d")
    until.add_argument("--end", type=moment, metavar="TIME", help="when it ends: 2026-12-01T06:00:00Z")
    add.add_argument("--start", type=moment, metavar="TIME", help="when it starts (default now; later: a "
                                                                   "maintenance window)")
    add.add_argument("--author", default="", help="who (default: the token's name, or api)")
    _id(leaf(sub, "get", commands.silence_get, "show a silence"))
    update = leaf(sub, "update", commands.silence_update, "change a silence that has not ended")
    _id(update)
    update.add_argument("--matcher", action="extend", nargs="+", dest="matchers", metavar="MATCHER",
                        help="replace the matchers with these")
    update.add_argument("--comment")
    update.add_argument("--start", type=moment, metavar="TIME")
    update.add_argument("--end", type=moment, metavar="TIME")
    query = leaf(sub, "query", commands.silence_query, "list the pending and active silences")
    query.add_argument("--expired", action="store_true", help="the ended ones too")
    expire = leaf(sub, "expire", commands.silence_expire, "end silences now; the open incidents they held "
                                                          "are notified")
    expire.add_argument("ids", nargs="+", metavar="ID", help=f"a silence id or {PREFIX_HELP}")

    routing = groups.add_parser("routes", help="where incidents are notified, from the configuration file")
    sub = routing.add_subparsers(dest="action", metavar="ACTION", required=True)
    route_test = leaf(sub, "test", routes.test,
                      "which receivers an incident with these fields would reach (offline: reads --config, "
                      "asks no server)")
    route_test.set_defaults(offline=True)
    route_test.add_argument("fields", type=key_value, nargs="+", metavar="FIELD=VALUE",
                            help="severity=P0 (required), type=…, state=… (default detected), source=…, "
                                 "service=… (repeatable), any other name a label")
    route_test.add_argument("--config", default="config.toml", metavar="PATH",
                            help="the server's configuration file (default: ./config.toml)")
    route_test.add_argument("--verify-receivers", metavar="A,B",
                            help="exit 1 unless exactly these receivers are reached")
    return parser


def _incident_fields(parser: argparse.ArgumentParser) -> None:
    """What an alert and a hand-made incident both describe."""
    parser.add_argument("--title", required=True)
    parser.add_argument("--severity", required=True, type=severity, metavar="P", help="P0 (most severe)..P4")
    parser.add_argument("--type", required=True, type=incident_type, dest="incident_type", metavar="TYPE",
                        help="infrastructure, application, security, data, performance, availability, "
                             "compliance, or 1..7")
    parser.add_argument("--description", default="")
    parser.add_argument("--label", type=key_value, action="extend", nargs="+", default=[], metavar="KEY=VALUE")
    parser.add_argument("--service", action="extend", nargs="+", default=[], metavar="NAME",
                        help="an affected service (repeatable)")


def _id(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", help=f"the id or {PREFIX_HELP}")


def _paging(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=positive_int, metavar="N", help="show at most N (default: one page of 50)")
    parser.add_argument("--all", action="store_true", help="follow page tokens to the end")
    parser.add_argument("--page-token", default="", metavar="TOKEN", help="continue a previous listing")


def parse(argv: list[str] | None, environ: dict[str, str]) -> argparse.Namespace:
    """Parse ``argv``; raises SystemExit (2 for bad input) like argparse."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "server"):
        try:
            args.server = server_address(environ.get(SERVER_ENV) or DEFAULT_SERVER)
        except argparse.ArgumentTypeError as error:
            parser.error(f"${SERVER_ENV}: {error}")
    if not hasattr(args, "timeout"):
        args.timeout = DEFAULT_TIMEOUT
    args.token = _token(parser, getattr(args, "token_file", None), environ)
    args.tls = _tls(parser, getattr(args, "cacert", None), getattr(args, "cert", None), getattr(args, "key", None))
    args.json = getattr(args, "json", False)
    if args.json and getattr(args, "format", "table") != "table":
        parser.error(f"--json and --format {args.format} exclude each other")
    return args


def _token(parser: argparse.ArgumentParser, path: str | None, environ: dict[str, str]) -> str:
    """The API token from the file at ``path``, else from $IMCTL_TOKEN, else "" (none). An
    unreadable or empty file is a usage error naming the file (never its content)."""
    if path is None:
        return environ.get(TOKEN_ENV, "").strip()
    try:
        token = _read(parser, "--token-file", path).decode("utf-8").strip()
    except UnicodeDecodeError:
        parser.error(f"--token-file {path}: cannot read it (not UTF-8 text)")
    if not token:
        parser.error(f"--token-file {path}: the file is empty")
    return token


def _tls(parser: argparse.ArgumentParser, cacert: str | None, cert: str | None, key: str | None) -> TlsFiles | None:
    """None (plaintext) unless --cacert or --cert/--key is given; then their PEM contents.
    --cert without --key (or the reverse), or a file that cannot be read or holds no PEM, is a
    usage error naming the option and the file (never its content)."""
    if (cert is None) != (key is None):
        parser.error("--cert and --key go together (the client certificate and its private key)")
    if cacert is None and cert is None:
        return None
    return TlsFiles(*(_pem(parser, option, path) if path is not None else None
                      for option, path in (("--cacert", cacert), ("--cert", cert), ("--key", key))))


def _pem(parser: argparse.ArgumentParser, option: str, path: str) -> bytes:
    content = _read(parser, option, path)
    if b"-----BEGIN " not in content:
        parser.error(f"{option} {path}: not a PEM file (no -----BEGIN line)")
    return content


def _read(parser: argparse.ArgumentParser, option: str, path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as error:
        parser.error(f"{option} {path}: cannot read it ({error.strerror or error})")
