"""Messages between actors. All immutable.

The commands the processor accepts from the edges are domain commands
(actors/domain/commands.py); only the alert batch is an actor message here."""
from __future__ import annotations

from dataclasses import dataclass

from .domain.models import Alert, Delivery, Incident


# -- processor (asked by the engine's group commit) -----------------------------------------
@dataclass(frozen=True, slots=True)
class SubmitAlerts:
    """Record alerts in one transaction. Reply: list[AlertResult] in the same order."""

    alerts: tuple[Alert, ...]


# -- router ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Owed:
    """(Processor to router) deliveries just committed, leased to the router's epoch ``lease``:
    dispatch them from memory, without reading them back."""

    deliveries: tuple[Delivery, ...]
    lease: str


@dataclass(frozen=True, slots=True)
class GroupsDue:
    """(Processor or sender to router) group notifications just committed, free in the store,
    each as (channel, destination, due time): pull them from there when they are due."""

    due: tuple[tuple[str, str, float], ...]


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
    """Deliveries that are finished (delivered, skipped or dead) or were not the sender's to
    make: their slots are free."""

    notification_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Released:
    """Deliveries a sender was handed but found made by another (a replaced instance, a
    stale Send) while they are still owed: the router frees them in the store (the router,
    not the sender, so that no pull of its own takes one back before it hears of it) and
    serves their destinations from there until it has them back."""

    notification_ids: tuple[str, ...]


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
    """Attempt these deliveries, in order. A sender that already holds one (on a timer, or
    finished and not yet recorded) drops it. ``verify`` marks ones pulled from the store (not
    handed over by the processor): they may have been made by a sender instance that is gone,
    so the sender checks the store before sending."""

    deliveries: tuple[Delivery, ...]
    verify: bool = False


@dataclass(frozen=True, slots=True)
class SettleDue:
    """(Sender to itself, from a timer) the oldest finished attempt has waited the settle
    window: record what finished now."""


@dataclass(frozen=True, slots=True)
class TimerDue:
    """(Sender to itself, from a timer) attempt this delivery now. ``paced`` says the timer
    was the pacing wait, whose send slot is already reserved; a retry must be paced anew."""

    delivery: Delivery
    paced: bool = False


@dataclass(frozen=True, slots=True)
class Answered:
    """(A channel's transport to the sender) answers to deliveries started with
    ``deliver_later`` are waiting in the sender's answer box; told once per batch."""


@dataclass(frozen=True)
class SilenceEnds:
    """Timer → processor: a silence's end is due (ignored if it changed or was released)."""

    silence_id: str


# -- processor, from the replicas' relay (actors/replicas.py) -----------------------------------
@dataclass(frozen=True, slots=True)
class SilenceChanged:
    """A replica sharing the store changed this silence (created, updated, expired, released):
    hold it as the store holds it now."""

    silence_id: str


@dataclass(frozen=True, slots=True)
class ChangedElsewhere:
    """Incidents other replicas committed, as they stood when the relay read them: the
    processor's inhibition sources are brought up to date with them."""

    incidents: tuple[Incident, ...]


@dataclass(frozen=True, slots=True)
class Reload:
    """The relay listens again after losing its connection (news committed meanwhile was not
    heard): reload the silences and inhibition sources from the store."""
