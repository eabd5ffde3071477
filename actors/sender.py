"""SenderActor: one pool member of one channel. Attempts deliveries and holds their timers.

For each delivery it paces (token bucket), calls the channel once, and either settles it or
keeps a retry timer that later tells this actor to try again: it never sleeps, so its
mailbox keeps moving. A pipelined channel (webhook with worker processes) answers later, as
its answer box (the sender is told ``Answered`` once per batch of them), with up to
``PIPELINE_DEPTH`` deliveries in flight per sender. Finished attempts are recorded in one
transaction per burst — at most
``SETTLE_BATCH`` of them, none older than ``settle_window`` — and only then is the router
told the slot is free. Timers die with the actor (cancelled in ``cleanup``); the store still
says the delivery is owed (with its due time), so the router hands it out again.

Nothing is read back for a delivery handed over from the processor: it arrives whole
(``Send``). A group notification is the exception: its first attempt here closes it and reads
what it carries (``Store.close_group``), and a reminder that finds no incident active is
skipped. A router that restarted may re-send what this sender holds or has just finished —
those are recognised in memory and dropped — and a delivery pulled from the store (recovery,
overflow) is checked against it first, since a sender instance now gone may have made it.
The store records an attempt only if it is the next one of a delivery still owed, so a sender
that lost a delivery to another changes nothing. A sender its supervisor fenced (it did not
stop in time, e.g. stuck in a send) records and tells nothing once that send returns.

While the store's database cannot be reached (StoreUnavailable) the sender keeps what it
holds: finished attempts wait in memory and are recorded when it is back (tried again after
:func:`~actors.supervision.outage_backoff`, doubling up to its cap), so a delivery made during
an outage is not made again; a delivery whose attempt needs the store first (a channel's
state, a group's content) is put on a timer for then instead of being attempted. Their router
slots stay taken meanwhile, so nothing more is handed over. The outage is logged once
(``sender_waiting_for_store``) and its end once (``sender_store_back``). A
commit whose outcome was unknown is simply tried again: the attempts it did record are then
refused as no longer this sender's, and the router frees those rows.

An exception escaping ``Channel.deliver`` is a bug, and a transport that died (a worker
process ended) is a failure too: either crashes this actor (pykka calls ``on_failure``), the
pool supervisor starts a fresh one, and the router has what it held sent again, same ids.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from dataclasses import replace
from typing import Any, Callable, Mapping

import pykka
import structlog

from .channels.base import Channel, PipelinedChannel
from .channels.faults import ChannelFaults, injected_delivery
from .directory import ActorDirectory
from .domain.errors import StoreUnavailable
from .domain.grouping import GROUP_EVENT
from .domain.models import Delivery, DeliveryStatus, Outcome, OutcomeKind
from .domain.ratelimit import TokenBucket
from .domain.retry import RetryPolicy
from .faults import ActorFaults
from .events import DeliverySettled, EventHub
from .messages import (Answered, GroupsDue, Released, Send, SettleDue, Settled, TimerDue, TimerFired,
                       TimerSet)
from .scheduler import Scheduler, TimerHandle
from .store.base import AttemptRecord, Store
from .supervision import SupervisedActor, outage_backoff, tell_quietly

log = structlog.get_logger(__name__)

ROUTER = "router"
_FINAL_STATUS = {OutcomeKind.DELIVERED: DeliveryStatus.DELIVERED, OutcomeKind.SKIPPED: DeliveryStatus.SKIPPED,
                 OutcomeKind.FAILED: DeliveryStatus.DEAD}
#: Finished attempts recorded together at most.
SETTLE_BATCH = 16
#: The longest a finished attempt waits to be recorded (seconds): bounds what a killed process
#: can have sent without recording it, and so what it repeats after a restart.
SETTLE_WINDOW = 0.005
#: Deliveries a pipelined channel (webhook with worker processes) has in flight at once per sender.
PIPELINE_DEPTH = 8
#: Recently settled deliveries remembered, to drop a re-send from a restarted router.
RECENTLY_SETTLED = 10_000
_OWED = (DeliveryStatus.QUEUED, DeliveryStatus.RETRYING)


class SenderActor(SupervisedActor):
    def __init__(self, supervisor: pykka.ActorRef | None, name: str, channel: Channel,
                 store: Store, directory: ActorDirectory, scheduler: Scheduler, hub: EventHub,
                 policy: RetryPolicy, transport_faults: ChannelFaults, rate_per_sec: float | None = None,
                 settle_window: float = SETTLE_WINDOW, clock: Callable[[], float] = time.time,
                 faults: ActorFaults | None = None) -> None:
        super().__init__(supervisor, name, faults)
        self.channel = channel
        self.store = store
        self.directory = directory
        self.scheduler = scheduler
        self.hub = hub
        self.policy = policy
        self.transport_faults = transport_faults
        self.pacer = TokenBucket(rate_per_sec) if rate_per_sec else None
        self.settle_window = settle_window
        self.clock = clock
        self.timers: dict[str, tuple[TimerHandle, Delivery]] = {}
        self._pipelined = isinstance(channel, PipelinedChannel)
        self._in_flight: dict[str, Delivery] = {}       # started with deliver_later, not answered
        self._held_back: deque[Delivery] = deque()      # waiting for a free place in the pipeline
        self._held_back_ids: set[str] = set()
        self._answers = _AnswerBox(self.actor_ref)
        self._unsettled: list[AttemptRecord] = []
        self._unsettled_ids: set[str] = set()
        self._oldest_unsettled = 0.0
        self._settle_timer: TimerHandle | None = None
        #: Tries in a row that found the store's database unreachable, and until when (monotonic)
        #: nothing is recorded but by the timer that tries again.
        self._store_tries = 0
        self._store_retry_at = 0.0
        self._recently_settled: OrderedDict[str, int] = OrderedDict()  # id → last attempt settled

    def started(self) -> None:
        self.channel.open()

    def on_fenced(self) -> None:
        self.channel.close()  # ends its worker process: what waits in its pipe is never sent

    def cleanup(self) -> None:
        self._settle()
        for timer, _ in self.timers.values():
            timer.cancel()
        self.timers.clear()
        self.channel.close()

    def context_of(self, message: Any) -> Mapping[str, str]:
        if isinstance(message, Send):  # the first of them names the batch (it is built per message)
            first, more = message.deliveries[0], len(message.deliveries) - 1
            suffix = f" (and {more} more)" if more else ""
            return {"incident_id": first.incident_id + suffix, "notification_id": first.notification_id + suffix}
        if isinstance(message, TimerDue):
            return {"incident_id": message.delivery.incident_id,
                    "notification_id": message.delivery.notification_id}
        return {}

    def receive(self, message: Any) -> Any:
        if isinstance(message, Send):
            for delivery in message.deliveries:
                if not self._already_held(delivery) and not (message.verify and self._made(delivery)):
                    self._paced(delivery)
        elif isinstance(message, Answered):
            self._answered()
        elif isinstance(message, SettleDue):
            self._settle_timer = None
        elif isinstance(message, TimerDue):
            self.timers.pop(message.delivery.notification_id, None)
            self.directory.tell(ROUTER, TimerFired(message.delivery.notification_id))
            if message.paced:
                self._attempt(message.delivery)
            else:
                self._paced(message.delivery)
        else:
            return super().receive(message)
        if self._pipelined:
            self.channel.flush()  # type: ignore[attr-defined]  # what this message started, in one write
        if self._unsettled and (len(self._unsettled) >= SETTLE_BATCH or self._idle()
                                or time.monotonic() - self._oldest_unsettled >= self.settle_window):
            self._settle()
        elif self._unsettled and self._settle_timer is None:  # whatever comes next, record by then
            ref = self.actor_ref
            self._settle_timer = self.scheduler.call_later(self.settle_window, lambda: tell_quietly(ref, SettleDue()))
        return None

    def _idle(self) -> bool:
        """Nothing more is on its way to this sender right now (no message waiting, no answer
        outstanding): what finished is recorded at once instead of waiting for company."""
        return self.actor_inbox.empty() and not self._in_flight

    def _already_held(self, delivery: Delivery) -> bool:
        """True for a Send to drop: a restarted router re-sent a delivery this sender holds on a
        timer, has finished, or finished a moment ago."""
        nid = delivery.notification_id
        if nid in self.timers:
            self.directory.tell(ROUTER, TimerSet(nid))
            return True
        if nid in self._unsettled_ids or nid in self._in_flight or nid in self._held_back_ids:
            return True  # settling it tells the router
        if self._recently_settled.get(nid, 0) >= delivery.attempt:  # a re-queue makes a later attempt
            self.directory.tell(ROUTER, Settled((nid,)))
            return True
        return False

    def _made(self, delivery: Delivery) -> bool:
        """True when the store shows this attempt made already (by a sender instance since
        replaced, before the router pulled it again). The router is told it is settled, or —
        when a later attempt is still owed — released (the router frees it in the store)."""
        nid = delivery.notification_id
        record = self.store.notification(nid)
        if record.status in _OWED and record.attempts < delivery.attempt:
            return False
        if record.status in _OWED:
            self.directory.tell(ROUTER, Released((nid,)))
        else:
            self.directory.tell(ROUTER, Settled((nid,)))
        return True

    def _paced(self, delivery: Delivery) -> None:
        wait = self.pacer.reserve(time.monotonic()) if self.pacer else 0.0
        if wait > 0:
            self._later(delivery, wait, paced=True)
        else:
            self._attempt(delivery)

    def _later(self, delivery: Delivery, delay: float, paced: bool = False) -> None:
        ref = self.actor_ref
        timer = self.scheduler.call_later(delay, lambda: tell_quietly(ref, TimerDue(delivery, paced)))
        self.timers[delivery.notification_id] = (timer, delivery)
        self.directory.tell(ROUTER, TimerSet(delivery.notification_id))

    def _attempt(self, delivery: Delivery) -> None:
        if self._unsettled and time.monotonic() - self._oldest_unsettled >= self.settle_window:
            self._settle()  # before a send that may take long, so nothing waits past the window
        if self._needs_the_store(delivery):
            wait = self._store_retry_at - time.monotonic()
            if wait > 0:  # the store was unreachable a moment ago: not attempted, tried again then
                self._later(delivery, wait)
                return
            try:
                delivery = self._with_what_the_store_adds(delivery)
            except StoreUnavailable as error:
                self._later(delivery, self._store_unavailable(error))
                return
            self._store_reached()
        started = time.perf_counter()
        if delivery.group is not None and not delivery.group.incident_ids:
            self._finish(delivery, Outcome.skipped("a reminder of a group with no incident active"), started)
            return
        fault = self.transport_faults.take(self.channel.name) if self.transport_faults.armed else None
        if fault is not None:
            self._finish(delivery, injected_delivery(fault, self.channel, delivery, self.transport_faults), started)
        elif not self._pipelined:
            self._finish(delivery, self.channel.deliver(delivery), started)
        elif len(self._in_flight) >= PIPELINE_DEPTH:
            self._held_back.append(delivery)
            self._held_back_ids.add(delivery.notification_id)
        else:
            answers = self._answers
            outcome = self.channel.deliver_later(  # type: ignore[attr-defined]
                delivery, lambda answer: answers.put(delivery, answer, started))
            if outcome is None:
                self._in_flight[delivery.notification_id] = delivery
            else:
                self._finish(delivery, outcome, started)

    def _needs_the_store(self, delivery: Delivery) -> bool:
        return self.channel.needs_state or (delivery.event_type == GROUP_EVENT and delivery.group is None)

    def _with_what_the_store_adds(self, delivery: Delivery) -> Delivery:
        """The delivery with what its attempt needs from the store: the channel's state for a
        channel that keeps one; a group notification's content (its first attempt closes the
        group). StoreUnavailable when the store cannot be reached."""
        if self.channel.needs_state:
            delivery = replace(delivery, state=self.store.channel_state(
                delivery.channel, delivery.destination, delivery.incident_id))
        if delivery.event_type == GROUP_EVENT and delivery.group is None:
            content, reminder_due = self.store.close_group(delivery.notification_id, self.clock())
            if reminder_due is not None:  # free in the store: the router pulls it when due
                self.directory.tell(ROUTER, GroupsDue(((delivery.channel, delivery.destination, reminder_due),)))
            delivery = replace(delivery, group=content)
        return delivery

    def _store_unavailable(self, error: StoreUnavailable) -> float:
        """Note that the store's database could not be reached (logged on the first of a row
        of tries): until the wait this returns is over nothing asks the store, and then the
        settle timer tries again."""
        wait = outage_backoff(self._store_tries)
        self._store_tries += 1
        report = log.warning if self._store_tries == 1 else log.debug
        report("sender_waiting_for_store", actor=self.name, unrecorded=len(self._unsettled),
               retry_in_secs=wait, reason=str(error))
        self._store_retry_at = time.monotonic() + wait
        if self._settle_timer is not None:
            self._settle_timer.cancel()
        ref = self.actor_ref
        self._settle_timer = self.scheduler.call_later(wait, lambda: tell_quietly(ref, SettleDue()))
        return wait

    def _store_reached(self) -> None:
        """The store answered: an outage noted before is over (logged once)."""
        if self._store_tries:
            log.info("sender_store_back", actor=self.name, tries=self._store_tries)
            self._store_tries = 0

    def _answered(self) -> None:
        """Pipelined deliveries' outcomes; an exception (their transport died) crashes this actor."""
        for delivery, outcome, started in self._answers.take():
            self._in_flight.pop(delivery.notification_id, None)
            if isinstance(outcome, Exception):
                raise outcome
            self._finish(delivery, outcome, started)
        while self._held_back and len(self._in_flight) < PIPELINE_DEPTH:
            delivery = self._held_back.popleft()
            self._held_back_ids.discard(delivery.notification_id)
            self._attempt(delivery)

    def _finish(self, delivery: Delivery, outcome: Outcome, started: float) -> None:
        """Decide what an attempt's outcome means (settled, retry later, given up) and queue
        its record for the next :meth:`_settle`."""
        if self.fenced:
            return  # abandoned during the send: its replacement owns the delivery now
        duration_ms = (time.perf_counter() - started) * 1000.0
        now = self.clock()
        status = _FINAL_STATUS.get(outcome.kind)
        next_attempt_at = None
        if status is None:  # a retry outcome
            if self.policy.gives_up_after(delivery.attempt):
                status = DeliveryStatus.DEAD
                outcome = Outcome.failed(f"gave up after {delivery.attempt} attempts: {outcome.detail}",
                                         outcome.status_code, state=outcome.state)
            else:
                status = DeliveryStatus.RETRYING
                delay = self.policy.delay(delivery.attempt, outcome.retry_after)
                next_attempt_at = now + delay
                log.info("delivery_retrying", retry_in_secs=round(delay, 3),
                         **_log_fields(self.name, delivery, outcome))
                state = outcome.state if outcome.state is not None else delivery.state
                self._later(delivery.next_attempt(state), delay)
        if not self._unsettled:
            self._oldest_unsettled = time.monotonic()
        self._unsettled.append(AttemptRecord(delivery, outcome, status, now, duration_ms, next_attempt_at))
        self._unsettled_ids.add(delivery.notification_id)

    def _settle(self) -> None:
        """Record the finished attempts in one transaction, then free their router slots.

        Finished attempts wait here at most ``settle_window`` (and are settled in ``cleanup``
        too), so only a killed process can lose them: those deliveries are then owed again and
        repeated with the same id. A fenced sender records and reports nothing. While the
        store's database cannot be reached they are kept, and tried again on a timer (see the
        module's docstring); a sender stopped meanwhile loses them as a killed one would.
        """
        if time.monotonic() < self._store_retry_at:
            return  # the store was unreachable: the timer set then tries again
        if self._settle_timer is not None:
            self._settle_timer.cancel()
            self._settle_timer = None
        if not self._unsettled or self.fenced:
            return
        try:
            outcomes = self.store.record_attempts(self._unsettled)
        except StoreUnavailable as error:  # kept, and recorded once the store is back
            self._store_unavailable(error)
            return
        self._store_reached()
        records, self._unsettled = self._unsettled, []
        self._unsettled_ids.clear()
        settled: list[str] = []
        released: list[str] = []
        for record, recorded in zip(records, outcomes):
            nid = record.delivery.notification_id
            if not recorded:  # another sender made this attempt; whatever is still owed is theirs
                log.warning("attempt_not_recorded", reason="the delivery is no longer this sender's",
                            **_log_fields(self.name, record.delivery, record.outcome))
                held = self.timers.pop(nid, None)
                if held:
                    held[0].cancel()
                released.append(nid)
                continue
            if record.status is DeliveryStatus.RETRYING:
                continue  # still held: its timer is running
            if record.status is DeliveryStatus.DEAD:
                log.error("delivery_failed", disable_destination=record.outcome.disable_destination,
                          **_log_fields(self.name, record.delivery, record.outcome))
            else:
                log.debug("delivery_settled", status=record.status.value, notification_id=nid)
            self._remember_settled(nid, record.delivery.attempt)
            settled.append(nid)
            self.hub.publish(DeliverySettled(record.delivery, record.outcome, record.status.value))
        if settled:
            self.directory.tell(ROUTER, Settled(tuple(settled)))
        if released:  # the router frees them in the store and pulls them from there
            self.directory.tell(ROUTER, Released(tuple(released)))

    def _remember_settled(self, notification_id: str, attempt: int) -> None:
        self._recently_settled[notification_id] = attempt
        if len(self._recently_settled) > RECENTLY_SETTLED:
            self._recently_settled.popitem(last=False)


class _AnswerBox:
    """Outcomes of pipelined deliveries, put by the transport's thread and taken by the sender,
    which is told ``Answered`` only when the box goes from empty to not: one message per batch."""

    def __init__(self, sender: pykka.ActorRef) -> None:
        self._sender = sender
        self._answers: list[tuple[Delivery, Outcome | Exception, float]] = []
        self._lock = threading.Lock()

    def put(self, delivery: Delivery, outcome: Outcome | Exception, started: float) -> None:
        with self._lock:
            first = not self._answers
            self._answers.append((delivery, outcome, started))
        if first:
            tell_quietly(self._sender, Answered())

    def take(self) -> list[tuple[Delivery, Outcome | Exception, float]]:
        with self._lock:
            answers, self._answers = self._answers, []
        return answers


def _log_fields(actor: str, delivery: Delivery, outcome: Outcome) -> dict[str, object]:
    return dict(actor=actor, notification_id=delivery.notification_id, incident_id=delivery.incident_id,
                channel=delivery.channel, destination=delivery.destination, attempt=delivery.attempt,
                status_code=outcome.status_code, detail=outcome.detail)
