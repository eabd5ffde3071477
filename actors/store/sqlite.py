"""SQLite persistence: incidents, timeline, the notification outbox, attempts, channel state.

One connection per thread (SQLite connections must not be shared across threads without a
lock); WAL mode so readers never block the writer. With ``synchronous=normal`` a commit is
durable against the process being killed (``kill -9``); ``full`` adds an fsync per commit for
power-loss durability. Every write method is one transaction: it either fully happens or,
on error, is rolled back and the sqlite3 error propagates to the caller.
"""
from __future__ import annotations

import base64
import json
import sqlite3
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, NamedTuple, Sequence

from ..domain.changes import (Change, ChannelCounts, IncidentQuery, NotificationRecord)
from ..domain.errors import IllegalTransition, InvalidArgument, NotFound
from ..domain.models import (Attempt, Delivery, DeliveryStatus, EventKind, Incident, Outcome,
                             OutcomeKind, TimelineEvent)

SCHEMA = (Path(__file__).with_name("schema.sql")).read_text(encoding="utf-8")
PENDING = (DeliveryStatus.QUEUED.value, DeliveryStatus.RETRYING.value)


def _ts(moment: datetime) -> float:
    return moment.timestamp()


def _dt(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, timezone.utc)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class SqliteStore:
    """The store. Safe to call from any thread; each thread gets its own connection."""

    def __init__(self, path: str | Path, synchronous: str = "normal") -> None:
        self.path = str(path)
        self.synchronous = synchronous.upper()
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        # One writer at a time, queued on a Python lock: SQLite's own busy handler would make
        # contending writers sleep in steps of up to 100 ms.
        self._write_lock = threading.Lock()
        self._connection().executescript(SCHEMA)

    # -- connections -------------------------------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.execute("PRAGMA foreign_keys=OFF")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def _transaction(self) -> "_Txn":
        return _Txn(self._connection(), self._write_lock)

    def close(self) -> None:
        """Close every connection opened by any thread. Later calls reopen as needed."""
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    # -- processor side ----------------------------------------------------------------
    def incident_for_alert(self, alert_id: str) -> str | None:
        row = self._connection().execute(
            "SELECT incident_id FROM alerts WHERE alert_id = ?", (alert_id,)).fetchone()
        return row[0] if row else None

    def active_incident(self, fingerprint: str) -> Incident | None:
        row = self._connection().execute(
            "SELECT data FROM incidents WHERE fingerprint = ? AND active = 1 "
            "ORDER BY created_at DESC LIMIT 1", (fingerprint,)).fetchone()
        return Incident.from_dict(json.loads(row[0])) if row else None

    def incident(self, incident_id: str) -> Incident:
        """The incident; raises NotFound if there is none with this id."""
        row = self._connection().execute(
            "SELECT data FROM incidents WHERE id = ?", (incident_id,)).fetchone()
        if row is None:
            raise NotFound(f"incident {incident_id!r} not found")
        return Incident.from_dict(json.loads(row[0]))

    def apply(self, changes: Sequence[Change]) -> list[list[TimelineEvent]]:
        """Write every change, its timeline events and the notifications they owe, in one
        transaction. Returns the written timeline events per change (with ids)."""
        written: list[list[TimelineEvent]] = []
        with self._transaction() as conn:
            for change in changes:
                written.append(self._write_change(conn, change))
        return written

    def _write_change(self, conn: sqlite3.Connection, change: Change) -> list[TimelineEvent]:
        incident = change.incident
        snapshot = incident.to_dict()
        snapshot_text = _dumps(snapshot)
        conn.execute(
            "INSERT INTO incidents (id, fingerprint, active, state, severity, source, created_at, data) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET active = excluded.active, "
            "state = excluded.state, severity = excluded.severity, data = excluded.data",
            (incident.id, incident.fingerprint, int(incident.state.is_active), int(incident.state),
             int(incident.severity), incident.source, _ts(incident.created_at), snapshot_text))
        if change.alert is not None:
            conn.execute("INSERT INTO alerts (alert_id, incident_id, received_at, data) VALUES (?, ?, ?, ?)",
                         (change.alert.alert_id, incident.id, _ts(incident.updated_at),
                          _dumps(change.alert.to_dict())))
        events = []
        for event in change.events:
            notifies = bool(event.event_type and event.receivers)
            cursor = conn.execute(
                "INSERT INTO timeline (incident_id, kind, at, actor, detail, snapshot) VALUES (?, ?, ?, ?, ?, ?)",
                (incident.id, event.kind.value, _ts(event.at), event.actor, _dumps(dict(event.detail)),
                 snapshot_text if notifies else None))
            timeline_id = cursor.lastrowid
            events.append(TimelineEvent(incident.id, event.kind, event.at, event.actor, event.detail, timeline_id))
            if notifies:
                at = _ts(event.at)
                conn.executemany(
                    "INSERT INTO notifications (id, incident_id, timeline_id, channel, destination, event_type, "
                    "occurred_at, status, due_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?)",
                    [(str(uuid.uuid4()), incident.id, timeline_id, r.channel, r.destination, event.event_type,
                      at, at, at, at) for r in event.receivers])
        return events

    def list_incidents(self, query: IncidentQuery, page_size: int, page_token: str = "") -> tuple[list[Incident], str]:
        """A page of incidents, newest first, and the token of the next page ('' at the end)."""
        where, params = [], []  # type: list[str], list[Any]
        if query.states:
            where.append(f"state IN ({','.join('?' * len(query.states))})")
            params += query.states
        if query.severities:
            where.append(f"severity IN ({','.join('?' * len(query.severities))})")
            params += query.severities
        if query.source:
            where.append("source = ?")
            params.append(query.source)
        if query.created_after:
            where.append("created_at >= ?")
            params.append(_ts(query.created_after))
        if query.created_before:
            where.append("created_at < ?")
            params.append(_ts(query.created_before))
        if page_token:
            created, last_id = _decode_token(page_token)
            where.append("(created_at < ? OR (created_at = ? AND id < ?))")
            params += [created, created, last_id]
        sql = "SELECT data, created_at, id FROM incidents"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, id DESC LIMIT ?"
        rows = self._connection().execute(sql, (*params, page_size + 1)).fetchall()
        incidents = [Incident.from_dict(json.loads(row[0])) for row in rows[:page_size]]
        token = _encode_token(rows[page_size - 1][1], rows[page_size - 1][2]) if len(rows) > page_size else ""
        return incidents, token

    def timeline(self, incident_id: str) -> list[TimelineEvent]:
        self.incident(incident_id)
        rows = self._connection().execute(
            "SELECT id, kind, at, actor, detail FROM timeline WHERE incident_id = ? ORDER BY id",
            (incident_id,)).fetchall()
        return [TimelineEvent(incident_id, EventKind(kind), _dt(at), actor, json.loads(detail), tid)  # type: ignore[arg-type]
                for tid, kind, at, actor, detail in rows]

    # -- router side -------------------------------------------------------------------
    def lease_due(self, channel: str, destination: str, now: float, limit: int) -> list[Delivery]:
        """Lease owed, unleased deliveries for one destination, due by ``now``, oldest first,
        skipping any whose (incident, destination) has an earlier delivery still owed (so
        order is kept). Leased rows are not handed out again until released."""
        with self._transaction() as conn:
            rows = conn.execute(
            "SELECT n.id, n.incident_id, n.event_type, n.occurred_at, n.attempts, t.snapshot, s.data "
            "FROM notifications n JOIN timeline t ON t.id = n.timeline_id "
            "LEFT JOIN channel_state s ON s.channel = n.channel AND s.destination = n.destination "
            "  AND s.incident_id = n.incident_id "
            "WHERE n.channel = ? AND n.destination = ? AND n.due_at IS NOT NULL AND n.leased = 0 "
            "AND n.due_at <= ? "
            "AND NOT EXISTS (SELECT 1 FROM notifications p WHERE p.incident_id = n.incident_id "
            "  AND p.channel = n.channel AND p.destination = n.destination "
            "  AND p.due_at IS NOT NULL AND p.seq < n.seq) "
            "ORDER BY n.due_at, n.seq LIMIT ?",
            (channel, destination, now, limit)).fetchall()
            conn.executemany("UPDATE notifications SET leased = 1 WHERE id = ?", [(row[0],) for row in rows])
        deliveries = []
        for nid, incident_id, event_type, occurred_at, attempts, snapshot, state in rows:
            deliveries.append(Delivery(
                notification_id=nid, incident_id=incident_id, channel=channel, destination=destination,
                event_type=event_type, occurred_at=_dt(occurred_at),  # type: ignore[arg-type]
                incident=Incident.from_dict(json.loads(snapshot)), attempt=attempts + 1,
                state=json.loads(state) if state else {}))
        return deliveries

    def release(self, notification_ids: Iterable[str] | None = None) -> None:
        """Make leased deliveries available again: the given ones, or every one (None)."""
        with self._transaction() as conn:
            if notification_ids is None:
                conn.execute("UPDATE notifications SET leased = 0 WHERE leased = 1")
            else:
                conn.executemany("UPDATE notifications SET leased = 0 WHERE id = ?",
                                 [(nid,) for nid in notification_ids])

    def give_up_unrouted(self, configured: set[tuple[str, str]], now: float) -> int:
        """Mark dead every owed delivery whose (channel, destination) is no longer configured,
        with the reason and a timeline entry each, so nothing waits forever unseen. Returns how
        many were given up; they can be re-queued once the channel is configured again."""
        given_up = 0
        with self._transaction() as conn:
            owed = conn.execute("SELECT DISTINCT channel, destination FROM notifications "
                                "WHERE due_at IS NOT NULL").fetchall()
            for channel, destination in owed:
                if (channel, destination) in configured:
                    continue
                reason = f"{channel} destination {destination!r} is no longer configured"
                conn.execute(
                    "INSERT INTO timeline (incident_id, kind, at, actor, detail) "
                    "SELECT incident_id, ?, ?, 'notifier', json_object('notification_id', id, 'channel', channel, "
                    "'destination', destination, 'event_type', event_type, 'attempts', attempts, 'error', ?) "
                    "FROM notifications WHERE channel = ? AND destination = ? AND due_at IS NOT NULL",
                    (EventKind.NOTIFICATION_DEAD.value, now, reason, channel, destination))
                given_up += conn.execute(
                    "UPDATE notifications SET status = 'dead', due_at = NULL, leased = 0, updated_at = ?, "
                    "last_error = ? WHERE channel = ? AND destination = ? AND due_at IS NOT NULL",
                    (now, reason, channel, destination)).rowcount
        return given_up

    # -- sender side -------------------------------------------------------------------
    def record_attempt(self, delivery: Delivery, outcome: Outcome, status: DeliveryStatus,
                       at: float, duration_ms: float, next_attempt_at: float | None = None) -> None:
        """Record one attempt and the notification's new status (and channel state, and a
        timeline entry when it was delivered or given up) in one transaction."""
        self.record_attempts([AttemptRecord(delivery, outcome, status, at, duration_ms, next_attempt_at)])

    def record_attempts(self, records: Sequence["AttemptRecord"]) -> None:
        """:meth:`record_attempt` for several attempts, all in one transaction."""
        with self._transaction() as conn:
            for record in records:
                _write_attempt(conn, record)

    # -- API side ----------------------------------------------------------------------
    def notification(self, notification_id: str) -> NotificationRecord:
        row = self._connection().execute(_NOTIFICATION_SELECT + " WHERE id = ?", (notification_id,)).fetchone()
        if row is None:
            raise NotFound(f"notification {notification_id!r} not found")
        return _notification(row)

    def attempts(self, notification_id: str) -> list[Attempt]:
        rows = self._connection().execute(
            "SELECT number, at, outcome, status_code, detail, duration_ms FROM attempts "
            "WHERE notification_id = ? ORDER BY id", (notification_id,)).fetchall()
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
        rows = self._connection().execute(sql, (*params, page_size + 1)).fetchall()
        records = [_notification(row) for row in rows[:page_size]]
        token = _encode_seq(rows[page_size - 1][-1]) if len(rows) > page_size else ""
        return records, token

    def ids_starting_with(self, kind: str, prefix: str, limit: int) -> list[str]:
        """Up to ``limit`` ids of ``kind`` ("incident" or "notification"; ValueError for another)
        that start with ``prefix``, in id order: a range scan of the table's id index."""
        tables = {"incident": "incidents", "notification": "notifications"}
        if kind not in tables:
            raise ValueError(f"no ids of kind {kind!r}")
        rows = self._connection().execute(
            f"SELECT id FROM {tables[kind]} WHERE id >= ? AND id < ? ORDER BY id LIMIT ?",
            (prefix, prefix + "\U0010ffff", limit)).fetchall()
        return [row[0] for row in rows]

    def requeue(self, notification_id: str, now: float) -> NotificationRecord:
        """Make a dead notification owed again (attempt count kept); FAILED_PRECONDITION otherwise."""
        with self._transaction() as conn:
            row = conn.execute("SELECT status FROM notifications WHERE id = ?", (notification_id,)).fetchone()
            if row is None:
                raise NotFound(f"notification {notification_id!r} not found")
            if row[0] != DeliveryStatus.DEAD.value:
                raise IllegalTransition(f"notification {notification_id!r} is {row[0]}; only dead ones can be re-queued")
            conn.execute("UPDATE notifications SET status = 'queued', due_at = ?, updated_at = ?, leased = 0 "
                         "WHERE id = ?",
                         (now, now, notification_id))
        return self.notification(notification_id)

    def channel_counts(self, latency_sample: int = 1000) -> list[ChannelCounts]:
        conn = self._connection()
        counts: dict[str, dict[str, int]] = {}
        for channel, status, count in conn.execute(
                "SELECT channel, status, COUNT(*) FROM notifications GROUP BY channel, status"):
            counts.setdefault(channel, {})[status] = count
        result = []
        for channel in sorted(counts):
            latencies = sorted(r[0] for r in conn.execute(
                "SELECT (delivered_at - occurred_at) * 1000.0 FROM notifications WHERE channel = ? "
                "AND delivered_at IS NOT NULL ORDER BY delivered_at DESC LIMIT ?", (channel, latency_sample)))
            result.append(ChannelCounts(channel, counts[channel], _percentile(latencies, 0.5),
                                        _percentile(latencies, 0.99)))
        return result


_NOTIFICATION_SELECT = ("SELECT id, incident_id, channel, destination, event_type, status, attempts, "
                        "created_at, updated_at, due_at, last_error, seq FROM notifications")


def _notification(row: Sequence[Any]) -> NotificationRecord:
    return NotificationRecord(row[0], row[1], row[2], row[3], row[4], DeliveryStatus(row[5]), row[6],
                              _dt(row[7]), _dt(row[8]), _dt(row[9]), row[10])  # type: ignore[arg-type]


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def _encode_token(created_at: float, incident_id: str) -> str:
    return base64.urlsafe_b64encode(f"{created_at!r}|{incident_id}".encode()).decode()


def _decode_token(token: str) -> tuple[float, str]:
    try:
        created, incident_id = base64.urlsafe_b64decode(token.encode()).decode().split("|", 1)
        return float(created), incident_id
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument("page_token", "not a token returned by a previous call") from None


def _encode_seq(seq: int) -> str:
    return _encode_token(float(seq), "n")


def _decode_seq(token: str) -> int:
    return int(_decode_token(token)[0])


class AttemptRecord(NamedTuple):
    delivery: Delivery
    outcome: Outcome
    status: DeliveryStatus
    at: float
    duration_ms: float
    next_attempt_at: float | None = None


def _write_attempt(conn: sqlite3.Connection, record: AttemptRecord) -> None:
    delivery, outcome, status, at, duration_ms, next_attempt_at = record
    done = status in (DeliveryStatus.DELIVERED, DeliveryStatus.DEAD, DeliveryStatus.SKIPPED)
    conn.execute(
        "INSERT INTO attempts (notification_id, number, at, outcome, status_code, detail, duration_ms) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (delivery.notification_id, delivery.attempt, at, outcome.kind.value, outcome.status_code,
         outcome.detail, duration_ms))
    conn.execute(
        "UPDATE notifications SET status = ?, attempts = ?, due_at = ?, updated_at = ?, last_error = ?, "
        "delivered_at = ? WHERE id = ?",
        (status.value, delivery.attempt, None if done else next_attempt_at, at,
         "" if outcome.kind is OutcomeKind.DELIVERED else outcome.detail,
         at if status is DeliveryStatus.DELIVERED else None, delivery.notification_id))
    if outcome.state is not None:
        conn.execute(
            "INSERT INTO channel_state (channel, destination, incident_id, data) VALUES (?, ?, ?, ?) "
            "ON CONFLICT DO UPDATE SET data = excluded.data",
            (delivery.channel, delivery.destination, delivery.incident_id, _dumps(dict(outcome.state))))
    if status in (DeliveryStatus.DELIVERED, DeliveryStatus.DEAD):
        kind = EventKind.NOTIFICATION_DELIVERED if status is DeliveryStatus.DELIVERED else EventKind.NOTIFICATION_DEAD
        detail = {"notification_id": delivery.notification_id, "channel": delivery.channel,
                  "destination": delivery.destination, "event_type": delivery.event_type,
                  "attempts": delivery.attempt}
        if status is DeliveryStatus.DEAD:
            detail["error"] = outcome.detail
        conn.execute("INSERT INTO timeline (incident_id, kind, at, actor, detail) VALUES (?, ?, ?, ?, ?)",
                     (delivery.incident_id, kind.value, at, "notifier", _dumps(detail)))


class _Txn:
    """``with`` block running BEGIN IMMEDIATE … COMMIT, or ROLLBACK on any exception."""

    def __init__(self, conn: sqlite3.Connection, lock: threading.Lock) -> None:
        self.conn = conn
        self.lock = lock

    def __enter__(self) -> sqlite3.Connection:
        self.lock.acquire()
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.lock.release()
            raise
        return self.conn

    def __exit__(self, exc_type: object, *rest: object) -> None:
        try:
            self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self.lock.release()


