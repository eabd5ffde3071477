"""The Slack channel against a real loopback server: webhook mode, and the Web API with threads
(a fake Slack, tests/support/slack_api.py), every-status tables included."""
from __future__ import annotations

import dataclasses
import json
import socket
from typing import Any, Iterator, Mapping

import pytest
import structlog.testing

from actors.channels.slack import (UPDATED_FOR, SlackApiChannel, SlackWebhookChannel, build)
from actors.domain.config import ChannelTuning, NotificationSettings, settings_from_mapping
from actors.domain.errors import ConfigError
from actors.domain.models import Delivery, IncidentState, Outcome, OutcomeKind
from tests.support.http_receiver import HttpReceiver, Recorded, Reply
from tests.support.slack_api import FakeSlack, Message, SettlingReceiver, slack_error, slack_reply
from tests.test_slack_format import RESOLVED, make_delivery

TOKEN = "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"
HOOK_PATH = "/services/T0AAAAAAA/B0BBBBBBB/S3cr3tW3bh00kP4th"
ROOT = {"channel": "C0INCIDENTS", "ts": "1705329120.000001"}


def settings(**changes: Any) -> NotificationSettings:
    values: dict[str, Any] = {"slack_enabled": True, "slack": ChannelTuning(timeout_secs=2.0)}
    return NotificationSettings(**{**values, **changes})


def bot_settings(api_url: str, **changes: Any) -> NotificationSettings:
    return settings(slack_bot_token_env="SLACK_TOKEN", slack_default_channel="#incidents",
                    slack_api_url=api_url, **changes)


def event(state: IncidentState, stored: Mapping[str, Any] | None = None, **changes: Any) -> Delivery:
    delivery = make_delivery(notification_id=f"n-{state.name}", state=state, **changes)
    return dataclasses.replace(delivery, state=dict(stored or {}))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server() -> Iterator[SettlingReceiver]:
    """One receiver for the module (each receiver takes ~0.5 s to shut down)."""
    with SettlingReceiver() as receiver:
        yield receiver


@pytest.fixture
def rx(server: SettlingReceiver) -> SettlingReceiver:
    """The shared receiver answering ``200 ok`` (as a webhook does), with no requests recorded."""
    server.settle()
    server.respond = lambda request: Reply(200, "ok")
    return server


@pytest.fixture
def slack(rx: HttpReceiver) -> FakeSlack:
    fake = FakeSlack(TOKEN)
    rx.respond = fake
    return fake


@pytest.fixture
def hook(rx: HttpReceiver) -> Iterator[SlackWebhookChannel]:
    channel = build(settings(slack_webhook_env="SLACK_HOOK"), {"SLACK_HOOK": rx.url + HOOK_PATH})
    assert isinstance(channel, SlackWebhookChannel)
    yield channel
    channel.close()


@pytest.fixture
def bot(slack: FakeSlack, rx: HttpReceiver) -> Iterator[SlackApiChannel]:
    channel = build(bot_settings(rx.url + "/api"), {"SLACK_TOKEN": TOKEN})
    assert isinstance(channel, SlackApiChannel)
    yield channel
    channel.close()


# --- webhook mode ------------------------------------------------------------------------------

def test_a_webhook_post_sends_the_block_kit_message_and_is_delivered_on_ok(
        rx: HttpReceiver, hook: SlackWebhookChannel) -> None:
    outcome = hook.deliver(make_delivery())
    assert (outcome.kind, outcome.status_code, outcome.state) == (OutcomeKind.DELIVERED, 200, None)
    request, = rx.wait_for(1)
    assert request.path == HOOK_PATH
    assert request.headers["content-type"] == "application/json"
    body = request.json()
    assert body["blocks"][0]["text"]["text"] == "🔴 API Gateway Down"
    assert body["attachments"][0]["color"] == "#d00000"
    assert "authorization" not in request.headers


def test_a_webhook_sends_every_event_as_a_full_message_showing_the_new_state(
        rx: HttpReceiver, hook: SlackWebhookChannel) -> None:
    hook.deliver(event(IncidentState.RESOLVED, ROOT, **{k: v for k, v in RESOLVED.items() if k != "state"}))
    body = rx.wait_for(1)[0].json()
    assert "thread_ts" not in body and "ts" not in body
    assert "*State:*\nResolved" in [f["text"] for f in body["blocks"][2]["fields"]]


@pytest.mark.parametrize("status, body, headers, kind, disable, retry_after", [
    (200, "no_service", {}, OutcomeKind.FAILED, True, None),
    (200, "", {}, OutcomeKind.FAILED, False, None),
    (200, "OK", {}, OutcomeKind.FAILED, False, None),
    (400, "invalid_payload", {}, OutcomeKind.FAILED, False, None),
    (400, "no_text", {}, OutcomeKind.FAILED, False, None),
    (400, "invalid_blocks", {}, OutcomeKind.FAILED, False, None),
    (403, "action_prohibited", {}, OutcomeKind.FAILED, False, None),
    (403, "<html><body>Forbidden</body></html>", {"Content-Type": "text/html"}, OutcomeKind.FAILED, False, None),
    (404, "channel_not_found", {}, OutcomeKind.FAILED, True, None),
    (404, "no_service", {}, OutcomeKind.FAILED, True, None),
    (410, "channel_is_archived", {}, OutcomeKind.FAILED, True, None),
    (429, "rate_limited", {"Retry-After": "3"}, OutcomeKind.RETRY, False, 3.0),
    (429, "rate_limited", {}, OutcomeKind.RETRY, False, 10.0),
    (500, "rollup_error", {}, OutcomeKind.RETRY, False, None),
    (503, "", {"Retry-After": "4"}, OutcomeKind.RETRY, False, 4.0),
])
def test_webhook_answers_map_to_outcomes_as_slack_documents_them(
        rx: HttpReceiver, hook: SlackWebhookChannel, status: int, body: str, headers: dict[str, str],
        kind: OutcomeKind, disable: bool, retry_after: float | None) -> None:
    rx.respond = lambda request: Reply(status, body, headers)
    outcome = hook.deliver(make_delivery())
    assert (outcome.kind, outcome.status_code, outcome.disable_destination, outcome.retry_after) == \
        (kind, status, disable, retry_after)
    assert outcome.detail.startswith(f"HTTP {status}")
    if body and not body.startswith("<"):
        assert body in outcome.detail


def test_a_webhook_test_notification_is_marked(rx: HttpReceiver, hook: SlackWebhookChannel) -> None:
    outcome = hook.deliver(make_delivery(is_test=True))
    assert outcome.kind is OutcomeKind.DELIVERED and outcome.state is None
    assert rx.wait_for(1)[0].json()["text"].startswith("[TEST] ")


def test_a_refused_webhook_connection_is_retried() -> None:
    channel = build(settings(slack_webhook_env="H"), {"H": f"http://127.0.0.1:{closed_port()}{HOOK_PATH}"})
    outcome = channel.deliver(make_delivery())
    channel.close()
    assert outcome.kind is OutcomeKind.RETRY and "connection error" in outcome.detail


def test_a_webhook_timeout_is_retried() -> None:
    with HttpReceiver(lambda r: Reply(200, "ok", delay_secs=5)) as slow:
        channel = build(settings(slack_webhook_env="H", slack=ChannelTuning(timeout_secs=0.2)),
                        {"H": slow.url + HOOK_PATH})
        outcome = channel.deliver(make_delivery())
        channel.close()
    assert outcome.kind is OutcomeKind.RETRY and "timeout" in outcome.detail


# --- Web API mode: threading -------------------------------------------------------------------

def test_the_first_event_posts_a_root_message_and_stores_its_channel_and_ts(
        rx: HttpReceiver, slack: FakeSlack, bot: SlackApiChannel) -> None:
    outcome = bot.deliver(event(IncidentState.DETECTED))
    assert outcome.kind is OutcomeKind.DELIVERED, outcome.detail
    assert outcome.state == ROOT
    request, = rx.wait_for(1)
    assert request.path == "/api/chat.postMessage"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["content-type"] == "application/json; charset=utf-8"
    body = request.json()
    assert body["channel"] == "#incidents" and "thread_ts" not in body
    assert body["blocks"][0]["text"]["text"] == "🔴 API Gateway Down"
    assert body["unfurl_links"] is False


def test_a_later_event_updates_the_root_and_replies_in_its_thread(
        rx: HttpReceiver, slack: FakeSlack, bot: SlackApiChannel) -> None:
    state = bot.deliver(event(IncidentState.DETECTED)).state
    outcome = bot.deliver(event(IncidentState.INVESTIGATING, state))
    assert outcome.kind is OutcomeKind.DELIVERED, outcome.detail
    assert outcome.state == ROOT
    _, update, reply = rx.wait_for(3)
    assert [r.path for r in (update, reply)] == ["/api/chat.update", "/api/chat.postMessage"]
    assert (update.json()["channel"], update.json()["ts"]) == (ROOT["channel"], ROOT["ts"])
    assert (reply.json()["channel"], reply.json()["thread_ts"]) == (ROOT["channel"], ROOT["ts"])
    assert reply.json()["blocks"][0]["text"]["text"] == "*State changed to Investigating*"
    root, = slack.roots()
    first, second = root.revisions
    assert "*State:*\nInvestigating" in [f["text"] for f in second["blocks"][2]["fields"]]
    assert not {b["block_id"] for b in first["blocks"]} & {b["block_id"] for b in second["blocks"]}
    assert [m.payload["text"].split(" — ")[0] for m in slack.replies(root.ts)] == [
        "State changed to Investigating"]


def test_a_whole_lifecycle_stays_in_one_thread(slack: FakeSlack, bot: SlackApiChannel) -> None:
    state: Mapping[str, Any] = {}
    for step in (IncidentState.DETECTED, IncidentState.TRIAGED, IncidentState.INVESTIGATING):
        state = bot.deliver(event(step, state)).state or state
    resolved = bot.deliver(event(IncidentState.RESOLVED, state,
                                 **{k: v for k, v in RESOLVED.items() if k != "state"}))
    assert resolved.kind is OutcomeKind.DELIVERED and resolved.state == ROOT
    root, = slack.roots()
    assert len(slack.replies(root.ts)) == 3
    assert "Resolution" in json.dumps(root.payload)


@pytest.mark.parametrize("error", ["message_not_found", "cant_update_message"])
def test_when_the_root_cannot_be_updated_a_new_root_is_posted_and_stored(
        rx: HttpReceiver, slack: FakeSlack, bot: SlackApiChannel, error: str) -> None:
    slack.script("chat.update", slack_error(error))
    outcome = bot.deliver(event(IncidentState.INVESTIGATING, {"channel": "C0INCIDENTS", "ts": "1.000000"}))
    assert outcome.kind is OutcomeKind.DELIVERED, outcome.detail
    assert outcome.state == {"channel": "C0INCIDENTS", "ts": "1705329120.000001"}
    assert error in outcome.detail
    update, post = rx.wait_for(2)
    assert post.path == "/api/chat.postMessage"
    assert post.json()["channel"] == "C0INCIDENTS" and "thread_ts" not in post.json()
    assert len(rx.requests) == 2


def test_a_deleted_root_is_replaced_by_the_fake_slack_too(slack: FakeSlack, bot: SlackApiChannel) -> None:
    state = bot.deliver(event(IncidentState.DETECTED)).state
    assert state is not None
    slack.delete(state["ts"])
    outcome = bot.deliver(event(IncidentState.INVESTIGATING, state))
    assert outcome.state is not None and outcome.state["ts"] != state["ts"]
    assert len(slack.roots()) == 1


def test_when_the_edit_window_is_closed_the_root_is_kept_and_the_reply_still_posted(
        rx: HttpReceiver, slack: FakeSlack, bot: SlackApiChannel) -> None:
    state = bot.deliver(event(IncidentState.DETECTED)).state
    slack.script("chat.update", slack_error("edit_window_closed"))
    outcome = bot.deliver(event(IncidentState.INVESTIGATING, state))
    assert (outcome.kind, outcome.state) == (OutcomeKind.DELIVERED, ROOT)
    root, = slack.roots()
    assert len(root.revisions) == 1 and len(slack.replies(root.ts)) == 1


def test_an_ok_answer_without_a_ts_is_delivered_but_stores_no_root(
        slack: FakeSlack, bot: SlackApiChannel) -> None:
    slack.script("chat.postMessage", slack_reply({"ok": True, "channel": "C0INCIDENTS"}))
    with structlog.testing.capture_logs() as logs:
        outcome = bot.deliver(event(IncidentState.DETECTED))
    assert (outcome.kind, outcome.state) == (OutcomeKind.DELIVERED, None)
    assert "slack_message_without_ts" in [e["event"] for e in logs]


def test_ok_false_not_in_channel_fails_for_good_without_touching_the_state(
        slack: FakeSlack, bot: SlackApiChannel) -> None:
    slack.script("chat.postMessage", slack_error("not_in_channel"))
    outcome = bot.deliver(event(IncidentState.DETECTED))
    assert (outcome.kind, outcome.status_code, outcome.state) == (OutcomeKind.FAILED, 200, None)
    assert outcome.detail == "Slack chat.postMessage: not_in_channel (HTTP 200)"
    assert not outcome.disable_destination


@pytest.mark.parametrize("error", ["channel_not_found", "is_archived", "invalid_auth", "token_revoked"])
def test_errors_saying_the_channel_or_token_is_gone_fail_and_ask_to_disable(
        slack: FakeSlack, bot: SlackApiChannel, error: str) -> None:
    slack.script("chat.postMessage", slack_error(error))
    outcome = bot.deliver(event(IncidentState.DETECTED))
    assert (outcome.kind, outcome.disable_destination) == (OutcomeKind.FAILED, True)


def test_a_missing_scope_names_the_scope_needed(slack: FakeSlack, bot: SlackApiChannel) -> None:
    slack.script("chat.postMessage", slack_reply({"ok": False, "error": "missing_scope", "needed": "chat:write",
                                                  "provided": "channels:read"}))
    outcome = bot.deliver(event(IncidentState.DETECTED))
    assert outcome.kind is OutcomeKind.FAILED
    assert outcome.detail.endswith("missing_scope (HTTP 200); needed scope chat:write, token has channels:read")


@pytest.mark.parametrize("error", ["internal_error", "fatal_error", "request_timeout", "message_limit_exceeded"])
def test_transient_slack_errors_are_retried(slack: FakeSlack, bot: SlackApiChannel, error: str) -> None:
    slack.script("chat.postMessage", slack_error(error))
    outcome = bot.deliver(event(IncidentState.DETECTED))
    assert (outcome.kind, outcome.status_code, outcome.state) == (OutcomeKind.RETRY, 200, None)
    assert error in outcome.detail


@pytest.mark.parametrize("headers, wait", [({"Retry-After": "3"}, 3.0), ({}, 10.0)])
def test_http_429_ratelimited_is_retried_after_retry_after_or_10_seconds(
        slack: FakeSlack, bot: SlackApiChannel, headers: dict[str, str], wait: float) -> None:
    slack.script("chat.postMessage", slack_error("ratelimited", 429, headers))
    outcome = bot.deliver(event(IncidentState.DETECTED))
    assert (outcome.kind, outcome.status_code, outcome.retry_after) == (OutcomeKind.RETRY, 429, wait)
    assert "ratelimited" in outcome.detail


def test_an_http_error_status_is_not_mistaken_for_success_even_with_ok_true(
        slack: FakeSlack, bot: SlackApiChannel) -> None:
    slack.script("chat.postMessage", slack_reply({"ok": True, "ts": "1.1"}, 503),
                 slack_reply({"ok": True, "ts": "1.1"}, 400))
    retry, failed = bot.deliver(event(IncidentState.DETECTED)), bot.deliver(event(IncidentState.DETECTED))
    assert (retry.kind, retry.status_code, retry.state) == (OutcomeKind.RETRY, 503, None)
    assert (failed.kind, failed.status_code, failed.state) == (OutcomeKind.FAILED, 400, None)


def test_a_200_that_is_not_slack_json_fails(slack: FakeSlack, bot: SlackApiChannel) -> None:
    slack.script("chat.postMessage", Reply(200, "<html>captive portal</html>"))
    outcome = bot.deliver(event(IncidentState.DETECTED))
    assert outcome.kind is OutcomeKind.FAILED and "unexpected answer" in outcome.detail


def test_a_failed_update_is_retried_without_posting_a_reply(
        rx: HttpReceiver, slack: FakeSlack, bot: SlackApiChannel) -> None:
    slack.script("chat.update", slack_error("internal_error"))
    outcome = bot.deliver(event(IncidentState.INVESTIGATING, ROOT))
    assert (outcome.kind, outcome.state) == (OutcomeKind.RETRY, None)
    assert [r.path for r in rx.wait_for(1)] == ["/api/chat.update"] and len(rx.requests) == 1


def test_after_the_update_worked_a_retry_posts_only_the_missing_reply(
        rx: HttpReceiver, slack: FakeSlack, bot: SlackApiChannel) -> None:
    state = bot.deliver(event(IncidentState.DETECTED)).state
    slack.script("chat.postMessage", slack_error("internal_error"))
    delivery = event(IncidentState.INVESTIGATING, state)
    first = bot.deliver(delivery)
    assert first.kind is OutcomeKind.RETRY
    assert first.state == {**ROOT, UPDATED_FOR: delivery.notification_id}
    assert first.detail.startswith("root updated; reply Slack chat.postMessage: internal_error")
    second = bot.deliver(delivery.next_attempt(first.state))
    assert (second.kind, second.state) == (OutcomeKind.DELIVERED, ROOT)
    paths = [r.path for r in rx.wait_for(4)]
    assert paths == ["/api/chat.postMessage", "/api/chat.update", "/api/chat.postMessage",
                     "/api/chat.postMessage"]
    root, = slack.roots()
    assert len(root.revisions) == 2 and len(slack.replies(root.ts)) == 1


def test_a_marker_left_by_an_earlier_notification_does_not_skip_this_ones_update(
        rx: HttpReceiver, slack: FakeSlack, bot: SlackApiChannel) -> None:
    state = bot.deliver(event(IncidentState.DETECTED)).state
    assert state is not None
    outcome = bot.deliver(event(IncidentState.REMEDIATING, {**state, UPDATED_FOR: "n-INVESTIGATING"}))
    assert outcome.kind is OutcomeKind.DELIVERED
    assert [r.path for r in rx.wait_for(3)][1] == "/api/chat.update"


def test_a_reply_failing_for_good_after_the_update_keeps_the_stored_root(
        slack: FakeSlack, bot: SlackApiChannel) -> None:
    slack.messages[ROOT["ts"]] = Message(ROOT["channel"], ROOT["ts"], {})
    slack.script("chat.postMessage", slack_error("restricted_action_thread_only_channel"))
    outcome = bot.deliver(event(IncidentState.INVESTIGATING, ROOT))
    assert (outcome.kind, outcome.state) == (OutcomeKind.FAILED, None)


def test_a_test_notification_posts_a_new_marked_message_and_leaves_the_thread_alone(
        rx: HttpReceiver, slack: FakeSlack, bot: SlackApiChannel) -> None:
    outcome = bot.deliver(dataclasses.replace(make_delivery(is_test=True), state=dict(ROOT)))
    assert (outcome.kind, outcome.state) == (OutcomeKind.DELIVERED, None)
    request, = rx.wait_for(1)
    assert request.path == "/api/chat.postMessage" and len(rx.requests) == 1
    body = request.json()
    assert body["channel"] == "#incidents" and "thread_ts" not in body
    assert body["text"].startswith("[TEST] ")


def test_a_refused_api_connection_and_a_timeout_are_retried() -> None:
    refused = build(bot_settings(f"http://127.0.0.1:{closed_port()}/api"), {"SLACK_TOKEN": TOKEN})
    outcome = refused.deliver(event(IncidentState.DETECTED))
    refused.close()
    assert outcome.kind is OutcomeKind.RETRY and "connection error" in outcome.detail
    with HttpReceiver(lambda r: Reply(200, "{}", delay_secs=5)) as slow:
        channel = build(bot_settings(slow.url, slack=ChannelTuning(timeout_secs=0.2)), {"SLACK_TOKEN": TOKEN})
        outcome = channel.deliver(event(IncidentState.DETECTED))
        channel.close()
    assert outcome.kind is OutcomeKind.RETRY and "timeout" in outcome.detail


# --- every status code ---------------------------------------------------------------------------

def expected(status: int) -> tuple[OutcomeKind, bool]:
    """(kind, disable_destination) for a status whose body says success (``ok`` / ok:true)."""
    if status in (204, 304):  # no body allowed, so no "ok": never success
        return OutcomeKind.FAILED, False
    if 200 <= status < 300:
        return OutcomeKind.DELIVERED, False
    if status in (408, 425, 429) or (500 <= status < 600 and status != 501):
        return OutcomeKind.RETRY, False
    return OutcomeKind.FAILED, status in (404, 410)


HOOK_URL = "https://hooks.slack.com" + HOOK_PATH
API_URL = "https://slack.example.test/api"


@pytest.mark.parametrize("mode", ["webhook", "api"])
def test_every_http_status_from_200_to_599_maps_to_the_expected_outcome(mode: str) -> None:
    answering = {"status": 200}

    def respond(request: Recorded) -> Reply:
        status = answering["status"]
        return Reply(status, "" if status in (204, 304) else success)  # 204 and 304 allow no body

    with HttpReceiver(respond) as rx:
        if mode == "webhook":
            channel: Any = build(settings(slack_webhook_env="H"), {"H": rx.url + HOOK_PATH})
            success, path = "ok", HOOK_PATH
        else:
            channel = build(bot_settings(rx.url + "/api"), {"SLACK_TOKEN": TOKEN})
            success, path = json.dumps({"ok": True, "channel": "C1", "ts": "1.2"}), "/api/chat.postMessage"
        wrong: dict[int, Any] = {}
        for status in range(200, 600):
            answering["status"] = status
            outcome = channel.deliver(event(IncidentState.DETECTED))
            kind, disable = expected(status)
            if mode == "api":  # a 404 there means a wrong API URL, not a vanished channel
                disable = status == 410
            if (outcome.kind, outcome.status_code, outcome.disable_destination) != (kind, status, disable):
                wrong[status] = (kind, disable, outcome)
            if status == 429 and outcome.retry_after != 10.0:
                wrong[status] = ("retry_after 10", outcome)
            if outcome.kind is OutcomeKind.DELIVERED and mode == "api" and outcome.state != {"channel": "C1",
                                                                                             "ts": "1.2"}:
                wrong[status] = ("state", outcome)
        channel.close()
    assert wrong == {}
    assert {r.path for r in rx.requests} == {path} and len(rx.requests) == 400


# --- build ---------------------------------------------------------------------------------------

def test_a_bot_token_gives_the_threading_api_channel_even_when_a_webhook_is_also_set() -> None:
    with structlog.testing.capture_logs() as logs:
        channel = build(bot_settings(API_URL, slack_webhook_env="H"), {"SLACK_TOKEN": TOKEN, "H": HOOK_URL})
    assert isinstance(channel, SlackApiChannel)
    assert (channel.name, channel.destinations, channel.needs_state) == ("slack", ("default",), True)
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["slack_webhook_unused"]
    channel.close()


def test_a_webhook_alone_gives_a_channel_without_state() -> None:
    channel = build(settings(slack_webhook_env="H"), {"H": HOOK_URL + "\n"})
    assert isinstance(channel, SlackWebhookChannel)
    assert (channel.name, channel.destinations, channel.needs_state) == ("slack", ("default",), False)
    channel.close()


@pytest.mark.parametrize("changes, environ, key", [
    ({"slack_webhook_env": "H"}, {}, "notifications.slack_webhook_env"),
    ({"slack_webhook_env": "H"}, {"H": "hooks.slack.com/services/x"}, "notifications.slack_webhook_env"),
    ({"slack_webhook_env": "H"}, {"H": "https://hooks.slack.com/a b"}, "notifications.slack_webhook_env"),
    ({"slack_bot_token_env": "T", "slack_default_channel": "#x"}, {}, "notifications.slack_bot_token_env"),
    ({"slack_bot_token_env": "T", "slack_default_channel": "#x"}, {"T": "xoxb-a\nb"},
     "notifications.slack_bot_token_env"),
    ({"slack_bot_token_env": "T"}, {"T": TOKEN}, "notifications.slack_default_channel"),
    ({}, {}, "notifications.slack_webhook_env"),
])
def test_missing_or_unusable_settings_are_config_errors_that_hide_the_value(
        changes: dict[str, Any], environ: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build(settings(**changes), environ)
    assert caught.value.key == key
    for value in environ.values():
        assert value not in str(caught.value)


# --- secrets -------------------------------------------------------------------------------------

def leaky(request: Recorded) -> Reply:
    """A server that echoes the credential (token or URL) back in every kind of error."""
    secret = request.headers.get("authorization", "") + " " + request.path
    title = request.json()["blocks"][0]["text"]["text"].split(" ", 1)[1]
    status = {"bad": 400, "busy": 429, "down": 500, "gone": 404}.get(title, 200)
    if request.path.startswith("/api/") and status == 200:
        return slack_reply({"ok": False, "error": f"invalid_auth {secret}", "needed": secret, "provided": secret})
    return Reply(status, f"error for {secret}")


def test_neither_the_token_nor_the_webhook_url_ever_appears_in_details_or_logs(rx: HttpReceiver) -> None:
    rx.respond = leaky
    hook_url = rx.url + HOOK_PATH
    outcomes: list[Outcome] = []
    with structlog.testing.capture_logs() as logs:
        for environ, changes in (({"H": hook_url}, {"slack_webhook_env": "H"}),
                                 ({"SLACK_TOKEN": TOKEN}, {"slack_bot_token_env": "SLACK_TOKEN",
                                                           "slack_default_channel": "#incidents",
                                                           "slack_api_url": rx.url + "/api"})):
            channel = build(settings(**changes), environ)
            for title in ("bad", "busy", "down", "gone", "other"):
                outcomes.append(channel.deliver(event(IncidentState.DETECTED, title=title)))
            outcomes.append(channel.deliver(event(IncidentState.INVESTIGATING, ROOT, title="down")))
            channel.close()
        port = closed_port()
        for environ, changes in (({"H": f"http://127.0.0.1:{port}{HOOK_PATH}"}, {"slack_webhook_env": "H"}),
                                 ({"SLACK_TOKEN": TOKEN}, {"slack_bot_token_env": "SLACK_TOKEN",
                                                           "slack_default_channel": "#incidents",
                                                           "slack_api_url": f"http://127.0.0.1:{port}/api"})):
            refused = build(settings(**changes), environ)
            outcomes.append(refused.deliver(event(IncidentState.DETECTED)))
            refused.close()
    kinds = {o.kind for o in outcomes}
    assert kinds == {OutcomeKind.FAILED, OutcomeKind.RETRY}
    assert any("connection error" in o.detail for o in outcomes)
    for outcome in outcomes:
        for secret in (TOKEN, hook_url, HOOK_PATH, "S3cr3tW3bh00kP4th"):
            assert secret not in outcome.detail and secret not in repr(outcome)
    assert logs
    for secret in (TOKEN, HOOK_PATH, "S3cr3tW3bh00kP4th"):
        assert secret not in repr(logs)


@pytest.mark.parametrize("mode", ["webhook", "api"])
def test_a_secret_straddling_the_cut_of_an_echoed_error_does_not_leak_in_part(
        rx: HttpReceiver, mode: str) -> None:
    secret = HOOK_PATH if mode == "webhook" else TOKEN
    echoed = "e" * 100 + secret
    rx.respond = lambda request: (Reply(400, echoed) if mode == "webhook"
                                  else slack_reply({"ok": False, "error": echoed, "needed": echoed}))
    changes = ({"slack_webhook_env": "H"} if mode == "webhook" else
               {"slack_bot_token_env": "H", "slack_default_channel": "#x", "slack_api_url": rx.url + "/api"})
    channel = build(settings(**changes), {"H": rx.url + HOOK_PATH if mode == "webhook" else TOKEN})
    outcome = channel.deliver(make_delivery())
    channel.close()
    assert outcome.kind is OutcomeKind.FAILED
    assert "e" * 100 in outcome.detail and secret[:12] not in outcome.detail


def test_an_unusable_api_url_is_a_config_error_at_build_naming_the_key() -> None:
    for bad in ("slack.com/api", "https://slack.com/my api"):
        with pytest.raises(ConfigError) as caught:
            build(bot_settings(bad), {"SLACK_TOKEN": TOKEN})
        assert caught.value.key == "notifications.slack_api_url" and TOKEN not in str(caught.value)


# --- several destinations ------------------------------------------------------------------------

def test_each_receiver_posts_to_its_own_channel_or_webhook_and_keeps_its_own_thread(rx: HttpReceiver) -> None:
    slack = FakeSlack(TOKEN, {"#incidents": "C0INCIDENTS", "#db": "C0DB"})
    rx.respond = lambda request: slack(request) if request.path.startswith("/api/") else Reply(200, "ok")
    receivers = settings_from_mapping({
        "notifications": {"slack_enabled": True, "slack_bot_token_env": "T", "slack_default_channel": "#incidents"},
        "receivers": {"team-db": {"slack": {"channel": "#db"}},
                      "ops": {"slack": {"webhook_env": "OPS_HOOK"}}}}).receivers
    channel = build(bot_settings(rx.url + "/api"), {"SLACK_TOKEN": TOKEN, "OPS_HOOK": rx.url + "/hooks/ops"},
                    receivers)
    try:
        assert channel.destinations == ("default", "team-db", "ops") and channel.needs_state
        outcomes = {name: channel.deliver(dataclasses.replace(event(IncidentState.DETECTED), destination=name))
                    for name in channel.destinations}
    finally:
        channel.close()
    assert {name: o.kind for name, o in outcomes.items()} == dict.fromkeys(outcomes, OutcomeKind.DELIVERED)
    assert sorted(m.channel for m in slack.roots()) == ["C0DB", "C0INCIDENTS"]
    assert outcomes["team-db"].state is not None and outcomes["team-db"].state["channel"] == "C0DB"
    assert outcomes["ops"].state is None  # a webhook message has no thread
    assert [r.path for r in rx.requests if not r.path.startswith("/api/")] == ["/hooks/ops"]


def test_a_receivers_unset_slack_webhook_variable_is_refused_naming_its_key() -> None:
    receivers = settings_from_mapping({"notifications": {"slack_enabled": True},
                                       "receivers": {"ops": {"slack": {"webhook_env": "OPS_HOOK"}}}}).receivers
    with pytest.raises(ConfigError) as refused:
        build(settings(), {}, receivers)
    assert str(refused.value) == "receivers.ops.slack.webhook_env: environment variable OPS_HOOK is not set"
