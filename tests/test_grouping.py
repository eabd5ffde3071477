"""Grouping: the route settings and their inheritance, what routing owes a grouped route, and
the store's group notifications (opened, joined, closed, the next one due after the interval),
on each store engine."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from actors.domain.changes import Change, PendingEvent
from actors.domain.config import settings_from_mapping
from actors.domain.errors import ConfigError, NotFound
from actors.domain.grouping import GROUP_EVENT, GroupSlot
from actors.domain.models import DeliveryStatus, EventKind, Outcome, Severity, utc_now
from actors.domain.routing import Routing
from actors.store.base import Store
from tests.test_retention import prune_all
from tests.test_store import incident, lease, record

TREE = {"receiver": "default", "group_by": ["service"], "group_wait_secs": 10, "repeat_interval_secs": 60,
        "routes": [{"name": "db", "matchers": ['service="db"'], "group_wait_secs": 1,
                    "routes": [{"name": "p0", "matchers": ['severity="P0"'], "group_by": ["service", "env"]}]},
                   {"name": "web", "matchers": ['service="web"'], "group_by": []}]}


def routing(route=TREE) -> Routing:
    return Routing.of(settings_from_mapping({
        "notifications": {"webhook_enabled": True, "default_webhook_url": "https://hooks.example/x",
                          "pagerduty_enabled": True, "pagerduty_integration_key_env": "PD_KEY"},
        "route": route}))


def test_each_grouping_setting_is_inherited_unless_a_route_sets_its_own():
    routes = {route.path: route.grouping for route in routing().tree.root.walk()}
    assert (routes["root"].by, routes["root"].wait_secs, routes["root"].interval_secs) == (("service",), 10, 300)
    assert (routes["root/db"].by, routes["root/db"].wait_secs) == (("service",), 1)
    assert (routes["root/db/p0"].by, routes["root/db/p0"].wait_secs) == (("service", "env"), 1)
    assert {grouping.repeat_secs for grouping in routes.values() if grouping is not None} == {60}
    assert routes["root/web"] is None  # group_by = [] turns grouping off below a grouped route


def test_a_grouped_route_owes_pagerduty_per_event_and_the_other_channels_a_group():
    db = replace(incident(), affected_services=("db",), labels={"env": "prod"}, severity=Severity.P0)
    routed = routing().route(db)
    assert [(r.channel, path, g.labels(db)) for r, path, g in routed.grouped] == [
        ("webhook", "root/db/p0", {"service": "db", "env": "prod"})]
    assert [r.channel for r in routed.owed] == ["pagerduty"]
    assert [d.verdict.value for d in routed.decisions] == ["routed", "routed"]  # the record is as before
    web = routing().route(replace(db, affected_services=("web",)))
    assert web.grouped == () and [r.channel for r in web.owed] == ["webhook", "pagerduty"]


@pytest.mark.parametrize("route, key, problem", [
    ({"group_wait_secs": -1}, "route.group_wait_secs", "must not be negative"),
    ({"group_interval_secs": 0}, "route.group_interval_secs", "must be greater than 0"),
    ({"routes": [{"repeat_interval_secs": -5}]}, "route.routes[0].repeat_interval_secs", "must be greater than 0"),
    ({"group_by": ["service", "service"]}, "route.group_by", "names each field or label once"),
    ({"routes": [{"group_by": [""]}]}, "route.routes[0].group_by", "names each field or label once"),
])
def test_bad_grouping_settings_are_refused_naming_the_key(route, key, problem):
    with pytest.raises(ConfigError) as raised:
        routing({"receiver": "default", **route})
    assert raised.value.key == key and problem in str(raised.value)


def test_group_labels_are_written_as_matchers_write_the_values():
    grouping = routing({"receiver": "default", "group_by": ["severity", "type", "service", "env"]}).tree.root.grouping
    inc = replace(incident(), affected_services=("web", "db"), labels={"env": "prod"})
    assert grouping.labels(inc) == {"severity": "P1", "type": "data", "service": "db,web", "env": "prod"}


def test_a_new_group_is_due_after_its_wait_and_a_notified_one_after_its_interval():
    slot = GroupSlot("webhook", "default", "root", "{}", wait_secs=30, interval_secs=300)
    assert slot.due_at(1000, None) == 1030
    assert slot.due_at(1000, 900) == 1200
    assert slot.due_at(1000, 100) == 1000  # the interval is long past: at once


SLOT = GroupSlot("webhook", "default", "root", '{"service":"db"}', wait_secs=30, interval_secs=300)


def grouped_event(incident_id: str, at_offset: float = 0.0, is_new: bool = True) -> Change:
    inc = incident(incident_id)
    event = PendingEvent(EventKind.CREATED, utc_now() + timedelta(seconds=at_offset), "t", {},
                         inc.state.event_type, (), "", (SLOT,))
    return Change(inc, is_new, (event,))


def test_events_of_a_group_join_its_open_notification_until_its_first_attempt_closes_it(store: Store):
    first = store.apply([grouped_event("i-1"), grouped_event("i-2")])
    assert first.deliveries == [] and len(first.groups_due) == 1  # one row, free, due after the wait
    channel, destination, due = first.groups_due[0]
    assert (channel, destination) == ("webhook", "default")
    assert lease(store, due - 1) == []
    assert store.apply([grouped_event("i-3")]).groups_due == []  # joined the open one
    (sent,) = lease(store, due)
    assert sent.event_type == GROUP_EVENT
    content, reminder_due = store.close_group(sent.notification_id, due)
    assert content.incident_ids == ("i-1", "i-2", "i-3") and content.labels == {"service": "db"}
    assert reminder_due == due + SLOT.repeat_secs  # its incidents are active: a reminder is open
    assert store.close_group(sent.notification_id, due + 5) == (content, None)  # a retry sends the same
    later = store.apply([grouped_event("i-4")])
    assert later.groups_due == [("webhook", "default", due + 300)]  # the next one: an interval after
    assert lease(store, due + 300) == []  # one of a group's notifications at a time
    assert record(store, replace(sent, group=content), Outcome.delivered("ok", 200), DeliveryStatus.DELIVERED, due)
    assert [e.kind for e in store.timeline("i-2")][-1] is EventKind.NOTIFICATION_DELIVERED  # each member's
    (after_close,) = lease(store, due + 300)
    assert store.close_group(after_close.notification_id, due + 300).content.incident_ids == ("i-4",)


def test_retention_removes_a_settled_group_notification_with_its_items_in_bounded_batches(store: Store):
    old = utc_now().timestamp() - 40 * 86_400
    changes = [replace(grouped_event(f"i-{n}"), events=(replace(grouped_event(f"i-{n}").events[0],
                                                                 at=datetime.fromtimestamp(old, timezone.utc)),))
               for n in range(12)]
    ((_, _, due),) = store.apply(changes).groups_due
    (sent,) = lease(store, due)
    content, _ = store.close_group(sent.notification_id, due)
    assert record(store, replace(sent, group=content), Outcome.delivered("ok", 200), DeliveryStatus.DELIVERED, due)
    items = "SELECT count(*) FROM group_items WHERE notification_id = ?"
    assert store._row(items, (sent.notification_id,))[0] == 12
    batches = prune_all(store, cutoff=old + 86_400, max_rows=5)
    assert max(batches) <= 5 and sum(batches) == 12 + 1 + 1  # its items, its attempt, itself
    assert store._row(items, (sent.notification_id,))[0] == 0
    with pytest.raises(NotFound):
        store.notification(sent.notification_id)
