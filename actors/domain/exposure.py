"""Safe by default: who can reach the server, and who can read the files holding secrets.

Pure checks that return what is wrong (or None); the caller decides whether that stops the
start (:func:`insecure_exposure`) or is a warning (:func:`readable_by_others`).
"""
from __future__ import annotations

import ipaddress
import os
import stat

from .config import Settings

#: Host names that always mean this machine only.
LOOPBACK_NAMES = frozenset({"localhost"})


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and the loopback addresses (127.0.0.0/8, ``::1``); false for
    every other name or address, wildcards (``0.0.0.0``, ``::``) included."""
    name = host.strip().lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name.removeprefix("[").removesuffix("]")).is_loopback
    except ValueError:
        return False


def insecure_exposure(settings: Settings) -> str | None:
    """Why serving the gRPC API on ``[server] host`` would let anyone who can reach it submit
    alerts and change incidents, or None when it would not.

    A loopback host is safe, and so is any host served with TLS (``[server] tls_cert_file``) or
    with ``[auth] enabled = true`` (every call needs a token). Any other host needs
    ``[server] allow_insecure = true``.
    """
    server = settings.server
    if is_loopback(server.host) or server.tls or settings.auth.enabled or server.allow_insecure:
        return None
    return (f"[server] host = {server.host!r} is not a loopback address, and neither TLS nor "
            f"authentication is configured: anyone who can reach it could submit alerts and change "
            f"incidents. Set [server] host = \"127.0.0.1\" to serve this machine only, set "
            f"[server] tls_cert_file and tls_key_file to serve TLS, set [auth] enabled = true to "
            f"require tokens, or set "
            f"[server] allow_insecure = true to expose it anyway (e.g. behind a firewall or a proxy "
            f"that does TLS and authentication)")


def readable_by_others(path: str | os.PathLike[str], key: str) -> str | None:
    """A warning naming ``path`` and the setting ``key`` when the existing file at ``path``
    may be read by its group or by others; None otherwise (also when it does not exist or
    cannot be examined: whatever opens it reports that)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    readers = [who for who, bit in (("its group", stat.S_IRGRP), ("others", stat.S_IROTH)) if mode & bit]
    if not readers:
        return None
    return (f"{path} ({key}) is readable by {' and '.join(readers)} (mode {stat.S_IMODE(mode):04o}); "
            f"it should be private to the user running the server: chmod 600 {path}")
