"""The SQLite store: one transaction per change, leases, order per (incident, destination)."""
from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import timedelta

import pytest

from actors.domain.changes import Change, PendingEvent
from actors.domain.errors import IllegalTransition, NotFound
from actors.domain.models import (DeliveryStatus, EventKind, Incident, IncidentState, IncidentType, Outcome,
                                  Severity, utc_now)
from actors.domain.routing import Receiver
from actors.store.sqlite import SqliteStore

HOOK = Receiver("webhook", "default")


@pytest.fixture
def store(tmp_path):
    store = SqliteStore(tmp_path / "s.db")
    yield store
    store.close()


def incident(incident_id: str = "i-1", state: IncidentState = IncidentState.DETECTED) -> Incident:
    now = utc_now()
    return Incident(incident_id, "fp", "title", "", Severity.P1, IncidentType.DATA, state, "src", now, now, now)


def lifecycle_change(inc: Incident, is_new: bool = True) -> Change:
    event = PendingEvent(EventKind.CREATED if is_new else EventKind.STATE_CHANGED, utc_now(), "t", {},
                         inc.state.event_type, (HOOK,))
    return Change(inc, is_new, (event,))


def test_an_incident_its_event_and_its_outbox_row_are_written_together(store):
    store.apply([lifecycle_change(incident())])
    assert store.incident("i-1").title == "title"
    assert [e.kind for e in store.timeline("i-1")] == [EventKind.CREATED]
    (delivery,) = store.lease_due("webhook", "default", utc_now().timestamp() + 1, 10)
    assert (delivery.event_type, delivery.incident.state) == ("incident.detected", IncidentState.DETECTED)


def test_a_failing_change_rolls_back_the_whole_transaction(store):
    good = lifecycle_change(incident("i-1"))
    broken = replace(lifecycle_change(incident("i-2")), events=(PendingEvent(
        EventKind.CREATED, utc_now(), "t", {"unserialisable": object()}),))
    with pytest.raises(TypeError):
        store.apply([good, broken])
    with pytest.raises(NotFound):
        store.incident("i-1")


def test_a_later_event_waits_until_the_earlier_one_for_the_same_incident_is_settled(store):
    store.apply([lifecycle_change(incident())])
    store.apply([lifecycle_change(incident(state=IncidentState.RESOLVED), is_new=False)])
    now = utc_now().timestamp() + 1
    (first,) = store.lease_due("webhook", "default", now, 10)
    assert store.lease_due("webhook", "default", now, 10) == []  # leased, and the resolve must wait
    store.record_attempt(first, Outcome.retry("HTTP 503", 503), DeliveryStatus.RETRYING, now, 1.0, now + 60)
    assert store.lease_due("webhook", "default", now + 120, 10) == []  # still owed: order holds
    store.record_attempt(first, Outcome.delivered("HTTP 200", 200), DeliveryStatus.DELIVERED, now, 1.0)
    (second,) = store.lease_due("webhook", "default", now, 10)
    assert second.event_type == "incident.resolved"


def test_released_leases_are_handed_out_again(store):
    store.apply([lifecycle_change(incident())])
    now = utc_now().timestamp() + 1
    (leased,) = store.lease_due("webhook", "default", now, 10)
    store.release([leased.notification_id])
    assert [d.notification_id for d in store.lease_due("webhook", "default", now, 10)] == [leased.notification_id]
    store.release()
    assert len(store.lease_due("webhook", "default", now, 10)) == 1


def test_only_dead_notifications_can_be_requeued(store):
    store.apply([lifecycle_change(incident())])
    now = utc_now().timestamp() + 1
    (delivery,) = store.lease_due("webhook", "default", now, 10)
    with pytest.raises(IllegalTransition):
        store.requeue(delivery.notification_id, now)
    store.record_attempt(delivery, Outcome.failed("HTTP 400", 400), DeliveryStatus.DEAD, now, 1.0)
    assert store.requeue(delivery.notification_id, now).status is DeliveryStatus.QUEUED
    assert len(store.lease_due("webhook", "default", now, 10)) == 1


def test_channel_state_is_stored_with_an_attempt_and_served_with_the_next_delivery(store):
    store.apply([lifecycle_change(incident())])
    store.apply([lifecycle_change(incident(state=IncidentState.TRIAGED), is_new=False)])
    now = utc_now().timestamp() + 1
    (first,) = store.lease_due("webhook", "default", now, 10)
    store.record_attempt(first, Outcome.delivered(state={"ts": "1.2"}), DeliveryStatus.DELIVERED, now, 1.0)
    (second,) = store.lease_due("webhook", "default", now, 10)
    assert second.state == {"ts": "1.2"}


def test_the_store_survives_a_reopen_with_everything_owed(tmp_path):
    first = SqliteStore(tmp_path / "s.db")
    first.apply([lifecycle_change(incident())])
    first.close()
    again = SqliteStore(tmp_path / "s.db")
    assert len(again.lease_due("webhook", "default", (utc_now() + timedelta(seconds=1)).timestamp(), 10)) == 1
    assert sqlite3.connect(tmp_path / "s.db").execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    again.close()


def test_owed_deliveries_of_a_destination_no_longer_configured_are_given_up_visibly(store):
    slack = Receiver("slack", "default")
    event = PendingEvent(EventKind.CREATED, utc_now(), "t", {}, "incident.detected", (HOOK, slack))
    store.apply([Change(incident(), True, (event,))])
    assert store.give_up_unrouted({("webhook", "default")}, utc_now().timestamp()) == 1
    (dead,), _ = store.list_notifications(status="dead")
    assert dead.channel == "slack" and "no longer configured" in dead.last_error
    assert store.timeline("i-1")[-1].kind is EventKind.NOTIFICATION_DEAD
    assert len(store.lease_due("webhook", "default", utc_now().timestamp() + 1, 10)) == 1  # still owed
