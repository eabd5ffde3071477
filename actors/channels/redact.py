"""Keep secrets out of error text, logs and stored attempts."""
from __future__ import annotations

import re
from typing import Iterable

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
