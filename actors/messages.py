"""Messages between actors and the commands the processor accepts. All immutable."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from .domain.models import Alert, Delivery, IncidentState, IncidentType, ResolutionMethod, Severity


# -- processor commands (asked by the gateway; the reply is the result) -------------------
@dataclass(frozen=True, slots=True)
class SubmitAlerts:
    """Record alerts in one transaction. Reply: list[AlertResult] in the same order."""

    alerts: tuple[Alert, ...]


@dataclass(frozen=True, slots=True)
class AlertResult:
    alert_id: str
    incident_id: str
    duplicate: bool       # this alert_id had been recorded before; nothing changed
    new_incident: bool    # the alert opened a new incident


@dataclass(frozen=True, slots=True)
class CreateIncident:
    title: str
    description: str
    severity: Severity
    type: IncidentType
    source: str = "manual"
    labels: Mapping[str, str] = field(default_factory=dict)
    affected_services: tuple[str, ...] = ()
    assignees: tuple[str, ...] = ()
    actor: str = "api"


@dataclass(frozen=True, slots=True)
class UpdateIncident:
    incident_id: str
    actor: str
    title: str | None = None
    description: str | None = None
    severity: Severity | None = None
    assignees: tuple[str, ...] | None = None
    labels: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class TransitionIncident:
    incident_id: str
    to_state: IncidentState
    actor: str
    note: str = ""


@dataclass(frozen=True, slots=True)
class ResolveIncident:
    incident_id: str
    resolved_by: str
    method: ResolutionMethod
    notes: str = ""
    root_cause: str = ""


@dataclass(frozen=True, slots=True)
class AddNote:
    incident_id: str
    author: str
    text: str


# -- router ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Owed:
    """(Processor to router) deliveries just committed, leased to the router's epoch ``lease``:
    dispatch them from memory, without reading them back."""

    deliveries: tuple[Delivery, ...]
    lease: str


@dataclass(frozen=True, slots=True)
class Wake:
    """Deliveries became free in the store (e.g. a re-queued one): pull when there is room."""


@dataclass(frozen=True, slots=True)
class Pull:
    """(Router to itself) pull due deliveries from the store now."""


@dataclass(frozen=True, slots=True)
class Poll:
    """(Scheduler to router, every poll interval) pull what came due, then schedule the next."""


@dataclass(frozen=True, slots=True)
class Settled:
    """A delivery is finished (delivered, skipped or dead) or was not the sender's to make:
    its slot is free."""

    notification_id: str


@dataclass(frozen=True, slots=True)
class TimerSet:
    """A sender holds this delivery on a timer (retry backoff or pacing): it no longer uses a
    sending slot, though it still counts for its destination."""

    notification_id: str


@dataclass(frozen=True, slots=True)
class TimerFired:
    """The delivery's timer fired: it is being sent again and uses a sending slot."""

    notification_id: str


@dataclass(frozen=True, slots=True)
class SenderRestarted:
    """The named sender (or every sender of pool ``pool:<channel>``) was replaced: what it held
    is owed again (recovered from the store)."""

    sender: str


@dataclass(frozen=True, slots=True)
class InFlightCounts:
    """Ask: → dict[channel, (in_flight, retry_waiting)]."""


@dataclass(frozen=True, slots=True)
class Drain:
    """Ask: stop dispatching new deliveries; reply with how many are still in flight."""


# -- sender ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Send:
    """Attempt this delivery. Its ``lease`` names the sending router's epoch; a sender that
    already holds the delivery on a timer takes the new lease and drops the Send. ``verify``
    marks one pulled from the store (not handed over by the processor): it may have been made
    by a sender instance that is gone, so the sender checks the store before sending it."""

    delivery: Delivery
    verify: bool = False


@dataclass(frozen=True, slots=True)
class TimerDue:
    """(Sender to itself, from a timer) attempt this delivery now. ``paced`` says the timer
    was the pacing wait, whose send slot is already reserved; a retry must be paced anew."""

    delivery: Delivery
    paced: bool = False
