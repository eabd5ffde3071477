"""Slack channel: an incoming webhook, or the Web API with a bot token (one thread per incident).

**Webhook mode** (``slack_webhook_env`` set, no bot token): every event POSTs the full
incident message (:func:`actors.formatting.slack.root_message`) to the URL held in the
variable; the URL is the credential. Success only when the status is 2xx *and* the body is
exactly ``ok``; any other 2xx body fails (``no_service`` also asks to disable the target).
404 and 410 fail and ask to disable; 429 retries after ``Retry-After`` (10 s without one);
other statuses as :func:`actors.channels.http.classify_status` (5xx but 501, 408, 425 retry;
other 4xx, 3xx fail). Webhook messages have no ``ts``, so they are never updated or threaded.

**Bot mode** (``slack_bot_token_env``): ``POST <slack_api_url>/<method>`` with
``Authorization: Bearer``. A call succeeds only on a 2xx status *and* ``"ok": true``.
HTTP 429 retries after ``Retry-After`` (10 s without one); other statuses as
``classify_status``. ``ok: false`` codes: rate limits, ``internal_error``, ``fatal_error``,
``request_timeout``, migrations retry; everything else fails for good, and codes saying the
channel or token is gone (``channel_not_found``, ``is_archived``, ``invalid_auth``,
``token_revoked`` …) also ask to disable the destination.

Threading (bot mode). ``delivery.state`` is ``{"channel": C, "ts": T}`` once the incident
has a root message in Slack:

1. No stored root: chat.postMessage to ``slack_default_channel``; the root's channel and
   ``ts`` (from Slack's answer) are returned as the new state.
2. A stored root: chat.update the root with fresh blocks (current state, new block ids),
   then chat.postMessage a :func:`~actors.formatting.slack.thread_reply` with
   ``thread_ts`` = root ``ts``. If chat.update answers ``message_not_found`` or
   ``cant_update_message`` (root deleted, or posted by another app), a new root is posted
   in the same channel instead and its state returned. If it answers
   ``edit_window_closed`` (the workspace forbids late edits) the root is left as it is and
   the reply is still posted.

Partial success: when the update worked but the reply must be retried, the retry outcome
carries state ``{"channel", "ts", "updated_for": <notification id>}``; the sender hands it
back on the next attempt, which then skips the (already done) update and only posts the
reply. Success stores the plain ``{"channel", "ts"}`` again. Slack has no idempotency key:
if an answer is lost (timeout) after Slack acted, the retry may post the root or a reply
twice; an update repeated is harmless.

Destinations: ``default`` is the one above; each receiver with ``[receivers.<name>.slack]``
has its own, an incoming webhook (``webhook_env``) or a channel the bot posts to
(``channel``), each with its own threads (actors/channels/base.py ``ByDestination``).

A test notification (``is_test``) is posted as a new "[TEST]" message to the default channel
(never into a thread, never touching the stored root) and returns ``state=None``.

A receiver's ``text_template`` and ``blocks_template`` (actors/formatting/templates.py)
replace the message's ``text`` and ``blocks`` (root and replies alike; the colour attachment
stays), fitted to the same limits afterwards. A template that fails makes the delivery fail,
naming the setting and the error, before anything is posted.

Expected failures never raise. Neither the token nor the webhook URL (nor any piece of it that an
error text could show alone) ever appears in an outcome or a log line. Both modes post through
the channels' one HTTP client (actors/channels/keepalive.py).
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any, Callable, Mapping

import structlog

from ..domain.config import NO_RECEIVERS, NotificationSettings, ReceiverSettings, SlackTarget, read_secret
from ..domain.destinations import channel_targets, setting_key
from ..domain.errors import ConfigError
from ..domain.models import Delivery, Outcome, OutcomeKind
from ..formatting import slack as fmt
from ..formatting.templates import TemplateFailure, Templates, compile_templates, slack_message
from .base import Channel, by_destination
from .http import classify_status, parse_retry_after
from .keepalive import KeepAlivePoster, Reply
from .redact import longest_first, redact, url_secrets

WEBHOOK_SETTING = "notifications.slack_webhook_env"
TOKEN_SETTING = "notifications.slack_bot_token_env"
CHANNEL_SETTING = "notifications.slack_default_channel"
API_URL_SETTING = "notifications.slack_api_url"

#: Wait for a rate limit that came without Retry-After (Grafana OnCall's default).
RATE_LIMIT_RETRY_SECS = 10.0
#: The state key recording that the root was already updated for this notification.
UPDATED_FOR = "updated_for"

RATE_LIMIT_ERRORS = frozenset({"ratelimited", "rate_limited", "message_limit_exceeded"})
TRANSIENT_ERRORS = RATE_LIMIT_ERRORS | frozenset({
    "internal_error", "fatal_error", "request_timeout", "service_unavailable",
    "team_added_to_org", "org_login_required"})
#: Errors meaning the destination itself is gone or unusable: fail and ask to disable it.
GONE_ERRORS = frozenset({
    "channel_not_found", "is_archived", "channel_is_archived", "is_inactive", "account_inactive",
    "token_revoked", "invalid_auth", "not_authed", "no_service"})
#: chat.update errors after which a new root message is posted.
REPOST_ERRORS = frozenset({"message_not_found", "cant_update_message"})
#: chat.update errors after which the root stays as it is and the reply is still posted.
KEEP_ROOT_ERRORS = frozenset({"edit_window_closed"})

WEBHOOK_OK = "ok"
_MAX_HINT_CHARS = 120

log = structlog.get_logger(__name__)


def _encode(message: Mapping[str, Any]) -> bytes:
    """Compact ASCII JSON (never fails, even on a lone surrogate)."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _hint(text: str, secrets: tuple[str, ...]) -> str:
    """The first line of a response body, redacted and then cut short, for details (cutting
    first could leave part of a secret that straddles the cut)."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    return redact(first, secrets)[:_MAX_HINT_CHARS]


def _rate_limited(detail: str, status: int, header: str | None) -> Outcome:
    wait = parse_retry_after(header)
    return Outcome.retry(detail, status, RATE_LIMIT_RETRY_SECS if wait is None else wait)


# -- webhook mode ---------------------------------------------------------------------------

class SlackWebhookChannel:
    """Posts each event as a new message through one incoming webhook."""

    name = "slack"
    needs_state = False

    def __init__(self, url: str, timeout_secs: float, destination: str = "default",
                 templates: Templates | None = None) -> None:
        """Raises ValueError (without the URL) when it is not a usable http(s) URL.
        ``templates``: the receiver's text and blocks templates (None: the built-in message)."""
        self.destinations: tuple[str, ...] = (destination,)
        self._templates = templates
        self._secrets = longest_first(url_secrets(url))
        self._poster = KeepAlivePoster(url, timeout_secs)

    def deliver(self, delivery: Delivery) -> Outcome:
        """POST the incident message; see the module docstring for how answers map to outcomes."""
        try:
            message = (fmt.group_message(delivery) if delivery.group is not None
                       else _message(self._templates, delivery, fmt.root_message))
        except TemplateFailure as failure:
            return Outcome.failed(str(failure))
        reply = self._poster.post(_encode(message), {"Content-Type": "application/json"}, self._secrets)
        outcome = reply if isinstance(reply, Outcome) else self._classify(reply)
        log.debug("slack_sent", mode="webhook", incident_id=delivery.incident_id,
                  outcome=outcome.kind.value, status_code=outcome.status_code)
        return outcome

    def _classify(self, reply: Reply) -> Outcome:
        status, body = reply.status, reply.text
        hint = _hint(body, self._secrets)
        if 200 <= status < 300:
            if body == WEBHOOK_OK:
                return Outcome.delivered(f"HTTP {status}: ok", status)
            return Outcome.failed(f"HTTP {status}: unexpected answer {hint!r} (Slack answers 'ok' on success)",
                                  status, disable_destination=hint in GONE_ERRORS)
        if status == 429:
            return _rate_limited(f"HTTP 429: {hint or 'rate limited'}", status, reply.retry_after)
        outcome = classify_status(status, hint, reply.retry_after, self._secrets)
        if outcome.kind is OutcomeKind.FAILED and (status in (404, 410) or hint in GONE_ERRORS):
            return dataclasses.replace(outcome, disable_destination=True)
        return outcome

    def open(self) -> None:
        """Nothing to prepare: connections are made on the first send."""

    def close(self) -> None:
        self._poster.close()


# -- bot (Web API) mode ---------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _Answer:
    """One Web API call: the JSON body on success, else the failure and Slack's error code."""

    body: Mapping[str, Any] | None = None
    failure: Outcome | None = None
    error: str = ""
    status: int | None = None


class SlackApiChannel:
    """Posts one root message per incident with a bot token, updates it, and threads replies."""

    name = "slack"
    needs_state = True

    def __init__(self, token: str, default_channel: str, api_url: str, timeout_secs: float,
                 destination: str = "default", templates: Templates | None = None) -> None:
        """Raises ValueError when ``api_url`` is not a usable http(s) URL. ``templates``: the
        receiver's text and blocks templates (None: the built-in messages)."""
        self.destinations: tuple[str, ...] = (destination,)
        self._templates = templates
        self._token = token
        self._secrets = (token,)
        self._channel = default_channel
        self._poster = KeepAlivePoster(api_url, timeout_secs)
        #: ``<api path>/`` : a method's path is this plus its name.
        self._methods = self._poster.target.split("?", 1)[0].rstrip("/") + "/"

    def deliver(self, delivery: Delivery) -> Outcome:
        """Post, or update and reply in, the incident's thread (see the module docstring); a
        group notification is one message of its own. The messages are rendered before anything
        is sent: a template that fails is a failed outcome, and nothing was posted."""
        if delivery.group is not None:
            return self._post_group(delivery)
        root = None if delivery.is_test else _stored_root(delivery.state)
        try:
            message = _message(self._templates, delivery, fmt.root_message)
            follow_up = None if root is None else _message(self._templates, delivery, fmt.thread_reply)
        except TemplateFailure as failure:
            return Outcome.failed(str(failure))
        if root is None or follow_up is None:  # (a reply is rendered exactly when there is a root)
            return self._post_root(delivery, self._channel, message)
        if delivery.state.get(UPDATED_FOR) != delivery.notification_id:
            update = self._call("chat.update", {"channel": root["channel"], "ts": root["ts"], **message})
            if update.error in REPOST_ERRORS:
                log.info("slack_root_replaced", incident_id=delivery.incident_id, error=update.error)
                return self._post_root(delivery, root["channel"], message, replaced=update.error)
            if update.failure is not None and update.error not in KEEP_ROOT_ERRORS:
                return update.failure
        reply = self._call("chat.postMessage", {"channel": root["channel"], "thread_ts": root["ts"],
                                                **follow_up, "unfurl_links": False, "unfurl_media": False})
        if reply.failure is not None:
            progress = {**root, UPDATED_FOR: delivery.notification_id}
            retrying = reply.failure.kind is OutcomeKind.RETRY
            return dataclasses.replace(reply.failure, detail=f"root updated; reply {reply.failure.detail}",
                                       state=progress if retrying else None)
        return Outcome.delivered(f"Slack: root {root['ts']} updated, reply posted in its thread",
                                 reply.status, state=root)

    def _post_root(self, delivery: Delivery, channel: str, message: Mapping[str, Any],
                   replaced: str = "") -> Outcome:
        """Post ``message`` as a new root; its ``{"channel", "ts"}`` is the new state (None for a test)."""
        answer = self._call("chat.postMessage", {"channel": channel, **message,
                                                 "unfurl_links": False, "unfurl_media": False})
        if answer.failure is not None:
            return answer.failure
        assert answer.body is not None
        ts, posted_in = answer.body.get("ts"), answer.body.get("channel")
        if not isinstance(ts, str) or not ts:
            ts = None
            log.warning("slack_message_without_ts", incident_id=delivery.incident_id, method="chat.postMessage")
        state = None
        if not delivery.is_test and ts is not None:
            state = {"channel": posted_in if isinstance(posted_in, str) and posted_in else channel, "ts": ts}
        why = f" (previous root: {replaced})" if replaced else ""
        return Outcome.delivered(f"Slack: posted {'test' if delivery.is_test else 'root'} message "
                                 f"{ts or '(no ts)'}{why}", answer.status, state=state)

    def _post_group(self, delivery: Delivery) -> Outcome:
        """Post a group notification as a message of its own (no thread: nothing is stored)."""
        answer = self._call("chat.postMessage", {"channel": self._channel, **fmt.group_message(delivery),
                                                 "unfurl_links": False, "unfurl_media": False})
        if answer.failure is not None:
            return answer.failure
        assert answer.body is not None
        return Outcome.delivered(f"Slack: posted group message {answer.body.get('ts') or '(no ts)'}", answer.status)

    def _call(self, method: str, payload: Mapping[str, Any]) -> _Answer:
        """One Web API call, classified; never raises for network or HTTP trouble."""
        headers = {"Content-Type": "application/json; charset=utf-8",
                   "Authorization": f"Bearer {self._token}"}
        reply = self._poster.post(_encode(payload), headers, self._secrets, target=self._methods + method)
        answer = _Answer(failure=_prefixed(method, reply)) if isinstance(reply, Outcome) \
            else self._classify(method, reply)
        log.debug("slack_sent", mode="api", method=method, error=answer.error,
                  outcome=answer.failure.kind.value if answer.failure else "delivered",
                  status_code=None if isinstance(reply, Outcome) else reply.status)
        return answer

    def _classify(self, method: str, reply: Reply) -> _Answer:
        status, body = reply.status, reply.json_object()
        code = redact(str(body.get("error") or ""), self._secrets)[:_MAX_HINT_CHARS]
        retry_after = reply.retry_after
        if status == 429:
            said = code or _hint(reply.text, self._secrets) or "rate limited"
            return _Answer(failure=_rate_limited(f"Slack {method}: HTTP 429: {said}", status, retry_after),
                           error=code)
        if not 200 <= status < 300:
            outcome = classify_status(status, code or _hint(reply.text, self._secrets), retry_after,
                                      self._secrets)
            return _Answer(failure=_prefixed(method, outcome), error=code)
        if body.get("ok") is True:
            return _Answer(body=body, status=status)
        if not code:
            return _Answer(failure=Outcome.failed(
                f"Slack {method}: HTTP {status}: unexpected answer (no \"ok\": true)", status))
        detail = f"Slack {method}: {code} (HTTP {status})" + _scopes(body, self._secrets)
        if code in RATE_LIMIT_ERRORS:
            failure = _rate_limited(detail, status, retry_after)
        elif code in TRANSIENT_ERRORS:
            failure = Outcome.retry(detail, status, parse_retry_after(retry_after))
        else:
            failure = Outcome.failed(detail, status, disable_destination=code in GONE_ERRORS)
        return _Answer(failure=failure, error=code)

    def open(self) -> None:
        """Nothing to prepare: connections are made on the first send."""

    def close(self) -> None:
        self._poster.close()


def _message(templates: Templates | None, delivery: Delivery,
             built_in: Callable[[Delivery], dict[str, Any]]) -> dict[str, Any]:
    """The built-in message, with the receiver's text and blocks templates (if any) rendered
    in; raises TemplateFailure when one fails."""
    message = built_in(delivery)
    return message if templates is None else slack_message(templates, delivery, message)


def _prefixed(method: str, outcome: Outcome) -> Outcome:
    return dataclasses.replace(outcome, detail=f"Slack {method}: {outcome.detail}")


def _stored_root(state: Mapping[str, Any]) -> dict[str, str] | None:
    """``{"channel", "ts"}`` of the incident's root message, or None when none is stored."""
    channel, ts = state.get("channel"), state.get("ts")
    if isinstance(channel, str) and channel and isinstance(ts, str) and ts:
        return {"channel": channel, "ts": ts}
    return None


def _scopes(body: Mapping[str, Any], secrets: tuple[str, ...]) -> str:
    """``; needed scope chat:write, token has …`` for missing_scope answers, else ""."""
    needed, provided = body.get("needed"), body.get("provided")
    if not isinstance(needed, str):
        return ""
    text = f"; needed scope {needed}" + (f", token has {provided}" if isinstance(provided, str) else "")
    return redact(text, secrets)[:2 * _MAX_HINT_CHARS]


# -- construction ---------------------------------------------------------------------------

def _clean_secret(key: str, env_name: str | None, value: str) -> str:
    """The secret without surrounding whitespace; ConfigError (no value) if unusable in HTTP."""
    cleaned = value.strip()
    if not cleaned or any(c.isspace() for c in cleaned) or not cleaned.isascii():
        raise ConfigError(key, f"environment variable {env_name} must hold one ASCII word "
                               "(no spaces or line breaks inside)")
    return cleaned


def build(settings: NotificationSettings, environ: Mapping[str, str],
          receivers: Mapping[str, ReceiverSettings] = NO_RECEIVERS) -> Channel:
    """The Slack channel: the ``[notifications]`` destination (bot mode when
    ``slack_bot_token_env`` is set, else webhook mode) and each receiver's (its own incoming
    webhook, or its channel posted to with the bot token), one instance per destination.
    Raises ConfigError naming the key (never the value) when a variable is unset or unusable,
    when bot mode has no ``slack_default_channel`` or a usable ``slack_api_url``."""
    timeout = settings.timeout("slack")
    token = None
    if settings.slack_bot_token_env:
        raw = read_secret(TOKEN_SETTING, settings.slack_bot_token_env, environ)
        assert raw is not None  # required=True raises instead
        if not settings.slack_default_channel:
            raise ConfigError(CHANNEL_SETTING, "required with slack_bot_token_env")
        if settings.slack_webhook_env:
            log.warning("slack_webhook_unused", setting=WEBHOOK_SETTING,
                        reason="a bot token is configured; messages go through the Web API")
        token = _clean_secret(TOKEN_SETTING, settings.slack_bot_token_env, raw)
    members = {name: _member(name, target, token, settings, environ, timeout)
               for name, target in channel_targets(settings, receivers, "slack").items()
               if isinstance(target, SlackTarget)}
    if not members:
        raise ConfigError(WEBHOOK_SETTING, "Slack needs slack_webhook_env or slack_bot_token_env")
    return by_destination("slack", members)


def _member(receiver: str, target: SlackTarget, token: str | None, settings: NotificationSettings,
            environ: Mapping[str, str], timeout: float) -> SlackApiChannel | SlackWebhookChannel:
    """The instance of one destination; ConfigError naming the key of what is unusable."""
    templates = compile_templates(f"receivers.{receiver}.slack", "slack", target)
    if target.channel:
        if token is None:
            raise ConfigError(setting_key(receiver, "slack", "channel"), "needs [notifications] slack_bot_token_env")
        try:
            return SlackApiChannel(token, target.channel, settings.slack_api_url, timeout, receiver, templates)
        except ValueError as exc:
            raise ConfigError(API_URL_SETTING, f"is not a usable http(s) URL: {exc}") from None
    key = setting_key(receiver, "slack", "webhook_env")
    raw = read_secret(key, target.webhook_env, environ)
    assert raw is not None
    url = _clean_secret(key, target.webhook_env, raw)
    try:
        return SlackWebhookChannel(url, timeout, receiver, templates)
    except ValueError:
        raise ConfigError(key, f"environment variable {target.webhook_env} must hold an http(s) webhook URL") from None
