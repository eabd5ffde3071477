"""Server reflection answers both protocols, grpc.reflection.v1 and v1alpha, over a real server.

The v1 client is a raw stub of ``/grpc.reflection.v1.ServerReflection/ServerReflectionInfo``
(what ``buf curl --reflect-protocol grpc-v1`` and grpc-java call). Its request is encoded by
hand from the v1 reflection.proto; its responses are decoded with the v1alpha classes, whose
messages have the same fields and numbers (only the package name differs).
"""
from __future__ import annotations

from typing import Iterator

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.support.server import TIMEOUT, make_settings, running

V1_METHOD = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
LIST_SERVICES = b"\x3a\x00"  # ServerReflectionRequest{list_services: ""}: field 7, length-delimited, empty
OUR_SERVICES = {"alerts.AlertIngestion", "incidents.IncidentService", "notifications.NotificationService",
                "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
                "grpc.reflection.v1alpha.ServerReflection"}


@pytest.fixture
def channel(tmp_path) -> Iterator[grpc.Channel]:
    with running(make_settings(tmp_path)) as (_, _, client):
        yield client.channel


def ask_v1(channel: grpc.Channel, request: bytes) -> reflection_pb2.ServerReflectionResponse:
    call = channel.stream_stream(V1_METHOD, request_serializer=lambda raw: raw,
                                 response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
    return next(call(iter([request]), timeout=TIMEOUT))


def ask_v1alpha(channel: grpc.Channel, **request: str) -> reflection_pb2.ServerReflectionResponse:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    return next(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(**request)]),
                                          timeout=TIMEOUT))


def file_containing(channel: grpc.Channel, symbol: str) -> descriptor_pb2.FileDescriptorProto:
    """The file defining ``symbol``, asked for over v1."""
    request = reflection_pb2.ServerReflectionRequest(file_containing_symbol=symbol).SerializeToString()
    answer = ask_v1(channel, request)
    assert answer.WhichOneof("message_response") == "file_descriptor_response", answer
    files = [descriptor_pb2.FileDescriptorProto.FromString(raw)
             for raw in answer.file_descriptor_response.file_descriptor_proto]
    return next(f for f in files if symbol.rpartition(".")[0] == f.package)


def test_a_v1_client_lists_every_service(channel):
    answer = ask_v1(channel, LIST_SERVICES)
    assert {s.name for s in answer.list_services_response.service} == OUR_SERVICES


def test_a_v1alpha_client_gets_the_same_list(channel):
    answer = ask_v1alpha(channel, list_services="")
    assert {s.name for s in answer.list_services_response.service} == OUR_SERVICES


def test_a_v1_client_can_describe_our_services_and_the_v1_reflection_service_itself(channel):
    incidents = file_containing(channel, "incidents.IncidentService")
    assert "GetIncident" in {m.name for s in incidents.service for m in s.method}
    v1 = file_containing(channel, "grpc.reflection.v1.ServerReflection")
    (method,) = v1.service[0].method
    assert (v1.name, method.name, method.input_type, method.client_streaming, method.server_streaming) == (
        "grpc/reflection/v1/reflection.proto", "ServerReflectionInfo",
        ".grpc.reflection.v1.ServerReflectionRequest", True, True)
    assert not v1.options.deprecated and v1.options.java_package == "io.grpc.reflection.v1"
    v1alpha = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(v1alpha)
    fields = {m.name: [(f.name, f.number, f.type) for f in m.field] for m in v1alpha.message_type}
    assert {m.name: [(f.name, f.number, f.type) for f in m.field] for m in v1.message_type} == fields


def test_with_reflection_off_neither_protocol_answers(tmp_path):
    with running(make_settings(tmp_path, server={"reflection": False})) as (_, _, client):
        for ask in (lambda: ask_v1(client.channel, LIST_SERVICES),
                    lambda: ask_v1alpha(client.channel, list_services="")):
            with pytest.raises(grpc.RpcError) as info:
                ask()
            assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
