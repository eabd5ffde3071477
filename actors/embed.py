"""Embed the whole incident manager in a Python program, in-process, as threads.

::

    from actors.embed import IncidentManager, Severity, IncidentType

    with IncidentManager({"state": {"path": "/var/lib/myapp/incidents.db"}}) as im:
        result = im.submit_alert("High latency", "my-app", "P1", "PERFORMANCE")
        im.resolve(result.incident_id, "oncall@example.com")

The host program needs no asyncio and installs no signal handlers: every method is a plain
blocking call, safe to make from any thread. The engine runs as pykka actor threads plus a
timer thread; with ``grpc=True`` the gRPC server runs beside it as well.

Failures are exceptions (all re-exported here):

- :class:`InvalidArgument` — a field is empty, too long, of the wrong type or an unknown
  enum name; ``error.field`` names it (the same rules as the gRPC edge);
- :class:`NotFound` — no incident, notification or channel with that id/name;
- :class:`IllegalTransition` — the incident's state does not allow the change;
- :class:`Overloaded` — intake is over ``[processing] intake_limit``; retry later;
- :class:`Unavailable` — the manager is not started, is stopping, or supervision gave up
  (see :attr:`IncidentManager.failed`);
- :class:`ConfigError` — bad configuration or a missing secret, raised by the constructor
  or :meth:`IncidentManager.start`, naming the key.
"""
from __future__ import annotations

import enum
import os
import threading
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Generic, Iterable, Mapping, Sequence, TypeVar

import structlog

from .channels.faults import ChannelFaults, TransportFault
from .domain.changes import IncidentQuery, NotificationRecord
from .domain.config import Settings, load_settings, settings_from_mapping
from .domain.exposure import insecure_exposure, readable_by_others
from .domain.errors import (ConfigError, DomainError, IllegalTransition, InvalidArgument, NotConfigured,
                            NotFound, Overloaded, Unavailable)
from .domain.commands import (AddNote, AlertResult, CreateIncident, ResolveIncident, TransitionIncident,
                              UpdateIncident, checked_alert)
from .domain.limits import MAX_ID, MAX_NAME, MAX_PAGE
from .domain.routing import Decision, Verdict
from .domain.limits import text as _text
from .domain.models import (Alert, Attempt, DeliveryStatus, Incident, IncidentState, IncidentType, Outcome,
                            OutcomeKind, ResolutionMethod, Severity, TimelineEvent)
from .engine import Engine, NotificationStats
from .events import DeliverySettled, Event, IncidentChanged, Subscription
from .faults import ActorFaults
from .logs import configure_logging, quiet_unless_configured

if TYPE_CHECKING:
    from .api.server import ApiServer

__all__ = [
    "IncidentManager", "Watcher", "Config",
    # domain types
    "Severity", "IncidentType", "IncidentState", "ResolutionMethod", "DeliveryStatus", "Alert", "Incident",
    "TimelineEvent", "NotificationRecord", "Attempt", "Outcome", "OutcomeKind", "AlertResult",
    "NotificationStats", "Settings", "Decision", "Verdict",
    # events
    "IncidentChanged", "DeliverySettled", "Event", "Subscription",
    # fault injection
    "ActorFaults", "ChannelFaults", "TransportFault",
    # errors
    "DomainError", "InvalidArgument", "NotFound", "NotConfigured", "IllegalTransition", "Overloaded",
    "Unavailable", "ConfigError",
]

log = structlog.get_logger(__name__)

#: What :class:`IncidentManager` accepts as configuration.
Config = str | os.PathLike[str] | Mapping[str, Any] | Settings | None
E = TypeVar("E", bound=enum.Enum)
Ev = TypeVar("Ev", IncidentChanged, DeliverySettled)
#: Who did it, when a command names no actor or author.
DEFAULT_ACTOR = "embedded"


def _settings(config: Config) -> Settings:
    if config is None:
        settings = Settings()
    elif isinstance(config, Settings):
        settings = config
    elif isinstance(config, (str, os.PathLike)):
        settings = load_settings(config)
    elif isinstance(config, Mapping):
        settings = settings_from_mapping(config)
    else:
        raise TypeError(f"config must be a path, a mapping, Settings or None, not {type(config).__name__}")
    if settings.state.path.strip() in ("", ":memory:"):
        # SQLite gives every connection its own private database for these, and the store
        # opens one connection per thread: the actors would not see each other's writes.
        raise ConfigError("state.path", "must name a file (in-memory stores are not supported)")
    return settings


def _member(field: str, enum_type: type[E], value: E | str) -> E:
    """An enum member given as itself or by name (case-insensitive; ``-`` and spaces read as ``_``)."""
    if isinstance(value, enum_type):
        return value
    if isinstance(value, str):
        name = value.strip().upper().replace("-", "_").replace(" ", "_")
        if name in enum_type.__members__:
            return enum_type[name]
    allowed = ", ".join(enum_type.__members__)
    raise InvalidArgument(field, f"must be one of {allowed}, got {value!r}")


def _members(field: str, enum_type: type[E], value: E | str | Iterable[E | str] | None) -> tuple[E, ...]:
    if value is None:
        return ()
    if isinstance(value, (str, enum.Enum)):
        return (_member(field, enum_type, value),)
    try:
        values = list(value)
    except TypeError:
        return (_member(field, enum_type, value),)  # type: ignore[arg-type]  # raises InvalidArgument
    return tuple(_member(field, enum_type, v) for v in values)


def _limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
        raise InvalidArgument("limit", f"must be a positive integer, got {limit!r}")
    return limit


class Watcher(Generic[Ev]):
    """Runs a callback for each event of one subscription on its own daemon thread.

    Returned by :meth:`IncidentManager.on_incident` / :meth:`IncidentManager.on_delivery`.
    A callback that raises is logged and the watcher goes on with the next event. The
    watcher ends when :meth:`close` is called, when the manager stops, or when the callback
    falls more than the subscription's bound behind (then :attr:`lagged` is True).
    """

    def __init__(self, subscription: Subscription, callback: Callable[[Ev], object], name: str) -> None:
        self.subscription = subscription
        self._callback: Callable[[Ev], object] = callback
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for event in self.subscription:
            try:
                self._callback(event)  # type: ignore[arg-type]
            except Exception:
                log.exception("embed_callback_failed", watcher=self._thread.name)

    @property
    def lagged(self) -> bool:
        return self.subscription.lagged

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def close(self, timeout: float | None = 5.0) -> None:
        """Stop delivering events; waits up to ``timeout`` for a running callback to return
        (not when called from the callback itself). Events not yet handled are dropped."""
        self.subscription.close()
        self.join(timeout)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the watcher's thread to end; True if it has."""
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)
        return not self._thread.is_alive()


class IncidentManager:
    """The incident manager as an in-process component; see the module docstring.

    ``config`` is a TOML file path, a mapping shaped like the TOML document (validated the
    same way), a :class:`Settings`, or None for the built-in defaults (which keep the store
    at ``./data/incidents.db``). ``environ`` supplies the variables named by ``*_env`` keys
    (default: ``os.environ``). With ``grpc=True`` the gRPC server also runs, on
    ``[server] host``/``grpc_port`` (port 0 picks a free one; see :attr:`grpc_port`).
    ``configure_logs=True`` sets up process-wide logging from ``[observability]`` (stderr).
    Left False, the engine prints nothing itself: its events follow the host's structlog
    configuration if there is one, else go to the standard ``logging`` module as ``actors.*``
    loggers, shown only where the host's logging shows them.

    Raises ConfigError naming the key for a bad configuration (missing secrets are found
    by :meth:`start`), and naming ``server.host`` when ``grpc=True`` would serve a
    non-loopback address without TLS or ``[server] allow_insecure = true``. The constructor
    starts nothing.
    """

    def __init__(self, config: Config = None, *, grpc: bool = False,
                 environ: Mapping[str, str] | None = None, configure_logs: bool = False,
                 ask_timeout: float = 30.0) -> None:
        self.settings = _settings(config)
        exposure = insecure_exposure(self.settings) if grpc else None
        if exposure:
            raise ConfigError("server.host", exposure)
        self._grpc = grpc
        self._configure_logs = configure_logs
        self._engine = Engine(self.settings, environ=environ, ask_timeout=ask_timeout)
        self._api: ApiServer | None = None
        self._running = False
        self._lifecycle = threading.Lock()
        self._watchers: list[Watcher[Any]] = []
        self._watchers_lock = threading.Lock()
        self._max_text = self.settings.processing.max_field_bytes

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> "IncidentManager":
        """Open the store, build the enabled channels, start the supervised actors (and the
        gRPC server when asked); returns when all of it is running. Deliveries owed from an
        earlier run resume.

        Raises ConfigError for a missing secret or bad channel setting, OSError when the
        gRPC port cannot be bound, Unavailable when the actors do not come up; in every
        case whatever had started is stopped again. Calling it while running does nothing.
        """
        with self._lifecycle:
            if self._running:
                return self
            if self._configure_logs:
                configure_logging(self.settings.observability)
            else:
                quiet_unless_configured()
            engine = self._engine
            engine.failed.clear()
            readable = self.settings.state.url is None and readable_by_others(self.settings.state.path,
                                                                               "[state] path")
            if readable:
                log.warning("store_readable_by_others", warning=readable)
            try:
                engine.start()
                if self._grpc:
                    from .api.server import ApiServer  # grpc is imported only when asked for
                    self._api = ApiServer(engine, self.settings.server).start()
            except BaseException:
                self._abort_start()
                raise
            self._running = True
            log.info("embedded_started", grpc_port=self.grpc_port)
            return self

    def _abort_start(self) -> None:
        try:
            self._engine.stop(grace_secs=0)
        except Exception:  # the original error matters more
            log.exception("embedded_abort_start_failed")
        store = getattr(self._engine, "store", None)
        if store is not None:
            store.close()  # Engine.start opens the store before anything that can fail

    def stop(self, grace_secs: float | None = None) -> None:
        """Stop taking work (calls raise Unavailable), let in-flight sends finish for up to
        ``grace_secs`` (default ``[server] shutdown_grace_secs``), then stop every actor
        thread, the gRPC server and every subscription and watcher. Whatever is still owed
        stays in the store for the next start. Safe to call twice, or without start."""
        with self._lifecycle:
            if not self._running:
                return
            self._running = False
            engine = self._engine
            engine.stop_intake()
            if self._api is not None:
                self._api.drain()
            try:
                engine.stop(grace_secs)
            finally:
                if self._api is not None:
                    self._api.stop(0)
                    self._api = None
                with self._watchers_lock:
                    watchers, self._watchers = self._watchers, []
                for watcher in watchers:
                    watcher.close(timeout=5.0)
            log.info("embedded_stopped")

    def __enter__(self) -> "IncidentManager":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._running

    @property
    def failed(self) -> bool:
        """True when supervision gave up (too many restarts); every call then raises
        Unavailable. :meth:`stop` and start again, or use a new manager."""
        return self._engine.failed.is_set()

    @property
    def failure_reason(self) -> str:
        return self._engine.failure_reason

    def wait_failed(self, timeout: float | None = None) -> bool:
        """Block until supervision gives up or ``timeout`` passes; True if it gave up."""
        return self._engine.failed.wait(timeout)

    @property
    def grpc_port(self) -> int | None:
        """The port the gRPC server listens on, or None when it is not running."""
        return self._api.port if self._api is not None else None

    @property
    def engine(self) -> Engine:
        """The underlying gateway (unvalidated, for what this class does not cover)."""
        return self._engine

    @property
    def faults(self) -> ActorFaults:
        """Inject crashes and delays into named actors (``router``, ``processor``,
        ``sender:webhook:0`` …); plans may be made before :meth:`start`."""
        return self._engine.faults

    @property
    def channel_faults(self) -> ChannelFaults:
        """Make a channel's next sends fail like a real peer would (timeouts, HTTP statuses,
        SMTP codes): ``im.channel_faults.fail_next("webhook", 2, TransportFault("http_status", 503))``."""
        return self._engine.channel_faults

    def _live(self) -> Engine:
        if not self._running:
            raise Unavailable("the incident manager is not running; call start()")
        return self._engine

    # -- alerts ------------------------------------------------------------------------
    def submit_alert(self, title: str, source: str, severity: Severity | str, type: IncidentType | str, *,
                     alert_id: str | None = None, description: str = "",
                     labels: Mapping[str, str] | None = None, annotations: Mapping[str, str] | None = None,
                     affected_services: Sequence[str] = (), fired_at: datetime | None = None) -> AlertResult:
        """Record one alert, deduplicated into an incident; committed before this returns.

        ``severity``/``type`` are members or names (``"P1"``, ``"performance"``). Without
        ``alert_id`` a random one is used; resubmitting an ``alert_id`` records it once
        (``result.duplicate``). Raises InvalidArgument naming the field, Overloaded,
        Unavailable.
        """
        alert = self._alert(alert_id or "", source, title, description, severity, type, labels or {},
                            annotations or {}, affected_services, fired_at)
        return self._live().submit_alert(alert)

    def submit_alerts(self, alerts: Sequence[Alert]) -> list[AlertResult]:
        """Record prebuilt alerts in one transaction; results in the same order. Each is
        checked like :meth:`submit_alert` (an empty ``alert_id`` gets a random one); one bad
        alert raises InvalidArgument (field ``alerts[i].name``) and nothing is recorded."""
        checked = []
        for i, a in enumerate(alerts):
            if not isinstance(a, Alert):
                raise InvalidArgument(f"alerts[{i}]", f"must be an Alert, got {type(a).__name__}")
            try:
                checked.append(self._alert(a.alert_id, a.source, a.title, a.description, a.severity, a.type,
                                           a.labels, a.annotations, a.affected_services, a.fired_at))
            except InvalidArgument as error:
                raise InvalidArgument(f"alerts[{i}].{error.field}", error.reason) from None
        return self._live().submit_alerts(checked) if checked else []

    def _alert(self, alert_id: str, source: str, title: str, description: str, severity: Severity | str,
               type_: IncidentType | str, labels: Mapping[str, str], annotations: Mapping[str, str],
               affected_services: Sequence[str], fired_at: datetime | None) -> Alert:
        return checked_alert(alert_id=alert_id, source=source, title=title, description=description,
                             severity=_member("severity", Severity, severity), type=_member("type", IncidentType, type_),
                             labels=labels, annotations=annotations, affected_services=affected_services,
                             fired_at=fired_at, max_text=self._max_text)

    # -- incident commands -------------------------------------------------------------
    # Blank ``actor``/``author`` means DEFAULT_ACTOR; see actors/domain/commands.py for the rules.
    def create_incident(self, title: str, severity: Severity | str, type: IncidentType | str, *,
                        description: str = "", source: str = "manual", labels: Mapping[str, str] | None = None,
                        affected_services: Sequence[str] = (), assignees: Sequence[str] = (),
                        actor: str = DEFAULT_ACTOR) -> Incident:
        """Open an incident by hand (state DETECTED; notifications go out as for an alert).
        Raises InvalidArgument naming the field (an empty ``source`` too), Overloaded, Unavailable."""
        return self._live().create_incident(CreateIncident.checked(
            title=title, description=description, severity=_member("severity", Severity, severity),
            type=_member("type", IncidentType, type), source=source, labels=labels or {},
            affected_services=affected_services, assignees=assignees, actor=actor, default_actor=DEFAULT_ACTOR,
            max_text=self._max_text))

    def update_incident(self, incident_id: str, *, title: str | None = None, description: str | None = None,
                        severity: Severity | str | None = None, labels: Mapping[str, str] | None = None,
                        actor: str = DEFAULT_ACTOR) -> Incident:
        """Change the given fields (None leaves a field as it is); returns the incident.
        Raises InvalidArgument, NotFound, IllegalTransition (CLOSED), Overloaded, Unavailable."""
        return self._live().update_incident(UpdateIncident.checked(
            incident_id=incident_id, actor=actor, default_actor=DEFAULT_ACTOR, max_text=self._max_text,
            title=title, description=description,
            severity=None if severity is None else _member("severity", Severity, severity), labels=labels))

    def assign(self, incident_id: str, assignees: Sequence[str], *, actor: str = DEFAULT_ACTOR) -> Incident:
        """Replace the incident's assignees (an empty list unassigns). Raises InvalidArgument,
        NotFound, IllegalTransition (CLOSED), Overloaded, Unavailable."""
        return self._live().update_incident(UpdateIncident.checked(
            incident_id=incident_id, actor=actor, default_actor=DEFAULT_ACTOR, max_text=self._max_text,
            assignees=assignees))

    def transition(self, incident_id: str, state: IncidentState | str, actor: str = DEFAULT_ACTOR,
                   note: str = "") -> Incident:
        """Move the incident to ``state`` (RESOLVED resolves it MANUALly with ``note``).
        Raises IllegalTransition when the state machine forbids it, NotFound, InvalidArgument,
        Overloaded, Unavailable."""
        return self._live().transition(TransitionIncident.checked(
            incident_id=incident_id, to_state=_member("state", IncidentState, state), actor=actor,
            default_actor=DEFAULT_ACTOR, note=note, max_text=self._max_text))

    def resolve(self, incident_id: str, resolved_by: str, method: ResolutionMethod | str = ResolutionMethod.MANUAL,
                notes: str = "", root_cause: str = "") -> Incident:
        """Resolve an active incident. Raises IllegalTransition when it is already resolved or
        closed, NotFound, InvalidArgument (an empty ``resolved_by`` too), Overloaded, Unavailable."""
        return self._live().resolve(ResolveIncident.checked(
            incident_id=incident_id, resolved_by=resolved_by, method=_member("method", ResolutionMethod, method),
            notes=notes, root_cause=root_cause, max_text=self._max_text))

    def add_note(self, incident_id: str, author: str, text: str) -> TimelineEvent:
        """Append a note to the incident's timeline (a blank ``author`` means DEFAULT_ACTOR).
        Raises InvalidArgument (empty ``text``), NotFound, Overloaded, Unavailable."""
        return self._live().add_note(AddNote.checked(incident_id=incident_id, author=author,
                                                     default_actor=DEFAULT_ACTOR, note=text, max_text=self._max_text))

    @staticmethod
    def _id(incident_id: str, field: str = "id") -> str:
        return _text(field, incident_id, MAX_ID, required=True)

    # -- reads -------------------------------------------------------------------------
    def get_incident(self, incident_id: str) -> Incident:
        """The incident as stored now. Raises NotFound, InvalidArgument, Unavailable."""
        return self._live().incident(self._id(incident_id))

    def list_incidents(self, state: IncidentState | str | Iterable[IncidentState | str] | None = None,
                       severity: Severity | str | Iterable[Severity | str] | None = None,
                       source: str | None = None, limit: int = 50) -> list[Incident]:
        """Up to ``limit`` incidents, newest first, matching every filter given (a state or
        severity may be one value or several). Raises InvalidArgument, Unavailable."""
        limit = _limit(limit)
        query = IncidentQuery(
            states=tuple(int(s) for s in _members("state", IncidentState, state)),
            severities=tuple(int(s) for s in _members("severity", Severity, severity)),
            source=(_text("source", source, MAX_NAME) or None) if source is not None else None)
        engine = self._live()
        found: list[Incident] = []
        token = ""
        while len(found) < limit:
            page, token = engine.incidents(query, min(MAX_PAGE, limit - len(found)), token)
            found.extend(page)
            if not token:
                break
        return found

    def timeline(self, incident_id: str) -> list[TimelineEvent]:
        """The incident's events, oldest first. Raises NotFound, InvalidArgument, Unavailable."""
        return self._live().timeline(self._id(incident_id))

    def notifications(self, incident_id: str = "", channel: str = "", status: DeliveryStatus | str = "",
                      limit: int = 50) -> list[NotificationRecord]:
        """Up to ``limit`` notification records matching the filters (empty = any), in the
        order they were queued. Raises InvalidArgument, Unavailable."""
        limit = _limit(limit)
        incident_id = _text("incident_id", incident_id, MAX_ID)
        channel = _text("channel", channel, MAX_NAME)
        if status:
            try:
                status = DeliveryStatus(status.strip().lower() if isinstance(status, str) else status).value
            except ValueError:
                raise InvalidArgument("status", "must be one of " + ", ".join(s.value for s in DeliveryStatus)
                                      + f", got {status!r}") from None
        engine = self._live()
        found: list[NotificationRecord] = []
        token = ""
        while len(found) < limit:
            page, token = engine.notifications(incident_id, channel, str(status), min(MAX_PAGE, limit - len(found)),
                                               token)
            found.extend(page)
            if not token:
                break
        return found

    def notification(self, notification_id: str) -> tuple[NotificationRecord, list[Attempt]]:
        """One notification and its recorded attempts. Raises NotFound, InvalidArgument, Unavailable."""
        return self._live().notification(self._id(notification_id))

    def routing(self, notification_id: str) -> tuple[Decision, ...]:
        """What routing decided, for every destination, about the event that owed this
        notification: the route that reached it, or why it hears nothing (empty for one owed
        before routing was recorded). Raises NotFound, InvalidArgument, Unavailable."""
        return self._live().routing_of(self._id(notification_id))

    def render_templates(self, receiver: str, incident_id: str, channel: str = "", event_type: str = "") -> list[Any]:
        """A receiver's templates rendered for an incident as it is now (every field's text or
        error; nothing is sent), as ``imctl templates render`` shows them. Raises NotFound,
        InvalidArgument, Unavailable."""
        return self._live().render_templates(receiver, self._id(incident_id), channel, event_type)

    def requeue(self, notification_id: str) -> NotificationRecord:
        """Owe a dead notification again. Raises IllegalTransition unless it is dead,
        NotFound, InvalidArgument, Unavailable."""
        return self._live().requeue(self._id(notification_id))

    def stats(self) -> NotificationStats:
        """Per-channel delivery counts and latencies, in-flight counts per channel and every
        actor's liveness and restarts. Raises Unavailable when not running."""
        return self._live().stats()

    def send_test(self, channel: str, destination: str = "") -> tuple[str, Outcome]:
        """Send a marked sample to one enabled channel now; returns (destination, outcome).
        Delivery failures are outcomes, not exceptions. Raises NotFound for a channel that is
        not enabled or an unknown destination, NotConfigured for an enabled channel without a
        destination (both say which keys to set), InvalidArgument, Unavailable."""
        return self._live().send_test(_text("channel", channel, MAX_NAME, required=True),
                                      _text("destination", destination, MAX_NAME))

    # -- events ------------------------------------------------------------------------
    def subscribe(self, incidents: bool = True, deliveries: bool = True, incident_id: str | None = None,
                  bound: int = 10_000) -> Subscription:
        """A new subscription to IncidentChanged and/or DeliverySettled events (optionally of
        one incident) from now on. Iterate it, or call ``get(timeout)`` (None on timeout or
        when closed); ``close()`` ends it, as does :meth:`stop`. A subscriber more than
        ``bound`` events behind is closed with ``lagged = True`` rather than slowing the
        engine. Raises InvalidArgument, Unavailable."""
        wanted = ((IncidentChanged,) if incidents else ()) + ((DeliverySettled,) if deliveries else ())
        if not wanted:
            raise InvalidArgument("incidents", "subscribe to incidents, deliveries or both")
        if isinstance(bound, bool) or not isinstance(bound, int) or bound <= 0:
            raise InvalidArgument("bound", f"must be a positive integer, got {bound!r}")
        only = None if incident_id is None else self._id(incident_id, "incident_id")

        def accept(event: Event) -> bool:
            if not isinstance(event, wanted):
                return False
            if only is None:
                return True
            found = event.incident.id if isinstance(event, IncidentChanged) else event.delivery.incident_id
            return found == only

        return self._live().subscribe(accept, bound)

    def on_incident(self, callback: Callable[[IncidentChanged], object], incident_id: str | None = None,
                    bound: int = 10_000) -> Watcher[IncidentChanged]:
        """Call ``callback(event)`` for every IncidentChanged, on a daemon thread of its own
        (events in order, one at a time). Returns the :class:`Watcher`; ``close()`` it or
        :meth:`stop` the manager to end it. Raises InvalidArgument, Unavailable."""
        return self._watch(self.subscribe(True, False, incident_id, bound), callback, "on-incident")

    def on_delivery(self, callback: Callable[[DeliverySettled], object], incident_id: str | None = None,
                    bound: int = 10_000) -> Watcher[DeliverySettled]:
        """Call ``callback(event)`` for every notification that settles: ``event.status`` is
        ``delivered``, ``skipped`` or ``dead`` (attempts that will be retried are not
        reported). Otherwise like :meth:`on_incident`."""
        return self._watch(self.subscribe(False, True, incident_id, bound), callback, "on-delivery")

    def _watch(self, subscription: Subscription, callback: Callable[[Any], object], name: str) -> Watcher[Any]:
        if not callable(callback):
            subscription.close()
            raise InvalidArgument("callback", "must be callable")
        watcher: Watcher[Any] = Watcher(subscription, callback, name)
        with self._watchers_lock:
            self._watchers = [w for w in self._watchers if w.alive] + [watcher]
        return watcher
