"""Who holds leases on the outbox: this server instance and its router's epoch.

Every router start begins a new epoch; the lease it writes is ``"<instance>:<epoch>"``. A row
leased by any other name (a router that crashed, a server that died) is free to the current
router, so recovery never has to clear old leases. The processor reads :attr:`RouterLease.token`
to lease new deliveries to the router that will receive them, holding :meth:`RouterLease.current`
around its commit: an epoch never begins in the middle of a commit, so whatever was committed
under an earlier epoch is already in the store when a new router looks for free rows.
"""
from __future__ import annotations

import itertools
import threading
import uuid
from contextlib import contextmanager
from typing import Iterator


class RouterLease:
    def __init__(self, instance: str | None = None) -> None:
        self.instance = instance or uuid.uuid4().hex[:12]
        self._epochs = itertools.count(1)
        self._lock = threading.Lock()
        self.token = f"{self.instance}:0"  # no router yet: nothing is leased to a live one

    def new_epoch(self) -> str:
        """Start the next router epoch (after any commit in progress) and return its token."""
        with self._lock:
            self.token = f"{self.instance}:{next(self._epochs)}"
            return self.token

    @contextmanager
    def current(self) -> Iterator[str]:
        """The current token, which stays current until the block ends."""
        with self._lock:
            yield self.token
