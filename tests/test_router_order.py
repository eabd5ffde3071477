"""The router keeps each incident's deliveries to a destination in order, whatever order the
news of them reaches it in. The router is driven directly: its senders are recorders, and the
test plays their part in the store (found by the chaos test, one run in ~18 under load)."""
from __future__ import annotations

import queue
import time

import pykka
import pytest

from actors.directory import ActorDirectory
from actors.domain.changes import Change, PendingEvent
from actors.domain.models import (Delivery, DeliveryStatus, EventKind, Incident, IncidentState, IncidentType,
                                  Outcome, Severity, utc_now)
from actors.domain.routing import Receiver
from actors.lease import RouterLease
from actors.messages import InFlightCounts, Owed, Send, SenderRestarted, Settled, Wake
from actors.router import RouterActor
from actors.scheduler import Scheduler
from actors.store.sqlite import AttemptRecord, SqliteStore
from tests.support.actors import TIMEOUT, Recorder, Sync, next_told

RECEIVERS = (Receiver("webhook", "default"),)
A, B = "i-1", "i-4"  # incidents of pool members 0 and 1 (stable hash of the id)


class Rig:
    """A router over a real store, with two recording senders (``told[0]``, ``told[1]``)."""

    def __init__(self, tmp_path) -> None:
        self.store = SqliteStore(tmp_path / "s.db")
        self.lease = RouterLease("server-a")
        self.scheduler = Scheduler()
        directory = ActorDirectory()
        self.told: list[queue.Queue] = [queue.Queue(), queue.Queue()]
        self.senders = [Recorder.start(told) for told in self.told]
        for n, sender in enumerate(self.senders):
            directory.register(f"sender:webhook:{n}", sender)
        self.router = RouterActor.start(None, "router", self.store, RECEIVERS, {"webhook": 2}, directory,
                                        self.scheduler, self.lease, 10, 10)
        # The first answer comes after started(), which asked for the first pull; the second
        # after that pull (nothing owed yet: every destination is served from memory).
        for _ in range(2):
            self.router.ask(InFlightCounts(), timeout=TIMEOUT)

    def owe(self, incident_id: str, state: IncidentState) -> Delivery:
        """Commit the incident's entering ``state`` and tell the router, as the processor does."""
        now = utc_now()
        incident = Incident(incident_id, "fp", "t", "", Severity.P1, IncidentType.DATA, state, "s", now, now, now)
        event = PendingEvent(EventKind.STATE_CHANGED, now, "t", {}, state.event_type, RECEIVERS)
        with self.lease.current() as lease:
            (delivery,) = self.store.apply([Change(incident, False, (event,))], lease=lease).deliveries
        self.router.tell(Owed((delivery,), lease))
        return delivery

    def finish(self, delivery: Delivery, status: DeliveryStatus = DeliveryStatus.DELIVERED) -> None:
        """Record the attempt as its sender does, before telling the router it is settled."""
        delivered = status is DeliveryStatus.DELIVERED
        outcome = Outcome.delivered("HTTP 200", 200) if delivered else Outcome.failed("HTTP 400", 400)
        (recorded,) = self.store.record_attempts([AttemptRecord(delivery, outcome, status, time.time(), 1.0)])
        assert recorded

    def sent(self, sender: int) -> Send:
        message = next_told(self.told[sender])
        assert isinstance(message, Send)
        return message

    def nothing_sent(self, sender: int) -> bool:
        """True once the router has handled everything told so far and sent ``sender`` nothing more."""
        self.router.ask(InFlightCounts(), timeout=TIMEOUT)
        self.senders[sender].ask(Sync(), timeout=TIMEOUT)
        return self.told[sender].empty()

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
    assert rig.nothing_sent(0), "the investigation overtook the triage still out"
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
