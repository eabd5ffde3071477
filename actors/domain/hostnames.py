"""The names an SMTP client may give in EHLO (RFC 5321 §2.3.5, §4.1.3).

EHLO carries the client's fully qualified domain name or, when it has none, an address
literal: ``[192.0.2.1]`` or ``[IPv6:2001:db8::1]``. Local names (``localhost``,
``*.localdomain``) say nothing about the client, and strict servers distrust them.
"""
from __future__ import annotations

import ipaddress
import re

_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)\Z")
_LOCAL_HOSTS = frozenset({"localhost", "localhost4", "localhost6", "ip6-localhost", "ip6-loopback"})
_LOCAL_DOMAINS = frozenset({"localhost", "localdomain"})
_MAX_NAME_CHARS = 253
_IPV6_TAG = "ipv6:"


def is_fully_qualified(name: str) -> bool:
    """True for a domain name of at least two valid labels that does not name the local host.

    False for ``localhost``, ``localhost.localdomain``, ``anything.localdomain``,
    ``*.localhost``, single labels, numeric top labels (``127.0.0.1``) and invalid syntax.
    """
    labels = name.split(".")
    if len(name) > _MAX_NAME_CHARS or len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        return False
    first, top = labels[0].lower(), labels[-1].lower()
    return first not in _LOCAL_HOSTS and top not in _LOCAL_DOMAINS and not top.isdigit()


def is_address_literal(text: str) -> bool:
    """True for ``[IPv4 address]`` or ``[IPv6:IPv6 address]``, as EHLO accepts them."""
    if not (text.startswith("[") and text.endswith("]")):
        return False
    inner, version = text[1:-1], 4
    if inner[:len(_IPV6_TAG)].lower() == _IPV6_TAG:
        inner, version = inner[len(_IPV6_TAG):], 6
    try:
        return ipaddress.ip_address(inner).version == version
    except ValueError:
        return False


def address_literal(address: str) -> str:
    """The address literal for an IP address (an IPv6 zone like ``%eth0`` is dropped).

    Raises ValueError when ``address`` is not an IP address.
    """
    ip = ipaddress.ip_address(address.partition("%")[0])
    return f"[{ip}]" if ip.version == 4 else f"[IPv6:{ip}]"


def is_helo_name(text: str) -> bool:
    """True when ``text`` may be announced in EHLO: a fully qualified name or an address literal."""
    return is_fully_qualified(text) or is_address_literal(text)
