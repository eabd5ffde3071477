"""Whether an incident's routed notifications are held back, and by what (pure): the silence
in force that matches it, else the active incident that inhibits it."""
from __future__ import annotations

from datetime import datetime

from .changes import Suppression
from .inhibition import Inhibitors
from .models import DeliveryStatus, Incident
from .routing import Verdict
from .silences import ActiveSilences

#: The routing verdict of each kind of suppression.
VERDICTS = {DeliveryStatus.SILENCED: Verdict.SILENCED, DeliveryStatus.INHIBITED: Verdict.INHIBITED}


class Suppressor:
    """The silences not yet released and the inhibit rules' active sources (one thread: the
    processor's, which tells it of every incident it commits)."""

    def __init__(self, silences: ActiveSilences, inhibitors: Inhibitors) -> None:
        self.silences = silences
        self.inhibitors = inhibitors

    def suppression(self, incident: Incident, now: datetime) -> Suppression | None:
        silence = self.silences.silencing(incident, now)
        if silence is not None:
            return Suppression(DeliveryStatus.SILENCED, silence.id)
        inhibited = self.inhibitors.inhibitor(incident)
        if inhibited is None:
            return None
        source, rule = inhibited
        return Suppression(DeliveryStatus.INHIBITED, source, f"inhibit_rules[{rule}]")
