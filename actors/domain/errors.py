"""Expected failures of domain operations. The gRPC edge maps each to one status code."""
from __future__ import annotations


class DomainError(Exception):
    """Base of every expected error; its message is safe to show to the caller."""


class InvalidArgument(DomainError):
    """A request field is missing, malformed or too large. ``field`` names it."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class NotFound(DomainError):
    """The named incident, notification or channel does not exist."""


class IllegalTransition(DomainError):
    """The incident's current state does not allow the requested change."""


class NotConfigured(DomainError):
    """The named channel is enabled but has no destination; the message names the key to set."""


class Overloaded(DomainError):
    """Intake is over its bound; the caller should retry later."""


class Unavailable(DomainError):
    """The engine is starting or draining and takes no new work."""


class StoreUnavailable(Unavailable):
    """The store's database cannot be reached (PostgreSQL: its connections are lost and no new
    one was made in time). The message says whether what was asked did not happen, or — the
    connection lost while committing — may have happened; it never holds the connection URL."""


class OutcomeUnknown(StoreUnavailable):
    """The connection to the store's database was lost while committing: the change may or
    may not have been made."""


class ConfigError(Exception):
    """The configuration is invalid; the message names the offending key."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason
