"""Which parts of each channel's message a receiver may template, and where their text comes from.

A receiver's ``[receivers.<name>.<channel>]`` table may give, for each of its channel's
fields, a template inline (``<field>_template = "..."``) or in a file
(``<field>_template_file = "path"``, relative to the working directory, read when the channel
is built), never both. A field without a template keeps the built-in formatter. Compiling and
rendering (Jinja2's sandbox) is actors/formatting/templates.py; this module only names the
fields and reads their sources.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from .errors import ConfigError

#: channel → the fields a receiver may template, in the order they are checked.
TEMPLATE_FIELDS: Mapping[str, tuple[str, ...]] = {
    "webhook": ("body",),
    "slack": ("text", "blocks"),
    "email": ("subject", "text", "html"),
    "pagerduty": ("summary",),
}


def inline_key(field: str) -> str:
    return f"{field}_template"


def file_key(field: str) -> str:
    return f"{field}_template_file"


def check_template_keys(key: str, channel: str, target: Any) -> None:
    """Raise ConfigError naming ``<key>.<field>_template`` when a field is given both inline
    and in a file."""
    for field in TEMPLATE_FIELDS[channel]:
        if getattr(target, inline_key(field)) is not None and getattr(target, file_key(field)) is not None:
            raise ConfigError(f"{key}.{inline_key(field)}", f"give {inline_key(field)} or {file_key(field)}, "
                                                            "not both")


def template_sources(key: str, channel: str, target: Any) -> dict[str, str]:
    """Field → template text of one receiver's ``target`` on ``channel`` (``key`` is its table,
    ``receivers.<name>.<channel>``); empty when it templates nothing. Raises ConfigError naming
    ``<key>.<field>_template_file`` when the file cannot be read as UTF-8 text."""
    sources: dict[str, str] = {}
    for field in TEMPLATE_FIELDS.get(channel, ()):
        inline, path = getattr(target, inline_key(field), None), getattr(target, file_key(field), None)
        if inline is not None:
            sources[field] = inline
        elif path is not None:
            try:
                sources[field] = Path(path).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                reason = getattr(exc, "strerror", None) or str(exc)
                raise ConfigError(f"{key}.{file_key(field)}", f"cannot read {path}: {reason}") from None
    return sources
