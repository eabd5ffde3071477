"""Supervisors in the spirit of Erlang/OTP, built on pykka (which has none).

A :class:`Supervisor` starts its children from ordered :class:`ChildSpec` s and restarts
them by strategy (one_for_one, one_for_all, rest_for_one) and restart type (permanent,
transient, temporary). Every way a child can die reaches it exactly once per actor:

- an exception in a told message → the child's ``on_failure`` reports it;
- an injected crash (:class:`~actors.faults.ActorFaults`) in any message, told or asked → the
  same path (an asker gets :class:`ActorCrashed`, an ``ActorDeadError``);
- an exception in ``on_start`` (pykka then calls neither on_failure nor on_stop) → the
  :class:`SupervisedActor` wrapper reports it before re-raising;
- a BaseException that is no Exception (SystemExit, KeyboardInterrupt) in a message → the
  same path as a crash (pykka itself would stop *every* actor of the process);
- a stop from outside → the child's ``on_stop`` reports it;
- anything else that ends the actor's thread without a report (a BaseException in start or in
  clean-up) → the wrapped actor loop reports it as the thread ends.

Nothing polls: every report is a message the dying actor's own thread sends.

A child that does not stop in time (``Fencing``: ``stop_timeout``, or the tree's stop
deadline at shutdown) is abandoned and *fenced*: it may still be running — blocked in a
network call — beside its replacement, but from then on it handles no message and its
senders record and report nothing (:attr:`SupervisedActor.fenced`). The count shows in
:class:`ChildStatus` as ``fenced``.

Each crash is logged once, by the supervisor, as ``actor_exited``: the reason, the traceback
and what the actor was working on, with secrets redacted (the ``redact`` a supervisor is
given; the engine's knows the configured secrets). pykka's own records of exceptions in
supervised actors are dropped (see :class:`_HandledBySupervision`): an exception an asked
message raises goes back to the asker, which logs it if it is unexpected.

More than ``max_restarts`` restarts within ``within_secs`` escalates: the supervisor stops its
children in reverse order and exits abnormally, so its own parent decides; at the top,
``on_escalate`` is called (the server logs it and exits non-zero).

An exit caused by :class:`~actors.domain.errors.StoreUnavailable` (the store's database cannot
be reached) is no bug and says nothing of the actor: restarting at once would fail the same
way, and an outage may last any time. Such a child is restarted after a wait that doubles
with each such exit in a row (:func:`outage_backoff`), and these restarts do not count
toward the restart intensity, so an outage of any length never escalates. The first exit of
an outage is logged (``actor_waiting_for_store``), the retries only at debug level.
"""
from __future__ import annotations

import enum
import logging
import math
import threading
import time
import traceback
import weakref
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, NoReturn

import pykka
import structlog

from .channels.redact import redact as redact_known_shapes
from .directory import ActorDirectory
from .domain.errors import StoreUnavailable
from .faults import ActorFaults, InjectedFault

log = structlog.get_logger(__name__)


NO_FAULTS = ActorFaults()


class Restart(enum.Enum):
    PERMANENT = "permanent"   # always restarted
    TRANSIENT = "transient"   # restarted only after an abnormal exit
    TEMPORARY = "temporary"   # never restarted


class Strategy(enum.Enum):
    ONE_FOR_ONE = "one_for_one"
    ONE_FOR_ALL = "one_for_all"
    REST_FOR_ONE = "rest_for_one"


@dataclass(frozen=True, slots=True)
class ChildExited:
    """A child's report that an actor instance ended."""

    name: str
    urn: str
    reason: str
    abnormal: bool
    #: What the actor was working on (e.g. incident_id, notification_id), for the log line.
    context: Mapping[str, str] = field(default_factory=dict)
    #: The formatted traceback of the exception that ended it, if one did.
    traceback: str = ""
    #: It ended because the store's database cannot be reached (StoreUnavailable).
    outage: bool = False


@dataclass(frozen=True, slots=True)
class Started:
    """Ask: answered (True) once the actor's start-up (``on_start``) is done."""


@dataclass(frozen=True, slots=True)
class GetStatus:
    """Ask: → list[ChildStatus] for this supervisor and its nested supervisors."""


@dataclass(frozen=True, slots=True)
class ChildStatus:
    name: str
    alive: bool
    restarts: int
    last_failure: str
    #: Instances abandoned still running because they did not stop in time (see Fencing).
    fenced: int = 0
    #: The replica (server instance) it runs in, where replicas share a store; else "".
    replica: str = ""


class ActorCrashed(pykka.ActorDeadError):
    """What an asker gets when the actor crashed (injected fault) while handling its message:
    the actor is dead and being restarted, exactly as if it had died just before."""


#: Starts one child actor given its supervisor's ref and its name; returns the new ref.
Starter = Callable[[pykka.ActorRef, str], pykka.ActorRef]

#: The supervised actor running in this thread (pykka gives every actor its own thread).
_running = threading.local()


class _HandledBySupervision(logging.Filter):
    """Drops pykka's records of an exception that left a supervised actor's message or start.

    pykka logs each with its traceback: at INFO when it goes back to an asker, at ERROR when
    it ends the actor. Both are handled elsewhere. The asker gets the exception: an expected
    DomainError (not found, illegal transition, …) is an answer, not news, and anything else
    is the asker's to log (the gRPC edge logs ``rpc_failed``). A crash is logged once by the
    supervisor as ``actor_exited``, redacted and with what the actor was working on, which
    pykka's record has not. Records about other exceptions and other actors pass.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        actor = getattr(_running, "actor", None)
        return not (actor is not None and record.exc_info and record.exc_info[1] is actor.raised)


logging.getLogger("pykka").addFilter(_HandledBySupervision())


@dataclass(frozen=True)
class ChildSpec:
    name: str
    start: Starter
    restart: Restart = Restart.PERMANENT


#: How long a child still running when its stop budget is spent gets before it is fenced (s).
LAST_CHANCE = 0.05

#: The first wait after the store's database was found unreachable before trying again (s).
OUTAGE_BACKOFF_SECS = 0.5
#: The longest such wait: once the database is back, work resumes within about this long.
OUTAGE_BACKOFF_MAX_SECS = 10.0
#: A child that ran this long before the store ended it again is in a new outage (s).
OUTAGE_FORGOTTEN_SECS = 60.0


def outage_backoff(tries: int) -> float:
    """The wait before the next try after ``tries`` tries in a row found the store's database
    unreachable: ``OUTAGE_BACKOFF_SECS`` doubling with each, at most ``OUTAGE_BACKOFF_MAX_SECS``."""
    return min(OUTAGE_BACKOFF_MAX_SECS, OUTAGE_BACKOFF_SECS * 2.0 ** min(tries, 32))


@dataclass(frozen=True, slots=True)
class _RestartDue:
    """(Supervisor to itself, from a timer) restart the children an outage stopped."""

    index: int


#: Every live SupervisedActor instance, by actor urn (see :func:`fence`).
_FENCES: "weakref.WeakValueDictionary[str, SupervisedActor]" = weakref.WeakValueDictionary()


def fence(ref: pykka.ActorRef) -> None:
    """Fence the instance behind ``ref``: it handles no further message, the work it is in
    the middle of takes no effect where the actor checks :attr:`SupervisedActor.fenced`, and
    its :meth:`SupervisedActor.on_fenced` lets go of what it holds outside (called here, in
    the supervisor's thread)."""
    actor = _FENCES.get(ref.actor_urn)
    if actor is not None:
        actor._fence.set()
        actor.on_fenced()


class Fencing:
    """How long supervisors wait for children to stop, and how many they abandoned (fenced).

    Shared by the supervisors of one tree, so a count outlives a supervisor that is itself
    replaced. The children of one stop share a budget: ``stop_timeout`` from the moment it
    begins, but never past the tree's stop deadline once :meth:`stop_by` set one (shutdown).
    A child still running when the budget is spent gets ``LAST_CHANCE`` more, then it is fenced
    and left running: actor threads are daemons, so it does not hold up the process's exit, and
    whatever it was sending stays owed in the store.
    """

    def __init__(self, stop_timeout: float = 10.0) -> None:
        self.stop_timeout = stop_timeout
        self._deadline = math.inf
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def stop_by(self, deadline: float) -> None:
        """Every stop from now on gives up at ``deadline`` (a time.monotonic() value)."""
        self._deadline = deadline

    def budget_end(self) -> float:
        """When a stop beginning now gives up on the children still running."""
        return min(time.monotonic() + self.stop_timeout, self._deadline)

    def record(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    def count(self, name: str) -> int:
        with self._lock:
            return self._counts[name]


class SupervisedActor(pykka.ThreadingActor):
    """Base for actors under a supervisor: reports every kind of exit to it.

    Subclasses put start-up work in :meth:`started` and clean-up (cancel timers, close
    connections) in :meth:`cleanup`, which runs on both normal stop and failure.
    """

    #: A send stuck in the network must not keep the process alive after shutdown;
    #: nothing is lost, the store still owes whatever was in flight.
    use_daemon_thread = True

    def __init__(self, supervisor: pykka.ActorRef | None, name: str, faults: ActorFaults | None = None) -> None:
        super().__init__()
        self.supervisor = supervisor
        self.name = name
        self.faults = faults or NO_FAULTS
        self._reported = False
        self._context: Mapping[str, str] = {}
        self._failed = False
        self._fence = threading.Event()
        _FENCES[self.actor_urn] = self
        #: The exception that last left :meth:`on_receive` or :meth:`on_start`.
        self.raised: BaseException | None = None

    @property
    def fenced(self) -> bool:
        """True once the supervisor gave up waiting for this instance to stop (it may still be
        inside a long call, beside its replacement). Nothing it does from then on may take
        effect: it drops every further message, and a handler that acts on the outside world
        after a long call checks this first."""
        return self._fence.is_set()

    def on_fenced(self) -> None:
        """(Called from the supervisor's thread when it fences this instance.) Let go of what
        it holds outside the process, e.g. a worker process that would go on sending; must
        be thread-safe and must not raise."""

    def started(self) -> None:
        """Start-up work; an exception here is reported as an abnormal exit."""

    def cleanup(self) -> None:
        """Release what this actor holds; must not raise."""

    def receive(self, message: Any) -> Any:
        """Handle one message (subclasses). For a told message, an exception crashes the
        actor and its supervisor restarts it; for an asked one it goes back to the asker."""
        log.warning("unexpected_message", actor=self.name, message=type(message).__name__)
        return None

    def context_of(self, message: Any) -> Mapping[str, str]:
        """Ids that say what handling ``message`` is about; reported if the actor crashes."""
        return {}

    def on_receive(self, message: Any) -> Any:
        if self.fenced:
            return None  # abandoned: its replacement owns this work now
        if isinstance(message, Started):
            return True  # pykka handles messages only after on_start
        self._context = self.context_of(message)
        self.raised = None
        try:
            return self._handle(message)
        except Exception as exc:
            self.raised = exc
            raise
        except BaseException as exc:  # SystemExit, KeyboardInterrupt: pykka would stop every actor
            self._crash(message, exc)

    def _handle(self, message: Any) -> Any:
        try:
            self.faults.before_message(self.name)
        except InjectedFault as fault:
            self._crash(message, fault)
        return self.receive(message)

    def _crash(self, message: Any, error: BaseException) -> NoReturn:
        """End this actor now as crashed by ``error``, whether ``message`` was told or asked.

        pykka crashes an actor only for an Exception from a *told* message (an asked one's goes
        back to the asker), and answers any other BaseException by stopping every actor of the
        process. Here: stop, clean up and report, then let the asker (if any) see an
        :class:`ActorCrashed`, an ActorDeadError."""
        self.actor_stopped.set()
        pykka.ActorRegistry.unregister(self.actor_ref)
        self.on_failure(type(error), error, error.__traceback__)
        crashed = ActorCrashed(f"{self.name} crashed while handling {type(message).__name__}: {error!r}")
        self.raised = crashed
        raise crashed from error

    def on_start(self) -> None:
        _running.actor = self
        try:
            self.faults.before_start(self.name)
            self.started()
        except Exception as exc:
            self.raised = exc
            self._report(f"on_start failed: {exc!r}", abnormal=True, error=exc)
            raise

    def on_stop(self) -> None:
        try:
            self.cleanup()
        finally:
            self._report("stopped", abnormal=False)

    def on_failure(self, exception_type: Any, exception_value: Any, tb: Any) -> None:
        if self._failed:
            return  # _crash already ran this before pykka's own failure path
        self._failed = True
        try:
            self.cleanup()
        finally:
            self._report(f"crashed: {exception_value!r}", abnormal=True, error=exception_value)

    def _actor_loop(self) -> None:
        """pykka's actor loop (this thread's whole life), plus the report of an exit that made
        none: a BaseException out of start or clean-up ends the thread past pykka's handlers."""
        try:
            super()._actor_loop()
        except BaseException as exc:  # the thread ends here either way; the supervisor logs it
            pykka.ActorRegistry.unregister(self.actor_ref)
            self.actor_stopped.set()
            self._actor_loop_teardown()  # askers still waiting get ActorDeadError
            self._report(f"ended by {exc!r}", abnormal=True, error=exc)
        finally:
            self._report("ended without reporting", abnormal=True)

    def _report(self, reason: str, abnormal: bool, error: BaseException | None = None) -> None:
        if self._reported or self.supervisor is None:
            return
        self._reported = True
        trace = "".join(traceback.format_exception(error)) if error is not None else ""
        outage = isinstance(error, StoreUnavailable)
        try:
            self.supervisor.tell(ChildExited(self.name, self.actor_urn, reason, abnormal, self._context, trace,
                                             outage))
        except pykka.ActorDeadError:
            pass  # the supervisor is gone too; its parent handles it


@dataclass
class _Child:
    spec: ChildSpec
    ref: pykka.ActorRef | None = None
    restarts: int = 0
    last_failure: str = ""
    #: When this instance was started (time.monotonic()).
    started_at: float = 0.0
    #: Exits in a row caused by the store's outage (see :func:`outage_backoff`).
    outage_exits: int = 0


class Supervisor(SupervisedActor):
    """Supervises ordered children. Itself supervisable (nest pools under a top supervisor)."""

    def __init__(self, supervisor: pykka.ActorRef | None, name: str, specs: list[ChildSpec],
                 strategy: Strategy, max_restarts: int, within_secs: float,
                 directory: ActorDirectory,
                 on_restart: Callable[[str], None] = lambda name: None,
                 on_escalate: Callable[[str], None] = lambda reason: None,
                 fencing: Fencing | None = None,
                 redact: Callable[[str], str] = redact_known_shapes) -> None:
        """``redact`` cleans every crash reason and traceback before it is logged, kept as
        ``last_failure`` or escalated; the default knows URL and token shapes, not the
        configured secrets. ``fencing`` (shared by a tree) bounds how long a stop waits."""
        super().__init__(supervisor, name)
        self.children = [_Child(spec) for spec in specs]
        self.strategy = strategy
        self.max_restarts = max_restarts
        self.within_secs = within_secs
        self.directory = directory
        self.on_restart = on_restart
        self.on_escalate = on_escalate
        self.fencing = fencing or Fencing()
        self.redact = redact
        self._restart_times: deque[float] = deque()
        self._stopping_urns: set[str] = set()
        self._escalated = False
        #: Restarts waiting out the store's outage (see :meth:`_restart_after_outage`).
        self._outage_timers: list[threading.Timer] = []

    # -- lifecycle ---------------------------------------------------------------------
    def started(self) -> None:
        for child in self.children:
            self._start(child)

    def cleanup(self) -> None:
        """Stop the children; a root supervisor that ends for any reason but escalation
        (a crash, pykka stopping every actor) tells ``on_escalate`` too, so the program
        hosting it never runs on half-dead."""
        for timer in self._outage_timers:
            timer.cancel()
        self._stop_children(self.children)
        if self.supervisor is None and not self._escalated:
            self.on_escalate(f"{self.name} supervisor stopped")

    def _start(self, child: _Child) -> None:
        child.ref = child.spec.start(self.actor_ref, child.spec.name)
        child.started_at = time.monotonic()
        self.directory.register(child.spec.name, child.ref)

    def _stop_children(self, children: list[_Child]) -> None:
        """Stop in reverse start order, waiting for each so order holds. A worker still
        running when the stop budget (see :class:`Fencing`) is spent is fenced and left
        behind; a child supervisor is waited for, as it bounds its own children's stops."""
        give_up_at = self.fencing.budget_end()
        for child in reversed(children):
            ref, child.ref = child.ref, None
            if ref is None:
                continue
            self.directory.unregister(child.spec.name, ref)
            self._stopping_urns.add(ref.actor_urn)
            bounded = not issubclass(ref.actor_class, Supervisor)
            try:
                ref.stop(block=True, timeout=max(give_up_at - time.monotonic(), LAST_CHANCE) if bounded else None)
            except pykka.ActorDeadError:
                pass
            except pykka.Timeout:
                fence(ref)
                self.fencing.record(child.spec.name)
                log.warning("actor_fenced", supervisor=self.name, actor=child.spec.name,
                            reason="did not stop in time; left running, nothing it does from now on takes effect")

    # -- messages ----------------------------------------------------------------------
    def receive(self, message: Any) -> Any:
        if isinstance(message, ChildExited):
            self._child_exited(message)
        elif isinstance(message, GetStatus):
            return self._status()
        elif isinstance(message, _RestartDue):
            if not self._escalated:
                self._restart([c for c in self._affected(message.index) if c.ref is None], after_outage=True)
        else:
            return super().receive(message)
        return None

    def _status(self) -> list[ChildStatus]:
        return [ChildStatus(child.spec.name, bool(child.ref and child.ref.is_alive()), child.restarts,
                            child.last_failure, self.fencing.count(child.spec.name))
                for child in self.children]

    def _child_exited(self, exit: ChildExited) -> None:
        if exit.urn in self._stopping_urns:
            self._stopping_urns.discard(exit.urn)
            return
        index = next((i for i, c in enumerate(self.children)
                      if c.spec.name == exit.name and c.ref is not None and c.ref.actor_urn == exit.urn), None)
        if index is None or self._escalated:
            return  # a stale or duplicate report about an instance already handled
        child = self.children[index]
        self.directory.unregister(child.spec.name, child.ref)  # type: ignore[arg-type]
        child.ref = None
        reason = self.redact(exit.reason)
        restarted = not (child.spec.restart is Restart.TEMPORARY
                         or (child.spec.restart is Restart.TRANSIENT and not exit.abnormal))
        if exit.outage and restarted:
            self._restart_after_outage(index, exit, reason)
            return
        trace = {"exception": self.redact(exit.traceback)} if exit.traceback else {}
        log.error("actor_exited", supervisor=self.name, actor=exit.name, reason=reason, abnormal=exit.abnormal,
                  **exit.context, **trace)
        if not restarted:
            return
        child.last_failure = reason
        child.outage_exits = 0
        if self._intensity_exceeded():
            self._escalate(f"{exit.name}: {reason}; more than {self.max_restarts} restarts "
                           f"in {self.within_secs:g}s")
            return
        self._restart(self._stop_affected(index, reason))

    def _stop_affected(self, index: int, reason: str) -> list[_Child]:
        """Stop the children the strategy restarts with the one at ``index`` (which has
        ended); returns all of them, that one included."""
        child = self.children[index]
        affected = self._affected(index)
        self._stop_children([c for c in affected if c is not child])
        for other in affected:
            if other is not child:
                other.last_failure = f"restarted with {child.spec.name} ({self.strategy.value}): {reason}"
        return affected

    def _restart(self, children: list[_Child], after_outage: bool = False) -> None:
        """Start each of ``children`` again; a start that fails escalates."""
        for child in children:
            child.restarts += 1
            try:
                self._start(child)
            except Exception as exc:  # start itself failing is a restart failure: escalate
                self._escalate(f"restarting {child.spec.name} failed: {exc!r}\n{traceback.format_exc()}")
                return
            self.on_restart(child.spec.name)
        if children:  # a try after an outage only at debug level: an outage is logged once
            (log.debug if after_outage else log.warning)(
                "actor_restarted", supervisor=self.name, actors=[c.spec.name for c in children],
                after_outage=after_outage)

    def _restart_after_outage(self, index: int, exit: ChildExited, reason: str) -> None:
        """The child at ``index`` ended because the store's database cannot be reached: restart
        it (and what the strategy restarts with it) after :func:`outage_backoff`, not counting
        toward the restart intensity. Logged once per outage, the retries at debug level."""
        child = self.children[index]
        if time.monotonic() - child.started_at > OUTAGE_FORGOTTEN_SECS:
            child.outage_exits = 0  # it ran well since the last one: a new outage
        wait = outage_backoff(child.outage_exits)
        child.outage_exits += 1
        child.last_failure = f"waiting for the store (restarting in {wait:g}s): {reason}"
        report = log.warning if child.outage_exits == 1 else log.debug
        report("actor_waiting_for_store", supervisor=self.name, actor=exit.name, reason=reason,
               retry_in_secs=wait, **exit.context)
        self._stop_affected(index, reason)
        timer = threading.Timer(wait, tell_quietly, (self.actor_ref, _RestartDue(index)))
        timer.daemon = True
        self._outage_timers = [t for t in self._outage_timers if t.is_alive()] + [timer]
        timer.start()

    def _affected(self, index: int) -> list[_Child]:
        if self.strategy is Strategy.ONE_FOR_ALL:
            return list(self.children)
        if self.strategy is Strategy.REST_FOR_ONE:
            return self.children[index:]
        return [self.children[index]]

    def _intensity_exceeded(self) -> bool:
        now = time.monotonic()
        self._restart_times.append(now)
        while self._restart_times and now - self._restart_times[0] > self.within_secs:
            self._restart_times.popleft()
        return len(self._restart_times) > self.max_restarts

    def _escalate(self, reason: str) -> None:
        reason = self.redact(reason)
        self._escalated = True
        log.critical("supervisor_escalating", supervisor=self.name, reason=reason)
        self._stop_children(self.children)
        if self.supervisor is None:
            self.on_escalate(reason)
        else:
            self._report(f"escalated: {reason}", abnormal=True)
        self.stop()


def tell_quietly(ref: pykka.ActorRef, message: object) -> None:
    """Tell ``ref``, ignoring that it may have died meanwhile (its supervisor handles that)."""
    try:
        ref.tell(message)
    except pykka.ActorDeadError:
        pass
