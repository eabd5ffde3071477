"""A real SMTP server on loopback (aiosmtpd) with TLS, AUTH and scripted failures.

Used by the email channel's tests so they exercise smtplib against a real server:

* TLS: :func:`make_certificates` writes a throw-away CA and a server certificate for
  ``127.0.0.1``/``localhost`` (made with ``cryptography``) into a directory; clients trust
  it only when given ``certificates.ca_file``. The server offers STARTTLS (the default),
  no STARTTLS (``Script(starttls=False)``), or implicit TLS (``SmtpServer(implicit_tls=True)``).
* AUTH LOGIN and PLAIN, after TLS, accepting only :data:`USERNAME` / :data:`PASSWORD`.
* :class:`Script`: replies to force per command (421 greeting, 450 for one RCPT, 451 after
  DATA, 454/535 on AUTH …), a stalled greeting, or a connection dropped mid-DATA. The
  script can be replaced between attempts (``server.script = Script()``).
* Records every accepted message (:class:`Received`), every command verb it saw
  (``server.commands``), the number of connections and the user names tried in AUTH, so
  tests can also assert what never happened.

Start with ``with SmtpServer(certificates) as server:``; ``server.port`` is a free port
picked by the OS. ``wait_for(n)`` blocks until n messages were accepted.
"""
from __future__ import annotations

import asyncio
import datetime
import functools
import ipaddress
import ssl
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Callable, Mapping

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

HOST = "127.0.0.1"
USERNAME = "alerts-bot"
PASSWORD = "Sw0rdfish-Zebra-81!"


@dataclass(frozen=True)
class Certificates:
    ca_file: str
    cert_file: str
    key_file: str


def make_certificates(directory: Path) -> Certificates:
    """A CA certificate and a server certificate (for 127.0.0.1 and localhost) it signed."""
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test SMTP CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                         critical=True)
          .add_extension(ca_ski, critical=False)
          .sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = Certificates(str(directory / "ca.pem"), str(directory / "server.pem"),
                         str(directory / "server.key"))
    Path(paths.ca_file).write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    Path(paths.cert_file).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    Path(paths.key_file).write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return paths


@dataclass
class Script:
    """How the server answers. Replies are whole SMTP reply lines, e.g. ``"450 4.2.1 Busy"``."""

    #: Sent instead of the 220 greeting, after which the server hangs up.
    greeting: str | None = None
    #: Seconds to wait before greeting (to make clients time out).
    greeting_delay_secs: float = 0.0
    #: Offer STARTTLS in the EHLO reply (when the server is not already implicit TLS).
    starttls: bool = True
    #: Answer every AUTH with this instead of checking the credentials.
    auth: str | None = None
    #: Answer MAIL FROM with this.
    mail: str | None = None
    #: Answer RCPT TO for these addresses with the given reply.
    rcpt: Mapping[str, str] = field(default_factory=dict)
    #: Answer RCPT TO for every other address with this.
    rcpt_all: str | None = None
    #: Answer the end of DATA with this instead of accepting the message.
    data: str | None = None
    #: Hang up after receiving the first line of message content.
    drop_in_data: bool = False


@dataclass(frozen=True)
class Received:
    """One accepted message, as it arrived."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    #: The content exactly as transmitted (after dot-unstuffing), CRLF line ends.
    data: bytes
    #: True when the session was encrypted (STARTTLS or implicit TLS).
    secure: bool
    #: The user name the client logged in with, if it did.
    login: str | None

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


class _Session(Session):
    """aiosmtpd's session without the deprecation warning its own AUTH code triggers."""

    @property
    def login_data(self) -> Any:
        return self._login_data

    @login_data.setter
    def login_data(self, value: Any) -> None:
        self._login_data = value


class _ScriptedSMTP(SMTP):
    """aiosmtpd's SMTP session with the greeting and DATA behaviours of a :class:`Script`."""

    def __init__(self, server: "SmtpServer", handler: Any, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._server = server
        for verb, method in list(self._smtp_methods.items()):
            self._smtp_methods[verb] = self._recorded(verb, method)

    def _recorded(self, verb: str, method: Callable[[str], Any]) -> Callable[[str], Any]:
        @functools.wraps(method)
        async def record(arg: str) -> None:
            self._server.commands.append(verb)
            await method(arg)
        return record

    def _create_session(self) -> Session:
        return _Session(self.loop)

    async def _handle_client(self) -> None:
        script = self._server.script
        if script.greeting_delay_secs:
            try:
                await asyncio.sleep(script.greeting_delay_secs)
            except asyncio.CancelledError:  # the client gave up, or the server stops
                self._writer.close()
                raise
        if script.greeting is None:
            await super()._handle_client()
            return
        await self.push(script.greeting)
        assert self.transport is not None
        self.transport.close()

    async def smtp_DATA(self, arg: str) -> None:
        if not (self._server.script.drop_in_data and self.envelope and self.envelope.rcpt_tos):
            await super().smtp_DATA(arg)
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        await self._reader.readuntil(b"\r\n")
        assert self._handler_coroutine is not None and self.transport is not None
        self._handler_coroutine.cancel()
        self.transport.abort()


class _Handler:
    """aiosmtpd hooks: scripted MAIL/RCPT/DATA replies and message recording."""

    def __init__(self, server: "SmtpServer") -> None:
        self._server = server

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,  # noqa: N802
                          address: str, mail_options: list[str]) -> str:
        if self._server.script.mail:
            return self._server.script.mail
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,  # noqa: N802
                          address: str, rcpt_options: list[str]) -> str:
        script = self._server.script
        reply = script.rcpt.get(address) or script.rcpt_all
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        if self._server.script.data:
            return self._server.script.data
        assert isinstance(envelope.original_content, bytes) and envelope.mail_from is not None
        auth = session.auth_data
        login = auth.login.decode() if isinstance(auth, LoginPassword) else None
        secure = server.transport is not None and server.transport.get_extra_info("ssl_object") is not None
        self._server.record(Received(envelope.mail_from, tuple(envelope.rcpt_tos),
                                     envelope.original_content, secure, login))
        return "250 OK: queued"


class _Controller(Controller):
    """aiosmtpd's threaded controller on a port the OS picks, building scripted sessions."""

    def __init__(self, server: "SmtpServer", **kwargs: Any) -> None:
        super().__init__(_Handler(server), hostname=HOST, port=0, **kwargs)
        self._owner = server

    def factory(self) -> SMTP:
        self._owner.connections += 1
        kwargs = dict(self.SMTP_kwargs)
        if not self._owner.script.starttls:
            kwargs.pop("tls_context", None)
        return _ScriptedSMTP(self._owner, self.handler, **kwargs)

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class SmtpServer:
    """A loopback SMTP server; see the module docstring."""

    def __init__(self, certificates: Certificates, script: Script | None = None,
                 implicit_tls: bool = False) -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(certificates.cert_file, certificates.key_file)
        self._first_script = script or Script()
        self.script = Script()  # well-behaved while the controller checks it is up
        self.messages: list[Received] = []
        self.commands: list[str] = []
        self.connections = 0
        self.auth_attempts: list[str] = []
        self._arrived = threading.Condition()
        smtp_kwargs: dict[str, Any] = {
            "server_hostname": "localhost",
            "authenticator": self._authenticate,
            # aiosmtpd only sees TLS started by STARTTLS; implicit TLS is just as safe.
            "auth_require_tls": not implicit_tls,
        }
        if implicit_tls:
            smtp_kwargs["ssl_context"] = context
        else:
            smtp_kwargs["tls_context"] = context
        self._controller = _Controller(self, **smtp_kwargs)

    @property
    def host(self) -> str:
        return HOST

    @property
    def port(self) -> int:
        return self._controller.port

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope,
                      mechanism: str, auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        self.auth_attempts.append(auth_data.login.decode())
        if self.script.auth:
            return AuthResult(success=False, handled=False, message=self.script.auth)
        ok = auth_data.login == USERNAME.encode() and auth_data.password == PASSWORD.encode()
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    def record(self, received: Received) -> None:
        with self._arrived:
            self.messages.append(received)
            self._arrived.notify_all()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        """The first ``count`` messages; raises AssertionError if they do not arrive in time."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.messages) >= count, timeout):
                raise AssertionError(f"expected {count} messages, got {len(self.messages)} in {timeout}s")
            return list(self.messages[:count])

    def __enter__(self) -> "SmtpServer":
        self._controller.start()
        self.commands.clear()
        self.connections = 0
        self.script = self._first_script
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()
