"""API tokens: who may call the gRPC API, each known by name and role, stored as a SHA-256 digest.

The tokens file (``[auth] tokens_file``) holds one token a line, ``name role sha256hex``,
where ``sha256hex`` is the SHA-256 of the token in hexadecimal (``sha256sum`` prints it);
blank lines and lines starting with ``#`` are ignored. The token itself is never stored,
compared in constant time, and never part of a message.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

#: The roles, from the narrowest; what each may call is in actors/api/auth.py.
ROLES = ("ingest", "viewer", "responder", "admin")
KEY = "auth.tokens_file"
_NAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")
_DIGEST = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class Principal:
    """Who a token belongs to."""

    name: str
    role: str


@dataclass(frozen=True)
class _Entry:
    principal: Principal
    digest: bytes


class Tokens:
    """The known tokens; :meth:`identify` finds whose a presented token is."""

    def __init__(self, entries: list[_Entry]) -> None:
        self._entries = tuple(entries)

    def __len__(self) -> int:
        return len(self._entries)

    def identify(self, token: str) -> Principal | None:
        """The token's owner, or None for an unknown (or empty) token. Every digest is compared,
        each in constant time, so the answer takes as long for every token."""
        if not token:
            return None
        digest = hashlib.sha256(token.encode("utf-8")).digest()
        found = None
        for entry in self._entries:
            if hmac.compare_digest(entry.digest, digest):
                found = entry.principal
        return found


def parse_tokens(text: str, source: str) -> Tokens:
    """The tokens in ``text`` (the contents of the file ``source``). Raises ConfigError naming
    ``auth.tokens_file``, the file and the line for a malformed line, an unknown role, or a
    name or digest used twice; the line's content is never repeated (it may hold a token)."""
    entries: list[_Entry] = []
    names: set[str] = set()
    digests: set[bytes] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        where = f"{source} line {number}"
        if len(fields) != 3:
            raise ConfigError(KEY, f"{where}: expected 'name role sha256hex', got {len(fields)} fields")
        name, role, digest_hex = fields
        if not _NAME.fullmatch(name):
            raise ConfigError(KEY, f"{where}: a name is 1-64 letters, digits or . _ @ -")
        if role not in ROLES:
            raise ConfigError(KEY, f"{where}: unknown role; known: {', '.join(ROLES)}")
        if not _DIGEST.fullmatch(digest_hex):
            raise ConfigError(KEY, f"{where}: the third field must be the token's SHA-256 as 64 hex "
                                   f"digits (sha256sum), not the token itself")
        digest = bytes.fromhex(digest_hex)
        if name in names:
            raise ConfigError(KEY, f"{where}: the name {name} is used twice")
        if digest in digests:
            raise ConfigError(KEY, f"{where}: the same token digest is listed twice")
        names.add(name)
        digests.add(digest)
        entries.append(_Entry(Principal(name, role), digest))
    if not entries:
        raise ConfigError(KEY, f"{source} lists no tokens: nobody could call the API")
    return Tokens(entries)


def load_tokens(path: str | os.PathLike[str]) -> Tokens:
    """The tokens in the file at ``path``; raises ConfigError naming ``auth.tokens_file`` when
    it cannot be read or is not a valid tokens file (see :func:`parse_tokens`)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(KEY, f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(KEY, f"{path} is not UTF-8 text") from None
    return parse_tokens(text, str(path))
