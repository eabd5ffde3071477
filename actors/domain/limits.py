"""Size limits on request fields and the pure checks that enforce them.

Shared by every edge that takes input from outside (the gRPC servicers, the embedding API),
so a value accepted by one is accepted by the other. Every rejection is an
:class:`InvalidArgument` naming the field. Free-text fields (descriptions, notes) are
limited by ``[processing] max_field_bytes`` instead of a constant here.
"""
from __future__ import annotations

from typing import Iterable, Mapping

from .errors import InvalidArgument

MAX_ID = 256            # alert ids, incident ids, notification ids (bytes)
MAX_TITLE = 1000        # titles (bytes)
MAX_NAME = 256          # sources, actors, label keys, service names, channel names (bytes)
MAX_LABELS = 64         # entries in one label/annotation map or name list
MAX_LABEL_VALUE = 1024  # one label or annotation value (bytes)
MAX_PAGE = 500          # largest page a list call returns
DEFAULT_PAGE = 50


def text(field: str, value: object, limit: int, required: bool = False) -> str:
    """``value`` stripped of surrounding whitespace.

    Raises InvalidArgument naming ``field`` when it is not a string, when ``required`` and
    empty, when longer than ``limit`` bytes of UTF-8, or when it contains a NUL character.
    """
    if not isinstance(value, str):
        raise InvalidArgument(field, f"must be a string, got {type(value).__name__}")
    value = value.strip()
    if required and not value:
        raise InvalidArgument(field, "must not be empty")
    if not (value.isascii() and len(value) <= limit) and len(value.encode("utf-8", "surrogatepass")) > limit:
        raise InvalidArgument(field, f"is longer than {limit} bytes")
    if "\x00" in value:
        raise InvalidArgument(field, "must not contain NUL characters")
    return value


def string_map(field: str, values: Mapping[str, str]) -> dict[str, str]:
    """A copy of a label/annotation map; at most MAX_LABELS entries, keys non-empty names,
    values at most MAX_LABEL_VALUE bytes. Raises InvalidArgument naming ``field[key]``."""
    if not isinstance(values, Mapping):
        raise InvalidArgument(field, f"must be a mapping of strings, got {type(values).__name__}")
    copy = dict(values)
    if len(copy) > MAX_LABELS:
        raise InvalidArgument(field, f"has more than {MAX_LABELS} entries")
    if not _plainly_valid(copy):
        for key, value in copy.items():  # the full checks, for the error naming the entry
            name = f"{field}[{str(key)[:40]}]"
            text(name, key, MAX_NAME, required=True)
            text(name, value, MAX_LABEL_VALUE)
    return copy


def _plainly_valid(entries: dict[str, str]) -> bool:
    """A quick yes for the common map (checked all at once): ASCII strings (so as many bytes
    as characters) within their limits, no NUL, no blank key."""
    try:
        keys, values = "".join(entries), "".join(entries.values())
    except TypeError:  # something that is not a string: let the full checks name it
        return False
    return (keys.isascii() and values.isascii() and "\x00" not in keys and "\x00" not in values
            and max(map(len, entries), default=0) <= MAX_NAME
            and max(map(len, entries.values()), default=0) <= MAX_LABEL_VALUE
            and all(key.strip() for key in entries))


def string_list(field: str, values: Iterable[str]) -> tuple[str, ...]:
    """Non-empty names (at most MAX_NAME bytes each, at most MAX_LABELS of them), stripped.
    A single string is rejected rather than split into characters."""
    if isinstance(values, (str, bytes)):
        raise InvalidArgument(field, "must be a list of strings, not one string")
    items = tuple(text(field, v, MAX_NAME, required=True) for v in values)
    if len(items) > MAX_LABELS:
        raise InvalidArgument(field, f"has more than {MAX_LABELS} entries")
    return items
