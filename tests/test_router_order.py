"""The router keeps each incident's deliveries to a destination in order, whatever order the
news of them reaches it in. The router is driven directly: its senders are recorders, and the
test plays their part in the store (found by the chaos test, one run in ~18 under load)."""
from __future__ import annotations

import queue
import time
from dataclasses import replace
from typing import Callable, Iterable

import pykka
import pytest

from actors.directory import ActorDirectory
from actors.domain.changes import Change, PendingEvent
from actors.domain.models import (Delivery, DeliveryStatus, EventKind, Incident, IncidentState, IncidentType,
                                  Outcome, Severity, utc_now)
from actors.domain.routing import Receiver
from actors.lease import RouterLease
from actors.messages import InFlightCounts, Owed, Released, Send, SenderRestarted, Settled, Wake
from actors.router import RouterActor
from actors.scheduler import Scheduler
from actors.store.base import AttemptRecord
from actors.store.sqlite import SqliteStore
from tests.support.actors import TIMEOUT, Recorder, Sync, next_told

RECEIVERS = (Receiver("webhook", "default"),)
A, B = "i-1", "i-4"  # incidents of pool members 0 and 1 (stable hash of the id)


class RacingStore(SqliteStore):
    """The store, plus a write of another thread's landing right after the next release."""

    after_release: Callable[[], None] | None = None

    def release(self, notification_ids: Iterable[str]) -> None:
        super().release(notification_ids)
        write, self.after_release = self.after_release, None
        if write is not None:
            write()


class Rig:
    """A router over a real store, with two recording senders (``told[0]``, ``told[1]``)."""

    def __init__(self, tmp_path) -> None:
        self.store = RacingStore(tmp_path / "s.db")
        self.lease = RouterLease("server-a")
        self.scheduler = Scheduler()
        directory = ActorDirectory()
        self.told: list[queue.Queue] = [queue.Queue(), queue.Queue()]
        self.senders = [Recorder.start(told) for told in self.told]
        for n, sender in enumerate(self.senders):
            directory.register(f"sender:webhook:{n}", sender)
        self.router = RouterActor.start(None, "router", self.store, RECEIVERS, {"webhook": 2}, directory,
                                        self.scheduler, self.lease, 10, 10)
        self.quiet()  # the first pull done: nothing owed yet, every destination served from memory

    def quiet(self) -> None:
        """Return once the router has handled what it was told and the pulls that asked for:
        they are queued before the first answer comes back, so the second comes after them."""
        for _ in range(2):
            self.router.ask(InFlightCounts(), timeout=TIMEOUT)

    def owe(self, incident_id: str, state: IncidentState, lease: str | None = None) -> Delivery:
        """Commit the incident's entering ``state`` and tell the router, as the processor does
        (under ``lease`` instead of the current one: committed just before the epoch began)."""
        now = utc_now()
        incident = Incident(incident_id, "fp", "t", "", Severity.P1, IncidentType.DATA, state, "s", now, now, now)
        event = PendingEvent(EventKind.STATE_CHANGED, now, "t", {}, state.event_type, RECEIVERS)
        with self.lease.current() as current:
            lease = lease or current
            (delivery,) = self.store.apply([Change(incident, False, (event,))], lease=lease).deliveries
        self.router.tell(Owed((delivery,), lease))
        return delivery

    def finish(self, delivery: Delivery, status: DeliveryStatus = DeliveryStatus.DELIVERED) -> None:
        """Record the attempt as its sender does, before telling the router it is settled; a
        retry is due again at once."""
        outcome = {DeliveryStatus.DELIVERED: Outcome.delivered("HTTP 200", 200),
                   DeliveryStatus.RETRYING: Outcome.retry("HTTP 503", 503),
                   DeliveryStatus.DEAD: Outcome.failed("HTTP 400", 400)}[status]
        now = time.time()
        (recorded,) = self.store.record_attempts([AttemptRecord(
            delivery, outcome, status, now, 1.0, now if status is DeliveryStatus.RETRYING else None)])
        assert recorded

    def sent(self, sender: int) -> Send:
        message = next_told(self.told[sender])
        assert isinstance(message, Send)
        return message

    def all_sent(self, sender: int) -> list[str]:
        """Every delivery sent to ``sender`` and not yet looked at, once the router has handled
        everything told so far."""
        self.router.ask(InFlightCounts(), timeout=TIMEOUT)
        self.senders[sender].ask(Sync(), timeout=TIMEOUT)
        sent = []
        while not self.told[sender].empty():
            sent += ids(self.told[sender].get_nowait())
        return sent

    def close(self) -> None:
        pykka.ActorRegistry.stop_all()
        self.scheduler.stop()
        self.store.close()


@pytest.fixture
def rig(tmp_path):
    rig = Rig(tmp_path)
    yield rig
    rig.close()


def ids(send: Send) -> list[str]:
    return [d.notification_id for d in send.deliveries]


def test_a_later_event_waits_while_one_pulled_from_the_store_is_out_though_the_earlier_settled(rig):
    """The store hands out the next delivery of an incident as soon as it shows the one before
    finished, which can be before that one's Settled reaches the router. When that Settled
    comes, the pulled one is still out: the event after it must keep waiting."""
    detected = rig.owe(A, IncidentState.DETECTED)
    assert ids(rig.sent(0)) == [detected.notification_id]
    rig.finish(detected)  # recorded; the sender's Settled is still on its way
    triaged = rig.owe(A, IncidentState.TRIAGED)  # waits in memory behind the detection
    other = rig.owe(B, IncidentState.DETECTED)
    assert ids(rig.sent(1)) == [other.notification_id]
    rig.router.tell(SenderRestarted("sender:webhook:1"))  # the destination is served from the store
    assert ids(rig.sent(1)) == [other.notification_id]  # pulled again, and so is the triage:
    pulled = rig.sent(0)
    assert ids(pulled) == [triaged.notification_id] and pulled.verify
    rig.router.tell(Settled((detected.notification_id,)))  # late; every owed row is ours: memory again
    investigating = rig.owe(A, IncidentState.INVESTIGATING)
    assert rig.all_sent(0) == [], "the investigation overtook the triage still out"
    rig.finish(triaged)
    rig.router.tell(Settled((triaged.notification_id,)))
    assert ids(rig.sent(0)) == [investigating.notification_id]


def test_a_delivery_handed_out_again_before_its_settled_arrives_is_counted_once(rig):
    """A dead delivery re-queued before its Settled reached the router is pulled and sent again
    while the router still counts it out; once both are settled, nothing of the incident is out."""
    detected = rig.owe(A, IncidentState.DETECTED)
    assert ids(rig.sent(0)) == [detected.notification_id]
    rig.finish(detected, DeliveryStatus.DEAD)  # its Settled is still on its way
    rig.store.requeue(detected.notification_id, time.time())  # as Engine.requeue does
    rig.router.tell(Wake())
    again = rig.sent(0)
    assert ids(again) == [detected.notification_id] and again.verify
    rig.router.tell(Settled((detected.notification_id,)))  # the dead attempt's
    rig.finish(again.deliveries[0])
    rig.router.tell(Settled((detected.notification_id,)))  # the re-queued attempt's
    triaged = rig.owe(A, IncidentState.TRIAGED)
    assert ids(rig.sent(0)) == [triaged.notification_id]
    assert rig.router.ask(InFlightCounts(), timeout=TIMEOUT) == {"webhook": (1, 0)}


def test_a_release_frees_the_delivery_in_the_store_and_a_later_event_waits_behind_it(rig):
    """A sender found the delivery made elsewhere, still owed: the router frees it in the store
    (only the router does, so none of its pulls takes it back before it hears) and pulls it."""
    detected = rig.owe(A, IncidentState.DETECTED)
    assert ids(rig.sent(0)) == [detected.notification_id]
    rig.router.tell(Released((detected.notification_id,)))
    rig.owe(A, IncidentState.TRIAGED)  # a later event for the same destination
    again = rig.sent(0)
    assert ids(again) == [detected.notification_id] and again.verify
    assert rig.all_sent(0) == [], "the triage overtook the detection"


def test_a_retry_recorded_just_after_the_router_let_go_leaves_it_free_and_the_next_event_behind_it(rig):
    """The router sent a delivery to a sender instance that had just replaced another, then
    heard of the replacement and let go of it; the new instance's retry is recorded just after.
    The row stays free, so the router pulls it back and the next event waits behind it."""
    detected = rig.owe(A, IncidentState.DETECTED)
    assert ids(rig.sent(0)) == [detected.notification_id]
    rig.store.after_release = lambda: rig.finish(detected, DeliveryStatus.RETRYING)
    rig.router.tell(SenderRestarted("sender:webhook:0"))
    rig.quiet()
    triaged = rig.owe(A, IncidentState.TRIAGED)
    assert rig.all_sent(0) == [detected.notification_id], "the triage overtook the detection waiting to retry"
    rig.finish(replace(detected, attempt=2))
    rig.router.tell(Settled((detected.notification_id,)))
    assert ids(rig.sent(0)) == [triaged.notification_id]


def test_a_release_coming_after_the_delivery_was_handed_out_again_keeps_the_next_event_behind_it(rig):
    """A Released can answer a Send the router has since superseded: here it pulled the
    delivery again after its sender was replaced, then hears that the first Send's attempt was
    made already. Forgetting the delivery, the router frees it in the store, so it pulls it
    back instead of trusting memory for its destination while the second Send is out."""
    detected = rig.owe(A, IncidentState.DETECTED, lease="server-a:0")  # committed as the epoch began
    assert ids(rig.sent(0)) == [detected.notification_id]  # pulled from the store: attempt 1
    rig.finish(detected, DeliveryStatus.RETRYING)  # by the instance being replaced, in its clean-up
    rig.router.tell(SenderRestarted("sender:webhook:0"))
    assert ids(rig.sent(0)) == [detected.notification_id]  # pulled again: attempt 2
    rig.router.tell(Released((detected.notification_id,)))  # the new instance's answer to the first Send
    rig.quiet()
    triaged = rig.owe(A, IncidentState.TRIAGED)
    assert rig.all_sent(0) == [detected.notification_id], "the triage overtook the detection"
    rig.finish(replace(detected, attempt=2))
    rig.router.tell(Settled((detected.notification_id,)))
    assert ids(rig.sent(0)) == [triaged.notification_id]
