"""The webhook channel against real loopback servers."""
from __future__ import annotations

import base64
import dataclasses
import email.utils
import hashlib
import hmac
import json
import logging
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterator

import pytest
import structlog.testing

from actors.channels.webhook import USER_AGENT, Endpoint, WebhookChannel, build
from actors.domain.config import NotificationSettings, settings_from_mapping
from actors.domain.errors import ConfigError
from actors.domain.models import IncidentState, Outcome, OutcomeKind
from actors.formatting.webhook import render
from tests.support.http_receiver import HttpReceiver, Recorded, Reply
from tests.test_webhook_format import make_delivery, make_incident

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ENV = {"WEBHOOK_SECRET": SECRET}


def settings(**notifications: Any) -> NotificationSettings:
    return settings_from_mapping({"notifications": {"webhook_enabled": True, **notifications}}).notifications


def test_webhook_headers_from_the_configuration_are_accepted() -> None:
    parsed = settings_from_mapping({"notifications": {"webhook_headers": {"X-Team": "sre"}}}).notifications
    assert parsed.webhook_headers == {"X-Team": "sre"}


@pytest.fixture
def channels() -> Iterator[list[WebhookChannel]]:
    """Channels to close after the test."""
    built: list[WebhookChannel] = []
    yield built
    for channel in built:
        channel.close()


def open_channel(channels: list[WebhookChannel], url: str | None, environ: dict[str, str] | None = None,
                 **notifications: Any) -> WebhookChannel:
    channel = build(settings(default_webhook_url=url, **notifications) if url else settings(**notifications),
                    environ or {})
    channels.append(channel)
    return channel


def verifies(request: Recorded, secret: str = SECRET) -> bool:
    """Receiver-side check, written from the spec: HMAC-SHA256 over id.timestamp.body."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{request.headers['webhook-id']}.{request.headers['webhook-timestamp']}.".encode() + request.body
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(hmac.compare_digest(expected, entry) for entry in request.headers["webhook-signature"].split(" "))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- build ---------------------------------------------------------------------------------

def test_build_serves_the_default_destination_when_a_url_is_set(channels: list[WebhookChannel]) -> None:
    channel = open_channel(channels, "https://hooks.example.test/in")
    assert (channel.name, channel.destinations, channel.needs_state) == ("webhook", ("default",), False)


def test_build_without_a_url_serves_nothing(channels: list[WebhookChannel]) -> None:
    assert open_channel(channels, None).destinations == ()  # the engine's start warns (test_channel_setup.py)


def test_a_delivery_without_a_configured_url_fails_naming_the_setting(channels: list[WebhookChannel]) -> None:
    outcome = open_channel(channels, None).deliver(make_delivery())
    assert outcome.kind is OutcomeKind.FAILED
    assert "default_webhook_url" in outcome.detail


def test_a_secret_variable_that_is_named_but_unset_fails_at_build_naming_the_key() -> None:
    with pytest.raises(ConfigError) as raised:
        build(settings(default_webhook_url="https://hooks.example.test/in",
                       webhook_secret_env="WEBHOOK_SECRET"), {})
    assert raised.value.key == "notifications.webhook_secret_env"
    assert "WEBHOOK_SECRET" in str(raised.value)


def test_a_secret_that_is_not_base64_fails_at_build_without_showing_it() -> None:
    with pytest.raises(ConfigError) as raised:
        build(settings(default_webhook_url="https://hooks.example.test/in", webhook_secret_env="WEBHOOK_SECRET"),
              {"WEBHOOK_SECRET": "whsec_not*base64*s3cr3t"})
    assert raised.value.key == "notifications.webhook_secret_env"
    assert "base64" in str(raised.value)
    assert "s3cr3t" not in str(raised.value)


def test_a_secret_shorter_than_24_bytes_is_accepted_with_a_warning(channels: list[WebhookChannel]) -> None:
    short = "whsec_" + base64.b64encode(b"sixteen byte key").decode()
    with structlog.testing.capture_logs() as logs:
        open_channel(channels, "https://hooks.example.test/in", {"S": short}, webhook_secret_env="S")
    assert [entry["event"] for entry in logs] == ["webhook signing secret is shorter than recommended"]
    assert short not in repr(logs)


def test_a_url_requests_cannot_use_fails_at_build_without_showing_it() -> None:
    with pytest.raises(ConfigError) as raised:
        build(settings(default_webhook_url="https://hooks.example.test:70000/T0K3N"), {})
    assert raised.value.key == "notifications.default_webhook_url"
    assert "T0K3N" not in str(raised.value)


@pytest.mark.parametrize("headers, key", [
    ({"X-Token": "abc\r\nX-Injected: s3cr3t"}, "notifications.webhook_headers.X-Token"),
    ({"X-Token": " s3cr3t"}, "notifications.webhook_headers.X-Token"),
    ({"X-Token": "s3cr3t-☃"}, "notifications.webhook_headers.X-Token"),
    ({"X Token": "s3cr3t"}, "notifications.webhook_headers.X Token"),
    ({"webhook-signature": "v1,s3cr3t"}, "notifications.webhook_headers.webhook-signature"),
    ({"Content-Type": "text/s3cr3t"}, "notifications.webhook_headers.Content-Type"),
])
def test_a_header_that_cannot_be_sent_fails_at_build_naming_it_but_not_its_value(
        headers: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as raised:
        build(settings(default_webhook_url="https://hooks.example.test/in", webhook_headers=headers), {})
    assert raised.value.key == key
    assert "s3cr3t" not in str(raised.value)


# --- what arrives ----------------------------------------------------------------------------

def test_a_signed_delivery_arrives_with_verifiable_standard_webhooks_headers(
        channels: list[WebhookChannel]) -> None:
    with HttpReceiver() as rx:
        channel = open_channel(channels, rx.url + "/hooks/incidents", ENV, webhook_secret_env="WEBHOOK_SECRET",
                               webhook_headers={"Authorization": "Bearer team-token", "X-Team": "sre"})
        delivery = make_delivery()
        before = int(time.time())
        outcome = channel.deliver(delivery)
        [request] = rx.wait_for(1)
    assert outcome.kind is OutcomeKind.DELIVERED and outcome.status_code == 200
    assert outcome.state is None
    assert request.path == "/hooks/incidents"
    assert request.body == render(delivery)
    assert request.json()["incident"] == delivery.incident.to_dict()
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == USER_AGENT
    assert request.headers["authorization"] == "Bearer team-token"
    assert request.headers["x-team"] == "sre"
    assert request.headers["webhook-id"] == delivery.notification_id
    assert before <= int(request.headers["webhook-timestamp"]) <= int(time.time())
    assert verifies(request)


def test_without_a_secret_the_id_is_still_sent_but_no_signature(channels: list[WebhookChannel]) -> None:
    delivery = make_delivery()
    with HttpReceiver() as rx:
        outcome = open_channel(channels, rx.url + "/hook").deliver(delivery)
        [request] = rx.wait_for(1)
    assert outcome.kind is OutcomeKind.DELIVERED
    assert request.headers["webhook-id"] == delivery.notification_id
    assert "webhook-signature" not in request.headers
    assert request.headers["content-type"] == "application/json"


def test_retries_keep_the_webhook_id_and_sign_a_new_timestamp_each_attempt() -> None:
    ticks = iter([1_700_000_000.2, 1_700_000_007.9])
    answers = iter([Reply(503, "busy"), Reply(200)])
    with HttpReceiver(lambda request: next(answers)) as rx:
        channel = WebhookChannel({"default": Endpoint(rx.url + "/hook", SECRET)}, clock=lambda: next(ticks))
        first = make_delivery()
        try:
            outcomes = [channel.deliver(first), channel.deliver(first.next_attempt())]
        finally:
            channel.close()
        one, two = rx.wait_for(2)
    assert [o.kind for o in outcomes] == [OutcomeKind.RETRY, OutcomeKind.DELIVERED]
    assert one.headers["webhook-id"] == two.headers["webhook-id"] == first.notification_id
    assert (one.headers["webhook-timestamp"], two.headers["webhook-timestamp"]) == ("1700000000", "1700000007")
    assert one.body == two.body
    assert verifies(one) and verifies(two)
    assert one.headers["webhook-signature"] != two.headers["webhook-signature"]


def test_a_test_notification_is_sent_marked_and_leaves_channel_state_alone(
        channels: list[WebhookChannel]) -> None:
    with HttpReceiver() as rx:
        outcome = open_channel(channels, rx.url + "/hook").deliver(make_delivery(is_test=True))
        [request] = rx.wait_for(1)
    assert outcome.kind is OutcomeKind.DELIVERED and outcome.state is None
    assert request.json()["test"] is True


def test_events_for_every_lifecycle_state_are_delivered_with_their_event_type(
        channels: list[WebhookChannel]) -> None:
    with HttpReceiver() as rx:
        channel = open_channel(channels, rx.url + "/hook")
        outcomes = [channel.deliver(make_delivery(make_incident(state))) for state in IncidentState]
        received = rx.wait_for(len(IncidentState))
    assert {o.kind for o in outcomes} == {OutcomeKind.DELIVERED}
    assert [r.json()["event_type"] for r in received] == [
        "incident.detected", "incident.triaged", "incident.investigating", "incident.remediating",
        "incident.resolved", "incident.closed"]


def test_without_worker_processes_one_instance_serves_several_sender_threads_at_once(
        channels: list[WebhookChannel]) -> None:
    together = threading.Barrier(4, timeout=5)

    def hold_until_all_arrive(request: Recorded) -> Reply:
        together.wait()  # breaks (and the request fails) unless four requests are in flight at once
        return Reply(200)

    with HttpReceiver(hold_until_all_arrive) as rx:
        channel = open_channel(channels, rx.url + "/hook", webhook_worker_processes=False)
        with ThreadPoolExecutor(4) as pool:
            outcomes = list(pool.map(lambda n: channel.deliver(make_delivery(notification_id=f"n-{n}")), range(4)))
        channel.close()
        together.reset()
        rx.respond = lambda request: Reply(200)
        after_close = channel.deliver(make_delivery())
    assert [o.kind for o in outcomes] == [OutcomeKind.DELIVERED] * 4
    assert after_close.kind is OutcomeKind.DELIVERED


# --- outcomes from a real server -------------------------------------------------------------

@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_any_2xx_is_delivered(channels: list[WebhookChannel], status: int) -> None:
    with HttpReceiver(lambda request: Reply(status, b"" if status == 204 else b"ok")) as rx:
        outcome = open_channel(channels, rx.url + "/hook").deliver(make_delivery())
    assert (outcome.kind, outcome.status_code) == (OutcomeKind.DELIVERED, status)


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_fails_for_good_and_is_not_followed(channels: list[WebhookChannel], status: int) -> None:
    followed = threading.Event()

    def target(request: Recorded) -> Reply:
        followed.set()
        return Reply(200)

    with HttpReceiver(target) as elsewhere, \
            HttpReceiver(lambda request: Reply(status, "moved", {"Location": elsewhere.url + "/new"})) as rx:
        outcome = open_channel(channels, rx.url + "/hook").deliver(make_delivery())
    assert (outcome.kind, outcome.status_code) == (OutcomeKind.FAILED, status)
    assert "not followed" in outcome.detail
    assert not followed.is_set()


def test_410_gone_fails_and_asks_to_disable_the_destination(channels: list[WebhookChannel]) -> None:
    with HttpReceiver(lambda request: Reply(410, "gone")) as rx:
        outcome = open_channel(channels, rx.url + "/hook").deliver(make_delivery())
    assert (outcome.kind, outcome.status_code, outcome.disable_destination) == (OutcomeKind.FAILED, 410, True)


def test_429_with_retry_after_seconds_is_retried_after_that_wait(channels: list[WebhookChannel]) -> None:
    with HttpReceiver(lambda request: Reply(429, "slow down", {"Retry-After": "3"})) as rx:
        outcome = open_channel(channels, rx.url + "/hook").deliver(make_delivery())
    assert (outcome.kind, outcome.status_code, outcome.retry_after) == (OutcomeKind.RETRY, 429, 3.0)


def test_503_with_an_http_date_retry_after_is_parsed_into_seconds(channels: list[WebhookChannel]) -> None:
    when = email.utils.formatdate(time.time() + 120, usegmt=True)
    with HttpReceiver(lambda request: Reply(503, "maintenance", {"Retry-After": when})) as rx:
        outcome = open_channel(channels, rx.url + "/hook").deliver(make_delivery())
    assert (outcome.kind, outcome.status_code) == (OutcomeKind.RETRY, 503)
    assert outcome.retry_after is not None and 115 <= outcome.retry_after <= 121


def test_a_server_slower_than_the_timeout_is_retried(channels: list[WebhookChannel]) -> None:
    with HttpReceiver(lambda request: Reply(200, delay_secs=5)) as rx:
        channel = open_channel(channels, rx.url + "/hook", webhook={"timeout_secs": 0.3})
        started = time.monotonic()
        outcome = channel.deliver(make_delivery())
        elapsed = time.monotonic() - started
    assert outcome.kind is OutcomeKind.RETRY
    assert "timeout" in outcome.detail
    assert elapsed < 3


def test_a_refused_connection_is_retried(channels: list[WebhookChannel]) -> None:
    outcome = open_channel(channels, f"http://127.0.0.1:{closed_port()}/hook").deliver(make_delivery())
    assert outcome.kind is OutcomeKind.RETRY
    assert "connection" in outcome.detail


# --- every status code -------------------------------------------------------------------------

def expected(status: int) -> tuple[OutcomeKind, bool]:
    """(kind, disable_destination) the channel must report for a final HTTP status."""
    if 200 <= status <= 299:
        return OutcomeKind.DELIVERED, False
    if status in (408, 425, 429) or (500 <= status <= 599 and status != 501):
        return OutcomeKind.RETRY, False
    return OutcomeKind.FAILED, status == 410


@pytest.fixture(scope="module")
def table() -> Iterator[tuple[WebhookChannel, dict[str, int]]]:
    """A channel and a loopback receiver answering with ``answer["status"]`` (and Retry-After: 7)."""
    answer = {"status": 200}
    with HttpReceiver(lambda request: Reply(answer["status"], "", {"Retry-After": "7"})) as rx:
        channel = build(settings(default_webhook_url=rx.url + "/in/T0K3N"), {})
        yield channel, answer
        channel.close()


@pytest.mark.parametrize("status", range(200, 600))  # every final status (1xx are interim answers)
def test_every_status_code_maps_to_the_expected_outcome(table: tuple[WebhookChannel, dict[str, int]],
                                                         status: int) -> None:
    channel, answer = table
    answer["status"] = status
    outcome = channel.deliver(make_delivery())
    kind, disable = expected(status)
    assert (outcome.kind, outcome.status_code, outcome.disable_destination) == (kind, status, disable)
    assert outcome.retry_after == (7.0 if kind is OutcomeKind.RETRY else None)
    assert f"HTTP {status}" in outcome.detail


# --- secrets ----------------------------------------------------------------------------------

LEAK_SECRET = "whsec_" + base64.b64encode(b"leak-test-signing-key-32-bytes!!").decode()
LEAK_HEADER = "Bearer hdr-S3CRET-value"
LEAK_PATH = "/hooks/T0K3N-path-secret"
LEAK_QUERY = "sig=Q9UERY-secret"
LEAK_USER, LEAK_PASSWORD = "hookuser", "h00kpass"


def leak_url(base: str) -> str:
    return base.replace("http://", f"http://{LEAK_USER}:{LEAK_PASSWORD}@") + f"{LEAK_PATH}?{LEAK_QUERY}"


def echo(status: int, delay: float = 0.0, **headers: str) -> Any:
    """A receiver that echoes everything it was sent back in its answer (the worst case)."""
    def respond(request: Recorded) -> Reply:
        # Each secret whole and alone, within the 200 characters a detail keeps of a body.
        text = (f"{request.path} {request.headers.get('x-api-key')} {LEAK_HEADER.split()[1]} "
                f"{LEAK_SECRET} {LEAK_SECRET.removeprefix('whsec_')} {json.dumps(request.headers)}")
        return Reply(status, text, {k: v.replace("{echo}", text) for k, v in headers.items()}, delay)
    return respond


def secret_texts(url: str) -> list[str]:
    return [url, LEAK_PATH, LEAK_QUERY, "T0K3N", "Q9UERY", LEAK_USER, LEAK_PASSWORD, LEAK_SECRET,
            LEAK_SECRET.removeprefix("whsec_"), LEAK_HEADER, "hdr-S3CRET-value", "S3CRET"]


@pytest.mark.parametrize("respond, expected_kind", [
    (echo(200), OutcomeKind.DELIVERED),
    (echo(400), OutcomeKind.FAILED),
    (echo(410), OutcomeKind.FAILED),
    (echo(302, Location="{echo}"), OutcomeKind.FAILED),
    (echo(500), OutcomeKind.RETRY),
    (echo(200, delay=5), OutcomeKind.RETRY),
    (None, OutcomeKind.RETRY),  # connection refused
], ids=["200", "400", "410", "302", "500", "timeout", "refused"])
def test_no_secret_reaches_outcome_details_or_logs(caplog: pytest.LogCaptureFixture, respond: Any,
                                                   expected_kind: OutcomeKind) -> None:
    caplog.set_level(logging.DEBUG)
    environ = {"LEAK_SECRET": LEAK_SECRET}
    with HttpReceiver(respond) as rx, structlog.testing.capture_logs() as logs:
        url = leak_url(rx.url if respond else f"http://127.0.0.1:{closed_port()}")
        channel = build(settings(default_webhook_url=url, webhook_secret_env="LEAK_SECRET",
                                 webhook_headers={"X-Api-Key": LEAK_HEADER},
                                 webhook={"timeout_secs": 0.3}), environ)
        try:
            outcome: Outcome = channel.deliver(make_delivery())
        finally:
            channel.close()
    assert outcome.kind is expected_kind
    # urllib3 logs request paths at DEBUG on its own logger; the server must keep that logger
    # above DEBUG (see the channel report). Everything else is checked at DEBUG.
    stdlib_lines = [r.getMessage() for r in caplog.records if not r.name.startswith("urllib3")]
    for text in secret_texts(url):
        assert text not in outcome.detail, text
        assert text not in repr(logs), text
        assert not any(text in line for line in stdlib_lines), text


def test_a_secret_straddling_the_body_hint_cut_does_not_leak_in_part(channels: list[WebhookChannel]) -> None:
    with HttpReceiver(lambda request: Reply(400, "x" * 182 + request.path)) as rx:  # cut 6 chars from its end
        url = rx.url + LEAK_PATH
        outcome = open_channel(channels, url).deliver(make_delivery())
    assert "T0K3N" not in outcome.detail


# --- several destinations ---------------------------------------------------------------------

OTHER_SECRET = "whsec_" + base64.b64encode(b"another-secret-of-32-bytes-long!").decode()


@pytest.mark.parametrize("worker_process", [False, True], ids=["in-process", "worker-process"])
def test_each_receiver_gets_its_own_url_secret_and_headers(worker_process: bool) -> None:
    with HttpReceiver() as default_rx, HttpReceiver() as db_rx:
        receivers = settings_from_mapping({
            "notifications": {"webhook_enabled": True},
            "receivers": {"team-db": {"webhook": {"url": db_rx.url + "/db", "secret_env": "DB_SECRET",
                                                  "headers": {"X-Team": "db"}}}}}).receivers
        channel = build(settings(default_webhook_url=default_rx.url + "/all", webhook_headers={"X-Team": "all"},
                                 webhook_secret_env="WEBHOOK_SECRET", webhook_worker_processes=worker_process),
                        {**ENV, "DB_SECRET": OTHER_SECRET}, receivers)
        try:
            channel.open()
            assert channel.destinations == ("default", "team-db")
            outcomes = [channel.deliver(dataclasses.replace(make_delivery(), destination="team-db")),
                        channel.deliver(make_delivery()),
                        channel.deliver(dataclasses.replace(make_delivery(), destination="gone"))]
        finally:
            channel.close()
        [at_db], [at_default] = db_rx.wait_for(1), default_rx.wait_for(1)
    assert [o.kind for o in outcomes] == [OutcomeKind.DELIVERED, OutcomeKind.DELIVERED, OutcomeKind.FAILED]
    assert (at_db.path, at_db.headers["x-team"]) == ("/db", "db") and verifies(at_db, OTHER_SECRET)
    assert not verifies(at_db, SECRET)
    assert (at_default.path, at_default.headers["x-team"]) == ("/all", "all") and verifies(at_default, SECRET)
    assert outcomes[2].detail == "webhook destination 'gone' is not configured (set [receivers.gone.webhook])"


def test_a_receivers_bad_webhook_settings_are_refused_naming_its_keys() -> None:
    def refused(webhook: dict[str, Any], environ: dict[str, str]) -> ConfigError:
        receivers = settings_from_mapping({"notifications": {"webhook_enabled": True},
                                           "receivers": {"ops": {"webhook": webhook}}}).receivers
        with pytest.raises(ConfigError) as raised:
            build(settings(), environ, receivers)
        return raised.value

    assert refused({"url": "http://ops.example:99999/x"}, {}).key == "receivers.ops.webhook.url"
    assert refused({"url": "http://ops.example/x", "secret_env": "S"}, {}).key == "receivers.ops.webhook.secret_env"
    assert refused({"url": "http://ops.example/x", "secret_env": "S"}, {"S": "not base64!"}).key == \
        "receivers.ops.webhook.secret_env"
    assert refused({"url": "http://ops.example/x", "headers": {"Host": "x"}}, {}).key == \
        "receivers.ops.webhook.headers.Host"
