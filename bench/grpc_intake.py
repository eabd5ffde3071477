#!/usr/bin/env python3
"""gRPC intake on the sync thread-pool server against grpc.aio, with the same engine behind.

One command, no network beyond loopback: ``.venv/bin/python bench/grpc_intake.py [--alerts N]``.
For each server kind it starts an in-process engine (no channel enabled, a fresh store in a
temporary directory) behind that server on a free 127.0.0.1 port, then a separate client
process sends N distinct alerts as SubmitAlerts calls of 64 (one sequential caller, as
Prometheus does) and over one StreamAlerts stream, and prints alerts acked per second. The aio
servicer hands each call's alerts to the engine through a thread pool (the engine's calls
block), which is what an aio server in this design must do.
"""
from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import threading
import time
from concurrent import futures
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402

from actors.api.alerts import AlertIngestionServicer, _ack  # noqa: E402
from actors.api.server import ApiServer  # noqa: E402
from actors.domain.config import settings_from_mapping  # noqa: E402
from actors.engine import Engine  # noqa: E402
from protos import alerts_pb2, alerts_pb2_grpc  # noqa: E402

CLIENT = r"""
import sys, time, grpc
sys.path.insert(0, sys.argv[3])
from protos import alerts_pb2, alerts_pb2_grpc
port, n = int(sys.argv[1]), int(sys.argv[2])
stub = alerts_pb2_grpc.AlertIngestionStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
def alert(tag, i):
    return alerts_pb2.AlertRequest(alert_id=f"{tag}-{i}", source="bench", title=f"{tag} {i}", severity=3, type=2,
                                   labels={"alertname": "BenchAlert", "job": "bench", "instance": f"h-{i % 200}"})
batch = [alert("b", i) for i in range(n)]
t = time.perf_counter()
for s in range(0, n, 64):
    stub.SubmitAlerts(alerts_pb2.AlertBatch(alerts=batch[s:s + 64]), timeout=60)
print(f"SubmitAlerts x64 {n / (time.perf_counter() - t):.0f}")
stream = [alert("s", i) for i in range(n)]
t = time.perf_counter()
acked = sum(1 for _ in stub.StreamAlerts(iter(stream), timeout=60))
print(f"StreamAlerts {acked / (time.perf_counter() - t):.0f}")
"""


class AioIngestion(alerts_pb2_grpc.AlertIngestionServicer):
    """SubmitAlerts and StreamAlerts on grpc.aio, the engine's blocking calls in a thread pool."""

    def __init__(self, engine: Engine, pool: futures.ThreadPoolExecutor) -> None:
        self.sync = AlertIngestionServicer(engine)
        self.pool = pool

    async def SubmitAlerts(self, request, context):  # noqa: N802 (gRPC naming)
        acks, valid = self.sync._checked(request.alerts)
        loop = asyncio.get_running_loop()
        return alerts_pb2.AlertAcks(acks=await loop.run_in_executor(self.pool, self.sync._submitted, acks, valid))

    async def StreamAlerts(self, request_iterator, context):  # noqa: N802
        loop = asyncio.get_running_loop()
        batch: list = []
        async for request in request_iterator:
            batch.append(request)
            if len(batch) == 256:
                for ack in await loop.run_in_executor(self.pool, self._acks, batch):
                    yield ack
                batch = []
        if batch:
            for ack in await loop.run_in_executor(self.pool, self._acks, batch):
                yield ack

    def _acks(self, batch):
        acks, valid = self.sync._checked(batch)
        return self.sync._submitted(acks, valid)


def run_client(port: int, n: int) -> str:
    return subprocess.run([sys.executable, "-c", CLIENT, str(port), str(n), str(ROOT)], capture_output=True,
                          text=True, timeout=300, check=True).stdout


def engine_in(tmp: str) -> Engine:
    settings = settings_from_mapping({"server": {"host": "127.0.0.1", "grpc_port": 0},
                                      "state": {"path": f"{tmp}/store.db", "retention_days": 0}})
    return Engine(settings).start()


def sync_server(n: int) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        engine = engine_in(tmp)
        api = ApiServer(engine, engine.settings.server).start()
        try:
            return run_client(api.port, n)
        finally:
            api.stop(0)
            engine.stop(grace_secs=0)


def aio_server(n: int) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        engine = engine_in(tmp)
        pool = futures.ThreadPoolExecutor(8)
        result: list[str] = []

        async def serve() -> None:
            server = grpc.aio.server()
            alerts_pb2_grpc.add_AlertIngestionServicer_to_server(AioIngestion(engine, pool), server)
            port = server.add_insecure_port("127.0.0.1:0")
            await server.start()
            result.append(await asyncio.get_running_loop().run_in_executor(None, run_client, port, n))
            await server.stop(0)
        try:
            asyncio.run(serve())
        finally:
            pool.shutdown()
            engine.stop(grace_secs=0)
        return result[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    for name, serve in (("sync thread pool", sync_server), ("grpc.aio", aio_server)):
        for run in range(args.runs):
            print(f"{name:16s} run {run}: " + " | ".join(serve(args.alerts).strip().splitlines()), flush=True)
    return 0


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    sys.exit(main())
