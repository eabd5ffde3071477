"""Ids as callers type them: a full id, or (like git) a unique prefix of at least 8 characters.

Every RPC field that names an incident, a notification or a silence goes through :func:`full_id`, so
``imctl incidents get 3f2a9c01`` and grpcurl alike can use the short form the CLI shows.
An unknown id or prefix is NotFound; a prefix shared by several ids is InvalidArgument
naming the field and the first few matches.
"""
from __future__ import annotations

from ..domain.errors import InvalidArgument, NotFound
from ..domain.limits import MAX_ID, text
from ..engine import Engine

MIN_PREFIX = 8
SHOWN_MATCHES = 3


def full_id(engine: Engine, kind: str, field: str, value: str, required: bool = True) -> str:
    """The full id of the ``kind`` ("incident", "notification" or "silence") that ``value`` names, or ""
    when ``value`` is empty and not ``required``."""
    value = text(field, value, MAX_ID, required=required)
    if not value:
        return value
    matches = engine.ids_starting_with(kind, value, SHOWN_MATCHES + 1)
    if value in matches:
        return value
    if not matches:
        raise NotFound(f"{kind} {value!r} not found")
    if len(value) < MIN_PREFIX:
        raise NotFound(f"{kind} {value!r} not found (an id prefix needs at least {MIN_PREFIX} characters)")
    if len(matches) > 1:
        shown = ", ".join(matches[:SHOWN_MATCHES]) + (", ..." if len(matches) > SHOWN_MATCHES else "")
        raise InvalidArgument(field, f"{value!r} is the start of more than one {kind} id ({shown}); "
                                     "give more characters")
    return matches[0]
