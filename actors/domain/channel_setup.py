"""Which settings make each channel usable, in sentences a user can act on.

A channel is either disabled (``<channel>_enabled`` is false), enabled without a destination,
or usable. The middle case loads for webhook and email (``webhook_enabled = true`` without
``default_webhook_url`` is exactly the original's minimal example; its production example
enables email without ``email_to``), but is never silent: ``--check-config`` prints
:func:`missing_destination`, the start-up log and ``GetStats`` show it, and a test send to
such a channel fails with it (:class:`NotConfigured`), as a test send to a disabled channel
fails with :func:`not_enabled`. Slack and PagerDuty without their credential do not load at
all (``actors/domain/config.py`` names the key).
"""
from __future__ import annotations

from typing import Mapping

from .config import CHANNELS, NO_RECEIVERS, NotificationSettings, ReceiverSettings
from .destinations import channel_targets
from .errors import DomainError, NotConfigured, NotFound

#: The key(s) that give each channel a destination (a receiver's ``[receivers.<name>.<channel>]`` does too).
DESTINATION_KEYS: Mapping[str, str] = {
    "webhook": "notifications.default_webhook_url",
    "slack": "notifications.slack_webhook_env or notifications.slack_bot_token_env",
    "email": "notifications.email_to",
    "pagerduty": "notifications.pagerduty_integration_key_env",
}

#: What to set in ``[notifications]`` to enable each channel with a destination.
ENABLING_KEYS: Mapping[str, str] = {
    "webhook": "webhook_enabled = true and default_webhook_url",
    "slack": "slack_enabled = true and slack_webhook_env (or slack_bot_token_env and slack_default_channel)",
    "email": "email_enabled = true, smtp_server, email_from and email_to",
    "pagerduty": "pagerduty_enabled = true and pagerduty_integration_key_env",
}

def no_destination(channel: str) -> str:
    return f"channel {channel!r} is enabled but has no destination: set {DESTINATION_KEYS[channel]}"


def not_enabled(channel: str) -> str:
    return f"channel {channel!r} is not enabled: set [notifications] {ENABLING_KEYS[channel]}"


def missing_destination(settings: NotificationSettings, channel: str,
                        receivers: Mapping[str, ReceiverSettings] = NO_RECEIVERS) -> str | None:
    """For an enabled channel configured without any destination (neither in
    ``[notifications]`` nor in a receiver), the sentence naming the key to set; None for a
    channel that has one, is disabled or is no channel at all."""
    if channel in CHANNELS and settings.enabled(channel) and not channel_targets(settings, receivers, channel):
        return no_destination(channel)
    return None


def destination_warnings(settings: NotificationSettings,
                         receivers: Mapping[str, ReceiverSettings] = NO_RECEIVERS) -> list[str]:
    """:func:`missing_destination` of every enabled channel that has one to say."""
    return [warning for name in CHANNELS if (warning := missing_destination(settings, name, receivers))]


def unusable_channel(settings: NotificationSettings, channel: str) -> DomainError:
    """The error for sending to ``channel`` when it has no destination: NotFound for a name
    that is no channel or a disabled channel (saying which keys enable it), NotConfigured
    for an enabled one (saying which key gives it a destination)."""
    if channel not in CHANNELS:
        return NotFound(f"there is no channel {channel!r}; the channels are {', '.join(CHANNELS)}")
    if not settings.enabled(channel):
        return NotFound(not_enabled(channel))
    return NotConfigured(no_destination(channel))
