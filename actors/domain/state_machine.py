"""The incident lifecycle: which state may follow which.

Detected → Triaged → Investigating → Remediating → Resolved → Closed, where an active
incident may skip ahead, Remediating may fall back to Investigating, and a Resolved incident
may be reopened (to Investigating) or closed. Closed is final.
"""
from __future__ import annotations

from .errors import IllegalTransition
from .models import IncidentState as S

ALLOWED: dict[S, frozenset[S]] = {
    S.DETECTED: frozenset({S.TRIAGED, S.INVESTIGATING, S.REMEDIATING, S.RESOLVED}),
    S.TRIAGED: frozenset({S.INVESTIGATING, S.REMEDIATING, S.RESOLVED}),
    S.INVESTIGATING: frozenset({S.REMEDIATING, S.RESOLVED}),
    S.REMEDIATING: frozenset({S.INVESTIGATING, S.RESOLVED}),
    S.RESOLVED: frozenset({S.CLOSED, S.INVESTIGATING}),
    S.CLOSED: frozenset(),
}


def check_transition(current: S, target: S) -> None:
    """Raise IllegalTransition (naming both states) unless ``current → target`` is allowed."""
    if target not in ALLOWED[current]:
        allowed = ", ".join(s.name for s in sorted(ALLOWED[current])) or "none (Closed is final)"
        raise IllegalTransition(
            f"cannot move incident from {current.name} to {target.name}; allowed: {allowed}")
