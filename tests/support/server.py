"""An in-process engine + real gRPC server on a free loopback port, and clients for it."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import grpc

from actors.api.server import ApiServer
from actors.domain.config import Settings, settings_from_mapping
from actors.engine import Engine
from protos import alerts_pb2_grpc, incidents_pb2_grpc, notifications_pb2_grpc

TIMEOUT = 10.0


def make_settings(tmp_path: Path, **sections: Any) -> Settings:
    """Settings with the store in ``tmp_path`` and the server on a free loopback port (a list,
    such as ``inhibit_rules``, is an array of tables)."""
    data: dict[str, Any] = {"server": {"host": "127.0.0.1", "grpc_port": 0},
                            "state": {"path": str(tmp_path / "store.db")}}
    for section, values in sections.items():
        data[section] = {**data.get(section, {}), **values} if isinstance(values, Mapping) else values
    return settings_from_mapping(data)


@dataclass
class Client:
    channel: grpc.Channel
    alerts: alerts_pb2_grpc.AlertIngestionStub
    incidents: incidents_pb2_grpc.IncidentServiceStub
    notifications: notifications_pb2_grpc.NotificationServiceStub


@contextlib.contextmanager
def client_for(port: int) -> Iterator[Client]:
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        grpc.channel_ready_future(channel).result(timeout=TIMEOUT)
        yield Client(channel, alerts_pb2_grpc.AlertIngestionStub(channel),
                     incidents_pb2_grpc.IncidentServiceStub(channel),
                     notifications_pb2_grpc.NotificationServiceStub(channel))
    finally:
        channel.close()


@contextlib.contextmanager
def running(settings: Settings, **engine_kwargs: Any) -> Iterator[tuple[Engine, ApiServer, Client]]:
    engine = Engine(settings, **engine_kwargs).start()
    api = ApiServer(engine, settings.server).start()
    try:
        with client_for(api.port) as client:
            yield engine, api, client
    finally:
        api.stop(0)
        engine.stop(grace_secs=1)
