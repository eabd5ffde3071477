"""Email channel: SMTP (smtplib) with TLS that is required, never optional.

One connection per delivery: connect, TLS, EHLO, AUTH (only when a user name is
configured), send, QUIT. The session ends with QUIT on every path on which the server still
listens, failures included, and a TLS session then ends with a close_notify (RFC 5321
§4.1.1.10; servers log a connection just dropped). EHLO gives ``smtp_helo_name``, else this
host's fully qualified name, else the address literal of the local end (``[192.0.2.7]``),
never ``localhost``. The TLS mode is explicit (``settings.tls_mode``):

* ``starttls``: plain connect, EHLO, STARTTLS, EHLO. A server that does not offer STARTTLS
  gets nothing: the delivery fails for good, there is no plaintext fallback (RFC 8314).
* ``implicit``: TLS from the first byte (``SMTP_SSL``, usually port 465).
* ``none``: plaintext, only when configured so, and never with credentials.

Certificates are always verified (``ssl.create_default_context``, trusting ``smtp_ca_file``
when set). The timeout (``settings.timeout("email")``) applies to each network operation.

Outcomes:

* 4yz replies, a dropped connection, timeouts and refused connections → retry; 5yz → failed.
  AUTH is classified by its code too: 454 → retry, 535 → failed.
* TLS certificate or handshake errors, a missing STARTTLS or AUTH extension → failed.
* A receiver's template (``subject``, ``text``, ``html``; actors/formatting/templates.py)
  that fails, or a subject that renders empty or with a line break → failed, naming the
  setting, before any connection is made.
* A header value with CR, LF or NUL (e.g. an injected ``Bcc:`` in a title) → failed before
  any connection is made.
* Recipients refused with 4yz are retried *alone*: the outcome is a retry whose state
  carries ``pending_notification_id``, ``pending_recipients`` and ``accepted_recipients``
  (who has the message so far, over all attempts); the next attempt of that same
  notification resends the same message (same Message-ID) to the pending addresses only.
  Recipients refused with 5yz are dropped.
* Delivered means that at least one recipient's server accepted the message, on this
  attempt or an earlier one. Once nobody is left to retry (the rest refused with 5yz, or a
  permanent error ended the retry), the outcome is *delivered* if anyone accepted it, with
  a detail naming who was refused, and *failed* otherwise.
* A 421 on RCPT closes the connection before DATA, so nobody got the message: retry all.

State, stored per incident: ``root_message_id`` and ``root_notification_id`` once the
incident's first mail reached someone (follow-ups reply to it; a mail nobody accepted never
becomes the root), plus the pending keys above while recipients are owed a retry. Test
notifications never read or write state.

The password never appears in details or logs: server text is redacted with it (and its
base64 forms, as sent in AUTH) before use.
"""
from __future__ import annotations

import base64
import smtplib
import socket
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Mapping, Sequence

import structlog

from ..domain.config import NO_RECEIVERS, EmailTarget, NotificationSettings, ReceiverSettings, Secret, read_secret
from ..domain.destinations import channel_targets, setting_key
from ..domain.errors import ConfigError
from ..domain.hostnames import address_literal, is_fully_qualified
from ..domain.models import Delivery, Outcome, OutcomeKind
from ..formatting import email as fmt
from ..formatting.templates import TemplateFailure, Templates, compile_templates, rendered_fields
from .base import Channel, by_destination
from .redact import redact

PENDING_NOTIFICATION_ID = "pending_notification_id"
PENDING_RECIPIENTS = "pending_recipients"
ACCEPTED_RECIPIENTS = "accepted_recipients"
#: "Service not available, closing transmission channel": may answer any command.
SERVICE_CLOSING = 421
MAX_REPLY_CHARS = 200
#: The EHLO name until the connection's local address is known; not None, with which smtplib
#: would look this host's name up itself.
_EHLO_NAME_SET_ON_CONNECT = ""

Refusals = Mapping[str, tuple[int, bytes | str]]

log = structlog.get_logger(__name__)


class EmailChannel:
    """Sends each delivery as one mail to the configured recipients over SMTP."""

    name = "email"
    needs_state = True

    def __init__(self, *, host: str, port: int, tls_mode: str, context: ssl.SSLContext | None,
                 username: str | None, password: str | None, sender: str, sender_name: str | None,
                 recipients: tuple[str, ...], timeout_secs: float, helo_name: str | None,
                 destination: str = "default", templates: Templates | None = None) -> None:
        self._host = host
        self._port = port
        self._tls_mode = tls_mode
        self._context = context
        self._username = username
        self._password = password
        self._sender = sender
        self._sender_name = sender_name
        self._recipients = recipients
        self._timeout = timeout_secs
        self._helo_name = helo_name
        self._templates = templates
        self._secrets = _secret_forms(username, password)
        self.destinations: tuple[str, ...] = (destination,) if recipients else ()

    def deliver(self, delivery: Delivery) -> Outcome:
        """Send one mail; every expected failure comes back as an outcome (see the module doc)."""
        outcome = self._attempt(delivery)
        log.debug("email.attempt", incident_id=delivery.incident_id,
                  notification_id=delivery.notification_id, outcome=outcome.kind.value,
                  detail=outcome.detail)
        return outcome

    def open(self) -> None:
        """Nothing to prepare: connections are made on the first send."""

    def close(self) -> None:
        """Nothing to release: each delivery opens and closes its own connection."""

    def _attempt(self, delivery: Delivery) -> Outcome:
        if not self._recipients:
            return Outcome.failed("no recipients configured (notifications.email_to)")
        try:
            templated = rendered_fields(self._templates, delivery)
        except TemplateFailure as failure:
            return Outcome.failed(f"message not sent: {failure}")
        try:
            message = fmt.render(delivery, self._sender, self._sender_name, self._recipients, templated)
        except ValueError as exc:
            return Outcome.failed(f"message not sent: {redact(str(exc), self._secrets)}")
        thread = fmt.thread_for(delivery, fmt.domain_of(self._sender))
        envelope = self._envelope_recipients(delivery)
        if not envelope:
            earlier = _earlier(delivery)
            accepted = earlier.accepted if earlier else ()
            return _finish(delivery, thread, accepted, None,
                           "the recipients still owed this message are no longer configured"
                           f"{_who_has_it(accepted)}")
        try:
            refused: Refusals = self._send(message, envelope)
        except smtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients
            if any(code == SERVICE_CLOSING for code, _ in refused.values()):
                return Outcome.retry(f"server closing the connection: {self._refusals(refused)}",
                                     SERVICE_CLOSING)
        except (smtplib.SMTPException, OSError) as exc:
            return self._after_error(delivery, thread, classify_error(exc, self._secrets))
        return self._settle(delivery, thread, envelope, refused)

    # --- transport --------------------------------------------------------------------------

    def _envelope_recipients(self, delivery: Delivery) -> list[str]:
        """Everyone, or only the recipients an earlier attempt of this notification still owes."""
        earlier = _earlier(delivery)
        if earlier is None:
            return list(self._recipients)
        return [address for address in earlier.owed if address in self._recipients]

    def _send(self, message: EmailMessage, recipients: Sequence[str]) -> Refusals:
        """One session: connect, secure, log in, send, and end it (:func:`_end_session`)
        whatever happened. Returns the recipients refused while others got the message.

        Raises smtplib/ssl/socket errors (all OSError) for the caller to classify.
        """
        smtp = self._client()
        try:
            self._open(smtp)
            return smtp.send_message(message, from_addr=self._sender, to_addrs=list(recipients))
        finally:
            _end_session(smtp)

    def _client(self) -> smtplib.SMTP:
        """A client for one session, not connected yet (so that a refusing greeting can
        still be answered with QUIT, which smtplib's connecting constructor makes impossible)."""
        if self._tls_mode == "implicit":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(local_hostname=_EHLO_NAME_SET_ON_CONNECT,
                                                  timeout=self._timeout, context=self._context)
        else:
            smtp = smtplib.SMTP(local_hostname=_EHLO_NAME_SET_ON_CONNECT, timeout=self._timeout)
        smtp._host = self._host  # the TLS server name; smtplib sets it only when its constructor connects
        return smtp

    def _open(self, smtp: smtplib.SMTP) -> None:
        """Connect, check the greeting, EHLO, STARTTLS (as configured), EHLO again, AUTH.

        Raises SMTPConnectError for a greeting other than 220, SMTPNotSupportedError when
        STARTTLS is required but not offered, and whatever smtplib/ssl raise for the rest.
        """
        code, reply = smtp.connect(self._host, self._port)
        assert smtp.sock is not None  # connect() either connected or raised
        smtp.local_hostname = self._helo_name or address_literal(smtp.sock.getsockname()[0])
        if code != 220:
            raise smtplib.SMTPConnectError(code, reply)
        smtp.ehlo_or_helo_if_needed()
        if self._tls_mode == "starttls":
            if not smtp.has_extn("starttls"):
                raise smtplib.SMTPNotSupportedError(
                    "the server does not offer STARTTLS; not sending without TLS "
                    "(smtp_tls_mode = \"starttls\")")
            smtp.starttls(context=self._context)
            smtp.ehlo_or_helo_if_needed()
        if self._username:
            smtp.login(self._username, self._password or "")

    # --- outcomes ---------------------------------------------------------------------------

    def _refusals(self, refused: Refusals) -> str:
        return "; ".join(f"{address}: {code} {_reply_text(reply, self._secrets)}".rstrip()
                         for address, (code, reply) in refused.items())

    def _settle(self, delivery: Delivery, thread: fmt.Thread, attempted: Sequence[str],
                refused: Refusals) -> Outcome:
        """The outcome of a send that reached the server's RCPT stage (see the module doc)."""
        temporary = [address for address in attempted
                     if address in refused and 400 <= refused[address][0] < 500]
        accepted_now = [address for address in attempted if address not in refused]
        earlier = _earlier(delivery)
        detail = f"accepted for {len(accepted_now)} of {len(attempted)} recipients"
        if refused:
            detail += f"; refused: {self._refusals(refused)}"
        if earlier is not None:
            detail = f"retry of recipients refused earlier: {detail}"
        first_code = next((reply[0] for reply in refused.values()), 250)
        retry_code = refused[temporary[0]][0] if temporary else first_code
        if delivery.is_test:
            if accepted_now:
                return Outcome.delivered(f"test message {detail}", 250)
            if temporary:
                return Outcome.retry(f"test message {detail}", retry_code)
            return Outcome.failed(f"test message {detail}", first_code)
        accepted = [*(earlier.accepted if earlier else ()), *accepted_now]
        if temporary:
            state = _thread_state(delivery, thread, reached=bool(accepted))
            state.update({PENDING_NOTIFICATION_ID: delivery.notification_id,
                          PENDING_RECIPIENTS: temporary, ACCEPTED_RECIPIENTS: accepted})
            return Outcome.retry(f"{detail}; retrying the {len(temporary)} refused temporarily",
                                 retry_code, state=state)
        return _finish(delivery, thread, accepted, first_code,
                       detail + (_who_has_it(earlier.accepted) if earlier else ""))

    @staticmethod
    def _after_error(delivery: Delivery, thread: fmt.Thread, outcome: Outcome) -> Outcome:
        """The outcome of a send that raised. A retry stays a retry, and the state of
        earlier attempts stays as stored. A permanent error while retrying recipients refused
        earlier ends the notification: delivered only if someone accepted it earlier."""
        earlier = _earlier(delivery)
        if outcome.kind is not OutcomeKind.FAILED or earlier is None:
            return outcome
        return _finish(delivery, thread, earlier.accepted, outcome.status_code,
                       f"retry for {', '.join(earlier.owed)} failed for good: {outcome.detail}"
                       f"{_who_has_it(earlier.accepted)}")


@dataclass(frozen=True)
class _Earlier:
    """What earlier attempts of one notification left: who is still owed it, who has it."""

    owed: tuple[str, ...]
    accepted: tuple[str, ...]


def _earlier(delivery: Delivery) -> _Earlier | None:
    """What earlier attempts of this very notification left pending, or None if nothing.

    State written before ``accepted_recipients`` existed counts as nobody having it.
    """
    state = delivery.state
    if delivery.is_test or state.get(PENDING_NOTIFICATION_ID) != delivery.notification_id:
        return None
    return _Earlier(owed=tuple(str(address) for address in state.get(PENDING_RECIPIENTS) or ()),
                    accepted=tuple(str(address) for address in state.get(ACCEPTED_RECIPIENTS) or ()))


def _who_has_it(accepted: Sequence[str]) -> str:
    """The end of a detail saying who had the message from earlier attempts."""
    if not accepted:
        return "; nobody has the message"
    return f"; accepted earlier for {', '.join(accepted)}"


def _finish(delivery: Delivery, thread: fmt.Thread, accepted: Sequence[str],
            failure_code: int | None, detail: str) -> Outcome:
    """The last word on a notification nobody is left to retry: *delivered* (status 250)
    when anyone accepted it, on this attempt or an earlier one, else *failed* with
    ``failure_code``. The stored state keeps the thread keys only, and this mail becomes
    the thread root only when delivered."""
    state = _thread_state(delivery, thread, reached=bool(accepted))
    if accepted:
        return Outcome.delivered(detail, 250, state=state)
    return Outcome.failed(detail, failure_code, state=state)


def _thread_state(delivery: Delivery, thread: fmt.Thread, reached: bool) -> dict[str, object]:
    """The thread keys to store: this mail becomes the root once it reached someone."""
    if thread.starts_thread and reached:
        return {fmt.ROOT_MESSAGE_ID: thread.message_id,
                fmt.ROOT_NOTIFICATION_ID: delivery.notification_id}
    return {key: delivery.state[key] for key in (fmt.ROOT_MESSAGE_ID, fmt.ROOT_NOTIFICATION_ID)
            if key in delivery.state}


def _end_session(smtp: smtplib.SMTP) -> None:
    """End a session on every path: QUIT, a TLS close_notify, then close the socket.

    QUIT is said whenever the socket is still open; smtplib has already closed it after
    a timeout, a dropped connection or a 421, and a failed TLS handshake leaves nothing to
    say it on, so those fail at once. The outcome is decided already: errors here (a server
    hanging up first) are ignored.
    """
    try:
        if smtp.sock is not None:
            smtp.docmd("QUIT")
            if isinstance(smtp.sock, ssl.SSLSocket):
                smtp.sock.unwrap()  # close_notify both ways; the server closes after 221
    except (smtplib.SMTPException, OSError, ValueError):
        pass
    finally:
        smtp.close()


def _reply_text(reply: bytes | str, secrets: Sequence[str]) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return redact(" ".join(text.split())[:MAX_REPLY_CHARS], secrets)


_STAGES: Mapping[type[smtplib.SMTPResponseException], str] = {
    smtplib.SMTPConnectError: "greeting",
    smtplib.SMTPHeloError: "EHLO",
    smtplib.SMTPAuthenticationError: "AUTH",
    smtplib.SMTPSenderRefused: "MAIL FROM",
    smtplib.SMTPDataError: "DATA",
}


def classify_error(exc: OSError, secrets: Sequence[str] = ()) -> Outcome:
    """The outcome of an SMTP exchange that raised (smtplib's exceptions are OSErrors).

    SMTP replies by class: 4yz retry, 5yz fail (so AUTH 454 retries and 535 fails).
    Disconnects, timeouts and network errors retry; TLS and missing-extension errors fail.
    """
    if isinstance(exc, smtplib.SMTPResponseException):
        code = exc.smtp_code
        stage = _STAGES.get(type(exc), "command")
        detail = f"SMTP {code} on {stage}: {_reply_text(exc.smtp_error, secrets)}".rstrip()
        if 500 <= code < 600:
            return Outcome.failed(detail, code)
        return Outcome.retry(detail, code if code > 0 else None)
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return Outcome.retry(f"connection closed by the server: {redact(str(exc), secrets)}")
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return Outcome.failed(redact(str(exc), secrets))
    if isinstance(exc, smtplib.SMTPException):
        return Outcome.failed(f"SMTP error: {redact(str(exc), secrets)}")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return Outcome.failed(f"TLS certificate not trusted: {exc.verify_message} "
                              "(set notifications.smtp_ca_file to trust a private CA)")
    if isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
        return Outcome.retry(f"connection closed during TLS: {exc.reason}")
    if isinstance(exc, ssl.SSLError):
        return Outcome.failed(f"TLS handshake failed: {exc.reason} "
                              "(check notifications.smtp_tls_mode and smtp_port)")
    if isinstance(exc, TimeoutError):
        return Outcome.retry("timed out waiting for the SMTP server")
    if isinstance(exc, ConnectionRefusedError):
        return Outcome.retry("connection refused by the SMTP server")
    return Outcome.retry(f"network error: {redact(str(exc), secrets)}")


def _secret_forms(username: str | None, password: str | None) -> list[Secret]:
    """The password as typed and as base64 in AUTH LOGIN and AUTH PLAIN."""
    if not password:
        return []
    plain = f"\0{username or ''}\0{password}".encode()
    return [Secret(password), Secret(base64.b64encode(password.encode()).decode()),
            Secret(base64.b64encode(plain).decode())]


def _tls_context(ca_file: str | None) -> ssl.SSLContext:
    """A verifying client context; ConfigError naming smtp_ca_file if it cannot be loaded."""
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError("notifications.smtp_ca_file", f"cannot load {ca_file}: {reason}") from None


def _checked_address(key: str, header: str, value: str | None) -> str:
    if not value:
        raise ConfigError(key, "required for email notifications")
    try:
        fmt.address(header, value)
    except ValueError as exc:
        raise ConfigError(key, str(exc)) from None
    return value


def build(settings: NotificationSettings, environ: Mapping[str, str],
          receivers: Mapping[str, ReceiverSettings] = NO_RECEIVERS) -> Channel:
    """The email channel from settings: one destination per list of recipients (``default``
    for ``email_to``, and each receiver's ``[receivers.<name>.email] to``), all sent through
    the one SMTP server; secrets come from the variables the settings name.

    Raises ConfigError naming the key for: no server, an invalid sender or recipient, a
    user-name or password variable that is named but unset, a password without a user
    name, credentials with ``smtp_tls_mode = "none"``, or an unreadable ``smtp_ca_file``.
    No recipients is allowed: the channel then has no destination (the start-up warns).
    """
    if not settings.smtp_server:
        raise ConfigError("notifications.smtp_server", "required for email notifications")
    sender = _checked_address("notifications.email_from", "From", settings.email_from)
    lists = {name: tuple(_checked_address(setting_key(name, "email", "to"), "To", to) for to in target.to)
             for name, target in channel_targets(settings, receivers, "email").items()
             if isinstance(target, EmailTarget)}
    try:
        fmt.check_header("From", settings.email_from_name or "")
    except ValueError as exc:
        raise ConfigError("notifications.email_from_name", str(exc)) from None
    if settings.smtp_password_env and not settings.smtp_username_env:
        raise ConfigError("notifications.smtp_username_env", "required with smtp_password_env")
    username = read_secret("notifications.smtp_username_env", settings.smtp_username_env, environ,
                           required=bool(settings.smtp_username_env))
    password = read_secret("notifications.smtp_password_env", settings.smtp_password_env, environ,
                           required=username is not None)
    mode = settings.tls_mode
    if mode == "none" and username:
        raise ConfigError("notifications.smtp_tls_mode",
                          "credentials are never sent without TLS; use starttls or implicit")
    context = None if mode == "none" else _tls_context(settings.smtp_ca_file)
    templates = {name: compile_templates(f"receivers.{name}.email", "email", target)
                 for name, target in channel_targets(settings, receivers, "email").items()}
    helo_name = settings.smtp_helo_name or _host_fqdn()
    return by_destination("email", {name: EmailChannel(
        host=settings.smtp_server, port=settings.smtp_port, tls_mode=mode, context=context,
        username=username, password=password, sender=sender, sender_name=settings.email_from_name,
        recipients=recipients, timeout_secs=settings.timeout("email"), helo_name=helo_name, destination=name,
        templates=templates[name]) for name, recipients in lists.items()})


def _host_fqdn() -> str | None:
    """This host's fully qualified name, or None when it has none that is not a local name
    (EHLO then gives the address literal of the local end of each connection)."""
    fqdn = socket.getfqdn()
    return fqdn if is_fully_qualified(fqdn) else None
