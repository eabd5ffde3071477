"""Grouping: which events share one notification, and when that notification is due (pure).

A route with ``group_by`` (Alertmanager's semantics, see actors/domain/routes.py) gathers the
events of incidents whose ``group_by`` fields and labels have the same values into one group
per (route, values, destination). The first event of a group that has never been notified is
due ``group_wait_secs`` later; events that arrive before that go out with it. Once a group
notification has gone out, the next one, holding whatever arrived since, is due no sooner
than ``group_interval_secs`` after it. While an incident of the group is active, a reminder
listing them is due ``repeat_interval_secs`` after the last notification, unless events bring
the next one sooner.

Only :data:`GROUPED_CHANNELS` are grouped; on a grouped route the other channels are owed one
notification per event, as on any route (PagerDuty's dedup key is per incident).
"""
from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any, Callable

from .models import Incident, Severity

#: Channels whose events on a grouped route go out as one notification per group.
GROUPED_CHANNELS = frozenset({"webhook", "slack", "email"})
#: Alertmanager's defaults.
DEFAULT_WAIT_SECS = 30.0
DEFAULT_INTERVAL_SECS = 300.0
DEFAULT_REPEAT_SECS = 14_400.0
#: The event type of a group notification (its row in the outbox, and the webhook body's).
GROUP_EVENT = "incident.group"


@dataclass(frozen=True, slots=True)
class Grouping:
    """A route's grouping: the names it groups by, how each is read, and its timings."""

    by: tuple[str, ...]
    readers: tuple[Callable[[Incident], Any], ...]
    wait_secs: float
    interval_secs: float
    repeat_secs: float

    def labels(self, incident: Incident) -> dict[str, str]:
        """The incident's values of the ``group_by`` names (services joined by commas)."""
        return {name: _text(read(incident)) for name, read in zip(self.by, self.readers)}


@dataclass(frozen=True, slots=True)
class GroupSlot:
    """Where one event goes: the group of ``route`` with ``key`` (its labels as JSON) at one
    destination, with the route's timings."""

    channel: str
    destination: str
    route: str
    key: str
    wait_secs: float
    interval_secs: float
    repeat_secs: float = DEFAULT_REPEAT_SECS

    @classmethod
    def of(cls, channel: str, destination: str, route: str, grouping: Grouping, incident: Incident) -> "GroupSlot":
        key = json.dumps(grouping.labels(incident), separators=(",", ":"), sort_keys=True)
        return cls(channel, destination, route, key, grouping.wait_secs, grouping.interval_secs,
                   grouping.repeat_secs)

    def due_at(self, at: float, last_sent_at: float | None) -> float:
        """When a new notification of this group, opened by an event at ``at``, is due: after
        ``group_wait`` for a group never notified, else ``group_interval`` after the last one."""
        if last_sent_at is None:
            return at + self.wait_secs
        return max(at, last_sent_at + self.interval_secs)


def _text(value: Any) -> str:
    """A value as matchers write it: ``P0``, ``availability``, ``db,web`` (services sorted)."""
    if isinstance(value, (tuple, list)):
        return ",".join(sorted(map(str, value)))
    if isinstance(value, Severity):
        return value.name
    if isinstance(value, enum.Enum):
        return value.name.lower()
    return str(value)
