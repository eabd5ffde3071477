"""Names → current actor refs. A restarted actor gets a new ref under the same name, so
everyone who looks refs up here (rather than keeping one) is re-pointed at once."""
from __future__ import annotations

import threading

import pykka

from .domain.errors import Unavailable


class ActorDirectory:
    def __init__(self) -> None:
        self._refs: dict[str, pykka.ActorRef] = {}
        self._lock = threading.Lock()

    def register(self, name: str, ref: pykka.ActorRef) -> None:
        with self._lock:
            self._refs[name] = ref

    def unregister(self, name: str, ref: pykka.ActorRef) -> None:
        """Forget ``name`` only if it still points at ``ref`` (a newer ref stays)."""
        with self._lock:
            if self._refs.get(name) is ref:
                del self._refs[name]

    def lookup(self, name: str) -> pykka.ActorRef | None:
        """The current ref, or None when the actor is not running."""
        return self._refs.get(name)

    def get(self, name: str) -> pykka.ActorRef:
        """The current ref; raises Unavailable when the actor is not running (restarting)."""
        ref = self.lookup(name)
        if ref is None:
            raise Unavailable(f"{name} is not running")
        return ref

    def tell(self, name: str, message: object) -> bool:
        """Tell ``name`` if it is running; False (message not sent) otherwise."""
        ref = self.lookup(name)
        if ref is None:
            return False
        try:
            ref.tell(message)
        except pykka.ActorDeadError:
            return False
        return True
