"""The email channel against a real SMTP server on loopback (aiosmtpd, TLS, AUTH, scripted faults)."""
from __future__ import annotations

import base64
import dataclasses
import socket
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from structlog.testing import capture_logs

from actors.channels.email import EmailChannel, build
from actors.domain.commands import TransitionIncident
from actors.domain.config import ChannelTuning, NotificationSettings, settings_from_mapping
from actors.domain.errors import ConfigError
from actors.domain.models import (Alert, Delivery, DeliveryStatus, EventKind, Incident, IncidentState,
                                  IncidentType, OutcomeKind, Severity)
from actors.engine import Engine
from tests.support.server import make_settings
from tests.support.smtp_server import (PASSWORD, USERNAME, Certificates, Script, SmtpServer,
                                       TlsGoodbyeServer, make_certificates)
from tests.support.waiting import wait_until

SENDER = "incidents@example.com"
ALICE, BOB, CAROL = "alice@example.com", "bob@example.com", "carol@example.org"
RECIPIENTS = (ALICE, BOB, CAROL)
ENV = {"SMTP_USER": USERNAME, "SMTP_PASS": PASSWORD}
T0 = datetime(2024, 1, 15, 14, 32, tzinfo=timezone.utc)

StartServer = Callable[..., SmtpServer]


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(Path(tmp_path_factory.mktemp("smtp-tls")))


@pytest.fixture
def start_server(certificates: Certificates) -> Iterator[StartServer]:
    """Starts SMTP servers (``start_server(Script(...), implicit_tls=...)``); all stop after the test."""
    with ExitStack() as stack:
        def start(script: Script | None = None, implicit_tls: bool = False) -> SmtpServer:
            return stack.enter_context(SmtpServer(certificates, script, implicit_tls))
        yield start


def settings_for(server: SmtpServer | TlsGoodbyeServer, certificates: Certificates,
                 **changes: Any) -> NotificationSettings:
    settings = NotificationSettings(
        email_enabled=True, smtp_server=server.host, smtp_port=server.port,
        smtp_tls_mode="starttls", smtp_ca_file=certificates.ca_file,
        smtp_username_env="SMTP_USER", smtp_password_env="SMTP_PASS",
        email_from=SENDER, email_from_name="Incident Bot", email_to=RECIPIENTS,
        email=ChannelTuning(timeout_secs=2.0))
    return dataclasses.replace(settings, **changes)


def channel_for(server: SmtpServer | TlsGoodbyeServer, certificates: Certificates,
                **changes: Any) -> EmailChannel:
    return build(settings_for(server, certificates, **changes), ENV)


def delivery(notification_id: str = "n-1", channel_state: dict[str, Any] | None = None,
             is_test: bool = False, **changes: Any) -> Delivery:
    incident = Incident(
        id="3f2a9c1e-7b4d-4e8a-9f00-123456789abc", fingerprint="fp",
        title="Checkout <b>down</b> & payments", description="p99 above 2 s",
        severity=Severity.P0, type=IncidentType.AVAILABILITY, state=IncidentState.DETECTED,
        source="sentinel", created_at=T0, updated_at=T0, last_alert_at=T0).evolve(**changes)
    return Delivery(notification_id=notification_id, incident_id=incident.id, channel="email",
                    destination="default", event_type=incident.state.event_type, occurred_at=T0,
                    incident=incident, state=channel_state or {}, is_test=is_test)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- delivery and threading -----------------------------------------------------------------

def test_a_mail_is_delivered_over_starttls_after_auth_to_every_recipient(
        start_server: StartServer, certificates: Certificates) -> None:
    server = start_server()
    outcome = channel_for(server, certificates).deliver(delivery())

    assert outcome.kind is OutcomeKind.DELIVERED, outcome.detail
    (received,) = server.wait_for(1)
    assert received.secure and received.login == USERNAME
    assert received.mail_from == SENDER and received.rcpt_tos == RECIPIENTS
    assert server.commands.index("STARTTLS") < server.commands.index("AUTH") < server.commands.index("MAIL")
    message = received.message
    assert message.get_content_type() == "multipart/alternative"
    assert message["Subject"] == "[INC-3f2a9c1e] Checkout <b>down</b> & payments"
    html = message.get_body(("html",))
    assert html is not None
    assert "Checkout &lt;b&gt;down&lt;/b&gt; &amp; payments" in html.get_content()
    assert outcome.state == {"root_message_id": message["Message-ID"], "root_notification_id": "n-1"}


def test_a_follow_up_replies_to_the_root_with_the_same_subject(
        start_server: StartServer, certificates: Certificates) -> None:
    server = start_server()
    channel = channel_for(server, certificates)
    first = channel.deliver(delivery())
    assert first.state is not None
    follow_up = channel.deliver(delivery("n-2", dict(first.state), state=IncidentState.RESOLVED))

    assert follow_up.kind is OutcomeKind.DELIVERED, follow_up.detail
    root, reply = (r.message for r in server.wait_for(2))
    assert root["Message-ID"] == "<incident-3f2a9c1e-7b4d-4e8a-9f00-123456789abc.root@example.com>"
    assert reply["In-Reply-To"] == reply["References"] == root["Message-ID"]
    assert reply["Message-ID"] != root["Message-ID"]
    assert reply["Subject"] == root["Subject"]
    assert follow_up.state == first.state


def test_without_a_user_name_the_channel_never_logs_in(
        start_server: StartServer, certificates: Certificates) -> None:
    server = start_server()
    channel = channel_for(server, certificates, smtp_username_env=None, smtp_password_env=None)
    assert channel.deliver(delivery()).kind is OutcomeKind.DELIVERED
    (received,) = server.wait_for(1)
    assert received.secure and received.login is None and "AUTH" not in server.commands


def test_implicit_tls_mode_delivers_over_tls_from_the_first_byte(
        start_server: StartServer, certificates: Certificates) -> None:
    server = start_server(implicit_tls=True)
    outcome = channel_for(server, certificates, smtp_tls_mode="implicit").deliver(delivery())
    assert outcome.kind is OutcomeKind.DELIVERED, outcome.detail
    (received,) = server.wait_for(1)
    assert received.secure and received.login == USERNAME
    assert "STARTTLS" not in server.commands


def test_plaintext_is_used_only_when_configured_and_without_credentials(
        start_server: StartServer, certificates: Certificates) -> None:
    server = start_server(Script(starttls=False))
    channel = channel_for(server, certificates, smtp_tls_mode="none",
                          smtp_username_env=None, smtp_password_env=None)
    assert channel.deliver(delivery()).kind is OutcomeKind.DELIVERED
    assert not server.wait_for(1)[0].secure
    with pytest.raises(ConfigError, match="smtp_tls_mode"):
        channel_for(server, certificates, smtp_tls_mode="none")


def test_a_test_notification_is_marked_sent_unthreaded_and_leaves_state_alone(
        start_server: StartServer, certificates: Certificates) -> None:
    server = start_server()
    stored = {"root_message_id": "<incident-x.root@example.com>", "root_notification_id": "n-1"}
    outcome = channel_for(server, certificates).deliver(delivery("t-1", stored, is_test=True))
    assert outcome.kind is OutcomeKind.DELIVERED and outcome.state is None
    message = server.wait_for(1)[0].message
    assert message["Subject"].startswith("[TEST] ")
    assert message["In-Reply-To"] is None


def test_a_2000_character_body_line_reaches_the_wire_in_lines_of_at_most_998(
        start_server: StartServer, certificates: Certificates) -> None:
    server = start_server()
    outcome = channel_for(server, certificates).deliver(delivery(description="y" * 2000))
    assert outcome.kind is OutcomeKind.DELIVERED, outcome.detail
    (received,) = server.wait_for(1)
    assert max(len(line) for line in received.data.split(b"\r\n")) <= 998
    text = received.message.get_body(("plain",))
    assert text is not None and "y" * 2000 in text.get_content()


# --- TLS is required ------------------------------------------------------------------------

def test_a_certificate_from_an_untrusted_ca_fails_before_anything_is_sent(
        start_server: StartServer, certificates: Certificates) -> None:
    server = start_server()
    outcome = channel_for(server, certificates, smtp_ca_file=None).deliver(delivery())
    assert outcome.kind is OutcomeKind.FAILED
    assert "certificate" in outcome.detail
    assert not {"AUTH", "MAIL", "DATA"} & set(server.commands) and not server.messages


def test_a_server_without_starttls_gets_nothing_in_plaintext(
        start_server: StartServer, certificates: Certificates) -> None:
    server = start_server(Script(starttls=False))
    outcome = channel_for(server, certificates).deliver(delivery())
    assert outcome.kind is OutcomeKind.FAILED
    assert "STARTTLS" in outcome.detail
    assert server.commands == ["EHLO", "QUIT"] and not server.auth_attempts and not server.messages


def test_implicit_tls_against_a_plaintext_server_fails(
        start_server: StartServer, certificates: Certificates) -> None:
    server = start_server(Script(starttls=False))
    outcome = channel_for(server, certificates, smtp_tls_mode="implicit").deliver(delivery())
    assert outcome.kind is OutcomeKind.FAILED
    assert "TLS" in outcome.detail and not server.messages


# --- replies and faults ---------------------------------------------------------------------

@pytest.mark.parametrize("script,kind,code", [
    (Script(greeting="421 4.3.2 Service not available"), OutcomeKind.RETRY, 421),
    (Script(greeting="554 5.3.2 No SMTP service here"), OutcomeKind.FAILED, 554),
    (Script(mail="451 4.3.0 Try again later"), OutcomeKind.RETRY, 451),
    (Script(rcpt_all="550 5.1.1 No such user"), OutcomeKind.FAILED, 550),
    (Script(rcpt_all="450 4.2.1 Mailbox busy"), OutcomeKind.RETRY, 450),
    (Script(rcpt={BOB: "421 4.4.2 Closing"}), OutcomeKind.RETRY, 421),
    (Script(data="451 4.3.0 Local error in processing"), OutcomeKind.RETRY, 451),
    (Script(data="552 5.3.4 Message too big"), OutcomeKind.FAILED, 552),
    (Script(data="554 5.6.0 Transaction failed"), OutcomeKind.FAILED, 554),
    (Script(auth="535 5.7.8 Authentication credentials invalid"), OutcomeKind.FAILED, 535),
    (Script(auth="454 4.7.0 Temporary authentication failure"), OutcomeKind.RETRY, 454),
], ids=["421-greeting", "554-greeting", "451-mail", "550-all-rcpt", "450-all-rcpt", "421-rcpt",
        "451-data", "552-data", "554-data", "535-auth", "454-auth"])
def test_smtp_replies_are_classified_by_their_class(
        start_server: StartServer, certificates: Certificates,
        script: Script, kind: OutcomeKind, code: int) -> None:
    server = start_server(script)
    outcome = channel_for(server, certificates).deliver(delivery())
    assert (outcome.kind, outcome.status_code) == (kind, code), outcome.detail
    assert str(code) in outcome.detail
    assert not server.messages


def test_a_wrong_password_fails_for_good(start_server: StartServer, certificates: Certificates) -> None:
    server = start_server()
    outcome = build(settings_for(server, certificates), {**ENV, "SMTP_PASS": "not-it"}).deliver(delivery())
    assert (outcome.kind, outcome.status_code) == (OutcomeKind.FAILED, 535)
    assert server.auth_attempts and not server.messages


def test_a_connection_dropped_mid_data_is_retried(
        start_server: StartServer, certificates: Certificates) -> None:
    server = start_server(Script(drop_in_data=True))
    outcome = channel_for(server, certificates).deliver(delivery())
    assert outcome.kind is OutcomeKind.RETRY, outcome.detail
    assert "DATA" in server.commands and not server.messages


def test_a_refused_connection_is_retried(start_server: StartServer, certificates: Certificates) -> None:
    server = start_server()
    outcome = channel_for(server, certificates, smtp_port=free_port()).deliver(delivery())
    assert outcome.kind is OutcomeKind.RETRY and "refused" in outcome.detail


def test_a_server_that_never_greets_times_out_and_is_retried(
        start_server: StartServer, certificates: Certificates) -> None:
    server = start_server(Script(greeting_delay_secs=5.0))
    channel = channel_for(server, certificates, email=ChannelTuning(timeout_secs=0.3))
    outcome = channel.deliver(delivery())
    assert outcome.kind is OutcomeKind.RETRY and "timed out" in outcome.detail


def test_a_title_with_an_injected_header_fails_before_any_connection(
        start_server: StartServer, certificates: Certificates) -> None:
    server = start_server()
    outcome = channel_for(server, certificates).deliver(delivery(title="Outage\r\nBcc: x@evil.example"))
    assert outcome.kind is OutcomeKind.FAILED and "Subject" in outcome.detail
    assert server.connections == 0 and not server.messages


# --- SMTP etiquette (RFC 5321) --------------------------------------------------------------

@pytest.mark.parametrize("script", [
    Script(),
    Script(data="554 5.6.0 Transaction failed"),
    Script(rcpt_all="550 5.1.1 No such user"),
    Script(auth="535 5.7.8 Authentication credentials invalid"),
    Script(mail="451 4.3.0 Try again later"),
], ids=["delivered", "554-data", "550-all-rcpt", "535-auth", "451-mail"])
def test_every_session_ends_with_quit(start_server: StartServer, certificates: Certificates,
                                      script: Script) -> None:
    server = start_server(script)
    channel_for(server, certificates).deliver(delivery())
    assert server.commands[-1] == "QUIT" and server.commands.count("QUIT") == 1, server.commands


def test_a_refusing_greeting_is_answered_with_quit_and_tls_is_closed_with_close_notify(
        certificates: Certificates) -> None:
    with TlsGoodbyeServer(certificates) as server:
        outcome = channel_for(server, certificates, smtp_tls_mode="implicit").deliver(delivery())
        server.wait()
    assert (outcome.kind, outcome.status_code) == (OutcomeKind.FAILED, 554), outcome.detail
    assert server.said_quit and server.closed_tls, server.error


@pytest.mark.parametrize("host_fqdn", ["localhost", "localhost.localdomain", "buildbox"])
def test_without_a_fully_qualified_host_name_ehlo_gives_the_address_literal(
        start_server: StartServer, certificates: Certificates, monkeypatch: pytest.MonkeyPatch,
        host_fqdn: str) -> None:
    monkeypatch.setattr(socket, "getfqdn", lambda *args: host_fqdn)
    server = start_server()
    assert channel_for(server, certificates).deliver(delivery()).kind is OutcomeKind.DELIVERED
    assert server.helo_names == ["[127.0.0.1]"] * 2  # before and after STARTTLS


def test_ehlo_gives_the_hosts_fully_qualified_name_or_the_configured_one(
        start_server: StartServer, certificates: Certificates, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getfqdn", lambda *args: "alerts-7.eu.example.net")
    server = start_server()
    channel_for(server, certificates).deliver(delivery())
    channel_for(server, certificates, smtp_helo_name="relay.example.org").deliver(delivery("n-2"))
    assert server.helo_names == ["alerts-7.eu.example.net"] * 2 + ["relay.example.org"] * 2
    assert len(server.wait_for(2)) == 2


# --- partial recipient refusal --------------------------------------------------------------

def test_a_recipient_refused_with_450_is_retried_alone_with_the_same_message(
        start_server: StartServer, certificates: Certificates) -> None:
    server = start_server(Script(rcpt={BOB: "450 4.2.1 Mailbox busy"}))
    channel = channel_for(server, certificates)
    first = channel.deliver(delivery())

    assert (first.kind, first.status_code) == (OutcomeKind.RETRY, 450), first.detail
    assert BOB in first.detail
    assert first.state is not None and first.state["pending_recipients"] == [BOB]
    assert server.wait_for(1)[0].rcpt_tos == (ALICE, CAROL)

    server.script = Script()
    second = channel.deliver(delivery().next_attempt(first.state))
    assert second.kind is OutcomeKind.DELIVERED, second.detail
    original, retried = (r for r in server.wait_for(2))
    assert retried.rcpt_tos == (BOB,)
    assert retried.message["Message-ID"] == original.message["Message-ID"]
    assert [a.addr_spec for a in retried.message["To"].addresses] == list(RECIPIENTS)
    assert second.state == {"root_message_id": original.message["Message-ID"],
                            "root_notification_id": "n-1"}


def test_a_recipient_refused_for_good_does_not_stop_delivery_to_the_others(
        start_server: StartServer, certificates: Certificates) -> None:
    server = start_server(Script(rcpt={CAROL: "550 5.1.1 No such user"}))
    outcome = channel_for(server, certificates).deliver(delivery())
    assert outcome.kind is OutcomeKind.DELIVERED
    assert "2 of 3" in outcome.detail and CAROL in outcome.detail and "550" in outcome.detail
    assert server.wait_for(1)[0].rcpt_tos == (ALICE, BOB)
    assert outcome.state is not None and "pending_recipients" not in outcome.state


def test_a_retried_recipient_refused_for_good_leaves_the_notification_delivered(
        start_server: StartServer, certificates: Certificates) -> None:
    server = start_server()
    server.play(Script(rcpt={BOB: "451 4.3.0 Try again later"}), Script(rcpt={BOB: "550 5.1.1 No such user"}))
    channel = channel_for(server, certificates, email_to=(ALICE, BOB))
    first = channel.deliver(delivery())
    assert first.kind is OutcomeKind.RETRY and first.state is not None
    assert first.state["accepted_recipients"] == [ALICE] and first.state["pending_recipients"] == [BOB]
    second = channel.deliver(delivery().next_attempt(first.state))

    assert (second.kind, second.status_code) == (OutcomeKind.DELIVERED, 250), second.detail
    assert BOB in second.detail and "550" in second.detail and f"accepted earlier for {ALICE}" in second.detail
    (received,) = server.wait_for(1)
    assert second.state == {"root_message_id": received.message["Message-ID"], "root_notification_id": "n-1"}


def test_a_mail_every_recipient_refused_first_for_now_then_for_good_is_failed_and_never_the_root(
        start_server: StartServer, certificates: Certificates) -> None:
    server = start_server()
    server.play(Script(rcpt_all="451 4.3.0 Try again later"), Script(rcpt_all="550 5.1.1 No such user"),
                Script())
    channel = channel_for(server, certificates, email_to=(ALICE, BOB))
    first = channel.deliver(delivery())
    assert (first.kind, first.status_code) == (OutcomeKind.RETRY, 451), first.detail
    assert first.state == {"pending_notification_id": "n-1", "pending_recipients": [ALICE, BOB],
                           "accepted_recipients": []}
    second = channel.deliver(delivery().next_attempt(first.state))

    assert (second.kind, second.status_code) == (OutcomeKind.FAILED, 550), second.detail
    assert "nobody has the message" in second.detail and "0 of 2" in second.detail
    assert second.state == {} and not server.messages
    # so the incident's next mail starts the thread itself
    follow_up = channel.deliver(delivery("n-2", dict(second.state), state=IncidentState.INVESTIGATING))
    assert follow_up.kind is OutcomeKind.DELIVERED, follow_up.detail
    (received,) = server.wait_for(1)
    assert received.message["In-Reply-To"] is None
    assert follow_up.state == {"root_message_id": received.message["Message-ID"], "root_notification_id": "n-2"}


@pytest.mark.parametrize("failure", [
    Script(data="554 5.6.0 Transaction failed"),
    Script(auth="535 5.7.8 Authentication credentials invalid"),
], ids=["554-data", "535-auth"])
def test_a_permanent_error_retrying_a_mail_nobody_accepted_yet_fails_it(
        start_server: StartServer, certificates: Certificates, failure: Script) -> None:
    server = start_server()
    server.play(Script(rcpt_all="450 4.2.1 Mailbox busy"), failure)
    channel = channel_for(server, certificates, email_to=(ALICE, BOB))
    first = channel.deliver(delivery())
    second = channel.deliver(delivery().next_attempt(first.state))
    assert second.kind is OutcomeKind.FAILED, second.detail
    assert "nobody has the message" in second.detail
    assert second.state == {} and not server.messages


def test_a_permanent_error_retrying_a_mail_someone_accepted_leaves_it_delivered(
        start_server: StartServer, certificates: Certificates) -> None:
    server = start_server()
    server.play(Script(rcpt={BOB: "450 4.2.1 Mailbox busy"}), Script(data="554 5.6.0 Transaction failed"))
    channel = channel_for(server, certificates, email_to=(ALICE, BOB))
    first = channel.deliver(delivery())
    second = channel.deliver(delivery().next_attempt(first.state))
    assert second.kind is OutcomeKind.DELIVERED, second.detail
    assert "554" in second.detail and f"accepted earlier for {ALICE}" in second.detail
    assert second.state is not None and second.state["root_notification_id"] == "n-1"


def test_pending_recipients_of_another_notification_are_ignored(
        start_server: StartServer, certificates: Certificates) -> None:
    server = start_server()
    stale = {"pending_notification_id": "n-0", "pending_recipients": [BOB]}
    assert channel_for(server, certificates).deliver(delivery("n-1", stale)).kind is OutcomeKind.DELIVERED
    assert server.wait_for(1)[0].rcpt_tos == RECIPIENTS


def test_through_the_engine_a_mail_nobody_accepted_is_dead_and_the_next_one_starts_the_thread(
        start_server: StartServer, certificates: Certificates, tmp_path: Path) -> None:
    server = start_server()
    server.play(Script(rcpt_all="451 4.3.0 Try again later"), Script(rcpt_all="550 5.1.1 No such user"),
                Script())
    smtp = {"email_enabled": True, "smtp_server": server.host, "smtp_port": server.port,
            "smtp_ca_file": certificates.ca_file, "smtp_username_env": "SMTP_USER",
            "smtp_password_env": "SMTP_PASS", "email_from": SENDER, "email_to": [ALICE, BOB],
            "retry_backoff_secs": 0.01}
    with Engine(make_settings(tmp_path, notifications=smtp), environ=ENV) as engine:
        incident_id = engine.submit_alert(Alert("a-1", "sentinel", "Disk full", "", Severity.P1,
                                                IncidentType.INFRASTRUCTURE)).incident_id
        wait_until(lambda: engine.notifications(incident_id)[0][0].status is DeliveryStatus.DEAD)
        first_id = engine.notifications(incident_id)[0][0].id
        attempts = engine.notification(first_id)[1]
        engine.transition(TransitionIncident(incident_id, IncidentState.INVESTIGATING, "ana"))
        (received,) = server.wait_for(1)
        wait_until(lambda: [r.status for r in engine.notifications(incident_id)[0]]
                   == [DeliveryStatus.DEAD, DeliveryStatus.DELIVERED])
        kinds = [event.kind for event in engine.timeline(incident_id)]

    assert [(a.outcome, a.status_code) for a in attempts] == [(OutcomeKind.RETRY, 451), (OutcomeKind.FAILED, 550)]
    assert kinds.count(EventKind.NOTIFICATION_DEAD) == 1 and kinds.count(EventKind.NOTIFICATION_DELIVERED) == 1
    assert kinds.index(EventKind.NOTIFICATION_DEAD) < kinds.index(EventKind.NOTIFICATION_DELIVERED)
    assert received.message["In-Reply-To"] is None and "investigating" in received.message.get_body(
        ("plain",)).get_content().lower()


# --- configuration and secrets ---------------------------------------------------------------

def test_no_recipients_means_no_destinations(start_server: StartServer, certificates: Certificates) -> None:
    server = start_server()
    assert channel_for(server, certificates, email_to=()).destinations == ()  # the start warns (test_channel_setup.py)


@pytest.mark.parametrize("changes,environ,key", [
    ({}, {"SMTP_USER": USERNAME}, "notifications.smtp_password_env"),
    ({}, {"SMTP_PASS": PASSWORD}, "notifications.smtp_username_env"),
    ({"smtp_username_env": None}, ENV, "notifications.smtp_username_env"),
    ({"smtp_server": None}, ENV, "notifications.smtp_server"),
    ({"email_from": "not an address"}, ENV, "notifications.email_from"),
    ({"email_to": ("ok@example.com", "bad\r\nBcc: x@evil.example")}, ENV, "notifications.email_to"),
    ({"smtp_ca_file": "/nonexistent/ca.pem"}, ENV, "notifications.smtp_ca_file"),
])
def test_bad_configuration_fails_at_build_naming_the_key(
        start_server: StartServer, certificates: Certificates,
        changes: dict[str, Any], environ: dict[str, str], key: str) -> None:
    server = start_server()
    with pytest.raises(ConfigError) as raised:
        build(settings_for(server, certificates, **changes), environ)
    assert raised.value.key == key
    assert PASSWORD not in str(raised.value)


def test_the_password_never_appears_in_details_or_logs(
        start_server: StartServer, certificates: Certificates) -> None:
    blob = base64.b64encode(f"\0{USERNAME}\0{PASSWORD}".encode()).decode()
    echoing = f"535 5.7.8 Rejected {PASSWORD} {base64.b64encode(PASSWORD.encode()).decode()} {blob}"
    outcomes = []
    with capture_logs() as logs:
        server = start_server(Script(auth=echoing))
        outcomes.append(channel_for(server, certificates).deliver(delivery()))
        server.script = Script()
        wrong = build(settings_for(server, certificates), {**ENV, "SMTP_PASS": PASSWORD + "x"})
        outcomes.append(wrong.deliver(delivery()))
        outcomes.append(channel_for(server, certificates, smtp_ca_file=None).deliver(delivery()))
        outcomes.append(channel_for(server, certificates).deliver(delivery()))
    assert [o.kind for o in outcomes] == [OutcomeKind.FAILED] * 3 + [OutcomeKind.DELIVERED]
    assert "***" in outcomes[0].detail
    texts = [o.detail for o in outcomes] + [repr(entry) for entry in logs] + [repr(wrong.__dict__)]
    for text in texts:
        assert PASSWORD not in text
        assert base64.b64encode(PASSWORD.encode()).decode() not in text



# --- several destinations ----------------------------------------------------------------------

def test_each_receiver_mails_its_own_recipients_through_the_one_server(
        start_server: StartServer, certificates: Certificates) -> None:
    server = start_server()
    receivers = settings_from_mapping({
        "notifications": {"email_enabled": True, "smtp_server": "127.0.0.1", "email_from": SENDER},
        "receivers": {"team-db": {"email": {"to": [CAROL]}}}}).receivers
    channel = build(settings_for(server, certificates, email_to=(ALICE,)), ENV, receivers)
    assert channel.destinations == ("default", "team-db")
    outcomes = [channel.deliver(delivery("n-1")),
                channel.deliver(dataclasses.replace(delivery("n-2"), destination="team-db"))]
    assert [o.kind for o in outcomes] == [OutcomeKind.DELIVERED, OutcomeKind.DELIVERED]
    assert [m.rcpt_tos for m in server.wait_for(2)] == [(ALICE,), (CAROL,)]


def test_a_receivers_bad_recipient_is_refused_naming_its_key(
        start_server: StartServer, certificates: Certificates) -> None:
    receivers = settings_from_mapping({
        "notifications": {"email_enabled": True, "smtp_server": "127.0.0.1", "email_from": SENDER},
        "receivers": {"team-db": {"email": {"to": ["db@example.com\r\nBcc: x@evil.example"]}}}}).receivers
    with pytest.raises(ConfigError) as refused:
        build(settings_for(start_server(), certificates), ENV, receivers)
    assert refused.value.key == "receivers.team-db.email.to"
