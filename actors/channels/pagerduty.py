"""PagerDuty channel: Events API v2 over HTTPS, one POST per delivery.

PagerDuty only applies an acknowledge or resolve to an alert triggered through the *same*
integration key, and silently drops (with a 202) those about alerts it does not have. So
this channel remembers, per incident, that it triggered one: after a trigger is accepted it
returns state ``{"triggered": True, "dedup_key": …, "routing_key_hash": sha256(key)}``, and
it sends an acknowledge or resolve only when that state is present and names the current
key. Otherwise the delivery is *skipped* and nothing is sent. After a resolve the state
says ``triggered: False``: a later resolve (close) is skipped, while a reopened incident
(Resolved → Investigating) is triggered again, since PagerDuty drops an acknowledge there.

Outcomes: 2xx delivered; 400 failed for good, with PagerDuty's ``message``/``errors`` in the
detail; 429 retry after PagerDuty's suggested 30 s unless Retry-After says otherwise; other
statuses as :func:`actors.channels.http.classify_status` (5xx, 408, 425 retry; other 4xx
fail); network errors retry; an event that cannot fit 512 KB fails. A receiver's
``summary_template`` (actors/formatting/templates.py) replaces a trigger's summary, cut to
1024 characters; one that fails (or renders empty, or more than one line) fails the delivery,
naming the setting. The integration key
never appears in details or logs (only its SHA-256, in stored state). Each destination
(``default``, and each receiver's ``[receivers.<name>.pagerduty]``) has its own key, and so
its own triggers.
"""
from __future__ import annotations

import dataclasses
import hashlib
from typing import Any, Mapping

import structlog

from ..domain.config import NO_RECEIVERS, NotificationSettings, PagerDutyTarget, ReceiverSettings, read_secret
from ..domain.destinations import channel_targets, setting_key
from ..domain.errors import ConfigError
from ..domain.models import Delivery, Outcome
from ..formatting import pagerduty as fmt
from ..formatting.templates import TemplateFailure, Templates, compile_templates, rendered_fields
from .base import Channel, by_destination
from .http import classify_status
from .keepalive import KeepAlivePoster, Reply
from .redact import redact

KEY_SETTING = "notifications.pagerduty_integration_key_env"
URL_SETTING = "notifications.pagerduty_api_url"
#: PagerDuty's rate-limit guidance: retry a 429 after 30 s.
RATE_LIMIT_RETRY_SECS = 30.0
NEVER_TRIGGERED = "never triggered via this integration key"

log = structlog.get_logger(__name__)


def key_hash(routing_key: str) -> str:
    """The SHA-256 (hex) of an integration key: stored instead of the key itself."""
    return hashlib.sha256(routing_key.encode("utf-8")).hexdigest()


class PagerDutyChannel:
    """Sends Events API v2 events with one integration key to one endpoint."""

    name = "pagerduty"
    needs_state = True

    def __init__(self, routing_key: str, api_url: str, timeout_secs: float, destination: str = "default",
                 templates: Templates | None = None) -> None:
        """Raises ConfigError naming ``pagerduty_api_url`` when it is not a usable http(s) URL.
        ``templates``: the receiver's summary template (None: the built-in summary)."""
        self.destinations: tuple[str, ...] = (destination,)
        self._templates = templates
        self._key = routing_key
        self._key_hash = key_hash(routing_key)
        try:
            self._poster = KeepAlivePoster(api_url, timeout_secs)
        except ValueError as exc:
            raise ConfigError(URL_SETTING, f"is not a usable http(s) URL: {exc}") from None

    def deliver(self, delivery: Delivery) -> Outcome:
        """Send one event; skipped for an acknowledge/resolve this key never triggered.

        Never raises for expected failures: bad events, error statuses and network trouble
        all come back as outcomes with secret-free details.
        """
        try:
            action = fmt.TRIGGER if delivery.is_test else fmt.event_action(delivery.event_type)
        except ValueError as exc:
            return Outcome.failed(str(exc))
        stored_key = None
        if action == fmt.ACKNOWLEDGE and self._reopened(delivery):
            action = fmt.TRIGGER  # a reopened incident pages again (an ack would be dropped)
        if action != fmt.TRIGGER:
            stored_key, reason = self._open_alert(delivery.state)
            if stored_key is None:
                log.debug("pagerduty_skipped", incident_id=delivery.incident_id,
                          event_action=action, reason=reason)
                return Outcome.skipped(reason)
        try:
            summary = None if action != fmt.TRIGGER else rendered_fields(self._templates, delivery).get("summary")
        except TemplateFailure as failure:
            return Outcome.failed(str(failure))
        try:
            event = fmt.render(delivery, self._key, stored_key, action, summary)
        except ValueError as exc:
            return Outcome.failed(redact(str(exc), [self._key]))
        reply = self._poster.post(fmt.encode(event), {"Content-Type": "application/json"}, [self._key])
        outcome = reply if isinstance(reply, Outcome) else self._classify(reply, delivery, action, event["dedup_key"])
        log.debug("pagerduty_sent", incident_id=delivery.incident_id, event_action=action,
                  outcome=outcome.kind.value, status_code=outcome.status_code)
        return outcome

    def _reopened(self, delivery: Delivery) -> bool:
        """True when this key triggered and then resolved the incident, which is active again."""
        state = delivery.state
        return (state.get("routing_key_hash") == self._key_hash and state.get("triggered") is False
                and delivery.incident.state.is_active)

    def _open_alert(self, state: Mapping[str, Any]) -> tuple[str | None, str]:
        """(dedup_key of the alert this key triggered, "") or (None, why there is none)."""
        if state.get("routing_key_hash") != self._key_hash:
            return None, NEVER_TRIGGERED
        if state.get("triggered") is not True:
            return None, "PagerDuty alert already resolved via this integration key"
        stored = state.get("dedup_key")
        if not isinstance(stored, str) or not 0 < len(stored) <= fmt.MAX_DEDUP_KEY_CHARS:
            return None, "stored PagerDuty trigger has no usable dedup_key"
        return stored, ""

    def _classify(self, reply: Reply, delivery: Delivery, action: str, sent_key: str) -> Outcome:
        status = reply.status
        body = reply.json_object()
        if 200 <= status < 300:
            returned = body.get("dedup_key")
            key = returned if isinstance(returned, str) and 0 < len(returned) <= fmt.MAX_DEDUP_KEY_CHARS \
                else sent_key
            return Outcome.delivered(f"HTTP {status}: {action} accepted (dedup_key {key})", status,
                                     state=self._state_after(delivery, action, key))
        outcome = classify_status(status, _error_hint(body, reply.text), reply.retry_after, [self._key])
        if status == 429 and outcome.retry_after is None:
            return dataclasses.replace(outcome, retry_after=RATE_LIMIT_RETRY_SECS)
        return outcome

    def _state_after(self, delivery: Delivery, action: str, key: str) -> dict[str, Any] | None:
        """State to store after an accepted event; None leaves it as it was."""
        if delivery.is_test or action == fmt.ACKNOWLEDGE:
            return None
        return {"triggered": action == fmt.TRIGGER, "dedup_key": key, "routing_key_hash": self._key_hash}

    def open(self) -> None:
        """Nothing to prepare: connections are made on the first send."""

    def close(self) -> None:
        self._poster.close()


def _error_hint(body: Mapping[str, Any], text: str) -> str:
    """PagerDuty's ``message`` and ``errors`` joined, or the raw body when it is not JSON."""
    parts: list[str] = []
    if isinstance(body.get("message"), str):
        parts.append(body["message"])
    errors = body.get("errors")
    if isinstance(errors, list):
        parts.extend(str(e) for e in errors)
    return ": ".join(parts) if parts else text


def build(settings: NotificationSettings, environ: Mapping[str, str],
          receivers: Mapping[str, ReceiverSettings] = NO_RECEIVERS) -> Channel:
    """The channel for ``[notifications]`` (destination ``default``) and each receiver's
    ``[receivers.<name>.pagerduty]``, one integration key each, all to ``pagerduty_api_url``.
    ConfigError (naming the key, never the value) when a key's variable is unset or does not
    hold a 32-character key, or when ``pagerduty_api_url`` is not a usable http(s) URL."""
    if settings.pagerduty_api_token_env:
        log.warning("pagerduty_api_token_unused", setting="notifications.pagerduty_api_token_env",
                    reason="Events API v2 authenticates with the integration key; the API token is not read")
    targets = channel_targets(settings, receivers, "pagerduty")
    if not targets:
        read_secret(KEY_SETTING, settings.pagerduty_integration_key_env, environ)  # raises, naming the key
    return by_destination("pagerduty", {
        name: PagerDutyChannel(_integration_key(name, target, environ), settings.pagerduty_api_url,
                               settings.timeout("pagerduty"), name,
                               compile_templates(f"receivers.{name}.pagerduty", "pagerduty", target))
        for name, target in targets.items() if isinstance(target, PagerDutyTarget)})


def _integration_key(receiver: str, target: PagerDutyTarget, environ: Mapping[str, str]) -> str:
    setting = setting_key(receiver, "pagerduty", "integration_key_env")
    key = read_secret(setting, target.integration_key_env, environ)
    assert key is not None  # required=True raises instead of returning None
    if len(key) != fmt.INTEGRATION_KEY_CHARS:
        raise ConfigError(setting, f"environment variable {target.integration_key_env} must hold a "
                                   f"{fmt.INTEGRATION_KEY_CHARS}-character integration key (it holds "
                                   f"{len(key)} characters)")
    return key
