"""Stand-ins for the actors around the one a test drives directly."""
from __future__ import annotations

import queue
from dataclasses import dataclass

import pykka

TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class Sync:
    """Ask a :class:`Recorder` this: it answers once it has kept everything told before."""


class Recorder(pykka.ThreadingActor):
    """Stands in for an actor (the router, a sender): puts what it is told in ``told``, in order."""

    def __init__(self, told: queue.Queue) -> None:
        super().__init__()
        self.told = told

    def on_receive(self, message: object) -> None:
        if not isinstance(message, Sync):
            self.told.put(message)


def next_told(told: queue.Queue) -> object:
    """The next message a recorder kept (waiting for it); queue.Empty after TIMEOUT."""
    return told.get(timeout=TIMEOUT)
