"""Who holds leases on the outbox: this server instance and its router's epoch.

Every router start begins a new epoch; the lease it writes is ``"<instance>:<epoch>"``. A row
leased by any other name (a router that crashed, a server that died) is free to the current
router, so recovery never has to clear old leases. The processor reads :attr:`RouterLease.token`
to lease new deliveries to the router that will receive them.
"""
from __future__ import annotations

import itertools
import uuid


class RouterLease:
    def __init__(self, instance: str | None = None) -> None:
        self.instance = instance or uuid.uuid4().hex[:12]
        self._epochs = itertools.count(1)
        self.token = f"{self.instance}:0"  # no router yet: nothing is leased to a live one

    def new_epoch(self) -> str:
        """Start the next router epoch and return its lease token."""
        self.token = f"{self.instance}:{next(self._epochs)}"
        return self.token
