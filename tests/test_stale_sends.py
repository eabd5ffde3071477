"""A sender handed a delivery the store shows already attempted (by an instance since replaced)
tells the router the truth: settled when it is, released when a later attempt is still owed,
so that no later event of the incident can overtake it (found by the chaos test). On each store
engine."""
from __future__ import annotations

import queue
import time

import pytest

from actors.channels.faults import ChannelFaults
from actors.directory import ActorDirectory
from actors.domain.changes import Change, PendingEvent
from actors.domain.models import (Delivery, DeliveryStatus, EventKind, Incident, IncidentState, IncidentType,
                                  Outcome, Severity, utc_now)
from actors.domain.retry import RetryPolicy
from actors.domain.routing import Receiver
from actors.events import EventHub
from actors.messages import Released, Send, Settled
from actors.scheduler import Scheduler
from actors.sender import SenderActor
from actors.store.base import AttemptRecord, Store
from tests.support.actors import Recorder, next_told

LEASE = "server-a:1"


class NeverSends:
    name, destinations, needs_state = "webhook", ("default",), False

    def __init__(self) -> None:
        self.sent: list[Delivery] = []

    def deliver(self, delivery: Delivery) -> Outcome:
        self.sent.append(delivery)
        return Outcome.delivered("HTTP 200", 200)

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.fixture
def setup(store):
    told: queue.Queue = queue.Queue()
    directory = ActorDirectory()
    router = Recorder.start(told)
    directory.register("router", router)
    scheduler = Scheduler()
    channel = NeverSends()
    sender = SenderActor.start(None, "sender:webhook:0", channel, store, directory, scheduler, EventHub(),
                               RetryPolicy(3, 60, 300), ChannelFaults())
    yield store, sender, told, channel
    sender.stop()
    router.stop()
    scheduler.stop()


def owed_delivery(store: Store) -> Delivery:
    now = utc_now()
    incident = Incident("i-1", "fp", "t", "", Severity.P1, IncidentType.DATA, IncidentState.DETECTED, "s",
                        now, now, now)
    event = PendingEvent(EventKind.CREATED, now, "t", {}, "incident.detected", (Receiver("webhook", "default"),))
    (delivery,) = store.apply([Change(incident, True, (event,))], lease=LEASE).deliveries
    return delivery


def test_a_stale_send_of_a_delivery_still_owed_is_released_not_settled(setup):
    store, sender, told, channel = setup
    delivery = owed_delivery(store)
    later = time.time() + 3600
    (recorded,) = store.record_attempts([AttemptRecord(delivery, Outcome.retry("HTTP 503", 503),
                                                       DeliveryStatus.RETRYING, time.time(), 1.0, later)])
    assert recorded  # attempt 1 made by a sender since replaced; attempt 2 is due in an hour
    sender.tell(Send((delivery,), verify=True))  # pulled before that record: it names attempt 1
    assert next_told(told) == Released((delivery.notification_id,))
    assert channel.sent == []
    # still leased to its router, which frees it when it hears (tests/test_router_order.py)
    assert not store.has_free_owed("webhook", "default", LEASE)


def test_a_stale_send_of_a_delivery_already_settled_is_settled(setup):
    store, sender, told, channel = setup
    delivery = owed_delivery(store)
    store.record_attempts([AttemptRecord(delivery, Outcome.delivered("HTTP 200", 200), DeliveryStatus.DELIVERED,
                                         time.time(), 1.0)])
    sender.tell(Send((delivery,), verify=True))
    assert next_told(told) == Settled((delivery.notification_id,))
    assert channel.sent == []
