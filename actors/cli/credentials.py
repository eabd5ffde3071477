"""How ``imctl`` reaches the server: plaintext or TLS (optionally mutual), and the API token sent
on every call as ``authorization: Bearer <token>`` metadata."""
from __future__ import annotations

import ipaddress
import random
import socket
from dataclasses import dataclass
from typing import Any, Callable

import grpc


@dataclass(frozen=True)
class TlsFiles:
    """The PEM contents given by ``--cacert`` (None: the system's trusted CAs) and, for mutual
    TLS, ``--cert``/``--key`` (both or neither)."""
    ca: bytes | None
    cert: bytes | None = None
    key: bytes | None = None


def open_channel(server: str, tls: TlsFiles | None) -> grpc.Channel:
    """A plaintext channel to ``server`` (one HOST:PORT, or several: :func:`spread`) when
    ``tls`` is None, else a TLS one. Nothing connects
    yet: a server that is absent, speaks the other protocol or whose certificate is not trusted
    makes the first call fail with UNAVAILABLE."""
    target, options = spread(server)
    if tls is None:
        return grpc.insecure_channel(target, options)
    return grpc.secure_channel(target, grpc.ssl_channel_credentials(tls.ca, tls.key, tls.cert), options)


def spread(server: str) -> tuple[str, list[tuple[str, Any]]]:
    """The gRPC target and channel options for ``server``: one HOST:PORT as it is; several,
    comma-separated (replicas), as the static list of their addresses, in random order, with
    the calls spread over them round robin (one that is down is skipped), and TLS checking
    the first host's name. Raises OSError naming a host that cannot be resolved."""
    addresses = server.split(",")
    if len(addresses) == 1:
        return server, []
    found: dict[int, list[str]] = {socket.AF_INET: [], socket.AF_INET6: []}
    for address in addresses:
        host, _, port = address.rpartition(":")
        try:
            infos = socket.getaddrinfo(host.strip("[]"), int(port), type=socket.SOCK_STREAM)
        except socket.gaierror as error:
            raise OSError(f"cannot resolve {host}: {error.strerror}") from None
        for family, _, _, _, sockaddr in infos:
            if family in found:
                ip = f"[{sockaddr[0]}]" if family == socket.AF_INET6 else sockaddr[0]
                found[family].append(f"{ip}:{port}")
    # gRPC's static lists hold one family: IPv4 where any host has it.
    scheme, ips = ("ipv4", found[socket.AF_INET]) if found[socket.AF_INET] else ("ipv6", found[socket.AF_INET6])
    options: list[tuple[str, Any]] = [("grpc.lb_policy_name", "round_robin")]
    name = addresses[0].rpartition(":")[0].strip("[]")
    if not _is_ip(name):
        options += [("grpc.ssl_target_name_override", name), ("grpc.default_authority", name)]
    # Each imctl run makes a call or two: starting at a random address spreads runs too.
    return f"{scheme}:{','.join(random.sample(list(dict.fromkeys(ips)), len(set(ips))))}", options


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class _Bearer(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
              grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    def __init__(self, token: str) -> None:
        self._entry = ("authorization", f"Bearer {token}")

    def _with_token(self, details: Any) -> Any:
        return details._replace(metadata=(*(details.metadata or ()), self._entry))

    def _call(self, continuation: Callable[[Any, Any], Any], details: Any, request: Any) -> Any:
        return continuation(self._with_token(details), request)

    intercept_unary_unary = intercept_unary_stream = _call
    intercept_stream_unary = intercept_stream_stream = _call


def with_token(channel: grpc.Channel, token: str) -> grpc.Channel:
    """``channel`` sending ``token`` with every call; ``channel`` itself when ``token`` is ""."""
    return grpc.intercept_channel(channel, _Bearer(token)) if token else channel
