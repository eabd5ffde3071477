"""Bearer tokens with roles: every RPC × every role against a real gRPC server, the open
health and reflection services, the token's name as the timeline's actor, imctl's token,
the tokens file's checks, and no token in any log line."""
from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from actors.api import auth
from actors.cli import main as imctl
from actors.domain.errors import ConfigError
from actors.domain.tokens import ROLES, load_tokens
from protos import incidents_pb2
from tests.support.process import ROOT, ServerProcess, write_config
from tests.support.server import TIMEOUT, client_for, make_settings, running

TOKENS = {role: f"{role}-secret-{'x' * 20}-token" for role in ROLES}
WRONG_TOKEN = "not-a-known-token-at-all-0123456789"
NAMES = {role: f"{role}-bot" for role in ROLES}
READS = {"GetIncident", "ListIncidents", "WatchIncidents", "GetTimeline", "GetStats", "ListNotifications",
         "GetNotification", "RenderTemplate", "ListSilences", "GetSilence"}
#: What each role may call, written out from the specification (not read from actors/api/auth.py).
MAY_CALL = {
    "ingest": {"SubmitAlert", "SubmitAlerts", "StreamAlerts"},
    "viewer": READS,
    "responder": READS | {"CreateIncident", "UpdateIncident", "TransitionIncident", "ResolveIncident", "AddNote",
                          "RequeueNotification", "SendTestNotification", "CreateSilence", "UpdateSilence",
                          "ExpireSilence"},
    "admin": {m.name for s in auth.SERVICES for m in s.methods},
}
DENIED = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED}


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def write_tokens(path: Path, mode: int = 0o600) -> Path:
    path.write_text("# name role sha256\n\n" + "".join(
        f"{NAMES[role]} {role} {digest(TOKENS[role])}\n" for role in ROLES))
    os.chmod(path, mode)
    return path


def bearer(token: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()


@contextlib.contextmanager
def auth_server(tmp_path: Path) -> Iterator[int]:
    """A real server with every role's token and the admin service on; yields its port."""
    settings = make_settings(tmp_path, server={"admin_enabled": True},
                             auth={"enabled": True, "tokens_file": str(write_tokens(tmp_path / "tokens"))})
    with running(settings) as (_, api, _client):
        yield api.port


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[int]:
    """Shared by the RPC table (whose admin calls may inject faults): tests needing a healthy
    engine use their own :func:`auth_server`."""
    with auth_server(tmp_path_factory.mktemp("auth")) as port:
        yield port


def call(channel: grpc.Channel, service, method, token: str | None) -> grpc.StatusCode:
    """Call ``method`` with an empty request (an empty stream for a request stream); its status."""
    path = auth.method_path(service, method.name)
    metadata = bearer(token)
    kind = (method.client_streaming, method.server_streaming)
    try:
        if kind == (False, False):
            channel.unary_unary(path)(b"", timeout=TIMEOUT, metadata=metadata)
        elif kind == (True, False):
            channel.stream_unary(path)(iter(()), timeout=TIMEOUT, metadata=metadata)
        else:  # a response stream: a watch that is allowed runs until its short deadline
            requests = iter(()) if method.client_streaming else b""
            invoke = channel.stream_stream(path) if method.client_streaming else channel.unary_stream(path)
            list(invoke(requests, timeout=1.0, metadata=metadata))
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


RPCS = [(s, m) for s in auth.SERVICES for m in s.methods]


@pytest.mark.parametrize("service,method", RPCS, ids=[f"{s.name}.{m.name}" for s, m in RPCS])
def test_every_rpc_answers_each_role_no_token_and_a_wrong_token_as_specified(server, service, method):
    with client_for(server) as client:
        assert call(client.channel, service, method, None) == grpc.StatusCode.UNAUTHENTICATED
        assert call(client.channel, service, method, WRONG_TOKEN) == grpc.StatusCode.UNAUTHENTICATED
        for role in ROLES:
            code = call(client.channel, service, method, TOKENS[role])
            if method.name in MAY_CALL[role]:
                assert code not in DENIED, (role, code)
            else:
                assert code == grpc.StatusCode.PERMISSION_DENIED, (role, code)


def test_every_rpc_of_every_service_has_roles_and_a_missing_one_is_caught(monkeypatch):
    assert auth.unassigned() == []
    assert {s.name for s in auth.SERVICES} == set(auth.ALLOWED)
    trimmed = {**auth.ALLOWED, "IncidentService": {k: v for k, v in auth.ALLOWED["IncidentService"].items()
                                                   if k != "AddNote"}}
    monkeypatch.setattr(auth, "ALLOWED", trimmed)
    assert auth.unassigned() == ["/incidents.IncidentService/AddNote"]


def test_a_token_must_be_sent_as_bearer(server):
    with client_for(server) as client:
        with pytest.raises(grpc.RpcError) as error:
            client.incidents.ListIncidents(incidents_pb2.ListIncidentsRequest(), timeout=TIMEOUT,
                                           metadata=(("authorization", f"Basic {TOKENS['admin']}"),))
        assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert TOKENS["admin"] not in (error.value.details() or "")


def test_health_and_reflection_answer_without_a_token(server):
    with client_for(server) as client:
        reply = health_pb2_grpc.HealthStub(client.channel).Check(health_pb2.HealthCheckRequest(), timeout=TIMEOUT)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        answers = reflection_pb2_grpc.ServerReflectionStub(client.channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=TIMEOUT)
        names = {s.name for answer in answers for s in answer.list_services_response.service}
        assert "incidents.IncidentService" in names


def test_closed_health_and_reflection_need_a_token(tmp_path):
    settings = make_settings(tmp_path, auth={"enabled": True, "tokens_file": str(write_tokens(tmp_path / "t")),
                                             "open_health": False, "open_reflection": False})
    with running(settings) as (_, _api, client):
        stub = health_pb2_grpc.HealthStub(client.channel)
        with pytest.raises(grpc.RpcError) as error:
            stub.Check(health_pb2.HealthCheckRequest(), timeout=TIMEOUT)
        assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert stub.Check(health_pb2.HealthCheckRequest(), timeout=TIMEOUT,
                          metadata=bearer(TOKENS["ingest"])).status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as error:
            list(reflection_pb2_grpc.ServerReflectionStub(client.channel).ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=TIMEOUT))
        assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_the_timeline_actor_is_the_tokens_name_and_a_given_actor_is_on_whose_behalf(tmp_path):
    name = NAMES["responder"]
    metadata = bearer(TOKENS["responder"])
    with auth_server(tmp_path) as port, client_for(port) as client:
        stub = client.incidents
        incident = stub.CreateIncident(incidents_pb2.CreateIncidentRequest(
            title="disk full", severity=incidents_pb2.P2, type=incidents_pb2.AVAILABILITY, source="manual",
            actor="mallory"), timeout=TIMEOUT, metadata=metadata)
        stub.AddNote(incidents_pb2.AddNoteRequest(id=incident.id, text="looking", author=name), timeout=TIMEOUT,
                     metadata=metadata)
        stub.UpdateIncident(incidents_pb2.UpdateIncidentRequest(id=incident.id, title="disk nearly full"),
                            timeout=TIMEOUT, metadata=metadata)
        stub.TransitionIncident(incidents_pb2.TransitionIncidentRequest(
            id=incident.id, to_state=incidents_pb2.INVESTIGATING), timeout=TIMEOUT, metadata=metadata)
        stub.ResolveIncident(incidents_pb2.ResolveIncidentRequest(id=incident.id, resolved_by="ana"),
                             timeout=TIMEOUT, metadata=metadata)
        timeline = stub.GetTimeline(incidents_pb2.GetTimelineRequest(id=incident.id), timeout=TIMEOUT,
                                    metadata=bearer(TOKENS["viewer"]))
    actors = [entry.actor for entry in timeline.entries]
    assert actors[0] == f"{name} (on behalf of mallory)"
    assert actors[-1] == f"{name} (on behalf of ana)"
    assert actors[1:-1] and set(actors[1:-1]) == {name}, actors  # note, update, transition


# -- the tokens file --------------------------------------------------------------------------------

@pytest.mark.parametrize("content,words", [
    ("ana viewer\n", "expected 'name role sha256hex', got 2 fields"),
    (f"ana boss {'a' * 64}\n", "unknown role"),
    (f"ana viewer {TOKENS['viewer']}\n", "64 hex"),
    (f"ana viewer {'a' * 64}\nana admin {'b' * 64}\n", "line 2: the name ana is used twice"),
    (f"ana viewer {'a' * 64}\nbob admin {'a' * 64}\n", "line 2: the same token digest is listed twice"),
    (f"a/b viewer {'a' * 64}\n", "a name is"),
    ("# nothing\n", "lists no tokens"),
])
def test_a_bad_tokens_file_is_refused_naming_the_key_file_and_line(tmp_path, content, words):
    path = tmp_path / "tokens"
    path.write_text(content)
    with pytest.raises(ConfigError) as error:
        load_tokens(path)
    assert error.value.key == "auth.tokens_file" and str(path) in str(error.value)
    assert words in str(error.value) and TOKENS["viewer"] not in str(error.value)


def test_an_unreadable_tokens_file_and_a_missing_one_are_refused(tmp_path):
    with pytest.raises(ConfigError) as error:
        load_tokens(tmp_path / "absent")
    assert error.value.key == "auth.tokens_file" and "cannot read" in str(error.value)
    with pytest.raises(ConfigError) as error:
        make_settings(tmp_path, auth={"enabled": True})
    assert error.value.key == "auth.tokens_file"


def run_check_config(config: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "server.py"), "--config", str(config), "--check-config"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT, stdin=subprocess.DEVNULL)


def auth_config(tmp_path: Path, tokens: Path, log_level: str = "warning") -> Path:
    config = write_config(tmp_path / "c.toml", tmp_path / "store.db", "http://127.0.0.1:9/hook",
                          extra=f'\n[auth]\nenabled = true\ntokens_file = "{tokens}"\n')
    config.write_text(config.read_text().replace('log_level = "warning"', f'log_level = "{log_level}"'))
    return config


def test_check_config_refuses_a_bad_tokens_file_and_warns_about_one_others_may_read(tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text(f"ana viewer {TOKENS['viewer']}\n")
    refused = run_check_config(auth_config(tmp_path, tokens))
    assert refused.returncode == 2 and "auth.tokens_file" in refused.stderr and "line 1" in refused.stderr
    assert TOKENS["viewer"] not in refused.stderr + refused.stdout
    write_tokens(tokens, mode=0o640)
    warned = run_check_config(auth_config(tmp_path, tokens))
    assert warned.returncode == 0, warned.stderr
    assert f"{tokens} ([auth] tokens_file) is readable by its group" in warned.stderr


# -- imctl, and the logs of a real server process -------------------------------------------------

def test_imctl_sends_its_token_and_no_token_reaches_any_log_line(tmp_path, monkeypatch, capsys):
    server = ServerProcess(auth_config(tmp_path, write_tokens(tmp_path / "tokens"), log_level="debug")).start()
    address = f"127.0.0.1:{server.port}"
    try:
        monkeypatch.delenv("IMCTL_TOKEN", raising=False)
        assert imctl(["--server", address, "incidents", "list"]) == 1
        assert "UNAUTHENTICATED" in capsys.readouterr().err
        monkeypatch.setenv("IMCTL_TOKEN", TOKENS["responder"])
        assert imctl(["--server", address, "incidents", "create", "--title", "t", "--severity", "P3",
                      "--type", "performance"]) == 0
        assert imctl(["--server", address, "alert", "--title", "t", "--severity", "P3", "--type", "performance",
                      "--source", "s"]) == 1
        assert "PERMISSION_DENIED" in capsys.readouterr().err
        monkeypatch.setenv("IMCTL_TOKEN", WRONG_TOKEN)
        assert imctl(["--server", address, "incidents", "list"]) == 1
        (tmp_path / "ingest-token").write_text(TOKENS["ingest"] + "\n")
        assert imctl(["--server", address, "--token-file", str(tmp_path / "ingest-token"), "alert", "--title", "t",
                      "--severity", "P3", "--type", "performance", "--source", "s"]) == 0
        printed = capsys.readouterr()
    finally:
        assert server.proc is not None
        server.proc.terminate()
        server.wait()
    logs = "".join(server.output)
    assert "listening on" in logs  # the output was captured
    for token in (*TOKENS.values(), WRONG_TOKEN):
        assert token not in logs and token not in printed.out + printed.err


def test_imctl_refuses_an_empty_or_unreadable_token_file(tmp_path, capsys):
    (tmp_path / "empty").write_text("\n")
    assert imctl(["--token-file", str(tmp_path / "empty"), "incidents", "list"]) == 2
    assert "the file is empty" in capsys.readouterr().err
    assert imctl(["--token-file", str(tmp_path / "absent"), "incidents", "list"]) == 2
    assert "cannot read it" in capsys.readouterr().err
