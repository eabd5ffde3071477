"""Keep secrets out of error text, logs and stored attempts."""
from __future__ import annotations

import re
from dataclasses import fields
from typing import Callable, Iterable, Mapping
from urllib.parse import urlsplit

from ..domain.config import NO_RECEIVERS, NotificationSettings, ReceiverSettings, WebhookTarget

_URL = re.compile(r"https?://[^\s'\"<>]+")
_TOKEN = re.compile(r"\b(xox[abprs]-[A-Za-z0-9-]+|whsec_[A-Za-z0-9+/=]+)")


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Replace every known secret, any URL's path and query, and token-shaped words.

    URLs are cut to scheme and host (``https://hooks.slack.com/…``) because webhook URLs are
    credentials. Secrets shorter than 4 characters are still replaced: better an odd-looking
    message than a leak.
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = _URL.sub(_shorten_url, text)
    return _TOKEN.sub("***", text)


def _shorten_url(match: re.Match[str]) -> str:
    url = match.group(0)
    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0].split("?", 1)[0].rsplit("@", 1)[-1]
    return f"{scheme}://{host}/…" if rest != host else url


def configured_secrets(settings: NotificationSettings, environ: Mapping[str, str],
                       receivers: Mapping[str, ReceiverSettings] = NO_RECEIVERS) -> tuple[str, ...]:
    """Every secret the configuration holds, longest first: the webhook URLs, the value of
    every ``*_env`` variable it names, the webhook headers' values (of ``[notifications]`` and
    of each receiver); of each URL also the pieces error texts show alone (path, query,
    credentials). Unset variables are skipped."""
    tables = [settings, *(target for receiver in receivers.values() for target in
                          (receiver.webhook, receiver.slack, receiver.email, receiver.pagerduty) if target)]
    values = [settings.default_webhook_url, *settings.webhook_headers.values()]
    for table in tables:
        values += [environ.get(getattr(table, f.name) or "") for f in fields(table) if f.name.endswith("_env")]
        if isinstance(table, WebhookTarget):
            values += [table.url, *table.headers.values()]
    return longest_first(piece for value in values if value for piece in (value, *url_secrets(value)))


def longest_first(secrets: Iterable[str | None]) -> tuple[str, ...]:
    """The non-empty secrets, each once, longest first: :func:`redact` then replaces a whole
    URL before its path."""
    return tuple(sorted({secret for secret in secrets if secret}, key=len, reverse=True))


def redactor(settings: NotificationSettings, environ: Mapping[str, str],
             receivers: Mapping[str, ReceiverSettings] = NO_RECEIVERS) -> Callable[[str], str]:
    """:func:`redact` bound to :func:`configured_secrets`, for text that is not a channel's
    (e.g. why an actor crashed)."""
    secrets = configured_secrets(settings, environ, receivers)
    return lambda text: redact(text, secrets)


def url_secrets(value: str) -> set[str]:
    """The secret pieces of an http(s) URL: the URL itself, its path, its query (alone and
    with the path) and its credentials — error texts may show any of them without the rest.
    Empty for any other text. Every channel and the configuration's redactor use this."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return set()
    if parts.scheme not in ("http", "https"):
        return set()
    pieces = {value, parts.path, parts.query, parts.username, parts.password}
    if parts.query:
        pieces.add(f"{parts.path}?{parts.query}")
    return {piece for piece in pieces if piece and piece != "/"}
