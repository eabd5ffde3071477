"""TLS on the gRPC port: ``[server] tls_cert_file``/``tls_key_file``, mutual TLS with
``tls_client_ca_file``, their checks in ``--check-config``, re-reading them on SIGHUP, and
``imctl --cacert/--cert/--key``.

Certificates come from throw-away CAs made in the test (tests/support/certs.py); every server
and client is on 127.0.0.1."""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from actors.api.server import ApiServer
from actors.cli import main as imctl
from actors.domain.config import ConfigError, settings_from_mapping
from actors.engine import Engine
from protos import alerts_pb2, alerts_pb2_grpc, incidents_pb2, incidents_pb2_grpc
from tests.support.certs import Authority, Issued
from tests.support.process import ROOT, ServerProcess, write_config
from tests.support.server import TIMEOUT, make_settings
from tests.support.waiting import wait_until


@pytest.fixture(scope="module")
def ca() -> Authority:
    return Authority("Test CA")


@pytest.fixture(scope="module")
def other_ca() -> Authority:
    return Authority("Other CA")


def alert(n: int) -> alerts_pb2.AlertRequest:
    return alerts_pb2.AlertRequest(alert_id=f"tls-{n}", source="sentinel", title=f"alert {n}", severity=2, type=2)


def tls_channel(port: int, trusted: bytes, client: Issued | None = None) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(trusted, client.key if client else None,
                                               client.cert if client else None)
    return grpc.secure_channel(f"127.0.0.1:{port}", credentials)


def submit(channel: grpc.Channel, n: int) -> alerts_pb2.AlertAck:
    with channel:
        return alerts_pb2_grpc.AlertIngestionStub(channel).SubmitAlert(alert(n), timeout=TIMEOUT)


def refused(channel: grpc.Channel) -> grpc.StatusCode:
    """The status of a health check on ``channel`` that is expected to fail at the handshake."""
    with channel, pytest.raises(grpc.RpcError) as error:
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=TIMEOUT)
    return error.value.code()


@contextlib.contextmanager
def tls_server(tmp_path: Path, server_cert: Issued, client_ca: Path | None = None,
               **sections: dict[str, object]) -> Iterator[ApiServer]:
    server = {"tls_cert_file": str(server_cert.cert_file), "tls_key_file": str(server_cert.key_file)}
    if client_ca:
        server["tls_client_ca_file"] = str(client_ca)
    settings = make_settings(tmp_path, server=server, **sections)
    engine = Engine(settings).start()
    api = ApiServer(engine, settings.server).start()
    try:
        yield api
    finally:
        api.stop(0)
        engine.stop(grace_secs=1)


# -- serving TLS ---------------------------------------------------------------------------------

def test_a_client_trusting_the_ca_is_served(tmp_path, ca):
    with tls_server(tmp_path, ca.issue(tmp_path, "server")) as api:
        assert submit(tls_channel(api.port, ca.pem), 1).status == alerts_pb2.ACCEPTED


def test_a_client_trusting_another_ca_or_speaking_plaintext_is_refused(tmp_path, ca, other_ca):
    with tls_server(tmp_path, ca.issue(tmp_path, "server")) as api:
        assert refused(tls_channel(api.port, other_ca.pem)) == grpc.StatusCode.UNAVAILABLE
        assert refused(grpc.insecure_channel(f"127.0.0.1:{api.port}")) == grpc.StatusCode.UNAVAILABLE


def test_mutual_tls_serves_only_clients_with_a_certificate_the_client_ca_signed(tmp_path, ca, other_ca):
    client_ca = ca.write(tmp_path / "client-ca.pem")
    with tls_server(tmp_path, ca.issue(tmp_path, "server"), client_ca) as api:
        assert refused(tls_channel(api.port, ca.pem)) == grpc.StatusCode.UNAVAILABLE
        stranger = other_ca.issue(tmp_path, "stranger")
        assert refused(tls_channel(api.port, ca.pem, stranger)) == grpc.StatusCode.UNAVAILABLE
        assert submit(tls_channel(api.port, ca.pem, ca.issue(tmp_path, "client")), 1).status == alerts_pb2.ACCEPTED


# -- configuration --------------------------------------------------------------------------------

@pytest.mark.parametrize(("given", "missing"), [
    ({"tls_cert_file": "c.pem"}, "server.tls_key_file"),
    ({"tls_key_file": "c.key"}, "server.tls_cert_file"),
    ({"tls_client_ca_file": "ca.pem"}, "server.tls_client_ca_file"),
])
def test_a_certificate_and_its_key_come_together(given, missing):
    with pytest.raises(ConfigError) as error:
        settings_from_mapping({"server": given})
    assert error.value.key == missing


def check_config(tmp_path: Path, server: str) -> subprocess.CompletedProcess:
    config = write_config(tmp_path / "c.toml", tmp_path / "data" / "store.db", "http://127.0.0.1:9/hook",
                          server=server)
    return subprocess.run([sys.executable, str(ROOT / "server.py"), "--config", str(config), "--check-config"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT, stdin=subprocess.DEVNULL)


def tls_keys(cert: Path, key: Path) -> str:
    return f'tls_cert_file = "{cert}"\ntls_key_file = "{key}"'


def test_check_config_accepts_a_valid_certificate_quietly(tmp_path, ca):
    good = ca.issue(tmp_path, "server", days=30)
    result = check_config(tmp_path, tls_keys(good.cert_file, good.key_file))
    assert result.returncode == 0, result.stderr
    assert "tls_cert_file" not in result.stderr


def test_check_config_refuses_a_key_that_is_not_the_certificates(tmp_path, ca):
    one, other = ca.issue(tmp_path, "one"), ca.issue(tmp_path, "other")
    result = check_config(tmp_path, tls_keys(one.cert_file, other.key_file))
    assert result.returncode == 2, result.stderr
    assert "server.tls_key_file" in result.stderr and "not the private key" in result.stderr
    assert other.key.decode().splitlines()[1] not in result.stderr  # the key itself is never shown


def test_check_config_refuses_an_expired_certificate_naming_the_key(tmp_path, ca):
    expired = ca.issue(tmp_path, "server", days=-1)
    result = check_config(tmp_path, tls_keys(expired.cert_file, expired.key_file))
    assert result.returncode == 2, result.stderr
    assert "server.tls_cert_file" in result.stderr and "expired" in result.stderr


def test_check_config_refuses_a_missing_file_naming_the_key(tmp_path, ca):
    good = ca.issue(tmp_path, "server")
    result = check_config(tmp_path, tls_keys(good.cert_file, tmp_path / "absent.key"))
    assert result.returncode == 2, result.stderr
    assert "server.tls_key_file" in result.stderr and "absent.key" in result.stderr


def test_check_config_warns_about_a_certificate_expiring_within_14_days(tmp_path, ca):
    soon = ca.issue(tmp_path, "server", days=10)
    result = check_config(tmp_path, tls_keys(soon.cert_file, soon.key_file))
    assert result.returncode == 0, result.stderr
    assert "warning" in result.stderr and "tls_cert_file" in result.stderr and "expires on" in result.stderr


def test_check_config_warns_about_a_key_file_others_may_read(tmp_path, ca):
    good = ca.issue(tmp_path, "server", days=30)
    good.key_file.chmod(0o644)
    result = check_config(tmp_path, tls_keys(good.cert_file, good.key_file))
    assert result.returncode == 0, result.stderr
    assert "[server] tls_key_file" in result.stderr and f"chmod 600 {good.key_file}" in result.stderr


def test_the_server_does_not_start_with_an_expired_certificate(tmp_path, ca):
    expired = ca.issue(tmp_path, "server", days=-1)
    config = write_config(tmp_path / "c.toml", tmp_path / "data" / "store.db", "http://127.0.0.1:9/hook",
                          server=tls_keys(expired.cert_file, expired.key_file))
    result = subprocess.run([sys.executable, str(ROOT / "server.py"), "--config", str(config)],
                            capture_output=True, text=True, timeout=60, cwd=ROOT, stdin=subprocess.DEVNULL)
    assert result.returncode == 2 and "server.tls_cert_file" in result.stderr, result.stderr
    assert not (tmp_path / "data").exists()  # refused before the store was touched


# -- reloading on SIGHUP --------------------------------------------------------------------------

def test_a_reload_keeps_the_files_in_service_when_the_new_ones_are_unusable(tmp_path, ca, other_ca):
    serving = ca.issue(tmp_path, "serving")
    with tls_server(tmp_path, serving) as api:
        expired = ca.issue(tmp_path, "expired", days=-1)  # clients would refuse it: it is not served
        shutil.copy(expired.cert_file, serving.cert_file)
        shutil.copy(expired.key_file, serving.key_file)
        api.reload_tls()
        assert submit(tls_channel(api.port, ca.pem), 1).status == alerts_pb2.ACCEPTED
        renewed = other_ca.issue(tmp_path, "renewed")
        shutil.copy(renewed.cert_file, serving.cert_file)
        shutil.copy(renewed.key_file, serving.key_file)
        api.reload_tls()
        assert submit(tls_channel(api.port, other_ca.pem), 2).status == alerts_pb2.ACCEPTED


def test_sighup_rereads_the_certificate_and_keeps_open_streams(tmp_path, ca, other_ca):
    first = ca.issue(tmp_path, "first")
    serving = Issued(tmp_path / "serving.pem", tmp_path / "serving.key")
    shutil.copy(first.cert_file, serving.cert_file)
    shutil.copy(first.key_file, serving.key_file)
    config = write_config(tmp_path / "c.toml", tmp_path / "store.db", "http://127.0.0.1:9/hook",
                          server=tls_keys(serving.cert_file, serving.key_file))
    server = ServerProcess(config).start()
    try:
        watching = tls_channel(server.port, ca.pem)
        stream = incidents_pb2_grpc.IncidentServiceStub(watching).WatchIncidents(
            incidents_pb2.WatchIncidentsRequest(), timeout=4 * TIMEOUT)
        stream.initial_metadata()  # subscribed
        received = ThreadPoolExecutor(1).submit(lambda: next(iter(stream)))

        renewed = other_ca.issue(tmp_path, "renewed")
        shutil.copy(renewed.cert_file, serving.cert_file)
        shutil.copy(renewed.key_file, serving.key_file)
        assert server.proc is not None
        os.kill(server.proc.pid, signal.SIGHUP)

        def serves_the_new_certificate() -> bool:
            try:
                submit(tls_channel(server.port, other_ca.pem), 1)
                return True
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.UNAVAILABLE
                return False

        wait_until(serves_the_new_certificate, timeout=2 * TIMEOUT, poll=0.1)
        assert refused(tls_channel(server.port, ca.pem)) == grpc.StatusCode.UNAVAILABLE
        event = received.result(timeout=TIMEOUT)  # the stream opened before the reload still delivers
        assert event.entry.kind == "created"
        stream.cancel()
        watching.close()
        assert server.proc.poll() is None, "".join(server.output)
    finally:
        server.stop()


# -- imctl --------------------------------------------------------------------------------------------

def imctl_list(port: int, *options: str) -> int:
    return imctl(["--server", f"127.0.0.1:{port}", *options, "incidents", "list"])


def test_imctl_speaks_tls_with_cacert_and_fails_clearly_without_it(tmp_path, ca, other_ca, capsys):
    with tls_server(tmp_path, ca.issue(tmp_path, "server")) as api:
        assert imctl_list(api.port, "--cacert", str(ca.write(tmp_path / "ca.pem"))) == 0, capsys.readouterr().err
        capsys.readouterr()
        assert imctl_list(api.port) == 1
        plaintext = capsys.readouterr().err
        assert plaintext.startswith("error: UNAVAILABLE: ") and "for TLS give --cacert" in plaintext
        assert imctl_list(api.port, "--cacert", str(other_ca.write(tmp_path / "other-ca.pem"))) == 1
        untrusted = capsys.readouterr().err
        assert untrusted.startswith("error: UNAVAILABLE: ") and "does --cacert hold the CA" in untrusted


def test_imctl_under_mutual_tls_needs_cert_and_key(tmp_path, ca, other_ca, capsys):
    ca_file = str(ca.write(tmp_path / "ca.pem"))
    with tls_server(tmp_path, ca.issue(tmp_path, "server"), ca.write(tmp_path / "client-ca.pem")) as api:
        assert imctl_list(api.port, "--cacert", ca_file) == 1
        assert capsys.readouterr().err.startswith("error: UNAVAILABLE: ")
        stranger = other_ca.issue(tmp_path, "stranger")
        assert imctl_list(api.port, "--cacert", ca_file, "--cert", str(stranger.cert_file),
                          "--key", str(stranger.key_file)) == 1
        assert capsys.readouterr().err.startswith("error: UNAVAILABLE: ")
        client = ca.issue(tmp_path, "client")
        assert imctl_list(api.port, "--cacert", ca_file, "--cert", str(client.cert_file),
                          "--key", str(client.key_file)) == 0, capsys.readouterr().err


def test_imctl_sends_its_token_over_tls(tmp_path, ca, monkeypatch, capsys):
    token = "responder-secret-token-over-tls-0123456789"
    tokens = tmp_path / "tokens"
    tokens.write_text(f"ana responder {hashlib.sha256(token.encode()).hexdigest()}\n")
    tokens.chmod(0o600)
    ca_file = str(ca.write(tmp_path / "ca.pem"))
    monkeypatch.delenv("IMCTL_TOKEN", raising=False)
    with tls_server(tmp_path, ca.issue(tmp_path, "server"),
                    auth={"enabled": True, "tokens_file": str(tokens)}) as api:
        assert imctl_list(api.port, "--cacert", ca_file) == 1
        assert capsys.readouterr().err.startswith("error: UNAUTHENTICATED: ")
        (tmp_path / "token").write_text(token + "\n")
        assert imctl_list(api.port, "--cacert", ca_file, "--token-file", str(tmp_path / "token")) == 0
        monkeypatch.setenv("IMCTL_TOKEN", token)
        assert imctl_list(api.port, "--cacert", ca_file) == 0
        assert token not in "".join(capsys.readouterr())


@pytest.mark.parametrize("option", ["--cacert", "--cert", "--key"])
def test_imctl_refuses_a_missing_or_non_pem_file_naming_the_option_not_the_content(tmp_path, ca, option, capsys):
    client = ca.issue(tmp_path, "client")
    given = {"--cacert": str(ca.write(tmp_path / "ca.pem")), "--cert": str(client.cert_file),
             "--key": str(client.key_file)}
    given[option] = str(tmp_path / "absent.pem")
    assert imctl_list(9, *(part for pair in given.items() for part in pair)) == 2
    assert f"{option} {tmp_path / 'absent.pem'}: cannot read it" in capsys.readouterr().err
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("secret-content-that-is-not-pem\n")
    given[option] = str(garbage)
    assert imctl_list(9, *(part for pair in given.items() for part in pair)) == 2
    refused = capsys.readouterr().err
    assert f"{option} {garbage}: not a PEM file" in refused and "secret-content" not in refused


def test_imctl_refuses_a_cert_without_its_key_and_the_reverse(tmp_path, ca, capsys):
    client = ca.issue(tmp_path, "client")
    for option, path in (("--cert", client.cert_file), ("--key", client.key_file)):
        assert imctl_list(9, option, str(path)) == 2
        assert "--cert and --key go together" in capsys.readouterr().err
