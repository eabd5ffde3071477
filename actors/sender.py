"""SenderActor: one pool member of one channel. Attempts deliveries and holds their retry timers.

For each delivery it paces (token bucket), calls the channel once, records the attempt and
the new status in the store, then either tells the router the delivery is settled or keeps
a retry timer that later tells this actor to try again: it never sleeps, so its mailbox
keeps moving. Timers die with the actor (cancelled in ``cleanup``); the store still says
the delivery is owed, so the router hands it out again after a restart.

An exception escaping ``Channel.deliver`` is a bug: it crashes this actor (pykka calls
``on_failure``) and the pool supervisor starts a fresh one.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Mapping

import pykka
import structlog

from .channels.base import Channel
from .directory import ActorDirectory
from .domain.models import Delivery, DeliveryStatus, Outcome, OutcomeKind
from .domain.ratelimit import TokenBucket
from .domain.retry import RetryPolicy
from .faults import ActorFaults
from .events import DeliverySettled, EventHub
from .messages import Attempt, RetryResumed, RetryWaiting, Send, Settled
from .scheduler import Scheduler, TimerHandle
from .store.sqlite import AttemptRecord, SqliteStore
from .supervision import SupervisedActor, tell_quietly

log = structlog.get_logger(__name__)

ROUTER = "router"
_FINAL_STATUS = {OutcomeKind.DELIVERED: DeliveryStatus.DELIVERED, OutcomeKind.SKIPPED: DeliveryStatus.SKIPPED,
                 OutcomeKind.FAILED: DeliveryStatus.DEAD}
#: Finished attempts recorded together at most (while more messages wait in the mailbox).
SETTLE_BATCH = 64
_OWED = (DeliveryStatus.QUEUED, DeliveryStatus.IN_FLIGHT, DeliveryStatus.RETRYING)


class SenderActor(SupervisedActor):
    def __init__(self, supervisor: pykka.ActorRef | None, name: str, channel: Channel,
                 store: SqliteStore, directory: ActorDirectory, scheduler: Scheduler, hub: EventHub,
                 policy: RetryPolicy, rate_per_sec: float | None = None,
                 clock: Callable[[], float] = time.time, faults: ActorFaults | None = None) -> None:
        super().__init__(supervisor, name, faults)
        self.channel = channel
        self.store = store
        self.directory = directory
        self.scheduler = scheduler
        self.hub = hub
        self.policy = policy
        self.pacer = TokenBucket(rate_per_sec) if rate_per_sec else None
        self.clock = clock
        self.timers: dict[str, TimerHandle] = {}
        self._unsettled: list[AttemptRecord] = []

    def cleanup(self) -> None:
        self._settle()
        for timer in self.timers.values():
            timer.cancel()
        self.timers.clear()
        self.channel.close()

    def context_of(self, message: Any) -> Mapping[str, str]:
        if isinstance(message, (Send, Attempt)):
            return {"incident_id": message.delivery.incident_id,
                    "notification_id": message.delivery.notification_id}
        return {}

    def receive(self, message: Any) -> Any:
        if isinstance(message, Send):
            if not self._already_handled(message.delivery):
                self._paced(message.delivery)
        elif isinstance(message, Attempt):
            self.timers.pop(message.delivery.notification_id, None)
            self.directory.tell(ROUTER, RetryResumed(message.delivery.notification_id))
            if message.paced:
                self._attempt(message.delivery)
            else:
                self._paced(message.delivery)
        else:
            return super().receive(message)
        if len(self._unsettled) >= SETTLE_BATCH or self.actor_inbox.empty():
            self._settle()  # nothing else waiting: record what finished now
        return None

    def _already_handled(self, delivery: Delivery) -> bool:
        """True for a Send to ignore: this sender already holds the delivery on a timer, or
        the store shows an attempt since the router pulled it. Both happen after the router
        restarts (the new one re-sends what senders still hold); acting on it would send
        twice and could deliver a trigger again after its resolve."""
        nid = delivery.notification_id
        if any(record.delivery.notification_id == nid for record in self._unsettled):
            return True  # finished, not yet recorded: the router re-sent it after a restart
        if nid in self.timers:
            self.directory.tell(ROUTER, RetryWaiting(nid))
            return True
        record = self.store.notification(nid)
        if record.status in _OWED and record.attempts < delivery.attempt:
            return False
        self.directory.tell(ROUTER, Settled(nid))  # frees the router's slot (before any new lease)
        if record.status in _OWED:  # attempted by an instance that died: nobody holds it now,
            self.store.release([nid])  # so let the router lease it afresh
        return True

    def _paced(self, delivery: Delivery) -> None:
        wait = self.pacer.reserve(time.monotonic()) if self.pacer else 0.0
        if wait > 0:
            self._later(delivery, wait, paced=True)
        else:
            self._attempt(delivery)

    def _later(self, delivery: Delivery, delay: float, paced: bool = False) -> None:
        ref = self.actor_ref
        self.timers[delivery.notification_id] = self.scheduler.call_later(
            delay, lambda: tell_quietly(ref, Attempt(delivery, paced)))
        self.directory.tell(ROUTER, RetryWaiting(delivery.notification_id))

    def _attempt(self, delivery: Delivery) -> None:
        started = time.perf_counter()
        outcome = self.channel.deliver(delivery)
        duration_ms = (time.perf_counter() - started) * 1000.0
        now = self.clock()
        status = _FINAL_STATUS.get(outcome.kind)
        delay = 0.0
        if status is None:  # a retry outcome
            if self.policy.gives_up_after(delivery.attempt):
                status = DeliveryStatus.DEAD
                outcome = Outcome.failed(f"gave up after {delivery.attempt} attempts: {outcome.detail}",
                                         outcome.status_code, state=outcome.state)
            else:
                status = DeliveryStatus.RETRYING
                delay = self.policy.delay(delivery.attempt, outcome.retry_after)
        if status is not DeliveryStatus.RETRYING:
            self._unsettled.append(AttemptRecord(delivery, outcome, status, now, duration_ms))
            return  # recorded by _settle once the mailbox is empty or the batch is full
        self._settle()  # keep the store's order of events
        self.store.record_attempt(delivery, outcome, status, now, duration_ms, next_attempt_at=now + delay)
        log.info("delivery_retrying", retry_in_secs=round(delay, 3), **_log_fields(self.name, delivery, outcome))
        state = outcome.state if outcome.state is not None else delivery.state
        self._later(delivery.next_attempt(state), delay)

    def _settle(self) -> None:
        """Record the finished attempts in one transaction, then free their router slots.

        Finished attempts wait here only while more messages are queued (at most
        SETTLE_BATCH), and are settled in ``cleanup`` too, so only a killed process can lose
        them: those deliveries are then owed again and repeated with the same id.
        """
        if not self._unsettled:
            return
        records, self._unsettled = self._unsettled, []
        self.store.record_attempts(records)
        for record in records:
            fields = _log_fields(self.name, record.delivery, record.outcome)
            if record.status is DeliveryStatus.DEAD:
                log.error("delivery_failed", disable_destination=record.outcome.disable_destination, **fields)
            else:
                log.debug("delivery_settled", status=record.status.value, **fields)
            self.directory.tell(ROUTER, Settled(record.delivery.notification_id))
            self.hub.publish(DeliverySettled(record.delivery, record.outcome, record.status.value))


def _log_fields(actor: str, delivery: Delivery, outcome: Outcome) -> dict[str, object]:
    return dict(actor=actor, notification_id=delivery.notification_id, incident_id=delivery.incident_id,
                channel=delivery.channel, destination=delivery.destination, attempt=delivery.attempt,
                status_code=outcome.status_code, detail=outcome.detail)
