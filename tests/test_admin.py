"""admin.AdminService: off unless enabled; names and kinds checked; faults land where asked."""
from __future__ import annotations


import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from protos import admin_pb2, admin_pb2_grpc, alerts_pb2, notifications_pb2
from tests.support.http_receiver import HttpReceiver
from tests.support.server import TIMEOUT, make_settings, running
from tests.support.waiting import wait_until


def settings(tmp_path, url: str, admin: bool = True):
    return make_settings(tmp_path, server={"admin_enabled": admin},
                         notifications={"webhook_enabled": True, "default_webhook_url": url + "/hook",
                                        "worker_threads": 2, "retry_backoff_secs": 0.01, "max_retries": 5},
                         supervision={"max_restarts": 20, "within_secs": 30})


@pytest.fixture
def rx():
    with HttpReceiver() as receiver:
        yield receiver


@pytest.fixture
def admin(tmp_path, rx):
    with running(settings(tmp_path, rx.url)) as (engine, _, client):
        yield engine, client, admin_pb2_grpc.AdminServiceStub(client.channel)


def alert(n: int) -> alerts_pb2.AlertRequest:
    return alerts_pb2.AlertRequest(alert_id=f"a-{n}", source="sentinel", title=f"alert {n}", severity=1, type=5)


def code_of(call, request) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=TIMEOUT)
    return info.value.code(), info.value.details()


def actors(stub) -> dict[str, admin_pb2.ActorStatus]:
    return {a.name: a for a in stub.ListActors(admin_pb2.ListActorsRequest(), timeout=TIMEOUT).actors}


def test_the_admin_service_is_unimplemented_unless_enabled(tmp_path, rx):
    with running(settings(tmp_path, rx.url, admin=False)) as (_, _, client):
        stub = admin_pb2_grpc.AdminServiceStub(client.channel)
        assert code_of(stub.ListActors, admin_pb2.ListActorsRequest())[0] == grpc.StatusCode.UNIMPLEMENTED
        assert code_of(stub.InjectActorFault, admin_pb2.InjectActorFaultRequest(
            actor="router", kind=admin_pb2.STOP))[0] == grpc.StatusCode.UNIMPLEMENTED
        reflect = reflection_pb2_grpc.ServerReflectionStub(client.channel)
        answer = next(reflect.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                                   timeout=TIMEOUT))
        assert "admin.AdminService" not in {s.name for s in answer.list_services_response.service}


def test_when_enabled_it_is_listed_by_reflection_and_lists_every_actor(admin):
    _, client, stub = admin
    reflect = reflection_pb2_grpc.ServerReflectionStub(client.channel)
    answer = next(reflect.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                               timeout=TIMEOUT))
    assert "admin.AdminService" in {s.name for s in answer.list_services_response.service}
    listed = actors(stub)
    assert set(listed) == {"pool:webhook", "sender:webhook:0", "sender:webhook:1", "router", "processor", "retention"}
    assert all(a.alive and a.restarts == 0 for a in listed.values())


def test_unknown_names_are_not_found_and_bad_fields_are_invalid_with_the_field_named(admin):
    _, _, stub = admin
    code, details = code_of(stub.InjectActorFault, admin_pb2.InjectActorFaultRequest(
        actor="routr", kind=admin_pb2.CRASH_NEXT_MESSAGE))
    assert code == grpc.StatusCode.NOT_FOUND and "'routr'" in details and "router" in details
    code, details = code_of(stub.InjectTransportFault, admin_pb2.InjectTransportFaultRequest(
        channel="slack", kind=admin_pb2.TIMEOUT))
    assert code == grpc.StatusCode.NOT_FOUND and "'slack'" in details and "webhook" in details
    code, details = code_of(stub.ClearFaults, admin_pb2.ClearFaultsRequest(actor="nobody"))
    assert code == grpc.StatusCode.NOT_FOUND and "'nobody'" in details
    invalid = [
        (stub.InjectActorFault, admin_pb2.InjectActorFaultRequest(actor="router"), "kind"),
        (stub.InjectActorFault, admin_pb2.InjectActorFaultRequest(actor="router", kind=42), "kind"),
        (stub.InjectActorFault, admin_pb2.InjectActorFaultRequest(
            actor="router", kind=admin_pb2.CRASH_NEXT_MESSAGE, times=10**6), "times"),
        (stub.InjectActorFault, admin_pb2.InjectActorFaultRequest(
            actor="router", kind=admin_pb2.DELAY_MESSAGES, delay_ms=10**6), "delay_ms"),
        (stub.InjectActorFault, admin_pb2.InjectActorFaultRequest(
            actor="pool:webhook", kind=admin_pb2.CRASH_NEXT_MESSAGE), "actor"),
        (stub.InjectActorFault, admin_pb2.InjectActorFaultRequest(kind=admin_pb2.STOP), "actor"),
        (stub.InjectTransportFault, admin_pb2.InjectTransportFaultRequest(channel="webhook"), "kind"),
        (stub.InjectTransportFault, admin_pb2.InjectTransportFaultRequest(
            channel="webhook", kind=admin_pb2.HTTP_STATUS, code=42), "code"),
        (stub.InjectTransportFault, admin_pb2.InjectTransportFaultRequest(
            channel="webhook", kind=admin_pb2.TIMEOUT, code=503), "code"),
        (stub.InjectTransportFault, admin_pb2.InjectTransportFaultRequest(
            channel="webhook", kind=admin_pb2.SMTP_CODE, code=451), "kind"),
        (stub.InjectTransportFault, admin_pb2.InjectTransportFaultRequest(
            channel="webhook", kind=admin_pb2.SLOW), "delay_ms"),
        (stub.InjectTransportFault, admin_pb2.InjectTransportFaultRequest(
            channel="webhook", kind=admin_pb2.TIMEOUT, retry_after="5"), "retry_after"),
    ]
    for call, request, field in invalid:
        code, details = code_of(call, request)
        assert (code, details.split(":")[0]) == (grpc.StatusCode.INVALID_ARGUMENT, field), (request, details)
    assert stub.GetFaultStats(admin_pb2.FaultStatsRequest(), timeout=TIMEOUT) == admin_pb2.FaultStats()


def test_a_crash_injected_into_each_sender_is_restarted_and_counted(admin, rx):
    engine, client, stub = admin
    senders = ("sender:webhook:0", "sender:webhook:1")
    for name in senders:
        stub.InjectActorFault(admin_pb2.InjectActorFaultRequest(actor=name, kind=admin_pb2.CRASH_NEXT_MESSAGE),
                              timeout=TIMEOUT)
    # The pool member an incident goes to follows from its (random) id, so a fixed number of
    # incidents may all land on one member. Alerts go in one at a time, each delivered before
    # the next, until both members have met their crash (after n alerts the chance that one
    # member has seen none is 2**(1-n)).
    sent = 0
    while not all(actors(stub)[name].restarts for name in senders):
        assert sent < 40, f"{sent} incidents and still not every sender was given one: {actors(stub)}"
        client.alerts.SubmitAlert(alert(sent), timeout=TIMEOUT)
        sent += 1
        rx.wait_for(sent)
    listed = actors(stub)
    assert [(listed[name].restarts, "injected crash" in listed[name].last_failure) for name in senders] == [
        (1, True), (1, True)]
    assert listed["router"].restarts == 0
    assert stub.GetFaultStats(admin_pb2.FaultStatsRequest(), timeout=TIMEOUT).injected_crashes == 2
    assert len({r.json()["notification_id"] for r in rx.requests}) == sent


def test_a_crash_injected_into_the_processor_fails_the_next_command_with_unavailable_and_a_retry_succeeds(admin):
    _, client, stub = admin
    stub.InjectActorFault(admin_pb2.InjectActorFaultRequest(actor="processor", kind=admin_pb2.CRASH_NEXT_MESSAGE),
                          timeout=TIMEOUT)
    assert code_of(client.alerts.SubmitAlert, alert(1))[0] == grpc.StatusCode.UNAVAILABLE
    wait_until(lambda: actors(stub)["processor"].alive and actors(stub)["processor"].restarts == 1)
    ack = client.alerts.SubmitAlert(alert(1), timeout=TIMEOUT)
    assert ack.status == alerts_pb2.ACCEPTED and ack.new_incident  # the first try recorded nothing
    assert stub.GetFaultStats(admin_pb2.FaultStatsRequest(), timeout=TIMEOUT).injected_crashes == 1


def test_stopping_the_router_from_outside_restarts_it_alone(admin, rx):
    engine, client, stub = admin
    old = engine.directory.get("router")
    done = stub.InjectActorFault(admin_pb2.InjectActorFaultRequest(actor="router", kind=admin_pb2.STOP),
                                 timeout=TIMEOUT)
    assert done.target == "router" and not old.is_alive()
    wait_until(lambda: actors(stub)["router"].restarts == 1 and actors(stub)["router"].alive)
    listed = actors(stub)
    assert listed["router"].last_failure == "stopped" and listed["processor"].restarts == 0
    client.alerts.SubmitAlert(alert(1), timeout=TIMEOUT)
    rx.wait_for(1)
    stats = stub.GetFaultStats(admin_pb2.FaultStatsRequest(), timeout=TIMEOUT)
    assert (stats.actors_stopped, stats.injected_crashes) == (1, 0)


def test_transport_faults_go_through_the_retry_path_and_can_be_cleared(admin, rx):
    engine, client, stub = admin
    stub.InjectTransportFault(admin_pb2.InjectTransportFaultRequest(
        channel="webhook", times=2, kind=admin_pb2.HTTP_STATUS, code=503, retry_after="0"), timeout=TIMEOUT)
    incident_id = client.alerts.SubmitAlert(alert(1), timeout=TIMEOUT).incident_id
    rx.wait_for(1)
    listed = client.notifications.ListNotifications(
        notifications_pb2.ListNotificationsRequest(incident_id=incident_id), timeout=TIMEOUT).notifications

    def detail() -> notifications_pb2.NotificationDetail:
        return client.notifications.GetNotification(notifications_pb2.GetNotificationRequest(id=listed[0].id),
                                                    timeout=TIMEOUT)
    # the receiver answers before the attempt is recorded (attempts are recorded in bursts)
    wait_until(lambda: detail().notification.status == notifications_pb2.DELIVERED)
    assert [(a.outcome, a.status_code) for a in detail().attempts] == [("retry", 503), ("retry", 503),
                                                                       ("delivered", 200)]
    stub.InjectTransportFault(admin_pb2.InjectTransportFaultRequest(
        channel="webhook", times=5, kind=admin_pb2.CONNECTION_REFUSED), timeout=TIMEOUT)
    stub.InjectActorFault(admin_pb2.InjectActorFaultRequest(
        actor="router", kind=admin_pb2.CRASH_NEXT_MESSAGE, times=3), timeout=TIMEOUT)
    stub.ClearFaults(admin_pb2.ClearFaultsRequest(), timeout=TIMEOUT)
    client.alerts.SubmitAlert(alert(2), timeout=TIMEOUT)
    rx.wait_for(2)
    stats = stub.GetFaultStats(admin_pb2.FaultStatsRequest(), timeout=TIMEOUT)
    assert (stats.injected_transport_faults, stats.injected_crashes) == (2, 0)
    assert actors(stub)["router"].restarts == 0
