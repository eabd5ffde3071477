"""Property-based tests: every proto → domain converter, the servicers' request handling and
the configuration loader take any input and either accept it or reject it with an error
naming the field (never another exception, never INTERNAL)."""
from __future__ import annotations

import contextlib
import dataclasses
import math
import re
import types
import typing
from datetime import datetime
from typing import Any, Callable, Iterator

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.api import convert
from actors.api.alerts import AlertIngestionServicer
from actors.api.incidents import IncidentServicer
from actors.api.notifications import NotificationServicer
from actors.domain.config import ConfigError, Settings, settings_from_mapping
from actors.domain.errors import InvalidArgument
from actors.domain.limits import MAX_PAGE
from actors.domain.models import DeliveryStatus, IncidentState, ResolutionMethod, Severity
from actors.engine import Engine
from protos import alerts_pb2, incidents_pb2, notifications_pb2
from tests.support.hostile import hostile_text, integers, messages, timestamp_fields
from tests.support.server import make_settings

EXAMPLES = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MAX_TEXT = 64 * 1024


def field_names(message_type: Any) -> set[str]:
    return set(message_type.DESCRIPTOR.fields_by_name)


@EXAMPLES
@given(messages(alerts_pb2.AlertRequest.DESCRIPTOR))
def test_alert_from_proto_accepts_a_clean_alert_or_names_the_bad_field(request):
    try:
        alert = convert.alert_from_proto(request, MAX_TEXT)
    except InvalidArgument as error:  # a map entry or list item is named "labels[key]", "affected_services[2]"
        assert error.field.split("[", 1)[0] in field_names(alerts_pb2.AlertRequest), error
        return
    texts = [alert.alert_id, alert.source, alert.title, alert.description, *alert.affected_services,
             *alert.labels, *alert.labels.values(), *alert.annotations, *alert.annotations.values()]
    assert not any("\x00" in t for t in texts)
    assert alert.source and alert.title
    assert isinstance(alert.fired_at, datetime) and alert.fired_at.tzinfo is not None


@EXAMPLES
@given(messages(incidents_pb2.ListIncidentsRequest.DESCRIPTOR))
def test_incident_query_accepts_a_filter_or_names_the_bad_field(request):
    try:
        query = convert.incident_query(request)
    except InvalidArgument as error:
        assert error.field in {"states", "severities", "created_after", "created_before"}
        return
    assert all(s in {m.value for m in IncidentState} for s in query.states)
    assert all(s in {m.value for m in Severity} for s in query.severities)


@EXAMPLES
@given(integers(32, signed=False))  # page_size is a uint32 on the wire
def test_page_size_is_between_1_and_the_largest_page_or_names_page_size(requested):
    try:
        size = convert.page_size(requested)
    except InvalidArgument as error:
        assert error.field == "page_size"
        return
    assert 1 <= size <= MAX_PAGE


@EXAMPLES
@given(timestamp_fields())
def test_to_datetime_gives_an_aware_time_none_or_names_the_field(fields):
    try:
        moment = convert.to_datetime("at", Timestamp(**fields))
    except InvalidArgument as error:
        assert error.field == "at"
        return
    assert moment is None if fields == {"seconds": 0, "nanos": 0} else moment.tzinfo is not None


@EXAMPLES
@given(integers(32))
def test_enum_numbers_become_members_or_name_the_field(number):
    for convert_number, allowed in ((convert.method_from_proto, set(ResolutionMethod)),
                                    (convert.delivery_status_from_proto, {s.value for s in DeliveryStatus} | {""}),
                                    (lambda n: convert.enum_value("severity", Severity, n), set(Severity))):
        try:
            assert convert_number(number) in allowed
        except InvalidArgument as error:
            assert error.field in {"method", "status", "severity"}


class Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code}: {details}")
        self.code = code


class Context:
    """The part of grpc.ServicerContext the unary servicer methods use."""

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise Aborted(code, details)


@contextlib.contextmanager
def engine(tmp_path) -> Iterator[Engine]:
    started = Engine(make_settings(tmp_path)).start()
    try:
        yield started
    finally:
        started.stop(grace_secs=1)


def unary_methods(service: Any) -> list[tuple[str, Any]]:
    """(method name, request class) of every unary-request, unary-response RPC of ``service``."""
    from google.protobuf import message_factory
    return [(m.name, message_factory.GetMessageClass(m.input_type)) for m in service.methods
            if not m.client_streaming and not m.server_streaming]


SERVICES = [
    (AlertIngestionServicer, alerts_pb2.DESCRIPTOR.services_by_name["AlertIngestion"]),
    (IncidentServicer, incidents_pb2.DESCRIPTOR.services_by_name["IncidentService"]),
    (NotificationServicer, notifications_pb2.DESCRIPTOR.services_by_name["NotificationService"]),
]
UNARY = [(servicer, name, request) for servicer, service in SERVICES for name, request in unary_methods(service)]


@pytest.mark.parametrize("servicer_type,method,request_type", UNARY, ids=[f"{s.__name__}.{m}" for s, m, _ in UNARY])
def test_every_unary_rpc_answers_any_request_or_rejects_it_with_an_expected_status(tmp_path, servicer_type, method,
                                                                                   request_type):
    with engine(tmp_path) as running_engine:
        call: Callable[..., Any] = getattr(servicer_type(running_engine), method)

        @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(messages(request_type.DESCRIPTOR))
        def answers(request):
            try:
                call(request, Context())
            except Aborted as aborted:
                assert aborted.code not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), aborted
        answers()


# -- configuration ------------------------------------------------------------------------

#: The sections of plain settings (``receivers`` and ``route`` are trees of their own).
SECTIONS = [name for name, hint in typing.get_type_hints(Settings).items() if dataclasses.is_dataclass(hint)]
TOML_VALUES = st.recursive(
    st.one_of(st.booleans(), integers(64), st.floats(), hostile_text()),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(hostile_text(), inner, max_size=3)),
    max_leaves=6)


def _typed(annotation: Any) -> st.SearchStrategy[Any]:
    """Values of the setting's own type (any value of it) or, now and then, of any TOML type."""
    hint = typing.get_args(annotation)[0] if typing.get_origin(annotation) in (typing.Union, types.UnionType) \
        else annotation
    own = {bool: st.booleans(), int: integers(64), float: st.one_of(st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0, 1e-300, 1e308]),
                                  st.floats(), integers(64)),
           str: hostile_text()}.get(hint)
    if dataclasses.is_dataclass(hint):
        own = _section(hint)
    return st.one_of(own, own, own, TOML_VALUES) if own is not None else TOML_VALUES


def _section(section: type) -> st.SearchStrategy[dict[str, Any]]:
    hints = typing.get_type_hints(section)
    return st.fixed_dictionaries({}, optional={name: _typed(hints[name]) for name in section.__dataclass_fields__})


CONFIGS = st.one_of(_section(Settings), st.dictionaries(hostile_text(), TOML_VALUES, max_size=3))


#: Every setting's dotted key: a consistency check may name one the document left out.
KNOWN_KEYS = {f"{section}.{name}" for section in SECTIONS
              for name in typing.get_type_hints(Settings)[section].__dataclass_fields__}


def names_a_key(table: Any, key: str) -> bool:
    """Whether ``key`` is the path of a key in ``table``: names joined by dots (names may hold
    dots), list items as ``[index]``."""
    if isinstance(table, list):
        found = re.match(r"\[(\d+)\]", key)
        if found is None or int(found.group(1)) >= len(table):
            return False
        return _names_in(table[int(found.group(1))], key[found.end():])
    if not isinstance(table, dict):
        return False
    return key in table or any(key.startswith(name) and _names_in(value, key[len(name):])
                               for name, value in table.items())


def _names_in(value: Any, rest: str) -> bool:
    return rest == "" or (rest.startswith(".") and names_a_key(value, rest[1:])) or \
        (rest.startswith("[") and names_a_key(value, rest))


def names_a_required_key(table: Any, key: str) -> bool:
    """Whether ``key`` is a routing key left out of a table the document has (a route's
    receiver, a receiver's URL)."""
    parent = key.rpartition(".")[0]
    return key.startswith(("route.", "receivers.")) and (parent == "route" and "route" in table
                                                         or names_a_key(table, parent))


@settings(max_examples=1000, deadline=None)
@given(CONFIGS)
def test_the_config_loader_accepts_settings_or_names_the_bad_key(data):
    try:
        loaded = settings_from_mapping(data)
    except ConfigError as error:
        assert names_a_key(data, error.key) or error.key in KNOWN_KEYS or names_a_required_key(data, error.key), error
        return
    for section in SECTIONS:
        for name, value in vars(getattr(loaded, section)).items():
            assert not (isinstance(value, float) and not math.isfinite(value)), f"{section}.{name} = {value}"
    assert 0 <= loaded.server.grpc_port <= 65535 and 0 <= loaded.notifications.smtp_port <= 65535


def _one_setting() -> st.SearchStrategy[tuple[str, Any]]:
    hints = {section: typing.get_type_hints(typing.get_type_hints(Settings)[section]) for section in SECTIONS}
    return st.sampled_from(sorted(KNOWN_KEYS)).flatmap(
        lambda key: st.tuples(st.just(key), _typed(hints[key.split(".")[0]][key.split(".")[1]])))


@settings(max_examples=1000, deadline=None)
@given(_one_setting())
def test_one_setting_of_any_value_is_taken_as_given_or_rejected_naming_it(setting):
    key, value = setting
    section, name = key.split(".")
    try:
        loaded = settings_from_mapping({section: {name: value}})
    except ConfigError as error:
        assert error.key == key or error.key.startswith(f"{key}.") or error.key in KNOWN_KEYS, error
        return
    taken = getattr(getattr(loaded, section), name)
    assert not (isinstance(taken, float) and not math.isfinite(taken)), f"{key} = {taken}"
