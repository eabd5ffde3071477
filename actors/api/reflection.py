"""Server reflection under both protocol names: ``grpc.reflection.v1`` and ``v1alpha``.

grpcio-reflection (1.85 included) ships only ``grpc.reflection.v1alpha``, while newer clients
(``buf curl --reflect-protocol grpc-v1``, grpc-java's) ask for ``grpc.reflection.v1``. The two
protocols are the same messages with the same field numbers under another package name, so
the library's servicer answers both: it is registered under each service name, and a v1 copy
of its descriptor (package renamed) is added to the descriptor pool, so that clients can
describe the v1 service like any other.
"""
from __future__ import annotations

from typing import Iterable

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, text_format
from grpc_reflection.v1alpha import reflection, reflection_pb2

V1_SERVICE_NAME = "grpc.reflection.v1.ServerReflection"
V1_FILE = "grpc/reflection/v1/reflection.proto"
SERVICE_NAMES = (V1_SERVICE_NAME, reflection.SERVICE_NAME)


def enable(service_names: Iterable[str], server: grpc.Server) -> None:
    """Answer reflection requests on ``server`` (before it starts) under both protocol names,
    listing ``service_names`` and the two reflection services."""
    descriptor_pool.Default().AddSerializedFile(v1_file().SerializeToString())  # re-adding it is a no-op
    servicer = reflection.ReflectionServicer((*service_names, *SERVICE_NAMES))
    handlers = {"ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString)}
    server.add_generic_rpc_handlers(tuple(grpc.method_handlers_generic_handler(name, handlers)
                                          for name in SERVICE_NAMES))


def v1_file() -> descriptor_pb2.FileDescriptorProto:
    """``grpc/reflection/v1/reflection.proto``: the v1alpha file with every ``v1alpha`` in its
    package, type references and language options renamed to ``v1`` (and not deprecated)."""
    v1alpha = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(v1alpha)
    v1 = text_format.Parse(text_format.MessageToString(v1alpha).replace("v1alpha", "v1"),
                           descriptor_pb2.FileDescriptorProto())
    v1.name = V1_FILE
    v1.options.ClearField("deprecated")
    return v1
