"""Hostile values that once reached the client as INTERNAL: out-of-range timestamps, page
tokens that decode to numbers no row has, and requests that do not deserialize."""
from __future__ import annotations

import base64
import logging

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from protos import alerts_pb2, incidents_pb2, notifications_pb2
from tests.support.server import TIMEOUT, make_settings, running

#: Seconds since the epoch beyond datetime's years 1..9999 (protobuf allows any int64).
TOO_LATE = Timestamp(seconds=253402300800 + 86400)
TOO_EARLY = Timestamp(seconds=-62135596800 - 86400)


@pytest.fixture
def api(tmp_path):
    with running(make_settings(tmp_path)) as (engine, server, client):
        yield client


def alert(**fields) -> alerts_pb2.AlertRequest:
    return alerts_pb2.AlertRequest(**{"alert_id": "a-1", "source": "s", "title": "t", "severity": 1, "type": 5,
                                      **fields})


def rejected(call, request) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=TIMEOUT)
    return info.value.code(), info.value.details()


@pytest.mark.parametrize("stamp", [TOO_LATE, TOO_EARLY], ids=["after-9999", "before-1"])
def test_a_fired_at_outside_years_1_to_9999_is_invalid_argument_naming_it(api, stamp):
    code, details = rejected(api.alerts.SubmitAlert, alert(fired_at=stamp))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("fired_at:")


def test_a_streamed_alert_with_an_impossible_fired_at_is_rejected_and_the_stream_goes_on(api):
    acks = list(api.alerts.StreamAlerts(iter([alert(alert_id="bad", fired_at=TOO_LATE), alert(alert_id="good")]),
                                        timeout=TIMEOUT))
    assert [(a.alert_id, a.status) for a in acks] == [("bad", alerts_pb2.REJECTED), ("good", alerts_pb2.ACCEPTED)]
    assert acks[0].reason.startswith("fired_at:")


@pytest.mark.parametrize("field", ["created_after", "created_before"])
def test_list_incidents_with_an_impossible_time_bound_is_invalid_argument_naming_it(api, field):
    code, details = rejected(api.incidents.ListIncidents, incidents_pb2.ListIncidentsRequest(**{field: TOO_LATE}))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith(f"{field}:")


def token(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


@pytest.mark.parametrize("number", ["inf", "-inf", "nan", "1e19", "-1", "1.5"])
def test_a_notification_page_token_that_is_no_row_number_is_invalid_argument(api, number):
    code, details = rejected(api.notifications.ListNotifications,
                             notifications_pb2.ListNotificationsRequest(page_token=token(f"{number}|n")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("page_token:")


@pytest.mark.parametrize("number", ["inf", "-inf", "nan", "1e400"])
def test_an_incident_page_token_that_is_no_time_is_invalid_argument(api, number):
    code, details = rejected(api.incidents.ListIncidents,
                             incidents_pb2.ListIncidentsRequest(page_token=token(f"{number}|some-id")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("page_token:")


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_a_request_that_does_not_deserialize_is_invalid_argument_and_logs_no_traceback(api):
    records = Records()
    logging.getLogger().addHandler(records)
    try:
        raw = api.channel.unary_unary("/incidents.IncidentService/GetIncident",
                                      request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.RpcError) as info:
            raw(b"\xff\xff\xff\xff", timeout=TIMEOUT)
    finally:
        logging.getLogger().removeHandler(records)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "GetIncidentRequest" in info.value.details()
    assert not [r for r in records.records if r.exc_info or "Traceback" in r.getMessage()]


def test_an_undecodable_message_on_the_alert_stream_ends_it_invalid_argument_after_acking_the_rest(api):
    raw = api.channel.stream_stream("/alerts.AlertIngestion/StreamAlerts",
                                    request_serializer=None, response_deserializer=alerts_pb2.AlertAck.FromString)
    call = raw(iter([alert(alert_id="before").SerializeToString(), b"\xff\xff\xff\xff"]), timeout=TIMEOUT)
    acks = []
    with pytest.raises(grpc.RpcError) as info:
        for ack in call:
            acks.append(ack)
    assert [(a.alert_id, a.status) for a in acks] == [("before", alerts_pb2.ACCEPTED)]
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "alerts.AlertRequest" in info.value.details()

