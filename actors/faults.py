"""Fault injection into named actors, for tests, chaos runs and embedding programs.

An :class:`ActorFaults` is shared by every actor of one engine. Each supervised actor
consults it before starting and before each message, so a fault lands where a real bug
would: an injected crash in a message — told or asked — crashes the actor (an asker gets an
ActorDeadError, as if the actor had died just before) and its supervisor restarts it; a crash
in start goes through the on_start path.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass


class InjectedFault(Exception):
    """Raised inside an actor by an injected fault; never raised by real code."""


@dataclass
class _Plan:
    crash_next: int = 0
    crash_on_start: int = 0
    delay_ms: float = 0.0


class ActorFaults:
    """Thread-safe fault plans keyed by actor name (e.g. ``router``, ``sender:webhook:0``)."""

    def __init__(self) -> None:
        self._plans: dict[str, _Plan] = {}
        self._lock = threading.Condition()
        self._clears = 0
        self._injected = 0

    def crash_next_message(self, actor: str, times: int = 1) -> None:
        """The actor raises on its next ``times`` messages (one crash per instance)."""
        with self._lock:
            self._plans.setdefault(actor, _Plan()).crash_next += times

    def crash_on_start(self, actor: str, times: int = 1) -> None:
        """The actor's next ``times`` starts fail (its supervisor sees on_start failures)."""
        with self._lock:
            self._plans.setdefault(actor, _Plan()).crash_on_start += times

    def delay_messages(self, actor: str, milliseconds: float) -> None:
        """Every message to the actor waits this long first (0 removes the delay)."""
        with self._lock:
            self._plans.setdefault(actor, _Plan()).delay_ms = milliseconds

    def clear(self, actor: str | None = None) -> None:
        """Drop the plans (all, or one actor's); a message being delayed right now goes on."""
        with self._lock:
            if actor is None:
                self._plans.clear()
            else:
                self._plans.pop(actor, None)
            self._clears += 1
            self._lock.notify_all()

    @property
    def injected_crashes(self) -> int:
        """How many injected crashes actually fired (message and start)."""
        return self._injected

    def before_start(self, actor: str) -> None:
        with self._lock:
            plan = self._plans.get(actor)
            if plan is None or plan.crash_on_start <= 0:
                return
            plan.crash_on_start -= 1
            self._injected += 1
        raise InjectedFault(f"injected crash in start of {actor}")

    def before_message(self, actor: str) -> None:
        """Apply the actor's plan to the message it is about to handle. Costs one dict lookup
        (no lock) for an actor without a plan."""
        if actor not in self._plans:
            return
        with self._lock:
            plan = self._plans.get(actor)
            if plan is None:
                return
            clears = self._clears
            delay = plan.delay_ms
            crash = plan.crash_next > 0
            if crash:
                plan.crash_next -= 1
                self._injected += 1
        if delay:
            with self._lock:
                self._lock.wait_for(lambda: self._clears != clears, timeout=delay / 1000.0)
        if crash:
            raise InjectedFault(f"injected crash in {actor}")
