"""Builds the enabled channels. Each channel module exposes ``build(settings, environ)``.

Registration is this one explicit table; there is no plugin scanning.
"""
from __future__ import annotations

import importlib
from typing import Mapping

import structlog

from ..domain.channel_setup import destination_warnings
from ..domain.config import CHANNELS, NO_RECEIVERS, NotificationSettings, ReceiverSettings
from .base import Channel

log = structlog.get_logger(__name__)

#: channel name → module under actors.channels providing ``build``
MODULES: Mapping[str, str] = {name: f"actors.channels.{name}" for name in CHANNELS}


def build_channel(name: str, settings: NotificationSettings, environ: Mapping[str, str],
                  receivers: Mapping[str, ReceiverSettings] = NO_RECEIVERS) -> Channel:
    """A new instance of one channel, serving its ``[notifications]`` destination and each
    receiver's; raises ConfigError naming the key when its settings or secrets are incomplete."""
    return importlib.import_module(MODULES[name]).build(settings, environ, receivers)


def enabled_channels(settings: NotificationSettings) -> tuple[str, ...]:
    return tuple(name for name in CHANNELS if settings.enabled(name))


def log_destination_warnings(settings: NotificationSettings,
                             receivers: Mapping[str, ReceiverSettings] = NO_RECEIVERS) -> None:
    """Log a warning for each enabled channel that has no destination, naming the key to set."""
    for warning in destination_warnings(settings, receivers):
        log.warning("channel_has_no_destination", problem=warning)
