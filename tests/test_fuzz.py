"""A bounded fuzz run against a real server: 10,000 hostile requests across every RPC.

Random unicode (NUL, control, bidi characters), fields up to the message limit, unknown enum
numbers, timestamps far outside years 1..9999, random ids and page tokens (and tokens that
decode to inf, nan, 1e19), random bytes as the serialized message, mutated valid messages,
alert streams and watches cancelled abruptly. Every call goes over the wire as raw bytes
(a generic channel method with identity serializers), from 8 threads, with a fixed seed and
short deadlines. Afterwards: no UNKNOWN or INTERNAL, no call past its deadline, no traceback
in the output, and the server still serves health checks and delivers an alert's webhook.
The counts of status codes are printed (``-s`` shows them).
"""
from __future__ import annotations

import base64
import collections
import logging
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc

from protos import admin_pb2, alerts_pb2, incidents_pb2, notifications_pb2
from tests.support.hostile import LIMIT_LENGTHS, SPECIAL
from tests.support.http_receiver import HttpReceiver
from tests.support.server import TIMEOUT, make_settings, running
from tests.support.waiting import wait_until

SEED = 20261130
REQUESTS = 10_000
THREADS = 8
DEADLINE = 2.0
WATCH_DEADLINE = 0.2
#: How long past its deadline a call may take to come back before it counts as hanging.
SLACK = 2.0
MESSAGE_LIMIT = 4 * 1024 * 1024  # [server] max_message_bytes (the default)
SERVICES = [alerts_pb2.DESCRIPTOR.services_by_name["AlertIngestion"],
            incidents_pb2.DESCRIPTOR.services_by_name["IncidentService"],
            notifications_pb2.DESCRIPTOR.services_by_name["NotificationService"]]
#: Not enabled on this server (it injects faults): calls must get UNIMPLEMENTED.
ADMIN = admin_pb2.DESCRIPTOR.services_by_name["AdminService"]
TIMESTAMP_SECONDS = [0, 1, -1, -62135596800, -62135596801, 253402300799, 253402300800, 2**63 - 1, -2**63]
INT_EDGES = [0, 1, 2, 3, 4, 5, 6, 7, 99, 500, 501, -1, 2**31 - 1, -2**31]
TOKEN_NUMBERS = ["inf", "-inf", "nan", "1e19", "-1", "1.5", "1e400", "x", "1800000000.5", ""]


class Fuzzer:
    """Random requests from one seeded generator (one Fuzzer per thread)."""

    def __init__(self, seed: int, known_ids: list[str]) -> None:
        self.rng = random.Random(seed)
        self.known_ids = known_ids

    def text(self) -> str:
        rng = self.rng
        kind = rng.random()
        if kind < 0.05:
            return rng.choice("a\u202e€\x00") * rng.choice(LIMIT_LENGTHS)
        if kind < 0.25:
            return "".join(rng.choice(SPECIAL) for _ in range(rng.randint(0, 12)))
        if kind < 0.5:  # readable, with one hostile character somewhere
            word = "".join(chr(rng.randint(0x61, 0x7a)) for _ in range(rng.randint(1, 12)))
            spot = rng.randint(0, len(word))
            return word[:spot] + rng.choice(SPECIAL) + word[spot:]
        return "".join(self.character() for _ in range(rng.randint(0, 16)))

    def character(self) -> str:
        rng = self.rng
        if rng.random() < 0.5:
            return chr(rng.randint(0x20, 0x7e))
        code = rng.choice([rng.randint(0, 0x1f), rng.randint(0x80, 0x2fff), rng.randint(0xe000, 0x10ffff)])
        return chr(code)

    def identifier(self) -> str:
        rng = self.rng
        if self.known_ids and rng.random() < 0.5:
            known = rng.choice(self.known_ids)
            return rng.choice([known, known[:8], known[:3], known + "\x00", known.upper()])
        return self.text()

    def page_token(self) -> str:
        rng = self.rng
        if rng.random() < 0.5:
            number = rng.choice(TOKEN_NUMBERS)
            return base64.urlsafe_b64encode(f"{number}|{self.identifier()}".encode()).decode()
        if rng.random() < 0.5:
            return base64.urlsafe_b64encode(rng.randbytes(rng.randint(0, 24))).decode()
        return self.text()

    def scalar(self, field: FieldDescriptor) -> Any:
        rng = self.rng
        if field.type == FieldDescriptor.TYPE_STRING:
            if field.name in ("id", "incident_id"):
                return self.identifier()
            return self.page_token() if field.name == "page_token" else self.text()
        if field.type == FieldDescriptor.TYPE_BOOL:
            return rng.random() < 0.5
        if field.type == FieldDescriptor.TYPE_BYTES:
            return rng.randbytes(rng.randint(0, 16))
        if field.type == FieldDescriptor.TYPE_ENUM and rng.random() < 0.7:
            return rng.choice([v.number for v in field.enum_type.values if v.number] or [0])
        if field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            return rng.choice([0.0, -1.0, 1e300, float("inf"), float("nan"), rng.random()])
        unsigned = field.type in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_UINT64,
                                  FieldDescriptor.TYPE_FIXED32, FieldDescriptor.TYPE_FIXED64)
        bits = 64 if field.cpp_type in (FieldDescriptor.CPPTYPE_INT64, FieldDescriptor.CPPTYPE_UINT64) else 32
        value = rng.choice(INT_EDGES) if rng.random() < 0.8 else rng.getrandbits(bits) - (0 if unsigned else 2 ** (bits - 1))
        return value % 2 ** bits if unsigned else value

    def message(self, descriptor: Descriptor, depth: int = 0) -> Message:
        message = message_factory.GetMessageClass(descriptor)()
        if descriptor.full_name == "google.protobuf.Timestamp":
            ordinary = self.rng.random() < 0.5
            message.seconds = int(time.time()) if ordinary else self.rng.choice(TIMESTAMP_SECONDS)
            message.nanos = 0 if ordinary else self.rng.choice([0, 999_999_999, 1_000_000_000, -1])
            return message
        for field in descriptor.fields:
            if depth > 2 or self.rng.random() < 0.25:
                continue
            self.fill(message, field, depth)
        return message

    def fill(self, message: Message, field: FieldDescriptor, depth: int) -> None:
        target = getattr(message, field.name)
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            for _ in range(self.rng.choice([0, 1, 3, 65])):
                key = self.scalar(entry.fields_by_name["key"])
                value_field = entry.fields_by_name["value"]
                if value_field.message_type is not None:
                    target[key].CopyFrom(self.message(value_field.message_type, depth + 1))
                else:
                    target[key] = self.scalar(value_field)
        elif field.is_repeated:
            for _ in range(self.rng.choice([0, 1, 3, 65])):
                if entry is not None:
                    target.add().CopyFrom(self.message(entry, depth + 1))
                else:
                    target.append(self.scalar(field))
        elif entry is not None:
            target.CopyFrom(self.message(entry, depth + 1))
        else:
            setattr(message, field.name, self.scalar(field))

    def payload(self, method: MethodDescriptor) -> bytes:
        """Serialized request: a random message, a mutated one, random bytes or a huge field."""
        kind = self.rng.random()
        if kind < 0.1:
            return self.rng.randbytes(self.rng.randint(0, 64))
        valid = self.message(method.input_type).SerializeToString()
        if kind < 0.25:
            data = bytearray(valid or b"\x08\x01")
            for _ in range(self.rng.randint(1, 4)):
                data[self.rng.randrange(len(data))] = self.rng.randrange(256)
            return bytes(data[: self.rng.randint(0, len(data))]) if self.rng.random() < 0.3 else bytes(data)
        if kind < 0.253:  # a string field 2 (or an unknown field) just under or over the message limit
            size = MESSAGE_LIMIT + self.rng.choice([-64, 64])
            return valid + b"\x12" + _varint(size) + b"a" * size
        return valid


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


class Tally:
    def __init__(self) -> None:
        self.codes: collections.Counter[str] = collections.Counter()
        self.by_method: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        self.late: list[tuple[str, float]] = []
        self.messages = 0
        self.lock = threading.Lock()

    def record(self, method: str, code: grpc.StatusCode, elapsed: float, allowed: float, messages: int = 1) -> None:
        with self.lock:
            self.codes[code.name] += 1
            self.by_method[method][code.name] += 1
            self.messages += messages
            if elapsed > allowed + SLACK:
                self.late.append((method, elapsed))


def _code(call: Callable[[], Any]) -> grpc.StatusCode:
    try:
        call()
        return grpc.StatusCode.OK
    except grpc.RpcError as error:
        return error.code()


def one_call(channel: grpc.Channel, fuzzer: Fuzzer, tally: Tally, service: Any, method: MethodDescriptor) -> None:
    path = f"/{service.full_name}/{method.name}"
    rng = fuzzer.rng
    started = time.monotonic()
    if method.client_streaming:
        payloads = [fuzzer.payload(method) for _ in range(rng.randint(1, 6))]
        call = channel.stream_stream(path, request_serializer=None, response_deserializer=None)(
            iter(payloads), timeout=DEADLINE)
        cancel_after = rng.choice([0, 1, None])

        def drain() -> None:
            for received, _ in enumerate(call, 1):
                if received == cancel_after:
                    call.cancel()
            if cancel_after == 0:
                call.cancel()
        code = _code(drain)
        tally.record(method.name, code, time.monotonic() - started, DEADLINE, messages=len(payloads))
    elif method.server_streaming:
        call = channel.unary_stream(path, request_serializer=None, response_deserializer=None)(
            fuzzer.payload(method), timeout=WATCH_DEADLINE)

        def watch() -> None:
            if rng.random() < 0.5:
                call.initial_metadata()
                call.cancel()
            for _ in call:
                pass
        tally.record(method.name, _code(watch), time.monotonic() - started, WATCH_DEADLINE)
    else:
        unary = channel.unary_unary(path, request_serializer=None, response_deserializer=None)
        code = _code(lambda: unary(fuzzer.payload(method), timeout=DEADLINE))
        tally.record(method.name, code, time.monotonic() - started, DEADLINE)


def worker(channel: grpc.Channel, seed: int, count: int, known_ids: list[str], tally: Tally) -> None:
    fuzzer = Fuzzer(seed, known_ids)
    methods = [(service, method) for service in SERVICES for method in service.methods]
    admin = [(ADMIN, method) for method in ADMIN.methods]
    for _ in range(count):
        service, method = fuzzer.rng.choice(admin if fuzzer.rng.random() < 0.01 else methods)
        one_call(channel, fuzzer, tally, service, method)


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.tracebacks: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or "Traceback" in record.getMessage():
            self.tracebacks.append(self.format(record))


@pytest.fixture
def receiver():
    with HttpReceiver() as rx:
        yield rx


def test_ten_thousand_hostile_requests_leave_the_server_answering_and_delivering(tmp_path, receiver, capfd):
    settings = make_settings(tmp_path, notifications={
        "webhook_enabled": True, "default_webhook_url": receiver.url, "webhook_worker_processes": False,
        "webhook": {"min_severity": "P0"}})
    records = Records()
    logging.getLogger().addHandler(records)
    try:
        with running(settings) as (engine, server, client):
            known = [client.alerts.SubmitAlert(alerts_pb2.AlertRequest(
                alert_id=f"seed-{n}", source="fuzz", title=f"seed {n}", severity=3, type=1), timeout=TIMEOUT).incident_id
                for n in range(5)]
            tally = Tally()
            started = time.monotonic()
            with ThreadPoolExecutor(THREADS) as pool:
                runs = [pool.submit(worker, client.channel, SEED + n, REQUESTS // THREADS, known, tally)
                        for n in range(THREADS)]
                for run in runs:
                    run.result()
            took = time.monotonic() - started

            health = health_pb2_grpc.HealthStub(client.channel).Check(health_pb2.HealthCheckRequest(), timeout=TIMEOUT)
            ack = client.alerts.SubmitAlert(alerts_pb2.AlertRequest(
                alert_id="after-the-fuzz", source="fuzz", title="still delivering", severity=1, type=1),
                timeout=TIMEOUT)
            wait_until(lambda: any(ack.incident_id.encode() in r.body for r in list(receiver.requests)), timeout=30)
    finally:
        logging.getLogger().removeHandler(records)
    output = capfd.readouterr()
    with capfd.disabled():
        print(f"\nfuzz: {sum(tally.codes.values())} calls ({tally.messages} request messages) in {took:.1f} s; "
              f"status codes: {dict(tally.codes.most_common())}")
        for method, codes in sorted(tally.by_method.items()):
            print(f"  {method}: {dict(codes.most_common())}")
    assert sum(tally.codes.values()) >= REQUESTS
    assert not {"UNKNOWN", "INTERNAL"} & set(tally.codes), tally.by_method
    assert not tally.late, tally.late
    assert "Traceback" not in output.out + output.err
    assert not records.tracebacks, records.tracebacks[:3]
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert ack.status == alerts_pb2.ACCEPTED and ack.new_incident
