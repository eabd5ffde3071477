"""The store's behaviour, in the SQL that SQLite and PostgreSQL both speak: incidents, timeline,
the notification outbox, attempts, channel state, and the mapping between their rows and the
domain's objects.

:class:`Store` is what the actors hold. Its engines (actors/store/sqlite.py,
actors/store/postgres.py) supply connections, transactions and the few statements that differ
(see :class:`Store`'s "engine-specific" section and actors/store/dialect.py). Both keep the
same schema meaning (actors/store/schema.sql; actors/store/postgres_v1.sql): times are Unix
seconds, incidents and timeline snapshots are compact JSON, an outbox row is owed while its
``due_at`` is set and held by the router its ``lease`` names.

Every write method is one transaction: it either fully happens or, on error, is rolled back
and the database driver's error propagates to the caller. The hot path writes each batch of
changes in one transaction and each burst of finished attempts in another, and reads nothing
in between: :meth:`Store.apply` returns the deliveries it created (already leased to the
current router), so the store is read on the delivery path only to recover, or when the
router's in-memory window is full.
"""
from __future__ import annotations

import base64
import math
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Sequence, TypeVar

from ..domain.changes import Change, ChannelCounts, IncidentQuery, NotificationRecord, StoreUsage
from ..domain.errors import IllegalTransition, InvalidArgument, NotFound
from ..domain.grouping import GROUP_EVENT, GroupSlot
from ..domain.jsontext import compact, parse
from ..domain.models import (Attempt, Delivery, DeliveryStatus, EventKind, GroupContent, Incident, Outcome,
                             OutcomeKind, TimelineEvent, new_id, snapshot_json)
from ..domain.routing import Decision, decisions_in
from ..domain.silences import Silence
from .dialect import Dialect, Session
from .retention import Cursor, prune_batch

#: The incident as it stands: its own JSON, or the snapshot of the event it points at.
_INCIDENT_DATA = "coalesce(i.data, t.snapshot)"
_INCIDENT_FROM = "incidents i LEFT JOIN timeline t ON t.id = i.event_id"

def due_sql(free: str) -> str:
    """Owed deliveries of one destination that are due and ``free`` (an SQL condition on ``n``,
    after the parameters channel, destination, now), oldest first, skipping any whose
    (incident, destination) has an earlier delivery still owed, so order is kept; the limit
    is the last parameter."""
    return ("SELECT n.id, n.incident_id, n.event_type, n.occurred_at, n.attempts, t.snapshot "
            "FROM notifications n JOIN timeline t ON t.id = n.timeline_id "
            "WHERE n.channel = ? AND n.destination = ? AND n.due_at IS NOT NULL AND n.due_at <= ? "
            f"AND {free} "
            "AND NOT EXISTS (SELECT 1 FROM notifications p WHERE p.incident_id = n.incident_id "
            "  AND p.channel = n.channel AND p.destination = n.destination "
            "  AND p.due_at IS NOT NULL AND p.seq < n.seq) "
            "ORDER BY n.due_at, n.seq LIMIT ?")


#: Free to the router whose lease is the parameter: held by no lease, or by an earlier router's.
FREE_TO_ROUTER = "(n.lease IS NULL OR n.lease != ?)"
#: :func:`due_sql` for one server: the parameters are channel, destination, now, lease, limit.
DUE_SQL = due_sql(FREE_TO_ROUTER)

_NOTIFICATION_SELECT = ("SELECT id, incident_id, channel, destination, event_type, status, attempts, "
                        "created_at, updated_at, due_at, last_error, suppressed_by, seq FROM notifications")

#: An incident row written as it stands; ``{key}``, ``{value}`` and ``{update}`` add its
#: claim on its fingerprint where replicas share the store (see :meth:`Store._write_changes`).
_UPSERT_INCIDENT = (
    "INSERT INTO incidents (id, fingerprint, active, state, severity, source, created_at, data, event_id{key}) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?{value}) ON CONFLICT(id) DO UPDATE SET active = excluded.active, "
    "state = excluded.state, severity = excluded.severity, data = excluded.data, event_id = excluded.event_id"
    "{update}")
#: An incident already stored keeps its claim (or its lack of one) while it is active and lets
#: go of it once it is not.
_LET_GO_OF_CLAIM = ", dedup_key = CASE WHEN excluded.active = 1 THEN incidents.dedup_key END"

#: SQLite's limit on bound parameters, with room to spare.
_CHUNK = 500

T = TypeVar("T")


def _ts(moment: datetime) -> float:
    return moment.timestamp()


def _dt(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, timezone.utc)




class Applied(NamedTuple):
    """What :meth:`Store.apply` wrote: the timeline events per change (with ids), the
    deliveries those events owe, in commit order, and the group notifications they opened, as
    (channel, destination, due time): those are left free in the store, for the router to
    pull when due."""

    events: list[list[TimelineEvent]]
    deliveries: list[Delivery]
    groups_due: list[tuple[str, str, float]]


class ClosedGroup(NamedTuple):
    """What :meth:`Store.close_group` read, and when the reminder it opened is due (None when
    it opened none)."""

    content: GroupContent
    reminder_due: float | None


class AttemptRecord(NamedTuple):
    delivery: Delivery
    outcome: Outcome
    status: DeliveryStatus
    at: float
    duration_ms: float
    next_attempt_at: float | None = None


class Conflict(Exception):
    """Another replica sharing the store wrote first (an incident the processor read changed,
    an alert id or a fingerprint's open incident was taken): nothing was written; decide again
    on what the store holds now."""


class StaleSilence(Exception):
    """A silence a batch rests on was released by another replica sharing the store (a silence
    that held back some of the batch's notifications, or the one whose end the batch acts on,
    :attr:`Guard.releases`), or the end of the latter changed since it was read: nothing was
    written; act on the silence as the store holds it now, then decide again."""

    def __init__(self, silence_id: str) -> None:
        super().__init__(f"silence {silence_id} was released by another replica, or its end changed")
        self.silence_id = silence_id


class Guard(NamedTuple):
    """What a change batch rests on when replicas share the store (:attr:`Store.shared`): the
    incidents the processor read, as it read them (the batch's changes to them, and the new
    incidents that supersede them, are written only if they are still so), and whether a new
    incident claims its fingerprint (deduplication on: one open incident per fingerprint)."""

    read: Mapping[str, Incident]
    dedup: bool
    #: The replica writing: named in the news of the commit the other replicas hear of.
    origin: str = ""
    #: The ended silence whose end the batch acts on: marked released with it, and the batch
    #: written only if the store still holds it unreleased with this end (else StaleSilence).
    releases: Silence | None = None


class Store(ABC):
    """The store. Safe to call from any thread."""

    #: The spellings of this engine's SQL that differ from the other's.
    dialect: Dialect
    #: Several servers (replicas) write this store: the processor guards its batches
    #: (:class:`Guard`) and the router serves every destination from the store.
    shared = False

    # -- engine-specific ----------------------------------------------------------------
    @abstractmethod
    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Every row of a read."""

    @abstractmethod
    def _row(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first row of a read, or None."""

    @abstractmethod
    def _transaction(self) -> AbstractContextManager[Session]:
        """A ``with`` block holding one write transaction: committed at its end, rolled back
        if it raises."""

    def _in_transaction(self, work: Callable[[Session], T]) -> T:
        """``work(conn)`` in one write transaction (:meth:`_transaction`), and what it returns.
        An engine may run ``work`` again, on a fresh connection, when its first try failed
        before committing (PostgreSQL, a lost connection): so ``work`` does nothing but run
        SQL on ``conn`` and build its result from what it reads."""
        with self._transaction() as conn:
            return work(conn)

    @abstractmethod
    def _timeline_ids(self, conn: Session, count: int) -> Iterable[int]:
        """``count`` new timeline ids, increasing, for rows written in this transaction."""

    @abstractmethod
    def _status_counts(self) -> Iterable[tuple[str, str, int]]:
        """(channel, status, notifications) from the counters every change keeps, non-zero only."""

    @abstractmethod
    def close(self) -> None:
        """Close the store's connections."""

    @abstractmethod
    def reclaim_space(self, max_pages: int) -> int:
        """Give up to ``max_pages`` free pages back to the file system; returns how many free
        pages are left (0 when the engine gives space back by itself)."""

    @abstractmethod
    def usage(self) -> StoreUsage:
        """How big the store is, how much of it is free, and its oldest record."""

    # -- processor side ----------------------------------------------------------------
    def incidents_for_alerts(self, alert_ids: Sequence[str]) -> dict[str, str]:
        """alert_id → incident id for those of ``alert_ids`` recorded before (one query)."""
        found: dict[str, str] = {}
        for start in range(0, len(alert_ids), _CHUNK):
            chunk = alert_ids[start:start + _CHUNK]
            found.update(self._rows(
                f"SELECT alert_id, incident_id FROM alerts WHERE alert_id IN ({','.join('?' * len(chunk))})",
                chunk))
        return found

    def active_incident(self, fingerprint: str) -> Incident | None:
        """The newest active incident with this fingerprint, if any."""
        row = self._row(
            f"SELECT {_INCIDENT_DATA} FROM {_INCIDENT_FROM} WHERE i.fingerprint = ? AND i.active = 1 "
            "ORDER BY i.created_at DESC LIMIT 1", (fingerprint,))
        return Incident.from_dict(parse(row[0])) if row else None

    def active_incidents_by_fingerprint(self, fingerprints: Sequence[str]) -> dict[str, Incident]:
        """fingerprint → its newest active incident, for those of ``fingerprints`` that have one
        (a query per 500 fingerprints)."""
        found: dict[str, Incident] = {}
        for start in range(0, len(fingerprints), _CHUNK):
            chunk = fingerprints[start:start + _CHUNK]
            for fp, data in self._rows(
                    f"SELECT i.fingerprint, {_INCIDENT_DATA} FROM {_INCIDENT_FROM} WHERE i.active = 1 "
                    f"AND i.fingerprint IN ({','.join('?' * len(chunk))}) ORDER BY i.created_at", chunk):
                found[fp] = Incident.from_dict(parse(data))  # the newest comes last
        return found

    def count_active_incidents(self, up_to: int) -> int:
        """How many incidents are active, counting no further than ``up_to``."""
        return self._row("SELECT count(*) FROM (SELECT 1 FROM incidents WHERE active = 1 LIMIT ?) AS counted",
                         (up_to,))[0]

    def has_active_legacy_fingerprints(self) -> bool:
        """True while some active incident carries a fingerprint from before ``v2:``."""
        return self._row("SELECT 1 FROM incidents WHERE active = 1 AND fingerprint NOT LIKE 'v2:%' LIMIT 1") is not None

    def active_incidents(self, limit: int) -> list[Incident]:
        """Up to ``limit`` active incidents, oldest first (so the newest per fingerprint comes last)."""
        rows = self._rows(
            f"SELECT {_INCIDENT_DATA} FROM {_INCIDENT_FROM} WHERE i.active = 1 ORDER BY i.created_at LIMIT ?",
            (limit,))
        return [Incident.from_dict(parse(row[0])) for row in rows]

    def incident(self, incident_id: str) -> Incident:
        """The incident; raises NotFound if there is none with this id."""
        row = self._row(f"SELECT {_INCIDENT_DATA} FROM {_INCIDENT_FROM} WHERE i.id = ?", (incident_id,))
        if row is None:
            raise NotFound(f"incident {incident_id!r} not found")
        return Incident.from_dict(parse(row[0]))

    def apply(self, changes: Sequence[Change], lease: str = "", guard: Guard | None = None) -> Applied:
        """Write every change, its timeline events and the notifications they owe, in one
        transaction. The new notifications are leased to ``lease`` (the current router), which
        gets them as :attr:`Applied.deliveries` instead of reading them back (``""``: to
        nobody). With a ``guard`` (only a :attr:`shared` store takes one) the batch is written
        only if what it rests on still holds, else Conflict with nothing written."""
        return self._in_transaction(lambda conn: self._write_changes(conn, changes, lease))

    def list_incidents(self, query: IncidentQuery, page_size: int, page_token: str = "") -> tuple[list[Incident], str]:
        """A page of incidents, newest first, and the token of the next page ('' at the end)."""
        where, params = [], []  # type: list[str], list[Any]
        if query.states:
            where.append(f"i.state IN ({','.join('?' * len(query.states))})")
            params += query.states
        if query.severities:
            where.append(f"i.severity IN ({','.join('?' * len(query.severities))})")
            params += query.severities
        if query.source:
            where.append("i.source = ?")
            params.append(query.source)
        if query.created_after:
            where.append("i.created_at >= ?")
            params.append(_ts(query.created_after))
        if query.created_before:
            where.append("i.created_at < ?")
            params.append(_ts(query.created_before))
        if page_token:
            created, last_id = _decode_token(page_token)
            where.append("(i.created_at < ? OR (i.created_at = ? AND i.id < ?))")
            params += [created, created, last_id]
        sql = f"SELECT {_INCIDENT_DATA}, i.created_at, i.id FROM {_INCIDENT_FROM}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY i.created_at DESC, i.id DESC LIMIT ?"
        rows = self._rows(sql, (*params, page_size + 1))
        incidents = [Incident.from_dict(parse(row[0])) for row in rows[:page_size]]
        token = _encode_token(rows[page_size - 1][1], rows[page_size - 1][2]) if len(rows) > page_size else ""
        return incidents, token

    def changes_of(self, timeline_ids: Sequence[int]) -> list[tuple[Incident, TimelineEvent]]:
        """The timeline entries with these ids (those still kept), in id order, each with its
        incident as it stands now."""
        found: list[tuple[Incident, TimelineEvent]] = []
        for start in range(0, len(timeline_ids), _CHUNK):
            chunk = timeline_ids[start:start + _CHUNK]
            rows = self._rows(
                f"SELECT e.id, e.incident_id, e.kind, e.at, e.actor, e.detail, {_INCIDENT_DATA} "
                f"FROM timeline e JOIN {_INCIDENT_FROM} ON i.id = e.incident_id "
                f"WHERE e.id IN ({','.join('?' * len(chunk))}) ORDER BY e.id", chunk)
            found += [(Incident.from_dict(parse(data)),
                       TimelineEvent(incident_id, EventKind(kind), _dt(at), actor, parse(detail), tid))  # type: ignore[arg-type]
                      for tid, incident_id, kind, at, actor, detail, data in rows]
        return found

    def timeline(self, incident_id: str) -> list[TimelineEvent]:
        self.incident(incident_id)
        rows = self._rows("SELECT id, kind, at, actor, detail FROM timeline WHERE incident_id = ? ORDER BY id",
                          (incident_id,))
        return [TimelineEvent(incident_id, EventKind(kind), _dt(at), actor, parse(detail), tid)  # type: ignore[arg-type]
                for tid, kind, at, actor, detail in rows]

    # -- router side -------------------------------------------------------------------
    def lease_due(self, channel: str, destination: str, now: float, limit: int, lease: str) -> list[Delivery]:
        """Lease to ``lease`` up to ``limit`` owed deliveries of one destination that are due by
        ``now`` and free (held by no lease, or by an earlier router's), oldest first, skipping
        any whose (incident, destination) has an earlier delivery still owed, so order is kept.
        Opens a write transaction only when something is due."""
        rows = self._rows(DUE_SQL, (channel, destination, now, lease, limit))
        if not rows:
            return []

        def take(conn: Session) -> list[Delivery]:
            return [leased_delivery(row, channel, destination, lease) for row in rows
                    if conn.execute("UPDATE notifications SET lease = ? WHERE id = ? AND due_at IS NOT NULL "
                                    "AND (lease IS NULL OR lease != ?)", (lease, row[0], lease)).rowcount]
        return self._in_transaction(take)

    def has_free_owed(self, channel: str, destination: str, lease: str) -> bool:
        """True while some delivery owed to this destination, due or not, is held by no lease
        or by an earlier router's (so the router must keep pulling to keep order)."""
        return self._row(
            "SELECT 1 FROM notifications WHERE channel = ? AND destination = ? AND due_at IS NOT NULL "
            "AND (lease IS NULL OR lease != ?) LIMIT 1", (channel, destination, lease)) is not None

    def release(self, notification_ids: Iterable[str]) -> None:
        """Make leased deliveries free again (their router let go of them)."""
        rows = [(nid,) for nid in notification_ids]
        self._in_transaction(lambda conn: conn.executemany(
            "UPDATE notifications SET lease = NULL WHERE id = ? AND lease IS NOT NULL", rows))

    def give_up_unrouted(self, configured: set[tuple[str, str]], now: float) -> int:
        """Mark dead every owed delivery whose (channel, destination) is no longer configured,
        with the reason and a timeline entry each, so nothing waits forever unseen. Returns how
        many were given up; they can be re-queued once the channel is configured again."""

        def give_up(conn: Session) -> int:
            given_up = 0
            owed = conn.execute("SELECT DISTINCT channel, destination FROM notifications "
                                "WHERE due_at IS NOT NULL").fetchall()
            for channel, destination in owed:
                if (channel, destination) in configured:
                    continue
                reason = f"{channel} destination {destination!r} is no longer configured"
                conn.execute(
                    "INSERT INTO timeline (incident_id, kind, at, actor, detail) "
                    f"SELECT incident_id, ?, ?, 'notifier', {self.dialect.json_object}('notification_id', id, "
                    "'channel', channel, 'destination', destination, 'event_type', event_type, "
                    "'attempts', attempts, 'error', CAST(? AS TEXT)) "
                    "FROM notifications WHERE channel = ? AND destination = ? AND due_at IS NOT NULL",
                    (EventKind.NOTIFICATION_DEAD.value, now, reason, channel, destination))
                given_up += conn.execute(
                    "UPDATE notifications SET status = 'dead', due_at = NULL, lease = NULL, updated_at = ?, "
                    "last_error = ? WHERE channel = ? AND destination = ? AND due_at IS NOT NULL",
                    (now, reason, channel, destination)).rowcount
            return given_up
        return self._in_transaction(give_up)

    # -- sender side -------------------------------------------------------------------
    def channel_state(self, channel: str, destination: str, incident_id: str) -> dict[str, Any]:
        """What the channel stored for this incident and destination ({} when nothing)."""
        row = self._row("SELECT data FROM channel_state WHERE channel = ? AND destination = ? AND incident_id = ?",
                        (channel, destination, incident_id))
        return parse(row[0]) if row else {}

    def record_attempts(self, records: Sequence[AttemptRecord]) -> list[bool]:
        """Record finished attempts, all in one transaction: each attempt, its notification's new
        status (and channel state, and a timeline entry when it was delivered or given up).

        An attempt is recorded only if it is the next one of a notification still owed
        (``attempts`` is one less than its number): a stale sender that lost the delivery to
        another, or a repeat of one already settled, changes nothing. A settled row's lease is
        cleared; a retry leaves the lease as it is, since only routers lease: a row its router
        let go of while the attempt was being made stays free, for the router to pull again,
        rather than held by that router without its knowing. Returns, per record, whether it
        was recorded."""

        def record(conn: Session) -> list[bool]:
            recorded = [_claim_attempt(conn, record) for record in records]
            _write_attempt_rows(conn, [record for record, ok in zip(records, recorded) if ok])
            return recorded
        return self._in_transaction(record)

    def close_group(self, notification_id: str, now: float) -> ClosedGroup:
        """What the group notification carries, for its sender's first attempt (and any later
        one): the incidents whose events joined it, or, for a reminder nothing joined, every
        incident of the group still active (none: nothing to remind of).

        The first call closes it: events after that open the group's next notification, due
        ``group_interval`` after ``now``; and while an incident of the group is active, the
        next one opens at once as a reminder, due ``repeat_interval`` after ``now`` (events
        bring it forward). NotFound if it is not a group notification."""

        def close_open(conn: Session) -> tuple[str, str, list[Any], float | None]:
            closed = conn.execute("UPDATE notification_groups SET open_id = NULL, last_sent_at = ? "
                                  "WHERE open_id = ?", (now, notification_id)).rowcount
            group = conn.execute(
                "SELECT g.id, g.route, g.group_key, g.repeat_secs, g.channel, g.destination, n.timeline_id "
                "FROM notifications n JOIN notification_groups g ON g.id = n.incident_id WHERE n.id = ?",
                (notification_id,)).fetchone()
            if group is None:
                raise NotFound(f"group notification {notification_id!r} not found")
            group_id, route, key, repeat_secs, channel, destination, timeline_id = group
            items = conn.execute("SELECT i.incident_id, t.snapshot FROM group_items i JOIN timeline t "
                                 "ON t.id = i.timeline_id WHERE i.notification_id = ? ORDER BY i.timeline_id",
                                 (notification_id,)).fetchall()
            active = conn.execute(  # in the order they first joined the group
                f"SELECT i.id, {_INCIDENT_DATA} FROM {_INCIDENT_FROM} JOIN (SELECT g.incident_id, "
                "min(g.timeline_id) AS joined FROM group_items g JOIN notifications n ON n.id = g.notification_id "
                "WHERE n.incident_id = ? GROUP BY g.incident_id) m ON m.incident_id = i.id WHERE i.active = 1 "
                "ORDER BY m.joined", (group_id,)).fetchall()
            reminder_due = None
            if closed and active and repeat_secs:
                reminder, reminder_due = new_id(), now + repeat_secs
                _insert_group_notification(conn, reminder, group_id, timeline_id, channel, destination, now,
                                           reminder_due)
                conn.execute("UPDATE notification_groups SET open_id = ? WHERE id = ?", (reminder, group_id))
            return route, key, items or active, reminder_due
        route, key, members, reminder_due = self._in_transaction(close_open)
        latest = dict(members)  # the last snapshot of each incident, in the order they joined
        return ClosedGroup(GroupContent(route, parse(key), tuple(latest), tuple(latest.values())), reminder_due)

    # -- API side ----------------------------------------------------------------------
    def notification(self, notification_id: str) -> NotificationRecord:
        row = self._row(_NOTIFICATION_SELECT + " WHERE id = ?", (notification_id,))
        if row is None:
            raise NotFound(f"notification {notification_id!r} not found")
        return _notification(row)

    def routing_of(self, notification_id: str) -> tuple[Decision, ...]:
        """The routing record of the event that owed this notification (empty when that event
        was stored before routing was recorded, or is gone); NotFound if no such notification."""
        row = self._row("SELECT t.routing FROM notifications n LEFT JOIN timeline t ON t.id = n.timeline_id "
                        "WHERE n.id = ?", (notification_id,))
        if row is None:
            raise NotFound(f"notification {notification_id!r} not found")
        return decisions_in(row[0])

    def attempts(self, notification_id: str) -> list[Attempt]:
        rows = self._rows("SELECT number, at, outcome, status_code, detail, duration_ms FROM attempts "
                          "WHERE notification_id = ? ORDER BY id", (notification_id,))
        return [Attempt(notification_id, n, _dt(at), OutcomeKind(o), code, d, ms)  # type: ignore[arg-type]
                for n, at, o, code, d, ms in rows]

    def list_notifications(self, incident_id: str = "", channel: str = "", status: str = "",
                           page_size: int = 50, page_token: str = "",
                           newest_first: bool = False) -> tuple[list[NotificationRecord], str]:
        """A page of notifications in the order they were owed (newest first if asked) and the
        token that continues after it ('' at the end)."""
        where, params = [], []  # type: list[str], list[Any]
        for column, value in (("incident_id", incident_id), ("channel", channel), ("status", status)):
            if value:
                where.append(f"{column} = ?")
                params.append(value)
        if page_token:
            where.append("seq < ?" if newest_first else "seq > ?")
            params.append(_decode_seq(page_token))
        sql = (_NOTIFICATION_SELECT + (" WHERE " + " AND ".join(where) if where else "")
               + (" ORDER BY seq DESC LIMIT ?" if newest_first else " ORDER BY seq LIMIT ?"))
        rows = self._rows(sql, (*params, page_size + 1))
        records = [_notification(row) for row in rows[:page_size]]
        token = _encode_seq(rows[page_size - 1][-1]) if len(rows) > page_size else ""
        return records, token

    def ids_starting_with(self, kind: str, prefix: str, limit: int) -> list[str]:
        """Up to ``limit`` ids of ``kind`` ("incident", "notification" or "silence"; ValueError for
        another) that start with ``prefix``, in id order: a range scan of the table's id index."""
        tables = {"incident": "incidents", "notification": "notifications", "silence": "silences"}
        if kind not in tables:
            raise ValueError(f"no ids of kind {kind!r}")
        rows = self._rows(f"SELECT id FROM {tables[kind]} WHERE id >= ? AND id < ? ORDER BY id LIMIT ?",
                          (prefix, prefix + "\U0010ffff", limit))
        return [row[0] for row in rows]

    def requeue(self, notification_id: str, now: float) -> NotificationRecord:
        """Make a dead notification owed again (attempt count kept); FAILED_PRECONDITION otherwise."""

        def requeue(conn: Session) -> None:
            row = conn.execute("SELECT status FROM notifications WHERE id = ?", (notification_id,)).fetchone()
            if row is None:
                raise NotFound(f"notification {notification_id!r} not found")
            if row[0] != DeliveryStatus.DEAD.value:
                raise IllegalTransition(f"notification {notification_id!r} is {row[0]}; only dead ones can be re-queued")
            conn.execute("UPDATE notifications SET status = 'queued', due_at = ?, updated_at = ?, lease = NULL "
                         "WHERE id = ?",
                         (now, now, notification_id))
        self._in_transaction(requeue)
        return self.notification(notification_id)

    def channel_counts(self, latency_sample: int = 1000) -> list[ChannelCounts]:
        """Notifications per channel and status, from the counters every change keeps (a read
        of a few rows, however long the history), with the latency percentiles of each
        channel's last ``latency_sample`` deliveries."""
        counts: dict[str, dict[str, int]] = {}
        for channel, status, count in self._status_counts():
            counts.setdefault(channel, {})[status] = count
        result = []
        for channel in sorted(counts):
            latencies = sorted(r[0] for r in self._rows(
                "SELECT (delivered_at - occurred_at) * 1000.0 FROM notifications WHERE channel = ? "
                "AND delivered_at IS NOT NULL ORDER BY delivered_at DESC LIMIT ?", (channel, latency_sample)))
            result.append(ChannelCounts(channel, counts[channel], _percentile(latencies, 0.5),
                                        _percentile(latencies, 0.99)))
        return result

    # -- silences ----------------------------------------------------------------------
    def save_silence(self, silence: Silence) -> bool:
        """Write the silence (a new one, or a new version of one) unless the one stored under
        its id was released: False then, nothing written (a released silence never changes)."""
        def write(conn: Session) -> bool:
            written = conn.execute(
                "INSERT INTO silences (id, matchers, starts_at, ends_at, created_by, comment, created_at, updated_at, "
                "released) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                "matchers = excluded.matchers, starts_at = excluded.starts_at, ends_at = excluded.ends_at, "
                "comment = excluded.comment, updated_at = excluded.updated_at, released = excluded.released "
                "WHERE silences.released = 0",
                (silence.id, compact(list(silence.matchers)), _ts(silence.starts_at), _ts(silence.ends_at),
                 silence.created_by, silence.comment, _ts(silence.created_at), _ts(silence.updated_at),
                 int(silence.released))).rowcount > 0
            if written:
                self._silence_changed(conn, silence.id)
            return written
        return self._in_transaction(write)

    def _silence_changed(self, conn: Session, silence_id: str) -> None:
        """Tell whoever else acts on this store's silences that this one changed, when the
        transaction commits: nobody, unless replicas share the store."""

    def silence(self, silence_id: str) -> Silence:
        """The silence; NotFound if there is none with this id."""
        row = self._row(_SILENCE_SELECT + " WHERE id = ?", (silence_id,))
        if row is None:
            raise NotFound(f"silence {silence_id!r} not found")
        return _silence(row)

    def silences(self, unreleased_only: bool = False) -> list[Silence]:
        """Every silence kept (or only those whose end has not been acted on), newest first."""
        where = " WHERE released = 0" if unreleased_only else ""
        return [_silence(row) for row in self._rows(_SILENCE_SELECT + where + " ORDER BY created_at DESC, id")]

    def held_by(self, silence_id: str) -> list[str]:
        """The incidents some of whose notifications this silence held, oldest first."""
        return [row[0] for row in self._rows(
            "SELECT incident_id FROM notifications WHERE suppressed_by = ? GROUP BY incident_id "
            "ORDER BY min(seq)", (silence_id,))]

    # -- retention ---------------------------------------------------------------------
    def prune(self, cutoff: float, max_rows: int, cursor: Cursor = Cursor()) -> tuple[int, Cursor | None]:
        """One transaction deleting at most ``max_rows`` rows that retention lets go (settled
        notifications and closed incidents last changed before ``cutoff``; see
        actors/store/retention.py). Returns the rows deleted and the cursor of the next batch,
        None when the pass is over."""
        return self._in_transaction(lambda conn: prune_batch(conn, self.dialect, cutoff, max_rows, cursor))

    def _oldest_record(self) -> datetime | None:
        """When the oldest incident or notification kept was created."""
        oldest = [row[0] for row in self._rows(
            "SELECT min(created_at) FROM incidents UNION ALL "
            "SELECT * FROM (SELECT created_at FROM notifications ORDER BY seq LIMIT 1) AS first")
            if row[0] is not None]
        return _dt(min(oldest)) if oldest else None

    # -- writing changes ---------------------------------------------------------------
    def _write_changes(self, conn: Session, changes: Sequence[Change], lease: str,
                       claim_fingerprints: bool = False) -> Applied:
        """The rows of ``changes`` in one pass, a statement per table; each incident row is
        written once, as it stands after its last change in the batch. With
        ``claim_fingerprints`` the batch's newest new incident per fingerprint claims it
        (``dedup_key``), and an incident that stops being active lets go of its claim."""
        timeline_ids = iter(self._timeline_ids(conn, sum(len(change.events) for change in changes)))
        timeline_rows: list[tuple[Any, ...]] = []
        alert_rows: list[tuple[Any, ...]] = []
        notification_rows: list[tuple[Any, ...]] = []
        suppressed_rows: list[tuple[Any, ...]] = []
        latest: dict[str, tuple[Incident, str | None, int | None]] = {}  # id → (incident, snapshot, its event)
        restated: set[str] = set()  # incidents new, or with a state or severity to write
        applied = Applied([], [], [])
        for change in changes:
            incident = change.incident
            snapshot, snapshot_event = None, None
            events = []
            for event in change.events:
                timeline_id = next(timeline_ids)
                at = _ts(event.at)
                notifies = event.notifies
                if notifies:
                    snapshot = snapshot if snapshot is not None else snapshot_json(incident)
                    snapshot_event = timeline_id
                timeline_rows.append((timeline_id, incident.id, event.kind.value, at, event.actor,
                                      compact(dict(event.detail)), snapshot if notifies else None,
                                      event.routing or None))
                events.append(TimelineEvent(incident.id, event.kind, event.at, event.actor, event.detail, timeline_id))
                for slot in event.groups if notifies else ():
                    self._join_group(conn, slot, incident.id, timeline_id, at, applied)
                for receiver in event.receivers if notifies else ():
                    nid = new_id()
                    notification_rows.append((nid, incident.id, timeline_id, receiver.channel, receiver.destination,
                                              event.event_type, at, at, lease or None, at, at))
                    applied.deliveries.append(Delivery(
                        nid, incident.id, receiver.channel, receiver.destination, event.event_type,  # type: ignore[arg-type]
                        event.at, incident, snapshot=snapshot, lease=lease))  # type: ignore[arg-type]
                if event.suppression is not None:
                    suppressed_rows += [(new_id(), incident.id, timeline_id, receiver.channel, receiver.destination,
                                         event.event_type, at, event.suppression.status.value, at, at,
                                         event.suppression.by) for receiver in event.suppressed]
            latest[incident.id] = (incident, snapshot, snapshot_event)
            if not change.keeps_state:
                restated.add(incident.id)
            if change.alert is not None:
                alert_rows.append((change.alert.alert_id, incident.id, _ts(incident.updated_at),
                                   compact(change.alert.to_dict())))
            applied.events.append(events)
        conn.executemany("INSERT INTO timeline (id, incident_id, kind, at, actor, detail, snapshot, routing) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", timeline_rows)
        rows = [(i.id, i.fingerprint, int(i.state.is_active), int(i.state), int(i.severity), i.source,
                 _ts(i.created_at), None if snapshot is not None else snapshot_json(i), event)
                for i, snapshot, event in latest.values() if i.id in restated]
        if claim_fingerprints:
            claimants = {c.incident.fingerprint: c.incident.id for c in changes
                         if c.is_new and c.incident.state.is_active}
            conn.executemany(_UPSERT_INCIDENT.format(key=", dedup_key", value=", ?", update=_LET_GO_OF_CLAIM),
                             [(*row, row[1] if claimants.get(row[1]) == row[0] else None) for row in rows])
        else:
            conn.executemany(_UPSERT_INCIDENT.format(key="", value="", update=""), rows)
        # the rest only changed data (still active, so a claim stays as it is): an UPDATE naming
        # the indexed columns would rewrite their index entries (the active fingerprint's sits on
        # a random page) for nothing
        conn.executemany("UPDATE incidents SET data = ?, event_id = ? WHERE id = ?",
                         [(None if snapshot is not None else snapshot_json(i), event, i.id)
                          for i, snapshot, event in latest.values() if i.id not in restated])
        conn.executemany("INSERT INTO alerts (alert_id, incident_id, received_at, data) VALUES (?, ?, ?, ?)",
                         alert_rows)
        conn.executemany(
            "INSERT INTO notifications (id, incident_id, timeline_id, channel, destination, event_type, "
            "occurred_at, status, due_at, lease, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?)", notification_rows)
        if suppressed_rows:
            conn.executemany(
                "INSERT INTO notifications (id, incident_id, timeline_id, channel, destination, event_type, "
                "occurred_at, status, created_at, updated_at, suppressed_by) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", suppressed_rows)
        return applied

    def _join_group(self, conn: Session, slot: GroupSlot, incident_id: str, timeline_id: int, at: float,
                    applied: Applied) -> None:
        """Add an event to its group's open notification, opening one (owed, free, due as
        :meth:`GroupSlot.due_at` says) when the group has none, or bringing an open reminder
        forward to that time."""
        row = conn.execute("SELECT id, open_id, last_sent_at FROM notification_groups WHERE channel = ? "
                           "AND destination = ? AND route = ? AND group_key = ?" + self.dialect.lock_rows,
                           (slot.channel, slot.destination, slot.route, slot.key)).fetchone()
        group_id, open_id, last_sent_at = row if row is not None else (new_id(), None, None)
        due = slot.due_at(at, last_sent_at)
        if row is None:
            conn.execute("INSERT INTO notification_groups (id, channel, destination, route, group_key) "
                         "VALUES (?, ?, ?, ?, ?)", (group_id, slot.channel, slot.destination, slot.route, slot.key))
        if open_id is None:
            open_id = new_id()
            _insert_group_notification(conn, open_id, group_id, timeline_id, slot.channel, slot.destination, at, due)
            applied.groups_due.append((slot.channel, slot.destination, due))
        elif conn.execute("UPDATE notifications SET due_at = ? WHERE id = ? AND due_at > ? AND attempts = 0",
                          (due, open_id, due)).rowcount:  # a reminder, due later than this news
            applied.groups_due.append((slot.channel, slot.destination, due))
        conn.execute("UPDATE notification_groups SET open_id = ?, repeat_secs = ? WHERE id = ?",
                     (open_id, slot.repeat_secs, group_id))
        conn.execute("INSERT INTO group_items (notification_id, timeline_id, incident_id) VALUES (?, ?, ?)",
                     (open_id, timeline_id, incident_id))


def _insert_group_notification(conn: Session, notification_id: str, group_id: str, timeline_id: int, channel: str,
                               destination: str, at: float, due: float) -> None:
    """An owed group notification, free to any router, due at ``due``; its delivery's snapshot
    is that of timeline row ``timeline_id`` (the event that opened it)."""
    conn.execute("INSERT INTO notifications (id, incident_id, timeline_id, channel, destination, event_type, "
                 "occurred_at, status, due_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?)",
                 (notification_id, group_id, timeline_id, channel, destination, GROUP_EVENT, at, due, at, at))


def leased_delivery(row: Sequence[Any], channel: str, destination: str, lease: str) -> Delivery:
    """The delivery a row of :data:`DUE_SQL` describes, now leased to ``lease``."""
    nid, incident_id, event_type, occurred_at, attempts, snapshot = row
    return Delivery(notification_id=nid, incident_id=incident_id, channel=channel, destination=destination,
                    event_type=event_type, occurred_at=_dt(occurred_at),  # type: ignore[arg-type]
                    incident=Incident.from_dict(parse(snapshot)), attempt=attempts + 1,
                    snapshot=snapshot, lease=lease)


def _notification(row: Sequence[Any]) -> NotificationRecord:
    return NotificationRecord(row[0], row[1], row[2], row[3], row[4], DeliveryStatus(row[5]), row[6],
                              _dt(row[7]), _dt(row[8]), _dt(row[9]), row[10], row[11] or "")  # type: ignore[arg-type]


_SILENCE_SELECT = ("SELECT id, matchers, starts_at, ends_at, created_by, comment, created_at, updated_at, released "
                   "FROM silences")


def _silence(row: Sequence[Any]) -> Silence:
    return Silence(row[0], tuple(parse(row[1])), _dt(row[2]), _dt(row[3]), row[4], row[5],  # type: ignore[arg-type]
                   _dt(row[6]), _dt(row[7]), bool(row[8]))  # type: ignore[arg-type]


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def _encode_token(created_at: float, incident_id: str) -> str:
    return base64.urlsafe_b64encode(f"{created_at!r}|{incident_id}".encode()).decode()


def _decode_token(token: str) -> tuple[float, str]:
    """The (finite) number and the id a token holds; InvalidArgument naming page_token for
    anything :func:`_encode_token` cannot have written."""
    try:
        created, incident_id = base64.urlsafe_b64decode(token.encode()).decode().split("|", 1)
        number = float(created)
        if not math.isfinite(number):
            raise ValueError(created)
        return number, incident_id
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument("page_token", "not a token returned by a previous call") from None


def _encode_seq(seq: int) -> str:
    return _encode_token(float(seq), "n")


def _decode_seq(token: str) -> int:
    """The row number a notification page token holds (a whole number both engines can compare)."""
    number = _decode_token(token)[0]
    if not (number.is_integer() and 0 <= number < 2**63):
        raise InvalidArgument("page_token", "not a token returned by a previous call")
    return int(number)


def _claim_attempt(conn: Session, record: AttemptRecord) -> bool:
    """Move the notification to the attempt's outcome if this is its next attempt and it is
    still owed; False (nothing changed) otherwise."""
    delivery, outcome, status, at, _, next_attempt_at = record
    done = status in (DeliveryStatus.DELIVERED, DeliveryStatus.DEAD, DeliveryStatus.SKIPPED)
    return bool(conn.execute(
        "UPDATE notifications SET status = ?, attempts = ?, due_at = ?, lease = CASE WHEN ? THEN NULL ELSE lease END, "
        "updated_at = ?, last_error = ?, delivered_at = ? WHERE id = ? AND attempts = ? AND due_at IS NOT NULL",
        (status.value, delivery.attempt, None if done else next_attempt_at, done,
         at, "" if outcome.kind is OutcomeKind.DELIVERED else outcome.detail,
         at if status is DeliveryStatus.DELIVERED else None, delivery.notification_id,
         delivery.attempt - 1)).rowcount)


def _write_attempt_rows(conn: Session, records: Sequence[AttemptRecord]) -> None:
    """The rows that go with claimed attempts, a statement per table for all of them: each
    attempt, the channel state it left, and a timeline entry when its notification was
    delivered or given up."""
    if not records:
        return
    conn.executemany(
        "INSERT INTO attempts (notification_id, number, at, outcome, status_code, detail, duration_ms) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(r.delivery.notification_id, r.delivery.attempt, r.at, r.outcome.kind.value, r.outcome.status_code,
          r.outcome.detail, r.duration_ms) for r in records])
    states = [(r.delivery.channel, r.delivery.destination, r.delivery.incident_id, compact(dict(r.outcome.state)))
              for r in records if r.outcome.state is not None]
    if states:
        conn.executemany(
            "INSERT INTO channel_state (channel, destination, incident_id, data) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (channel, destination, incident_id) DO UPDATE SET data = excluded.data", states)
    entries = [entry for r in records if r.status in (DeliveryStatus.DELIVERED, DeliveryStatus.DEAD)
               for entry in _settled_entries(r)]
    if entries:
        conn.executemany("INSERT INTO timeline (incident_id, kind, at, actor, detail) VALUES (?, ?, ?, ?, ?)",
                         entries)


def _settled_entries(record: AttemptRecord) -> list[tuple[Any, ...]]:
    """The timeline rows saying a notification was delivered or given up: its incident's, or
    for a group notification, each of its incidents'."""
    delivery = record.delivery
    delivered = record.status is DeliveryStatus.DELIVERED
    detail = {"notification_id": delivery.notification_id, "channel": delivery.channel,
              "destination": delivery.destination, "event_type": delivery.event_type,
              "attempts": delivery.attempt}
    if not delivered:
        detail["error"] = record.outcome.detail
    kind = EventKind.NOTIFICATION_DELIVERED if delivered else EventKind.NOTIFICATION_DEAD
    incident_ids = delivery.group.incident_ids if delivery.group is not None else (delivery.incident_id,)
    return [(incident_id, kind.value, record.at, "notifier", compact(detail)) for incident_id in incident_ids]
