"""Configuration: defaults, the original's examples (examples/config/), and errors that name the key."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from actors.domain.config import ConfigError, Settings, load_settings, read_secret, settings_from_mapping

ROOT = Path(__file__).resolve().parent.parent

EXAMPLES = ROOT / "examples" / "config"
#: The original's three example configurations, verbatim (they must load unchanged).
ORIGINAL_MINIMAL, ORIGINAL_SLACK, ORIGINAL_PRODUCTION = (
    (EXAMPLES / f"original-{name}.toml").read_text(encoding="utf-8") for name in ("minimal", "slack", "production"))


@pytest.mark.parametrize("text", [ORIGINAL_MINIMAL, ORIGINAL_SLACK, ORIGINAL_PRODUCTION],
                         ids=["minimal", "slack", "production"])
def test_the_originals_example_configurations_load_unchanged(tmp_path, text):
    path = tmp_path / "config.toml"
    path.write_text(text)
    settings = load_settings(path)
    assert settings.notifications.max_retries == 3
    assert settings.notifications.retry_backoff_secs == 5.0


def test_every_example_configuration_loads():
    examples = sorted(EXAMPLES.glob("*.toml"))
    assert [path.name for path in examples] == ["original-minimal.toml", "original-production.toml",
                                                "original-slack.toml", "routes.toml", "templates.toml"]
    for path in examples:
        load_settings(path)


def test_the_production_example_uses_starttls_on_587():
    assert settings_from_mapping({"notifications": {"smtp_port": 587}}).notifications.tls_mode == "starttls"
    assert settings_from_mapping({"notifications": {"smtp_port": 465}}).notifications.tls_mode == "implicit"
    assert settings_from_mapping({"notifications": {"smtp_use_tls": False}}).notifications.tls_mode == "none"


@pytest.mark.parametrize("name", ["mail.example.com", "[192.0.2.7]", "[IPv6:2001:db8::7]"])
def test_the_ehlo_name_may_be_a_fully_qualified_name_or_an_address_literal(name):
    assert settings_from_mapping({"notifications": {"smtp_helo_name": name}}).notifications.smtp_helo_name == name


def test_the_repository_config_loads_and_matches_the_documented_defaults():
    settings = load_settings(ROOT / "config.toml")
    assert settings.server.grpc_port == 9000
    assert settings.state.path == "./data/incidents.db"
    assert Settings().processing.deduplication_window_secs == 900


@pytest.mark.parametrize("data, key", [
    ({"notifications": {"queue_size": 0}}, "notifications.queue_size"),
    ({"notifications": {"bogus": 1}}, "notifications.bogus"),
    ({"notifications": {"max_retries": "three"}}, "notifications.max_retries"),
    ({"server": {"grpc_port": 70000}}, "server.grpc_port"),
    ({"state": {"synchronous": "sometimes"}}, "state.synchronous"),
    ({"notifications": {"slack": {"min_severity": "P9"}}}, "notifications.slack.min_severity"),
    ({"notifications": {"email_enabled": True}}, "notifications.smtp_server"),
    ({"notifications": {"smtp_helo_name": "localhost"}}, "notifications.smtp_helo_name"),
    ({"notifications": {"smtp_helo_name": "mail.example.com\r\nMAIL FROM:<x>"}}, "notifications.smtp_helo_name"),
    ({"notifications": {"smtp_helo_name": "[300.1.1.1]"}}, "notifications.smtp_helo_name"),
    ({"nonsense": {}}, "nonsense"),
])
def test_invalid_settings_raise_an_error_naming_the_key(data, key):
    with pytest.raises(ConfigError) as info:
        settings_from_mapping(data)
    assert info.value.key == key
    assert str(info.value).startswith(key)


def test_a_missing_secret_names_the_setting_and_variable_but_a_present_one_is_masked():
    with pytest.raises(ConfigError, match="notifications.slack_webhook_env: environment variable HOOK is not set"):
        read_secret("notifications.slack_webhook_env", "HOOK", {})
    secret = read_secret("k", "HOOK", {"HOOK": "https://hooks.example/T/B/secret"})
    assert secret == "https://hooks.example/T/B/secret" and "secret" not in repr(secret)


def run_server(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "server.py"), *args], capture_output=True, text=True,
                          timeout=60, env=env, cwd=ROOT)


def test_check_config_exits_zero_for_a_valid_file(tmp_path):
    path = tmp_path / "ok.toml"
    path.write_text(ORIGINAL_MINIMAL)
    result = run_server("--config", str(path), "--check-config")
    assert result.returncode == 0, result.stderr
    assert "configuration OK" in result.stdout


def test_check_config_exits_non_zero_naming_the_bad_key(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[notifications]\nqueue_size = 0\n")
    result = run_server("--config", str(path), "--check-config")
    assert result.returncode == 2
    assert "notifications.queue_size" in result.stderr


def test_check_config_reports_an_unset_secret_of_an_enabled_channel(tmp_path):
    path = tmp_path / "slack.toml"
    path.write_text(ORIGINAL_SLACK)
    result = run_server("--config", str(path), "--check-config", env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 2
    assert "SLACK_WEBHOOK_URL is not set" in result.stderr


def test_slack_is_paced_to_one_message_a_second_unless_configured():
    assert settings_from_mapping({}).notifications.rate("slack") == 1.0
    assert settings_from_mapping({"notifications": {"slack": {"min_severity": "P1"}}}).notifications.rate("slack") == 1.0
    assert settings_from_mapping({"notifications": {"slack": {"rate_per_sec": 5}}}).notifications.rate("slack") == 5.0
    assert settings_from_mapping({}).notifications.rate("webhook") is None


@pytest.mark.parametrize("path", ["", ":memory:"])
def test_an_in_memory_store_is_refused(path):
    with pytest.raises(ConfigError, match="state.path"):
        settings_from_mapping({"state": {"path": path}})


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_number_setting_must_be_finite(value):
    with pytest.raises(ConfigError) as info:
        settings_from_mapping({"notifications": {"retry_backoff_secs": value}})
    assert info.value.key == "notifications.retry_backoff_secs"
    assert "finite" in info.value.reason
