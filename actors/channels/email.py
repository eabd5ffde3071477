"""Email channel: SMTP (smtplib) with TLS that is required, never optional.

One connection per delivery: connect, TLS, EHLO, AUTH (only when a user name is
configured), send, QUIT. The TLS mode is explicit (``settings.tls_mode``):

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
* A header value with CR, LF or NUL (e.g. an injected ``Bcc:`` in a title) → failed before
  any connection is made.
* Some recipients refused, others accepted: the message went to the accepted ones. The
  ones refused with 4yz are retried *alone*: the outcome is a retry whose state carries
  ``pending_notification_id`` and ``pending_recipients``; the next attempt of that same
  notification resends the same message (same Message-ID) to those addresses only.
  Recipients refused with 5yz are dropped. When at least one recipient got the message
  (in this attempt or an earlier one) and nobody is left to retry, the outcome is
  *delivered*, with a detail naming the permanently refused recipients; when every
  recipient was refused permanently, it is *failed*.
* A 421 on RCPT closes the connection before DATA, so nobody got the message: retry all.

State, stored per incident: ``root_message_id`` and ``root_notification_id`` once the
incident's first mail reached someone (follow-ups reply to it), plus the pending keys
above while recipients are owed a retry. Test notifications never read or write state.

The password never appears in details or logs: server text is redacted with it (and its
base64 forms, as sent in AUTH) before use.
"""
from __future__ import annotations

import base64
import smtplib
import socket
import ssl
from email.message import EmailMessage
from typing import Mapping, Sequence

import structlog

from ..domain.config import NotificationSettings, Secret, read_secret
from ..domain.errors import ConfigError
from ..domain.models import Delivery, Outcome, OutcomeKind
from ..formatting import email as fmt
from .redact import redact

PENDING_NOTIFICATION_ID = "pending_notification_id"
PENDING_RECIPIENTS = "pending_recipients"
#: "Service not available, closing transmission channel": may answer any command.
SERVICE_CLOSING = 421
MAX_REPLY_CHARS = 200

Refusals = Mapping[str, tuple[int, bytes | str]]

log = structlog.get_logger(__name__)


class EmailChannel:
    """Sends each delivery as one mail to the configured recipients over SMTP."""

    name = "email"
    needs_state = True

    def __init__(self, *, host: str, port: int, tls_mode: str, context: ssl.SSLContext | None,
                 username: str | None, password: str | None, sender: str, sender_name: str | None,
                 recipients: tuple[str, ...], timeout_secs: float, local_hostname: str) -> None:
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
        self._local_hostname = local_hostname
        self._secrets = _secret_forms(username, password)
        self.destinations: tuple[str, ...] = ("default",) if recipients else ()

    def deliver(self, delivery: Delivery) -> Outcome:
        """Send one mail; every expected failure comes back as an outcome (see the module doc)."""
        outcome = self._attempt(delivery)
        log.debug("email.attempt", incident_id=delivery.incident_id,
                  notification_id=delivery.notification_id, outcome=outcome.kind.value,
                  detail=outcome.detail)
        return outcome

    def close(self) -> None:
        """Nothing to release: each delivery opens and closes its own connection."""

    def _attempt(self, delivery: Delivery) -> Outcome:
        if not self._recipients:
            return Outcome.failed("no recipients configured (notifications.email_to)")
        try:
            message = fmt.render(delivery, self._sender, self._sender_name, self._recipients)
        except ValueError as exc:
            return Outcome.failed(f"message not sent: {redact(str(exc), self._secrets)}")
        thread = fmt.thread_for(delivery, fmt.domain_of(self._sender))
        envelope = self._envelope_recipients(delivery)
        if not envelope:
            return Outcome.delivered("the recipients still owed this message are no longer configured",
                                     state=_thread_state(delivery, thread, reached=True))
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
        pending = _pending(delivery)
        if pending is None:
            return list(self._recipients)
        return [address for address in pending if address in self._recipients]

    def _send(self, message: EmailMessage, recipients: Sequence[str]) -> Refusals:
        """Connect, secure, log in and send; returns the recipients refused while others got it.

        Raises smtplib/ssl/socket errors (all OSError) for the caller to classify.
        """
        smtp = self._connect()
        try:
            refused = smtp.send_message(message, from_addr=self._sender, to_addrs=list(recipients))
            _quit_quietly(smtp)
            return refused
        finally:
            smtp.close()

    def _connect(self) -> smtplib.SMTP:
        """An open, secured and authenticated session; closed again if any step fails."""
        if self._tls_mode == "implicit":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(self._host, self._port, self._local_hostname,
                                                  timeout=self._timeout, context=self._context)
        else:
            smtp = smtplib.SMTP(self._host, self._port, self._local_hostname, timeout=self._timeout)
        try:
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
        except BaseException:
            smtp.close()
            raise
        return smtp

    # --- outcomes ---------------------------------------------------------------------------

    def _refusals(self, refused: Refusals) -> str:
        return "; ".join(f"{address}: {code} {_reply_text(reply, self._secrets)}".rstrip()
                         for address, (code, reply) in refused.items())

    def _settle(self, delivery: Delivery, thread: fmt.Thread, attempted: Sequence[str],
                refused: Refusals) -> Outcome:
        """The outcome of a send that reached the server's RCPT stage (see the module doc)."""
        temporary = [address for address in attempted
                     if address in refused and 400 <= refused[address][0] < 500]
        accepted = [address for address in attempted if address not in refused]
        earlier = _pending(delivery) is not None
        detail = f"accepted for {len(accepted)} of {len(attempted)} recipients"
        if refused:
            detail += f"; refused: {self._refusals(refused)}"
        if earlier:
            detail = f"retry of recipients refused earlier: {detail}"
        first_code = next((reply[0] for reply in refused.values()), 250)
        retry_code = refused[temporary[0]][0] if temporary else first_code
        if delivery.is_test:
            if accepted:
                return Outcome.delivered(f"test message {detail}", 250)
            if temporary:
                return Outcome.retry(f"test message {detail}", retry_code)
            return Outcome.failed(f"test message {detail}", first_code)
        state = _thread_state(delivery, thread, reached=bool(accepted) or earlier)
        if temporary:
            state[PENDING_NOTIFICATION_ID] = delivery.notification_id
            state[PENDING_RECIPIENTS] = temporary
            return Outcome.retry(f"{detail}; retrying the {len(temporary)} refused temporarily",
                                 retry_code, state=state)
        if accepted or earlier:
            return Outcome.delivered(detail, 250, state=state)
        return Outcome.failed(detail, first_code)

    @staticmethod
    def _after_error(delivery: Delivery, thread: fmt.Thread, outcome: Outcome) -> Outcome:
        """A permanent error while retrying recipients refused earlier: the others already
        have the message, so the notification counts as delivered (the detail says who not)."""
        pending = _pending(delivery)
        if outcome.kind is not OutcomeKind.FAILED or pending is None:
            return outcome
        return Outcome.delivered(
            f"delivered earlier to the other recipients; retry for {', '.join(pending)} "
            f"failed for good: {outcome.detail}", outcome.status_code,
            state=_thread_state(delivery, thread, reached=True))


def _pending(delivery: Delivery) -> list[str] | None:
    """Recipients an earlier attempt of this very notification left to retry, or None."""
    if delivery.is_test or delivery.state.get(PENDING_NOTIFICATION_ID) != delivery.notification_id:
        return None
    return [str(address) for address in delivery.state.get(PENDING_RECIPIENTS) or ()]


def _thread_state(delivery: Delivery, thread: fmt.Thread, reached: bool) -> dict[str, object]:
    """The thread keys to store: this mail becomes the root once it reached someone."""
    if thread.starts_thread and reached:
        return {fmt.ROOT_MESSAGE_ID: thread.message_id,
                fmt.ROOT_NOTIFICATION_ID: delivery.notification_id}
    return {key: delivery.state[key] for key in (fmt.ROOT_MESSAGE_ID, fmt.ROOT_NOTIFICATION_ID)
            if key in delivery.state}


def _quit_quietly(smtp: smtplib.SMTP) -> None:
    """Say QUIT; the message is already accepted, so a failure here changes nothing."""
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        pass


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


def build(settings: NotificationSettings, environ: Mapping[str, str]) -> EmailChannel:
    """The email channel from settings; secrets come from the variables the settings name.

    Raises ConfigError naming the key for: no server, an invalid sender or recipient, a
    user-name or password variable that is named but unset, a password without a user
    name, credentials with ``smtp_tls_mode = "none"``, or an unreadable ``smtp_ca_file``.
    No recipients is allowed: the channel then has no destination (the start-up warns).
    """
    if not settings.smtp_server:
        raise ConfigError("notifications.smtp_server", "required for email notifications")
    sender = _checked_address("notifications.email_from", "From", settings.email_from)
    recipients = tuple(_checked_address("notifications.email_to", "To", to) for to in settings.email_to)
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
    return EmailChannel(
        host=settings.smtp_server, port=settings.smtp_port, tls_mode=mode,
        context=None if mode == "none" else _tls_context(settings.smtp_ca_file),
        username=username, password=password, sender=sender,
        sender_name=settings.email_from_name, recipients=recipients,
        timeout_secs=settings.timeout("email"), local_hostname=socket.getfqdn())
