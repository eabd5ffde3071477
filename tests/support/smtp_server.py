"""A real SMTP server on loopback (aiosmtpd) with TLS, AUTH and scripted failures.

Used by the email channel's tests so they exercise smtplib against a real server:

* TLS: :func:`make_certificates` writes a throw-away CA and a server certificate for
  ``127.0.0.1``/``localhost`` (made with ``cryptography``) into a directory; clients trust
  it only when given ``certificates.ca_file``. The server offers STARTTLS (the default),
  no STARTTLS (``Script(starttls=False)``), or implicit TLS (``SmtpServer(implicit_tls=True)``).
* AUTH LOGIN and PLAIN, after TLS, accepting only :data:`USERNAME` / :data:`PASSWORD`.
* :class:`Script`: replies to force per command (421 greeting, 450 for one RCPT, 451 after
  DATA, 454/535 on AUTH …), a stalled greeting, or a connection dropped mid-DATA. Each
  connection follows the script current when it opened: ``server.script = Script()``
  replaces it for every later connection, ``server.play(first, second, …)`` gives the
  first connection ``first``, the next ``second`` and so on, the last one staying in force
  (for retries made by the engine, with no test code between attempts).
* Records every accepted message (:class:`Received`), every command verb it saw
  (``server.commands``, QUIT included), the name each EHLO/HELO gave (``server.helo_names``),
  the number of connections and the user names tried in AUTH, so tests can also assert
  what never happened.
* :class:`TlsGoodbyeServer`: a one-connection implicit-TLS peer (stdlib ``ssl``) that
  refuses service with a 554 greeting and records whether the client then said QUIT and
  closed TLS with a close_notify, which aiosmtpd cannot observe.

Start with ``with SmtpServer(certificates) as server:``; ``server.port`` is a free port
picked by the OS. ``wait_for(n)`` blocks until n messages were accepted.
"""
from __future__ import annotations

import asyncio
import functools
import socket
import ssl
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Callable, Mapping

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.support.certs import Authority

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
    authority = Authority("Test SMTP CA")
    server = authority.issue(directory, "server")
    return Certificates(str(authority.write(directory / "ca.pem")), str(server.cert_file), str(server.key_file))


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
    """aiosmtpd's SMTP session following one :class:`Script` (chosen when it connected)."""

    def __init__(self, server: "SmtpServer", script: Script, handler: Any, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._server = server
        self.script = script
        for verb, method in list(self._smtp_methods.items()):
            self._smtp_methods[verb] = self._recorded(verb, method)

    def _recorded(self, verb: str, method: Callable[[str], Any]) -> Callable[[str], Any]:
        @functools.wraps(method)
        async def record(arg: str) -> None:
            self._server.commands.append(verb)
            if verb in ("EHLO", "HELO"):
                self._server.helo_names.append(arg)
            await method(arg)
        return record

    def _create_session(self) -> Session:
        return _Session(self.loop)

    async def _handle_client(self) -> None:
        script = self.script
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
        if not (self.script.drop_in_data and self.envelope and self.envelope.rcpt_tos):
            await super().smtp_DATA(arg)
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        await self._reader.readuntil(b"\r\n")
        assert self._handler_coroutine is not None and self.transport is not None
        self._handler_coroutine.cancel()
        self.transport.abort()


def _script_of(session: SMTP) -> Script:
    assert isinstance(session, _ScriptedSMTP)
    return session.script


class _Handler:
    """aiosmtpd hooks: scripted MAIL/RCPT/DATA replies and message recording."""

    def __init__(self, server: "SmtpServer") -> None:
        self._server = server

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,  # noqa: N802
                          address: str, mail_options: list[str]) -> str:
        script = _script_of(server)
        if script.mail:
            return script.mail
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,  # noqa: N802
                          address: str, rcpt_options: list[str]) -> str:
        script = _script_of(server)
        reply = script.rcpt.get(address) or script.rcpt_all
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        script = _script_of(server)
        if script.data:
            return script.data
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
        script = self._owner.next_script()
        kwargs = dict(self.SMTP_kwargs)
        if not script.starttls:
            kwargs.pop("tls_context", None)
        return _ScriptedSMTP(self._owner, script, self.handler, **kwargs)

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
        self._scripts = [Script()]  # well-behaved while the controller checks it is up
        self.messages: list[Received] = []
        self.commands: list[str] = []
        self.helo_names: list[str] = []
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

    @property
    def script(self) -> Script:
        """The script the next connection follows."""
        return self._scripts[0]

    @script.setter
    def script(self, script: Script) -> None:
        self._scripts = [script]

    def play(self, *scripts: Script) -> None:
        """Connections from now on follow ``scripts`` in order; the last one then stays."""
        assert scripts
        self._scripts = list(scripts)

    def next_script(self) -> Script:
        """The script of a connection being opened (counted in ``connections``)."""
        self.connections += 1
        return self._scripts.pop(0) if len(self._scripts) > 1 else self._scripts[0]

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope,
                      mechanism: str, auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        self.auth_attempts.append(auth_data.login.decode())
        script = _script_of(server)
        if script.auth:
            return AuthResult(success=False, handled=False, message=script.auth)
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
        self.helo_names.clear()
        self.connections = 0
        self.script = self._first_script
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()


class TlsGoodbyeServer:
    """One implicit-TLS connection, refused with a 554 greeting; see the module docstring.

    RFC 5321 §3.1: after a 554 greeting the server waits for QUIT. This peer answers it with
    221, then closes TLS itself and waits for the client's close_notify. ``said_quit`` and
    ``closed_tls`` say what the client did; ``error`` says what went wrong otherwise.
    """

    def __init__(self, certificates: Certificates) -> None:
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(certificates.cert_file, certificates.key_file)
        self._listener = socket.create_server((HOST, 0))
        self._listener.settimeout(5.0)  # no client at all ends the thread too
        self.host, self.port = HOST, int(self._listener.getsockname()[1])
        self.said_quit = False
        self.closed_tls = False
        self.error: str | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="tls-goodbye", daemon=True)

    def _serve(self) -> None:
        try:
            connection, _ = self._listener.accept()
            connection.settimeout(5.0)
            with self._context.wrap_socket(connection, server_side=True) as tls:
                tls.sendall(b"554 5.3.2 No service for you\r\n")
                line = b""
                while not line.endswith(b"\r\n"):
                    chunk = tls.recv(1024)
                    if not chunk:
                        raise ConnectionError(f"the client hung up after sending {line!r}")
                    line += chunk
                self.said_quit = line.strip().upper() == b"QUIT"
                tls.sendall(b"221 2.0.0 Bye\r\n")
                tls.unwrap()  # raises unless the client's close_notify arrives
                self.closed_tls = True
        except OSError as exc:
            self.error = repr(exc)
        finally:
            self._done.set()

    def wait(self, timeout: float = 5.0) -> None:
        """Block until the connection is over; AssertionError if it is not within ``timeout``."""
        if not self._done.wait(timeout):
            raise AssertionError(f"the client's connection did not end within {timeout}s")

    def __enter__(self) -> "TlsGoodbyeServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._listener.close()
        self._thread.join(timeout=5.0)
