"""Configuration: TOML sections → frozen settings, validated up front.

Keys and sections follow the original's names where it had them. Unknown keys, wrong types
and out-of-range values raise :class:`ConfigError` naming the key (``section.key``), so a bad
configuration fails at start-up, never at first use. Secrets never live here: ``*_env`` keys
name environment variables, read by :func:`read_secret` when a channel is built.

Besides the sections, ``[receivers.<name>]`` (each receiver's destinations, on enabled
channels, with their templates: actors/domain/templates.py) and ``[route]`` (the routing tree, compiled and checked by
actors/domain/routes.py) are validated here too, so a route naming an unknown receiver, a bad
matcher or an unreachable route fails the load with the route's key; so does a bad
``[[inhibit_rules]]`` entry (actors/domain/inhibition.py).
"""
from __future__ import annotations

import collections.abc
import dataclasses
import math
import os
import re
import tomllib
import types
import typing
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .errors import ConfigError
from .hostnames import is_helo_name
from .models import Severity
from .inhibition import compile_rules
from .routes import compile_tree
from .templates import check_template_keys

CHANNELS: tuple[str, ...] = ("webhook", "slack", "email", "pagerduty")
#: Channels paced unless configured otherwise: Slack allows about one message a second.
DEFAULT_RATES: Mapping[str, float] = {"slack": 1.0}


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    grpc_port: int = 9000
    #: gRPC worker threads for unary calls; streams and test sends get threads of their own.
    max_workers: int = 32
    #: Streams open at once (WatchIncidents, StreamAlerts, health Watch, reflection), in total
    #: and from one client; each holds a thread for as long as it is open.
    max_streams: int = 256
    max_streams_per_client: int = 64
    #: SendTestNotification calls at once, in total and from one client; each holds a thread
    #: until the destination answers (and they run one at a time).
    max_test_sends: int = 4
    max_test_sends_per_client: int = 2
    max_message_bytes: int = 4 * 1024 * 1024
    reflection: bool = True
    shutdown_grace_secs: float = 10.0
    admin_enabled: bool = False
    #: Serve a non-loopback ``host`` without TLS and authentication (see actors/domain/exposure.py).
    allow_insecure: bool = False
    #: PEM certificate chain and private key for TLS on the gRPC port (both or neither).
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    #: PEM CA bundle: with it, clients must present a certificate it signed (mutual TLS).
    tls_client_ca_file: str | None = None

    @property
    def tls(self) -> bool:
        """True when the gRPC port serves TLS."""
        return self.tls_cert_file is not None

    @property
    def threads(self) -> int:
        """The gRPC server's worker threads: ``max_workers`` for unary calls, plus one for every
        stream and every test send allowed at once (actors/api/admission.py)."""
        return self.max_workers + self.max_streams + self.max_test_sends


@dataclass(frozen=True)
class AuthSettings:
    """Bearer tokens with roles (actors/domain/tokens.py, actors/api/auth.py)."""

    enabled: bool = False
    #: ``name role sha256hex`` lines; required when ``enabled``.
    tokens_file: str | None = None
    #: grpc.health.v1 answers without a token.
    open_health: bool = True
    #: Server reflection answers without a token.
    open_reflection: bool = True


@dataclass(frozen=True)
class StateSettings:
    path: str = "./data/incidents.db"
    synchronous: str = "normal"
    #: Settled notifications and closed incidents older than this many days are deleted; 0 keeps all.
    retention_days: int = 30
    #: A ``postgresql://`` URL: the store is kept in PostgreSQL instead of the SQLite ``path``.
    #: Never with a password in it (see :func:`check_store_url`).
    url: str | None = None
    #: Environment variable holding the PostgreSQL password (else libpq's PGPASSWORD or PGPASSFILE).
    password_env: str | None = None
    #: Connections the PostgreSQL store keeps open at most.
    pool_size: int = 10
    #: Several servers (replicas) share the PostgreSQL store at ``url``; every one of them must say so.
    replicas: bool = False
    #: A replica that has not renewed its liveness for this long is taken for dead: the
    #: deliveries it held are taken over by the others.
    replica_lease_secs: float = 10.0


@dataclass(frozen=True)
class ProcessingSettings:
    deduplication_enabled: bool = True
    deduplication_window_secs: float = 900.0
    #: Intake callers (alerts and incident commands) waiting for their commit at once; over
    #: it they are refused (Overloaded). Less than ``[server] max_workers``.
    intake_limit: int = 24
    max_field_bytes: int = 64 * 1024


@dataclass(frozen=True)
class ObservabilitySettings:
    log_level: str = "info"
    json_logs: bool = False


@dataclass(frozen=True)
class SupervisionSettings:
    max_restarts: int = 3
    within_secs: float = 30.0


@dataclass(frozen=True)
class ChannelTuning:
    """Per-channel knobs, from ``[notifications.<channel>]``; unset values inherit."""

    min_severity: str = "P4"
    pool_size: int | None = None
    timeout_secs: float | None = None
    rate_per_sec: float | None = None

    @property
    def severity_floor(self) -> Severity:
        return Severity[self.min_severity]


@dataclass(frozen=True)
class NotificationSettings:
    # Slack
    slack_enabled: bool = False
    slack_webhook_env: str | None = None
    slack_bot_token_env: str | None = None
    slack_default_channel: str | None = None
    slack_api_url: str = "https://slack.com/api"
    # Email
    email_enabled: bool = False
    smtp_server: str | None = None
    smtp_port: int = 587
    smtp_use_tls: bool = True
    smtp_tls_mode: str | None = None
    smtp_ca_file: str | None = None
    smtp_helo_name: str | None = None
    smtp_username_env: str | None = None
    smtp_password_env: str | None = None
    email_from: str | None = None
    email_from_name: str | None = None
    email_to: tuple[str, ...] = ()
    # PagerDuty
    pagerduty_enabled: bool = False
    pagerduty_api_token_env: str | None = None
    pagerduty_integration_key_env: str | None = None
    pagerduty_api_url: str = "https://events.pagerduty.com/v2/enqueue"
    # Webhooks
    webhook_enabled: bool = False
    default_webhook_url: str | None = None
    webhook_timeout_secs: float = 10.0
    webhook_secret_env: str | None = None
    webhook_headers: Mapping[str, str] = field(default_factory=dict)
    #: Each webhook sender makes its HTTP exchanges in a worker process of its own (past the
    #: one core a Python process gets); false keeps them in the server process.
    webhook_worker_processes: bool = True
    # Delivery engine
    queue_size: int = 1000
    worker_threads: int = 2
    per_destination_limit: int = 100
    max_retries: int = 3
    retry_backoff_secs: float = 5.0
    retry_max_backoff_secs: float = 300.0
    # Per-channel tuning sub-tables
    webhook: ChannelTuning = field(default_factory=ChannelTuning)
    slack: ChannelTuning = field(default_factory=ChannelTuning)
    email: ChannelTuning = field(default_factory=ChannelTuning)
    pagerduty: ChannelTuning = field(default_factory=ChannelTuning)

    def tuning(self, channel: str) -> ChannelTuning:
        return getattr(self, channel)

    def enabled(self, channel: str) -> bool:
        return bool(getattr(self, f"{channel}_enabled"))

    def pool_size(self, channel: str) -> int:
        return self.tuning(channel).pool_size or self.worker_threads

    def rate(self, channel: str) -> float | None:
        """Sends per second for the channel; None means unpaced."""
        return self.tuning(channel).rate_per_sec or DEFAULT_RATES.get(channel)

    def timeout(self, channel: str) -> float:
        return self.tuning(channel).timeout_secs or self.webhook_timeout_secs

    @property
    def tls_mode(self) -> str:
        """``starttls``, ``implicit`` or ``none``; STARTTLS unless asked otherwise."""
        if self.smtp_tls_mode:
            return self.smtp_tls_mode
        if not self.smtp_use_tls:
            return "none"
        return "implicit" if self.smtp_port == 465 else "starttls"


@dataclass(frozen=True)
class WebhookTarget:
    """A receiver's webhook: its own URL, signing secret and headers."""

    url: str | None = None
    secret_env: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    #: Templates (actors/domain/templates.py): inline, or the path of a file holding one.
    body_template: str | None = None
    body_template_file: str | None = None


@dataclass(frozen=True)
class SlackTarget:
    """A receiver's Slack destination: an incoming webhook (the variable ``webhook_env``
    names holds its URL) or a ``channel`` posted to with ``[notifications] slack_bot_token_env``."""

    webhook_env: str | None = None
    channel: str | None = None
    text_template: str | None = None
    text_template_file: str | None = None
    blocks_template: str | None = None
    blocks_template_file: str | None = None


@dataclass(frozen=True)
class EmailTarget:
    """A receiver's email recipients (sent through the ``[notifications]`` SMTP server)."""

    to: tuple[str, ...] = ()
    subject_template: str | None = None
    subject_template_file: str | None = None
    text_template: str | None = None
    text_template_file: str | None = None
    html_template: str | None = None
    html_template_file: str | None = None


@dataclass(frozen=True)
class PagerDutyTarget:
    """A receiver's PagerDuty service: the variable that holds its integration key."""

    integration_key_env: str | None = None
    summary_template: str | None = None
    summary_template_file: str | None = None


#: One receiver's settings for one channel.
Target = WebhookTarget | SlackTarget | EmailTarget | PagerDutyTarget


@dataclass(frozen=True)
class ReceiverSettings:
    """``[receivers.<name>]``: where one receiver hears about incidents, at most one
    destination per channel (none at all makes a receiver that silences what reaches it)."""

    webhook: WebhookTarget | None = None
    slack: SlackTarget | None = None
    email: EmailTarget | None = None
    pagerduty: PagerDutyTarget | None = None

    def target(self, channel: str) -> Target | None:
        return getattr(self, channel)


@dataclass(frozen=True)
class RouteSettings:
    """``[route]`` and its ``[[…routes]]``: see actors/domain/routes.py."""

    name: str | None = None
    receiver: str | None = None
    receivers: tuple[str, ...] = ()
    matchers: tuple[str, ...] = ()
    continue_: bool = field(default=False, metadata={"key": "continue"})
    routes: tuple["RouteSettings", ...] = ()
    #: Grouping (actors/domain/grouping.py); unset values are inherited from the parent route.
    group_by: tuple[str, ...] | None = None
    group_wait_secs: float | None = None
    group_interval_secs: float | None = None
    repeat_interval_secs: float | None = None


@dataclass(frozen=True)
class InhibitRuleSettings:
    """One ``[[inhibit_rules]]``: see actors/domain/inhibition.py."""

    source_matchers: tuple[str, ...] = ()
    target_matchers: tuple[str, ...] = ()
    equal: tuple[str, ...] = ()


#: No named receivers (a default argument that cannot be changed by accident).
NO_RECEIVERS: Mapping[str, ReceiverSettings] = types.MappingProxyType({})
#: The receiver of the ``[notifications]`` destinations (the original's keys).
DEFAULT_RECEIVER = "default"
#: What a receiver's name may be (it is stored as the destination of its notifications).
RECEIVER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    state: StateSettings = field(default_factory=StateSettings)
    processing: ProcessingSettings = field(default_factory=ProcessingSettings)
    observability: ObservabilitySettings = field(default_factory=ObservabilitySettings)
    notifications: NotificationSettings = field(default_factory=NotificationSettings)
    supervision: SupervisionSettings = field(default_factory=SupervisionSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    #: Named receivers, in the order the file gives them.
    receivers: Mapping[str, ReceiverSettings] = field(default_factory=dict)
    #: The routing tree; None sends every event to every receiver (as before routes existed).
    route: RouteSettings | None = None
    #: While a source incident is active, the incidents it targets notify nobody.
    inhibit_rules: tuple[InhibitRuleSettings, ...] = ()

    @property
    def receiver_names(self) -> tuple[str, ...]:
        """``default`` and the named receivers, in configuration order."""
        return (DEFAULT_RECEIVER, *self.receivers)


_CHOICES: dict[str, tuple[str, ...]] = {
    "state.synchronous": ("off", "normal", "full"),
    "observability.log_level": ("debug", "info", "warning", "error"),
    "notifications.smtp_tls_mode": ("starttls", "implicit", "none"),
    **{f"notifications.{c}.min_severity": tuple(s.name for s in Severity) for c in CHANNELS},
}
_POSITIVE = {
    "server.max_workers", "server.max_streams", "server.max_streams_per_client", "server.max_test_sends",
    "server.max_test_sends_per_client", "server.max_message_bytes", "processing.intake_limit",
    "processing.max_field_bytes", "notifications.queue_size", "notifications.worker_threads",
    "notifications.per_destination_limit", "notifications.webhook_timeout_secs",
    "notifications.retry_backoff_secs", "notifications.retry_max_backoff_secs",
    "supervision.max_restarts", "supervision.within_secs", "state.pool_size",
    "state.replica_lease_secs",
    *(f"notifications.{c}.{k}" for c in CHANNELS for k in ("pool_size", "timeout_secs", "rate_per_sec")),
}
_NON_NEGATIVE = {"server.grpc_port", "processing.deduplication_window_secs",
                 "notifications.max_retries", "notifications.smtp_port", "server.shutdown_grace_secs",
                 "state.retention_days"}


def _check_value(key: str, annotation: Any, value: Any) -> Any:
    """Coerce one TOML value to the field's type or raise ConfigError naming ``key``."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _check_value(key, options[0], value)
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise ConfigError(key, "must be a table")
        return _build(annotation, value, key)
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, f"must be true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, f"must be an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(key, f"must be a number, got {value!r}")
        if not math.isfinite(value):  # TOML has nan and inf; no setting means anything by them
            raise ConfigError(key, f"must be a finite number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(key, f"must be a string, got {value!r}")
        return value
    if origin is tuple:
        item_type = typing.get_args(annotation)[0]
        if dataclasses.is_dataclass(item_type):
            if not isinstance(value, list) or not all(isinstance(i, dict) for i in value):
                raise ConfigError(key, "must be a list of tables")
            return tuple(_build(item_type, item, f"{key}[{index}]") for index, item in enumerate(value))
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise ConfigError(key, "must be a list of strings")
        return tuple(items)
    if origin in (collections.abc.Mapping, dict) or annotation is Mapping:
        value_type = (*typing.get_args(annotation), str, str)[1]  # a bare Mapping holds strings
        if dataclasses.is_dataclass(value_type):
            if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
                raise ConfigError(key, "must be a table of tables")
            return {name: _build(value_type, table, f"{key}.{name}") for name, table in value.items()}
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise ConfigError(key, "must be a table of strings")
        return dict(value)
    raise ConfigError(key, f"unsupported setting type {annotation!r}")  # pragma: no cover


def _check_range(key: str, value: Any) -> None:
    if key in _CHOICES and value is not None and value not in _CHOICES[key]:
        raise ConfigError(key, f"must be one of {', '.join(_CHOICES[key])}, got {value!r}")
    if key in _POSITIVE and value is not None and value <= 0:
        raise ConfigError(key, f"must be greater than 0, got {value!r}")
    if key in _NON_NEGATIVE and value < 0:
        raise ConfigError(key, f"must not be negative, got {value!r}")


def _build(cls: type, table: Mapping[str, Any], prefix: str) -> Any:
    """``cls`` from a TOML table; a field's key is its name unless its metadata names
    another (``continue`` is a Python keyword)."""
    hints = typing.get_type_hints(cls)
    known = {f.metadata.get("key", f.name): f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for name, raw in table.items():
        key = f"{prefix}.{name}" if prefix else name
        if name not in known:
            raise ConfigError(key, "unknown key")
        value = _check_value(key, hints[known[name]], raw)
        _check_range(key, value)
        values[known[name]] = value
    return cls(**values)


def settings_from_mapping(data: Mapping[str, Any]) -> Settings:
    """Validate a parsed TOML document (or any mapping of the same shape)."""
    settings: Settings = _build(Settings, data, "")
    _check_consistency(settings)
    return settings


def load_settings(path: str | os.PathLike[str]) -> Settings:
    """Read and validate a TOML file; raises ConfigError for unreadable or invalid files."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError("config", f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("config", f"{path} is not valid TOML: {exc}") from None
    return settings_from_mapping(data)


def _check_consistency(settings: Settings) -> None:
    n = settings.notifications
    _check_receivers(settings)
    compile_tree(settings.route, settings.receiver_names)
    compile_rules(settings.inhibit_rules)
    if n.slack_enabled and not (n.slack_webhook_env or n.slack_bot_token_env or _used_by_receivers(settings, "slack")):
        raise ConfigError("notifications.slack_webhook_env",
                          "slack_enabled needs slack_webhook_env or slack_bot_token_env (or a receiver's "
                          "[receivers.<name>.slack])")
    if n.slack_enabled and n.slack_bot_token_env and not n.slack_default_channel:
        raise ConfigError("notifications.slack_default_channel", "required with slack_bot_token_env")
    if n.email_enabled:
        for key in ("smtp_server", "email_from"):
            if not getattr(n, key):
                raise ConfigError(f"notifications.{key}", "required when email_enabled = true")
    if n.smtp_helo_name is not None and not is_helo_name(n.smtp_helo_name):
        raise ConfigError("notifications.smtp_helo_name",
                          f"must be a fully qualified domain name (mail.example.com) or an address "
                          f"literal ([192.0.2.1], [IPv6:2001:db8::1]), not a local name; "
                          f"got {n.smtp_helo_name!r}")
    if n.pagerduty_enabled and not (n.pagerduty_integration_key_env or _used_by_receivers(settings, "pagerduty")):
        raise ConfigError("notifications.pagerduty_integration_key_env",
                          "required when pagerduty_enabled = true (unless receivers have "
                          "[receivers.<name>.pagerduty])")
    if n.default_webhook_url and not n.default_webhook_url.startswith(("http://", "https://")):
        raise ConfigError("notifications.default_webhook_url", "must be an http:// or https:// URL")
    check_store_url(settings.state)
    if settings.state.path.strip() in ("", ":memory:"):
        raise ConfigError("state.path", "must be a file: each actor thread opens its own connection, "
                                        "so an in-memory database would not be shared")
    if settings.auth.enabled and not (settings.auth.tokens_file or "").strip():
        raise ConfigError("auth.tokens_file", "required when [auth] enabled = true")
    _check_tls_pairing(settings.server)
    _check_capacity(settings)
    if not 0 < settings.server.grpc_port < 65536 and settings.server.grpc_port != 0:
        raise ConfigError("server.grpc_port", "must be between 1 and 65535 (0 picks a free port)")


#: The schemes libpq takes for a PostgreSQL connection URL.
POSTGRES_SCHEMES = ("postgresql", "postgres")


def check_store_url(state: StateSettings) -> None:
    """``[state] url``, when set, must be a PostgreSQL URL without a password: the file would
    hold the secret. The message never repeats the URL (it may hold one)."""
    if state.url is None:
        if state.password_env is not None:
            raise ConfigError("state.password_env", "only means something with [state] url (PostgreSQL)")
        if state.replicas:
            raise ConfigError("state.replicas", "needs [state] url: replicas share a PostgreSQL store "
                                                "(a SQLite store has one server)")
        return
    try:
        parts = urllib.parse.urlsplit(state.url.strip())
        password = parts.password
    except ValueError:  # e.g. an unclosed [ of an IPv6 address
        raise ConfigError("state.url", "is not a URL") from None
    if parts.scheme not in POSTGRES_SCHEMES:
        raise ConfigError("state.url", "must be a PostgreSQL URL, postgresql://user@host:port/database")
    query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
    if password is not None or {"password", "sslpassword"} & query.keys():
        raise ConfigError("state.url", "must not contain a password (it would be kept in the file); name an "
                                       "environment variable holding it with [state] password_env, or use "
                                       "PGPASSWORD or PGPASSFILE")


def _check_capacity(settings: Settings) -> None:
    """A per-client cap above its total would never apply, and intake callers wait holding a
    unary worker thread: at ``max_workers`` of them nothing would be left to answer reads or
    to refuse the excess, which would then queue inside gRPC instead (actors/api/admission.py)."""
    server = settings.server
    for kind in ("streams", "test_sends"):
        per_client, total = getattr(server, f"max_{kind}_per_client"), getattr(server, f"max_{kind}")
        if per_client > total:
            raise ConfigError(f"server.max_{kind}_per_client",
                              f"must not exceed max_{kind} ({total}), got {per_client}")
    intake_limit = settings.processing.intake_limit
    if intake_limit >= server.max_workers:
        raise ConfigError("processing.intake_limit",
                          f"must be less than [server] max_workers ({server.max_workers}), got {intake_limit}: "
                          f"each waiting intake caller holds one of those threads, and the rest answer "
                          f"everything else and refuse the excess at once (raise max_workers with it)")


def _used_by_receivers(settings: Settings, channel: str) -> bool:
    return any(receiver.target(channel) is not None for receiver in settings.receivers.values())


def _check_receivers(settings: Settings) -> None:
    """Each named receiver: a usable name, and each destination complete and on an enabled
    channel. (Secrets are read, and URLs and addresses checked, when the channels are built.)"""
    n = settings.notifications
    for name, receiver in settings.receivers.items():
        key = f"receivers.{name}"
        if name == DEFAULT_RECEIVER:
            raise ConfigError(key, f"{DEFAULT_RECEIVER!r} is the receiver of the [notifications] destinations; "
                                   "give this one another name")
        if not RECEIVER_NAME.fullmatch(name):
            raise ConfigError(key, "a receiver's name is 1 to 64 letters, digits or _.:- (starting with a letter "
                                   f"or digit), got {name!r}")
        for channel in CHANNELS:
            target = receiver.target(channel)
            if target is not None and not n.enabled(channel):
                raise ConfigError(f"{key}.{channel}", f"needs [notifications] {channel}_enabled = true")
            if target is not None:
                check_template_keys(f"{key}.{channel}", channel, target)
        _check_targets(key, receiver, n)


def _check_targets(key: str, receiver: ReceiverSettings, n: NotificationSettings) -> None:
    webhook, slack, email, pagerduty = receiver.webhook, receiver.slack, receiver.email, receiver.pagerduty
    if webhook is not None and not (webhook.url or "").startswith(("http://", "https://")):
        raise ConfigError(f"{key}.webhook.url", "required: an http:// or https:// URL")
    if slack is not None:
        if bool(slack.webhook_env) == bool(slack.channel):
            raise ConfigError(f"{key}.slack", "give webhook_env (an incoming webhook) or channel (posted with "
                                              "[notifications] slack_bot_token_env), one of them")
        if slack.channel and not n.slack_bot_token_env:
            raise ConfigError(f"{key}.slack.channel", "needs [notifications] slack_bot_token_env (the bot that posts)")
    if email is not None and not email.to:
        raise ConfigError(f"{key}.email.to", "required: one or more recipients")
    if pagerduty is not None and not pagerduty.integration_key_env:
        raise ConfigError(f"{key}.pagerduty.integration_key_env", "required: the variable holding the integration key")


def _check_tls_pairing(server: ServerSettings) -> None:
    """TLS needs a certificate and its key together; a client CA only means something with them."""
    if server.tls_cert_file is not None and server.tls_key_file is None:
        raise ConfigError("server.tls_key_file", "required with tls_cert_file (the certificate's private key)")
    if server.tls_key_file is not None and server.tls_cert_file is None:
        raise ConfigError("server.tls_cert_file", "required with tls_key_file (the key's certificate)")
    if server.tls_client_ca_file is not None and server.tls_cert_file is None:
        raise ConfigError("server.tls_client_ca_file",
                          "needs tls_cert_file and tls_key_file: mutual TLS is TLS with client certificates")


class Secret(str):
    """A string whose repr never shows its value (safe to pass near loggers)."""

    def __repr__(self) -> str:
        return "Secret('***')"


def read_secret(key: str, env_name: str | None, environ: Mapping[str, str] | None = None,
                required: bool = True) -> Secret | None:
    """The value of the environment variable named by setting ``key``.

    Raises ConfigError naming the setting and the variable (never its value) when the
    variable is required but unset or empty.
    """
    env = os.environ if environ is None else environ
    if not env_name:
        if required:
            raise ConfigError(key, "must name an environment variable")
        return None
    value = env.get(env_name, "")
    if not value:
        if required:
            raise ConfigError(key, f"environment variable {env_name} is not set")
        return None
    return Secret(value)
