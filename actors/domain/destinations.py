"""Where each channel delivers: its destinations, by receiver name (pure).

The ``default`` receiver holds what ``[notifications]`` configures with the original's keys
(``default_webhook_url``; ``slack_bot_token_env`` with ``slack_default_channel``, else
``slack_webhook_env``; ``email_to``; ``pagerduty_integration_key_env``); each
``[receivers.<name>]`` adds its own. A delivery's destination is its receiver's name, so
ordering, limits and what a channel remembers per incident (a Slack thread, a PagerDuty
trigger, an email thread) are per receiver.
"""
from __future__ import annotations

from typing import Mapping

from .config import (DEFAULT_RECEIVER, EmailTarget, NotificationSettings, PagerDutyTarget, ReceiverSettings,
                     SlackTarget, Target, WebhookTarget)

#: ``[notifications]`` key of each destination setting of the default receiver.
_DEFAULT_KEYS: Mapping[str, Mapping[str, str]] = {
    "webhook": {"url": "default_webhook_url", "secret_env": "webhook_secret_env", "headers": "webhook_headers"},
    "slack": {"webhook_env": "slack_webhook_env", "channel": "slack_default_channel"},
    "email": {"to": "email_to"},
    "pagerduty": {"integration_key_env": "pagerduty_integration_key_env"},
}


def setting_key(receiver: str, channel: str, name: str) -> str:
    """The configuration key of one destination setting, for messages:
    ``notifications.default_webhook_url`` for the default receiver's ``url``,
    ``receivers.team-db.webhook.url`` for a named one's."""
    if receiver == DEFAULT_RECEIVER:
        return f"notifications.{_DEFAULT_KEYS[channel][name]}"
    return f"receivers.{receiver}.{channel}.{name}"


def default_target(settings: NotificationSettings, channel: str) -> Target | None:
    """The ``[notifications]`` destination of ``channel``, or None when it configures none."""
    n = settings
    if channel == "webhook":
        return WebhookTarget(n.default_webhook_url, n.webhook_secret_env, n.webhook_headers) \
            if n.default_webhook_url else None
    if channel == "slack":
        if n.slack_bot_token_env:
            return SlackTarget(channel=n.slack_default_channel)
        return SlackTarget(webhook_env=n.slack_webhook_env) if n.slack_webhook_env else None
    if channel == "email":
        return EmailTarget(n.email_to) if n.email_to else None
    return PagerDutyTarget(n.pagerduty_integration_key_env) if n.pagerduty_integration_key_env else None


def channel_targets(settings: NotificationSettings, receivers: Mapping[str, ReceiverSettings],
                    channel: str) -> dict[str, Target]:
    """Receiver name → its destination on ``channel`` (the default receiver first), whether
    or not the channel is enabled."""
    targets: dict[str, Target] = {}
    default = default_target(settings, channel)
    if default is not None:
        targets[DEFAULT_RECEIVER] = default
    for name, receiver in receivers.items():
        target = receiver.target(channel)
        if target is not None:
            targets[name] = target
    return targets
