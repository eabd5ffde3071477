"""What retention deletes from the store, one bounded batch at a time.

Two kinds of record go once they are older than the cutoff (a Unix time):

- a **settled** notification (delivered, dead or skipped: ``due_at`` is NULL) whose last
  change (``updated_at``) is older, with its attempts (and, for a group notification, the
  rows naming the events it carried);
- a **closed** incident whose last timeline entry is older and that has no notification left
  (an owed one keeps it; a settled one goes first, by the rule above), with its timeline,
  alerts and channel state.

Nothing owed and no incident that is not closed is ever touched. A batch runs in the caller's
transaction, examines at most ``max_rows`` rows and deletes at most ``max_rows`` rows; a
:class:`Cursor` says where the next batch goes on (None when the pass is over). Both tables are
walked in creation order and a walk stops at the first record created after the cutoff (a
record cannot have changed before it was created), so a pass reads only what is older than
the cutoff, whatever the history behind it. An incident bigger than a batch is deleted over
several batches, its own row last, so an interrupted pass leaves it findable for the next.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

from ..domain.grouping import GROUP_EVENT
from ..domain.models import IncidentState
from .dialect import Dialect, Session

#: SQLite's limit on bound parameters, with room to spare (PostgreSQL's is higher).
_CHUNK = 500


class Cursor(NamedTuple):
    """Where a pass stands: notifications after ``seq``, then incidents after (created_at, id)."""

    seq: int = 0
    incidents: bool = False
    created_at: float = float("-inf")
    incident_id: str = ""


def prune_batch(conn: Session, dialect: Dialect, cutoff: float, max_rows: int,
                cursor: Cursor) -> tuple[int, Cursor | None]:
    """Delete at most ``max_rows`` rows of what retention lets go; returns how many went and
    the cursor of the next batch (None when nothing older than ``cutoff`` is left to look at)."""
    if not cursor.incidents:
        deleted, seq = _prune_notifications(conn, cutoff, max_rows, cursor.seq)
        return deleted, Cursor(seq) if seq is not None else Cursor(incidents=True)
    deleted, after = _prune_incidents(conn, dialect, cutoff, max_rows, (cursor.created_at, cursor.incident_id))
    return deleted, Cursor(cursor.seq, True, *after) if after is not None else None


def _prune_notifications(conn: Session, cutoff: float, max_rows: int,
                         after_seq: int) -> tuple[int, int | None]:
    """Settled notifications (and their attempts) after ``after_seq``; returns the rows deleted
    and the seq to go on after, or None when the notifications older than the cutoff are done."""
    rows = conn.execute("SELECT seq, id, created_at, due_at, updated_at, attempts, event_type FROM notifications "
                        "WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, max_rows)).fetchall()
    chosen: list[tuple[int, str]] = []
    budget = max_rows
    for seq, nid, created_at, due_at, updated_at, attempts, event_type in rows:
        if created_at >= cutoff:
            return _delete_notifications(conn, chosen), None
        if due_at is None and updated_at < cutoff:
            if event_type == GROUP_EVENT:  # its items count as rows too
                attempts += conn.execute("SELECT count(*) FROM group_items WHERE notification_id = ?",
                                         (nid,)).fetchone()[0]
            if 1 + attempts > budget:
                if not chosen:  # alone bigger than a batch (re-queued many times): attempts first
                    return _delete_attempts_of(conn, seq, nid, budget), after_seq
                break
            chosen.append((seq, nid))
            budget -= 1 + attempts
        after_seq = seq
    else:
        if len(rows) < max_rows:
            return _delete_notifications(conn, chosen), None
    return _delete_notifications(conn, chosen), after_seq


def _delete_notifications(conn: Session, chosen: Sequence[tuple[int, str]]) -> int:
    deleted = 0
    for start in range(0, len(chosen), _CHUNK):
        part = chosen[start:start + _CHUNK]
        marks = ",".join("?" * len(part))
        for table in ("attempts", "group_items"):
            deleted += conn.execute(f"DELETE FROM {table} WHERE notification_id IN ({marks})",
                                    [nid for _, nid in part]).rowcount
        deleted += conn.execute(f"DELETE FROM notifications WHERE seq IN ({marks})",
                                [seq for seq, _ in part]).rowcount
    return deleted


def _delete_attempts_of(conn: Session, seq: int, notification_id: str, limit: int) -> int:
    """Up to ``limit`` attempts or group items of one notification; the notification itself
    once none is left."""
    deleted = conn.execute("DELETE FROM attempts WHERE id IN (SELECT id FROM attempts WHERE notification_id = ? "
                           "ORDER BY id LIMIT ?)", (notification_id, limit)).rowcount
    deleted = deleted or conn.execute(
        "DELETE FROM group_items WHERE notification_id = ? AND timeline_id IN (SELECT timeline_id FROM group_items "
        "WHERE notification_id = ? ORDER BY timeline_id LIMIT ?)", (notification_id, notification_id, limit)).rowcount
    return deleted or _delete_notifications(conn, [(seq, notification_id)])


def _prune_incidents(conn: Session, dialect: Dialect, cutoff: float, max_rows: int,
                     after: tuple[float, str]) -> tuple[int, tuple[float, str] | None]:
    """Closed incidents after ``after`` (created_at, id), with their timeline, alerts and
    channel state; returns the rows deleted and where to go on, or None when done."""
    rows = conn.execute("SELECT created_at, id, state FROM incidents WHERE (created_at, id) > (?, ?) "
                        "ORDER BY created_at, id LIMIT ?", (*after, max_rows)).fetchall()
    budget = max_rows
    for created_at, incident_id, state in rows:
        if created_at >= cutoff:
            return max_rows - budget, None
        if state == IncidentState.CLOSED and _expired(conn, incident_id, cutoff):
            deleted, gone = _delete_incident(conn, dialect, incident_id, budget)
            budget -= deleted
            if not gone:  # the next batch goes on with it
                return max_rows - budget, after
        after = (created_at, incident_id)
    return max_rows - budget, after if len(rows) == max_rows else None


def _expired(conn: Session, incident_id: str, cutoff: float) -> bool:
    """Its last timeline entry is older than the cutoff and no notification of it is left."""
    last = conn.execute("SELECT at FROM timeline WHERE incident_id = ? ORDER BY id DESC LIMIT 1",
                        (incident_id,)).fetchone()
    if last is not None and last[0] >= cutoff:
        return False
    return conn.execute("SELECT 1 FROM notifications WHERE incident_id = ? LIMIT 1",
                        (incident_id,)).fetchone() is None


def _delete_incident(conn: Session, dialect: Dialect, incident_id: str, budget: int) -> tuple[int, bool]:
    """Up to ``budget`` rows of the incident: its channel state, then its oldest timeline entries
    with the alerts they name (every alert is named by the entry that recorded it, ``created``
    or ``alert_joined``, so alerts need no index by incident on the hot path), its own row only
    once nothing else of it is left. Its last entry, which says how old it is, goes last.
    Returns the rows deleted and whether the incident is gone."""
    deleted = conn.execute("DELETE FROM channel_state WHERE incident_id = ? AND (channel, destination) IN "
                           "(SELECT channel, destination FROM channel_state WHERE incident_id = ? LIMIT ?)",
                           (incident_id, incident_id, budget)).rowcount
    chunk = (budget - deleted) // 2  # each entry may take an alert with it
    ids = [row[0] for row in conn.execute("SELECT id FROM timeline WHERE incident_id = ? ORDER BY id LIMIT ?",
                                          (incident_id, chunk))]
    if ids:
        deleted += conn.execute(f"DELETE FROM alerts WHERE alert_id IN (SELECT {dialect.detail_alert_id} "
                                "FROM timeline WHERE incident_id = ? AND id <= ?)", (incident_id, ids[-1])).rowcount
        deleted += conn.execute("DELETE FROM timeline WHERE incident_id = ? AND id <= ?",
                                (incident_id, ids[-1])).rowcount
    if len(ids) == chunk or deleted >= budget:
        return deleted, False
    return deleted + conn.execute("DELETE FROM incidents WHERE id = ?", (incident_id,)).rowcount, True
