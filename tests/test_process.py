"""The server as a real process: kill -9 loses nothing, SIGTERM drains and exits 0."""
from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from protos import alerts_pb2
from tests.support.http_receiver import HttpReceiver, Recorded, Reply
from actors.sender import PIPELINE_DEPTH, SETTLE_BATCH
from tests.support.process import ROOT, ServerProcess, write_config
from tests.support.server import TIMEOUT, client_for
from tests.support.waiting import wait_until

BURST = 300


def alert(n: int) -> alerts_pb2.AlertRequest:
    return alerts_pb2.AlertRequest(alert_id=f"a-{n}", source="sentinel", title=f"alert {n}", severity=2, type=2)


def test_kill_minus_nine_mid_burst_loses_no_owed_notification(tmp_path):
    def respond(request: Recorded) -> Reply:
        time.sleep(0.01)  # a slow receiver on purpose, so a backlog builds up
        return Reply()

    with HttpReceiver(respond) as rx:
        server = ServerProcess(write_config(tmp_path / "c.toml", tmp_path / "store.db", rx.url + "/hook",
                                            "worker_threads = 1"))
        acked: dict[str, str] = {}
        try:
            server.start()
            with client_for(server.port) as client:
                for n in range(BURST):
                    if n == BURST // 2:
                        server.proc.send_signal(signal.SIGKILL)
                    try:
                        ack = client.alerts.SubmitAlert(alert(n), timeout=TIMEOUT)
                    except grpc.RpcError:
                        break  # the server is gone; this alert was never acknowledged
                    acked[ack.alert_id] = ack.incident_id
            server.wait()
            assert BURST // 2 <= len(acked) < BURST
            before_restart = len(rx.requests)
            assert before_restart < len(acked), "the kill should leave deliveries owed"
            server.start()
            expected = set(acked.values())

            def delivered_incidents() -> set[str]:
                return {r.json()["incident"]["id"] for r in list(rx.requests)}

            wait_until(lambda: expected <= delivered_incidents(), timeout=60, poll=0.05)
        finally:
            server.stop()
    assert expected <= delivered_incidents()
    ids_per_incident = defaultdict(set)
    for request in rx.requests:
        body = request.json()
        ids_per_incident[body["incident"]["id"]].add(body["notification_id"])
    # a repeat is allowed only for a delivery that was in flight, and it carries the same id
    assert all(len(ids) == 1 for ids in ids_per_incident.values())
    # and only for what the one sender had sent but not yet recorded: at most what its worker's
    # pipe held (PIPELINE_DEPTH) and a settle batch (SETTLE_BATCH, none older than SETTLE_WINDOW)
    sends = defaultdict(int)
    for request in rx.requests:
        sends[request.json()["notification_id"]] += 1
    repeats = sum(n - 1 for n in sends.values())
    assert repeats <= PIPELINE_DEPTH + SETTLE_BATCH, repeats


class HeldFirstSend:
    """A receiver responder whose answers wait until ``release`` is set; ``entered`` is set
    as soon as the first send arrives."""

    def __init__(self) -> None:
        self.entered, self.release = threading.Event(), threading.Event()

    def __call__(self, request: Recorded) -> Reply:
        self.entered.set()
        self.release.wait(TIMEOUT)
        return Reply()


def sigterm_while_sending(server: ServerProcess, client, held: HeldFirstSend) -> None:
    """With a send in flight, SIGTERM the server and wait until it reports NOT_SERVING."""
    client.alerts.SubmitAlert(alert(1), timeout=TIMEOUT)
    assert held.entered.wait(TIMEOUT)
    server.proc.send_signal(signal.SIGTERM)
    statuses = health_pb2_grpc.HealthStub(client.channel).Watch(
        health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT)
    assert any(s.status == health_pb2.HealthCheckResponse.NOT_SERVING for s in statuses)


def test_sigterm_stops_intake_lets_in_flight_sends_finish_and_exits_zero(tmp_path):
    held = HeldFirstSend()
    with HttpReceiver(held) as rx:
        server = ServerProcess(write_config(tmp_path / "c.toml", tmp_path / "store.db", rx.url + "/hook"))
        try:
            server.start()
            with client_for(server.port) as client:
                sigterm_while_sending(server, client, held)
                threading.Timer(0.5, held.release.set).start()
                try:
                    client.alerts.SubmitAlert(alert(2), timeout=TIMEOUT)
                    rejected = None
                except grpc.RpcError as error:
                    rejected = error.code()
            assert server.wait() == 0
        finally:
            server.stop()
    assert rejected == grpc.StatusCode.UNAVAILABLE
    assert len(rx.requests) == 1
    assert "Traceback" not in "".join(server.output)


def test_a_second_signal_exits_at_once_and_still_loses_nothing(tmp_path):
    held = HeldFirstSend()
    with HttpReceiver(held) as rx:
        server = ServerProcess(write_config(tmp_path / "c.toml", tmp_path / "store.db", rx.url + "/hook"))
        try:
            server.start()
            with client_for(server.port) as client:
                sigterm_while_sending(server, client, held)
            server.proc.send_signal(signal.SIGTERM)  # the first one is being handled: this one is news
            assert server.wait() == 128 + signal.SIGTERM
            held.release.set()
            server.start()  # the delivery that was in flight is owed again, with the same id
            first, again = rx.wait_for(2)
        finally:
            server.stop()
    assert first.json()["notification_id"] == again.json()["notification_id"]


def test_sigterm_with_a_send_stuck_exits_within_the_grace_and_a_later_start_sends_it_again(tmp_path):
    arrived: list[Recorded] = []  # as they arrive (the receiver records a request once answered)
    answer_the_first = threading.Event()  # set only after the server is gone: it never gets an answer

    def respond(request: Recorded) -> Reply:
        arrived.append(request)
        if len(arrived) == 1:
            answer_the_first.wait(TIMEOUT * 6)
        return Reply()

    with HttpReceiver(respond) as rx:
        config = write_config(tmp_path / "c.toml", tmp_path / "store.db", rx.url + "/hook", "webhook_timeout_secs = 30")
        config.write_text(config.read_text().replace("shutdown_grace_secs = 5", "shutdown_grace_secs = 1"))
        server = ServerProcess(config)
        try:
            server.start()
            with client_for(server.port) as client:
                client.alerts.SubmitAlert(alert(1), timeout=TIMEOUT)
            wait_until(lambda: len(arrived) == 1)
            signalled = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            exit_code = server.wait()
            took = time.monotonic() - signalled
            server.start()  # the abandoned send is owed again: sent with the same id
            wait_until(lambda: len(arrived) == 2)
        finally:
            answer_the_first.set()
            server.stop()
    assert exit_code == 0 and took < 3, (exit_code, took)
    assert arrived[0].headers["webhook-id"] == arrived[1].headers["webhook-id"]
    assert "Traceback" not in "".join(server.output)


def test_a_taken_port_is_a_clear_error_with_its_own_exit_code(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        config = write_config(tmp_path / "c.toml", tmp_path / "store.db", "http://127.0.0.1:9/hook")
        config.write_text(config.read_text().replace("grpc_port = 0", f"grpc_port = {port}"))
        result = subprocess.run([sys.executable, str(ROOT / "server.py"), "--config", str(config)],
                                capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 3
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "Traceback" not in result.stderr


def test_a_second_server_on_the_same_port_or_store_is_refused_and_nothing_goes_out_twice(tmp_path):
    """Before leases had owners, a second server on the same port and store cleared the first
    one's leases before failing on the port, and the delivery in flight went out twice."""
    held = HeldFirstSend()
    with HttpReceiver(held) as rx:
        config = write_config(tmp_path / "c.toml", tmp_path / "store.db", rx.url + "/hook")
        first = ServerProcess(config)
        try:
            first.start()
            with client_for(first.port) as client:
                client.alerts.SubmitAlert(alert(1), timeout=TIMEOUT)
                assert held.entered.wait(TIMEOUT)  # the delivery is in flight, its lease held
                same_port = tmp_path / "same-port.toml"
                same_port.write_text(config.read_text().replace("grpc_port = 0", f"grpc_port = {first.port}"))
                other_port = config  # port 0: a free one, but the same store
                results = [subprocess.run([sys.executable, str(ROOT / "server.py"), "--config", str(path)],
                                          capture_output=True, text=True, timeout=60, cwd=ROOT)
                           for path in (same_port, other_port)]
                held.release.set()
                (delivered,) = rx.wait_for(1)
                client.alerts.SubmitAlert(alert(2), timeout=TIMEOUT)  # the first server still serves
                rx.wait_for(2)
        finally:
            first.stop()
    assert [r.returncode for r in results] == [3, 4]
    assert "in use by another server" in results[1].stderr and "Traceback" not in results[1].stderr
    ids = [r.json()["notification_id"] for r in rx.requests]
    assert len(ids) == len(set(ids)) == 2 and ids[0] == delivered.json()["notification_id"]
