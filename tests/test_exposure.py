"""Safe by default: a non-loopback ``[server] host`` needs TLS or ``[server] allow_insecure``, the
store is created private, and a store others may read gets a warning naming it."""
from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import structlog

from actors.domain.config import settings_from_mapping
from actors.domain.exposure import insecure_exposure, is_loopback
from actors.embed import ConfigError, IncidentManager
from actors.store.sqlite import SqliteStore
from tests.support.process import ROOT, ServerProcess, write_config
from tests.support.server import TIMEOUT

LOOPBACK = ["127.0.0.1", "127.8.9.10", "localhost", "LOCALHOST", "::1", "[::1]"]
EXPOSED = ["0.0.0.0", "::", "192.0.2.7", "10.0.0.1", "example.com", "::ffff:10.0.0.1"]


def settings(host: str, allow_insecure: bool | None = None):
    server: dict = {"host": host}
    if allow_insecure is not None:
        server["allow_insecure"] = allow_insecure
    return settings_from_mapping({"server": server})


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return probe.getsockname()[1]


def run_server(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "server.py"), "--config", str(config), *args],
                          capture_output=True, text=True, timeout=60, cwd=ROOT, stdin=subprocess.DEVNULL)


def exposed_config(tmp_path: Path, port: int = 0, allow: str = "") -> Path:
    config = write_config(tmp_path / "c.toml", tmp_path / "data" / "store.db", "http://127.0.0.1:9/hook",
                          server=allow)
    config.write_text(config.read_text().replace('host = "127.0.0.1"', 'host = "0.0.0.0"')
                      .replace("grpc_port = 0", f"grpc_port = {port}"))
    return config


def assert_refused_naming_the_key(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 2, result.stderr
    assert "server.host" in result.stderr and "[server] host = '0.0.0.0'" in result.stderr
    assert "[server] allow_insecure = true" in result.stderr and '[server] host = "127.0.0.1"' in result.stderr
    assert "Traceback" not in result.stderr and "listening" not in result.stdout


# -- which hosts are exposed --------------------------------------------------------------------

@pytest.mark.parametrize("host", LOOPBACK)
def test_loopback_hosts_need_nothing(host):
    assert is_loopback(host) and insecure_exposure(settings(host)) is None


@pytest.mark.parametrize("host", EXPOSED)
def test_every_other_host_is_exposed_unless_allow_insecure_says_so(host):
    assert not is_loopback(host)
    problem = insecure_exposure(settings(host))
    assert problem is not None and f"[server] host = {host!r}" in problem and "allow_insecure" in problem
    assert insecure_exposure(settings(host, allow_insecure=True)) is None


@pytest.mark.parametrize("host", EXPOSED)
def test_authentication_makes_any_host_safe(host):
    authenticated = settings_from_mapping({"server": {"host": host},
                                           "auth": {"enabled": True, "tokens_file": "tokens"}})
    assert insecure_exposure(authenticated) is None


@pytest.mark.parametrize("host", EXPOSED)
def test_every_other_host_served_with_tls_is_not_exposed(host):
    with_tls = settings_from_mapping({"server": {"host": host, "tls_cert_file": "server.pem",
                                                 "tls_key_file": "server.key"}})
    assert insecure_exposure(with_tls) is None


def test_allow_insecure_must_be_a_boolean():
    with pytest.raises(ConfigError) as error:
        settings_from_mapping({"server": {"allow_insecure": "yes"}})
    assert error.value.key == "server.allow_insecure"


# -- the server as a process --------------------------------------------------------------------

def test_a_non_loopback_host_stops_the_start_with_exit_2_before_anything_listens_or_is_created(tmp_path):
    port = free_port()
    result = run_server(exposed_config(tmp_path, port))
    assert_refused_naming_the_key(result)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT).close()
    assert not (tmp_path / "data").exists()  # the store was not touched


def test_check_config_refuses_a_non_loopback_host_the_same_way_and_accepts_it_when_allowed(tmp_path):
    assert_refused_naming_the_key(run_server(exposed_config(tmp_path), "--check-config"))
    allowed = run_server(exposed_config(tmp_path, allow="allow_insecure = true"), "--check-config")
    assert allowed.returncode == 0 and "configuration OK" in allowed.stdout, allowed.stderr


def test_check_config_accepts_a_loopback_host_without_allow_insecure(tmp_path):
    config = write_config(tmp_path / "c.toml", tmp_path / "store.db", "http://127.0.0.1:9/hook")
    config.write_text(config.read_text().replace('host = "127.0.0.1"', 'host = "localhost"'))
    result = run_server(config, "--check-config")
    assert result.returncode == 0 and "configuration OK" in result.stdout, result.stderr


# -- the embedding API's gRPC server ------------------------------------------------------------

def embedded(tmp_path: Path, **server: object) -> dict:
    return {"server": {"host": "0.0.0.0", "grpc_port": 0, **server}, "state": {"path": str(tmp_path / "store.db")}}


def test_the_embedding_api_refuses_to_serve_grpc_on_a_non_loopback_host(tmp_path):
    with pytest.raises(ConfigError) as error:
        IncidentManager(embedded(tmp_path), grpc=True)
    assert error.value.key == "server.host" and "allow_insecure" in str(error.value)
    IncidentManager(embedded(tmp_path), grpc=False)  # nothing listens: nothing to refuse
    IncidentManager(embedded(tmp_path, allow_insecure=True), grpc=True)


# -- the store's files --------------------------------------------------------------------------

@pytest.fixture
def permissive_umask():
    """A umask that would leave new files readable by the group (restored afterwards)."""
    previous = os.umask(0o002)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_fresh_store_and_its_new_directories_are_private_whatever_the_umask(tmp_path, permissive_umask):
    store = tmp_path / "new" / "deeper" / "store.db"
    with IncidentManager({"state": {"path": str(store)}}) as im:
        im.submit_alert("disk full", "sentinel", "P1", "INFRASTRUCTURE")
        files = {name: mode(Path(f"{store}{name}")) for name in ("", "-wal", "-shm", ".lock")}
    assert files == {"": 0o600, "-wal": 0o600, "-shm": 0o600, ".lock": 0o600}
    assert (mode(tmp_path / "new"), mode(tmp_path / "new" / "deeper")) == (0o700, 0o700)


def test_an_existing_store_and_directory_keep_their_modes(tmp_path, permissive_umask):
    directory = tmp_path / "shared"
    directory.mkdir(mode=0o750)
    os.chmod(directory, 0o750)
    store = directory / "store.db"
    SqliteStore(store).close()
    os.chmod(store, 0o640)
    SqliteStore(store).close()
    assert (mode(directory), mode(store)) == (0o750, 0o640)


def group_readable_store(tmp_path: Path) -> Path:
    store = tmp_path / "store.db"
    SqliteStore(store).close()
    os.chmod(store, 0o640)
    return store


def test_a_group_readable_store_gets_a_warning_naming_it_in_check_config_and_at_start(tmp_path):
    store = group_readable_store(tmp_path)
    config = write_config(tmp_path / "c.toml", store, "http://127.0.0.1:9/hook")
    checked = run_server(config, "--check-config")
    assert checked.returncode == 0, checked.stderr
    expected = f"warning: {store} ([state] path) is readable by its group (mode 0640)"
    assert expected in checked.stderr and f"chmod 600 {store}" in checked.stderr
    server = ServerProcess(config)
    try:
        server.start()
        assert any(expected in line for line in server.output), server.output
    finally:
        server.stop()
    os.chmod(store, 0o600)
    assert "[state] path" not in run_server(config, "--check-config").stderr


def test_the_embedding_api_logs_a_warning_for_a_store_others_may_read(tmp_path):
    store = group_readable_store(tmp_path)
    os.chmod(store, 0o644)
    with structlog.testing.capture_logs() as logs, IncidentManager({"state": {"path": str(store)}}):
        pass
    (warning,) = [entry for entry in logs if entry["event"] == "store_readable_by_others"]
    assert warning["log_level"] == "warning"
    assert f"{store} ([state] path) is readable by its group and others (mode 0644)" in warning["warning"]
