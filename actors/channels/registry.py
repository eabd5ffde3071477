"""Builds the enabled channels. Each channel module exposes ``build(settings, environ)``.

Registration is this one explicit table; there is no plugin scanning.
"""
from __future__ import annotations

import importlib
from typing import Mapping

from ..domain.config import CHANNELS, NotificationSettings
from .base import Channel

#: channel name → module under actors.channels providing ``build``
MODULES: Mapping[str, str] = {name: f"actors.channels.{name}" for name in CHANNELS}


def build_channels(settings: NotificationSettings, environ: Mapping[str, str]) -> dict[str, Channel]:
    """Every enabled channel, built now so a missing secret fails at start-up.

    Raises ConfigError naming the key when a channel's settings or secrets are incomplete.
    """
    return {name: importlib.import_module(MODULES[name]).build(settings, environ)
            for name in CHANNELS if settings.enabled(name)}
