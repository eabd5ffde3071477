"""No client can starve the others (actors/api/admission.py): against a real server on
loopback with real clients, each way one kind of caller used to hold up the rest — open
streams, test sends to a slow webhook, intake callers queueing inside gRPC — now leaves intake
answering, and the caps answer RESOURCE_EXHAUSTED naming the limit."""
from __future__ import annotations

import threading
from typing import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from actors.api.admission import peer_host
from actors.domain.config import ConfigError, settings_from_mapping
from actors.domain.models import utc_now
from protos import alerts_pb2, incidents_pb2, notifications_pb2
from tests.support.http_receiver import HttpReceiver, Recorded, Reply
from tests.support.server import TIMEOUT, make_settings, running
from tests.support.waiting import wait_until
from tests.test_api import alert
from tests.test_auth import TOKENS, bearer, write_tokens

#: Seconds within which a call must answer that starvation would hold up until it gave up.
PROMPT = 5.0
#: Deadline of the streams a test keeps open (long past the test's own length).
STREAM_SECS = 30.0
P0, P4 = 1, 5  # severities on the wire


class IdleAlertStream:
    """A StreamAlerts call that sends one alert, and after its ack nothing until :meth:`cancel`."""

    def __init__(self, client, alert_id: str, metadata=()) -> None:
        self.closed = threading.Event()
        self.call = client.alerts.StreamAlerts(self._requests(alert_id), metadata=metadata, timeout=STREAM_SECS)

    def _requests(self, alert_id: str) -> Iterator[alerts_pb2.AlertRequest]:
        yield alert(alert_id, title=f"stream {alert_id}", severity=P4)
        self.closed.wait(STREAM_SECS)

    def first_ack(self) -> alerts_pb2.AlertAck:
        return next(self.call)

    def cancel(self) -> None:
        self.closed.set()
        self.call.cancel()


def watch(client, metadata=()):
    """A WatchIncidents call for P0 incidents, not yet waited on."""
    return client.incidents.WatchIncidents(incidents_pb2.WatchIncidentsRequest(min_severity=P0),
                                           metadata=metadata, timeout=STREAM_SECS)


def refusal(call) -> tuple[grpc.StatusCode, str]:
    """The status a response stream ended with before its first response."""
    with pytest.raises(grpc.RpcError) as info:
        next(call)
    return info.value.code(), info.value.details()


def tiny_settings(tmp_path, streams: int = 1, **sections):
    """A server of 3 + ``streams`` worker threads: 2 for unary calls (1 of them for intake),
    ``streams`` for streams (all of them for one client) and 1 for a test send."""
    return make_settings(tmp_path, server={"max_workers": 2, "max_streams": streams, "max_streams_per_client": streams,
                                           "max_test_sends": 1, "max_test_sends_per_client": 1},
                         processing={"intake_limit": 1}, **sections)


def auth_settings(tmp_path, **server):
    return make_settings(tmp_path, server=server,
                         auth={"enabled": True, "tokens_file": str(write_tokens(tmp_path / "tokens"))})


def test_intake_and_stats_answer_with_64_watchers_and_64_idle_alert_streams_open(tmp_path):
    ingest, viewer = bearer(TOKENS["ingest"]), bearer(TOKENS["viewer"])
    with running(auth_settings(tmp_path)) as (_, _, client):  # default caps: 64 streams per token
        streams = [IdleAlertStream(client, f"s-{i}", ingest) for i in range(64)]
        watchers = []
        try:
            assert {s.first_ack().status for s in streams} == {alerts_pb2.ACCEPTED}
            watchers = [watch(client, viewer) for _ in range(64)]
            for watcher in watchers:
                watcher.initial_metadata()  # sent once the watch is live
            ack = client.alerts.SubmitAlert(alert("probe"), metadata=ingest, timeout=PROMPT)
            stats = client.notifications.GetStats(notifications_pb2.StatsRequest(), metadata=viewer, timeout=PROMPT)
            seen = {next(watcher).incident.id for watcher in watchers}
        finally:
            for stream in streams:
                stream.cancel()
            for watcher in watchers:
                watcher.cancel()
    assert ack.status == alerts_pb2.ACCEPTED and ack.new_incident
    assert {"router", "processor"} <= {a.name for a in stats.actors}
    assert seen == {ack.incident_id}  # every watcher was live, not waiting for a thread


def opens_a_stream(client) -> bool:
    """Whether a StreamAlerts call gets its alert acked now rather than refused for a cap."""
    try:
        return next(client.alerts.StreamAlerts(iter([alert("probe")]), timeout=PROMPT)).alert_id == "probe"
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error
        return False


def test_a_host_over_its_stream_cap_is_refused_naming_the_limit_until_one_of_its_streams_ends(tmp_path):
    settings = tiny_settings(tmp_path, streams=2)
    with running(settings) as (_, _, client):
        other, watcher = watch(client), watch(client)
        opened: list = [other, watcher]
        try:
            for call in opened:
                call.initial_metadata()
            opened += [IdleAlertStream(client, f"over-{i}") for i in range(settings.server.threads)]
            refusals = {refusal(stream.call) for stream in opened[2:]}
            ack = client.alerts.SubmitAlert(alert("unary"), timeout=PROMPT)
            watcher.cancel()

            def an_idle_stream_opens() -> bool:
                opened.append(IdleAlertStream(client, "idle"))
                try:
                    return opened[-1].first_ack().status == alerts_pb2.ACCEPTED
                except grpc.RpcError as error:
                    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error
                    return False
            wait_until(an_idle_stream_opens)  # in the slot of the cancelled watch
            assert not opens_a_stream(client)
            opened[-1].cancel()
            wait_until(lambda: opens_a_stream(client))  # in the slot of the cancelled alert stream
        finally:
            for call in opened:
                call.cancel()
    ((code, details),) = refusals
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert details == ("too many streams at once from host 127.0.0.1: [server] max_streams_per_client is 2; "
                       "retry when one has ended")
    assert ack.status == alerts_pb2.ACCEPTED


@pytest.mark.parametrize("with_token", [False, True], ids=["open", "with a token"])
def test_health_watches_hold_no_thread_so_they_are_not_capped(tmp_path, with_token):
    auth = {"enabled": True, "tokens_file": str(write_tokens(tmp_path / "tokens")), "open_health": False}
    settings = tiny_settings(tmp_path, **({"auth": auth} if with_token else {}))
    metadata = bearer(TOKENS["admin"]) if with_token else ()
    with running(settings) as (_, _, client):
        health = health_pb2_grpc.HealthStub(client.channel)
        calls, statuses = [], set()
        try:
            for _ in range(3 * settings.server.threads):  # one after the other: a burst would find every thread busy
                calls.append(health.Watch(health_pb2.HealthCheckRequest(), metadata=metadata, timeout=STREAM_SECS))
                statuses.add(next(calls[-1]).status)
            calls.append(watch(client, metadata))  # the one stream allowed is still free
            calls[-1].initial_metadata()
            ack = client.alerts.SubmitAlert(alert("probe"), metadata=metadata, timeout=PROMPT)
            seen = next(calls[-1]).incident.id
        finally:
            for call in calls:
                call.cancel()
    assert statuses == {health_pb2.HealthCheckResponse.SERVING}
    assert ack.status == alerts_pb2.ACCEPTED and seen == ack.incident_id


def test_streams_are_capped_per_token_and_in_total(tmp_path):
    viewer, responder, admin = (bearer(TOKENS[role]) for role in ("viewer", "responder", "admin"))
    with running(auth_settings(tmp_path, max_streams=3, max_streams_per_client=2)) as (_, _, client):
        admitted = [watch(client, viewer), watch(client, viewer)]
        try:
            for call in admitted:
                call.initial_metadata()
            per_token = refusal(watch(client, viewer))
            admitted.append(watch(client, responder))
            admitted[-1].initial_metadata()
            in_total = refusal(watch(client, admin))
            ack = client.alerts.SubmitAlert(alert("probe"), metadata=admin, timeout=PROMPT)
            seen = [next(call).incident.id for call in admitted]
        finally:
            for call in admitted:
                call.cancel()
    assert per_token[0] == in_total[0] == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "from token viewer-bot: [server] max_streams_per_client is 2" in per_token[1]
    assert "[server] max_streams is 3" in in_total[1]
    assert seen == [ack.incident_id] * 3


def test_test_sends_to_a_slow_webhook_are_capped_per_client_and_never_hold_up_intake(tmp_path):
    arrived, release = threading.Event(), threading.Event()

    def respond(request: Recorded) -> Reply:
        if request.json().get("test"):
            arrived.set()
            release.wait(TIMEOUT)
        return Reply()

    with HttpReceiver(respond) as rx, running(make_settings(tmp_path, notifications={
            "webhook_enabled": True, "default_webhook_url": rx.url + "/hook"})) as (_, _, client):
        finished = threading.Semaphore(0)
        sends = [client.notifications.SendTestNotification.future(
            notifications_pb2.TestNotificationRequest(channel="webhook"), timeout=STREAM_SECS) for _ in range(40)]
        for send in sends:
            send.add_done_callback(lambda _: finished.release())
        try:
            assert arrived.wait(TIMEOUT)
            refused_in_time = all(finished.acquire(timeout=PROMPT) for _ in range(38))
            ack = client.alerts.SubmitAlert(alert("during"), timeout=PROMPT)
            refused = [send for send in sends if send.done()]
        finally:
            release.set()
        results = [send.result(timeout=TIMEOUT) for send in sends if send not in refused]
    assert refused_in_time and ack.status == alerts_pb2.ACCEPTED
    assert len(refused) == 38 and {send.code() for send in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert all("[server] max_test_sends_per_client is 2" in send.details() for send in refused)
    assert [result.outcome for result in results] == ["delivered", "delivered"]


def test_intake_callers_over_the_intake_limit_are_refused_at_once_instead_of_queueing(tmp_path):
    release = threading.Event()

    def blocking_clock():
        release.wait(TIMEOUT)
        return utc_now()

    settings = make_settings(tmp_path)  # the defaults: intake_limit 24 of max_workers 32
    limit, callers = settings.processing.intake_limit, 2 * settings.server.max_workers
    assert limit < settings.server.max_workers  # at or above it, the limit could never refuse anyone
    with running(settings, clock=blocking_clock) as (_, _, client):
        finished = threading.Semaphore(0)
        calls = [client.alerts.SubmitAlert.future(alert(f"a-{i}", title=f"t{i}"), timeout=STREAM_SECS)
                 for i in range(callers)]
        for call in calls:
            call.add_done_callback(lambda _: finished.release())
        try:  # the processor is held: only refusals can finish
            refused_in_time = all(finished.acquire(timeout=PROMPT) for _ in range(callers - limit))
        finally:
            release.set()
        errors = [call.exception(timeout=TIMEOUT) for call in calls]
    refused = [error for error in errors if error is not None]
    assert refused_in_time and len(refused) == callers - limit
    assert {error.code() for error in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert all("intake" in error.details() for error in refused)


def test_calls_that_find_every_worker_thread_busy_are_refused_instead_of_queueing(tmp_path):
    settings = tiny_settings(tmp_path)
    threads, extra = settings.server.threads, 4
    with running(settings) as (engine, _, client):
        engine.faults.delay_messages("router", 60_000)  # each GetStats waits 5 s for the router
        finished = threading.Semaphore(0)
        calls = [client.notifications.GetStats.future(notifications_pb2.StatsRequest(), timeout=TIMEOUT)
                 for _ in range(threads + extra)]
        for call in calls:
            call.add_done_callback(lambda _: finished.release())
        try:  # until the router's 5 s are up, only refusals can finish
            refused_in_time = all(finished.acquire(timeout=3) for _ in range(extra))
            refused = [call for call in calls if call.done()]
        finally:
            engine.faults.clear()
        answered = [call.result(timeout=TIMEOUT) for call in calls if call not in refused]
    assert refused_in_time and len(refused) == extra and len(answered) == threads
    assert {(call.code(), call.details()) for call in refused} == {
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "Concurrent RPC limit exceeded!")}


@pytest.mark.parametrize("data, key, words", [
    ({"processing": {"intake_limit": 32}}, "processing.intake_limit", "less than [server] max_workers (32)"),
    ({"server": {"max_workers": 8}}, "processing.intake_limit", "got 24"),
    ({"server": {"max_streams": 10, "max_streams_per_client": 11}}, "server.max_streams_per_client",
     "must not exceed max_streams (10)"),
    ({"server": {"max_test_sends_per_client": 5}}, "server.max_test_sends_per_client",
     "must not exceed max_test_sends (4)"),
    ({"server": {"max_streams": 0}}, "server.max_streams", "greater than 0"),
    ({"server": {"max_test_sends": 0}}, "server.max_test_sends", "greater than 0"),
])
def test_capacity_settings_that_cannot_work_are_refused_naming_the_key(data, key, words):
    with pytest.raises(ConfigError) as info:
        settings_from_mapping(data)
    assert info.value.key == key and words in str(info.value)


def test_the_worker_threads_are_those_of_unary_calls_plus_one_per_stream_and_test_send():
    server = settings_from_mapping({"server": {"max_workers": 40, "max_streams": 100, "max_test_sends": 3},
                                    "processing": {"intake_limit": 30}}).server
    assert server.threads == 143


@pytest.mark.parametrize("peer, host", [
    ("ipv4:127.0.0.1:43498", "127.0.0.1"),
    ("ipv6:%5B::1%5D:33188", "::1"),
    ("ipv6:[2001:db8::7]:9000", "2001:db8::7"),
    ("unix:/run/im.sock", "unix:/run/im.sock"),
])
def test_a_client_without_a_token_is_the_host_it_calls_from(peer, host):
    assert peer_host(peer) == host
