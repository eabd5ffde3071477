"""A channel enabled without a destination loads but is never silent; a disabled one says
which keys enable it. Checked through --check-config, the start-up log, GetStats and test sends."""
from __future__ import annotations

import subprocess
import sys

import grpc
import pytest
import structlog.testing

from actors.channels.registry import build_channel
from actors.cli import render
from actors.domain.config import ConfigError, settings_from_mapping
from actors.domain.models import OutcomeKind
from protos import notifications_pb2
from tests.support.process import ROOT
from tests.support.server import TIMEOUT, make_settings, running
from tests.test_webhook_channel import make_delivery

#: channel → (settings enabling it without any destination, the key that would give it one)
WITHOUT_DESTINATION = {
    "webhook": ({"webhook_enabled": True}, "notifications.default_webhook_url"),
    "email": ({"email_enabled": True, "smtp_server": "127.0.0.1", "email_from": "im@example.com"},
              "notifications.email_to"),
}


def test_check_config_accepts_the_original_minimal_example_with_a_warning_naming_the_key(tmp_path):
    config = tmp_path / "minimal.toml"
    config.write_text(f'[state]\npath = "{tmp_path / "store.db"}"\n'
                      "[notifications]\nwebhook_enabled = true\nqueue_size = 1000\nworker_threads = 2\n")
    result = subprocess.run([sys.executable, str(ROOT / "server.py"), "--config", str(config), "--check-config"],
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0 and "configuration OK" in result.stdout
    assert ("warning: channel 'webhook' is enabled but has no destination: "
            "set notifications.default_webhook_url") in result.stderr


@pytest.mark.parametrize("values, key", [
    ({"slack_enabled": True, "slack_default_channel": "#incidents"}, "notifications.slack_webhook_env"),
    ({"pagerduty_enabled": True}, "notifications.pagerduty_integration_key_env"),
])
def test_slack_or_pagerduty_without_its_credential_does_not_load_and_names_the_key(values, key):
    with pytest.raises(ConfigError) as refused:
        settings_from_mapping({"notifications": values})
    assert refused.value.key == key


@pytest.mark.parametrize("channel", WITHOUT_DESTINATION)
def test_a_channel_without_destination_builds_and_a_delivery_to_it_fails_naming_the_key(channel):
    values, key = WITHOUT_DESTINATION[channel]
    built = build_channel(channel, settings_from_mapping({"notifications": values}).notifications, {})
    try:
        assert built.destinations == ()
        outcome = built.deliver(make_delivery())
        assert outcome.kind is OutcomeKind.FAILED and key in outcome.detail
    finally:
        built.close()


@pytest.mark.parametrize("channel", WITHOUT_DESTINATION)
def test_a_channel_without_destination_is_logged_shown_in_stats_and_refuses_test_sends(tmp_path, channel):
    values, key = WITHOUT_DESTINATION[channel]
    with structlog.testing.capture_logs() as logs, \
            running(make_settings(tmp_path, notifications=values)) as (_, _, client):
        stats = client.notifications.GetStats(notifications_pb2.StatsRequest(), timeout=TIMEOUT)
        with pytest.raises(grpc.RpcError) as refused:
            client.notifications.SendTestNotification(
                notifications_pb2.TestNotificationRequest(channel=channel), timeout=TIMEOUT)
    warnings = [entry for entry in logs if entry["event"] == "channel_has_no_destination"]
    assert len(warnings) == 1 and warnings[0]["log_level"] == "warning" and key in warnings[0]["problem"]
    (shown,) = stats.channels
    assert (shown.channel, shown.enabled, list(shown.destinations)) == (channel, True, [])
    assert shown.warning == f"channel {channel!r} is enabled but has no destination: set {key}"
    assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert refused.value.details() == shown.warning
    assert f"\nwarning: {shown.warning}" in render.stats(stats)  # imctl notifications stats


def test_stats_show_an_enabled_channel_with_its_destinations_and_no_warning(tmp_path):
    notifications = {"webhook_enabled": True, "default_webhook_url": "http://127.0.0.1:9/hook"}
    with running(make_settings(tmp_path, notifications=notifications)) as (_, _, client):
        stats = client.notifications.GetStats(notifications_pb2.StatsRequest(), timeout=TIMEOUT)
    (shown,) = stats.channels
    assert (shown.channel, shown.enabled, list(shown.destinations), shown.warning) == ("webhook", True, ["default"], "")


@pytest.mark.parametrize("channel, message", [
    ("webhook", "channel 'webhook' is not enabled: set [notifications] webhook_enabled = true and default_webhook_url"),
    ("pagerduty", "channel 'pagerduty' is not enabled: "
                  "set [notifications] pagerduty_enabled = true and pagerduty_integration_key_env"),
    ("sms", "there is no channel 'sms'; the channels are webhook, slack, email, pagerduty"),
])
def test_a_test_send_to_a_disabled_channel_says_which_keys_enable_it(tmp_path, channel, message):
    with running(make_settings(tmp_path)) as (_, _, client):
        with pytest.raises(grpc.RpcError) as refused:
            client.notifications.SendTestNotification(
                notifications_pb2.TestNotificationRequest(channel=channel), timeout=TIMEOUT)
        stats = client.notifications.GetStats(notifications_pb2.StatsRequest(), timeout=TIMEOUT)
    assert refused.value.code() is grpc.StatusCode.NOT_FOUND and refused.value.details() == message
    assert list(stats.channels) == []
