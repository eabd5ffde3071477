"""TLS on the gRPC port: checking the certificate files, and credentials that re-read them.

:func:`check_tls_files` is what ``--check-config`` and the start run: it raises ConfigError
naming the ``[server]`` key of a file that is unreadable, not PEM, a key that does not match
its certificate, or a certificate that has expired, and returns warnings for a certificate
that expires within :data:`EXPIRY_WARNING_DAYS` and for a key file others may read.
:class:`ReloadableCredentials` serves the files and reads them again (checked the same way)
at the next handshake after :meth:`ReloadableCredentials.reload` was called; open
connections keep their session.
"""
from __future__ import annotations

import datetime
import threading
from dataclasses import dataclass
from pathlib import Path

from typing import TYPE_CHECKING

import grpc
import structlog

if TYPE_CHECKING:  # imported where the files are checked: only a server with TLS pays its ~9 MiB
    from cryptography import x509

from ..domain.config import ServerSettings
from ..domain.errors import ConfigError
from ..domain.exposure import readable_by_others

EXPIRY_WARNING_DAYS = 14
log = structlog.get_logger("tls")


@dataclass(frozen=True)
class TlsFiles:
    """The bytes of the PEM files named by ``[server] tls_*`` (``client_ca`` None without mTLS)."""

    cert_chain: bytes
    private_key: bytes
    client_ca: bytes | None


def _read(key: str, path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise ConfigError(key, f"cannot read {path}: {error.strerror}") from None


def _certificates(key: str, path: str, pem: bytes) -> list[x509.Certificate]:
    from cryptography import x509
    try:
        return x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise ConfigError(key, f"{path} holds no PEM certificate") from None


def _public_key_bytes(public_key: object) -> bytes:
    from cryptography.hazmat.primitives import serialization
    return public_key.public_bytes(serialization.Encoding.DER,  # type: ignore[attr-defined]
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def load_tls_files(settings: ServerSettings, now: datetime.datetime | None = None) -> tuple[TlsFiles, list[str]]:
    """Read and check the files of ``settings`` (which must have TLS configured). Returns them
    with warnings (a certificate expiring soon); raises ConfigError naming the key of the
    first file that is unusable. The private key never appears in a message."""
    from cryptography.hazmat.primitives import serialization
    assert settings.tls_cert_file and settings.tls_key_file
    now = now or datetime.datetime.now(datetime.timezone.utc)
    cert_key, key_key = "server.tls_cert_file", "server.tls_key_file"
    chain = _read(cert_key, settings.tls_cert_file)
    leaf = _certificates(cert_key, settings.tls_cert_file, chain)[0]
    private_key = _read(key_key, settings.tls_key_file)
    try:
        key = serialization.load_pem_private_key(private_key, password=None)
    except (ValueError, TypeError):
        raise ConfigError(key_key, f"{settings.tls_key_file} holds no unencrypted PEM private key") from None
    if _public_key_bytes(key.public_key()) != _public_key_bytes(leaf.public_key()):
        raise ConfigError(key_key, f"{settings.tls_key_file} is not the private key of the certificate "
                                   f"in {settings.tls_cert_file}")
    expires = leaf.not_valid_after_utc
    if expires <= now:
        raise ConfigError(cert_key, f"the certificate in {settings.tls_cert_file} expired on {expires:%Y-%m-%d %H:%M} UTC")
    warnings = []
    if expires - now <= datetime.timedelta(days=EXPIRY_WARNING_DAYS):
        warnings.append(f"the certificate in {settings.tls_cert_file} ([server] tls_cert_file) expires on "
                        f"{expires:%Y-%m-%d %H:%M} UTC, in less than {EXPIRY_WARNING_DAYS} days")
    client_ca = None
    if settings.tls_client_ca_file:
        client_ca = _read("server.tls_client_ca_file", settings.tls_client_ca_file)
        _certificates("server.tls_client_ca_file", settings.tls_client_ca_file, client_ca)
    return TlsFiles(chain, private_key, client_ca), warnings


def check_tls_files(settings: ServerSettings) -> list[str]:
    """Warnings about the TLS files (none without TLS): a certificate expiring soon, a key file
    others may read. Raises ConfigError as :func:`load_tls_files`."""
    if not settings.tls:
        return []
    warnings = load_tls_files(settings)[1]
    readable = readable_by_others(settings.tls_key_file, "[server] tls_key_file")  # type: ignore[arg-type]
    return warnings + [readable] if readable else warnings


def _certificate_configuration(files: TlsFiles) -> grpc.ServerCertificateConfiguration:
    return grpc.ssl_server_certificate_configuration([(files.private_key, files.cert_chain)],
                                                     root_certificates=files.client_ca)


class ReloadableCredentials:
    """gRPC server credentials for ``settings``' TLS files that re-reads them at the first
    handshake after :meth:`reload`. Raises ConfigError at construction when they are unusable;
    files that are unusable at a reload are logged (naming the key) and the previous ones kept."""

    def __init__(self, settings: ServerSettings) -> None:
        self._settings = settings
        self._reload_requested = threading.Event()
        files, _ = load_tls_files(settings)
        self.credentials = grpc.dynamic_ssl_server_credentials(
            _certificate_configuration(files), self._fetch,
            require_client_authentication=settings.tls_client_ca_file is not None)

    def reload(self) -> None:
        """Read the files again before the next handshake (safe to call from a signal handler)."""
        self._reload_requested.set()

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """Called by gRPC before each handshake: a new configuration, or None to keep the current one."""
        if not self._reload_requested.is_set():
            return None
        self._reload_requested.clear()
        try:
            files, warnings = load_tls_files(self._settings)
        except ConfigError as error:
            log.error("tls_reload_failed", key=error.key, error=str(error))
            return None
        for warning in warnings:
            log.warning("tls_certificate_expiring", warning=warning)
        log.info("tls_reloaded", cert_file=self._settings.tls_cert_file)
        return _certificate_configuration(files)
