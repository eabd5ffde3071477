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


def build_channel(name: str, settings: NotificationSettings, environ: Mapping[str, str]) -> Channel:
    """A new instance of one channel; raises ConfigError naming the key when its settings or
    secrets are incomplete."""
    return importlib.import_module(MODULES[name]).build(settings, environ)


def enabled_channels(settings: NotificationSettings) -> tuple[str, ...]:
    return tuple(name for name in CHANNELS if settings.enabled(name))
