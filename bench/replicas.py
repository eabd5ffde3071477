"""The burst against 1, 2 and 3 replicas on one PostgreSQL store, and SQLite against PostgreSQL
on one server (README "Performance", "Replicas").

    .venv/bin/python bench/replicas.py [--n 3000] [--runs 1] [--url postgresql://postgres@127.0.0.1:5432/test]

Each measurement starts fresh server processes (bench/run.py's Server, its webhook receiver
process) on a new schema of the database at ``--url`` (dropped afterwards), warms each one up,
then sends ``--n`` alerts with distinct fingerprints in SubmitAlerts calls of 64, spread round
robin over the replicas by one client thread per replica, and waits until the receiver has
every notification. It prints accepted alerts per second (until the last ack) and end-to-end
notifications per second (until the last arrives), and the receiver's duplicates.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any

from run import Receiver, Server, make_alert, mono, stop_all, submit_batches  # also puts the repository on sys.path

from tests.support.postgres import url_in_schema  # the schema in the URL's options

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


def burst(rx: Receiver, workdir: Path, n: int, replicas: int, state: dict[str, Any]) -> dict[str, Any]:
    """One burst of ``n`` alerts over ``replicas`` servers with the ``[state]`` given."""
    servers = [Server(workdir / f"r{i}", rx.url, [(["state", key], value) for key, value in state.items()]
                      + [(["observability", "log_level"], "warning")]) for i in range(replicas)]
    try:
        for server in servers:
            server.start()
            server.warmup(rx)
        tag = uuid.uuid4().hex[:8]
        requests = [make_alert(f"{tag}-{i}", f"burst {tag} {i}", i) for i in range(n)]
        results: list[dict[str, Any]] = [{} for _ in servers]

        def send(index: int) -> None:
            results[index] = submit_batches(servers[index], requests[index::replicas], timeout=max(60.0, n / 50))

        t0 = mono()
        threads = [threading.Thread(target=send, args=(i,)) for i in range(replicas)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        t_acked = max(r["t_last_ack"] or mono() for r in results)
        got = rx.wait_count(n, timeout=max(60.0, n / 50))
        t_done = mono()
        accepted = sum(r["accepted"] for r in results)
        stats = rx.stats()
        return {"replicas": replicas, "accepted": accepted, "received": got,
                "accept_per_s": accepted / (t_acked - t0), "e2e_per_s": got / (t_done - t0),
                "receiver": stats}
    finally:
        for server in servers:
            server.stop()
        rx.reset()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--url", default=DEFAULT_URL)
    args = parser.parse_args()
    import psycopg

    rx = Receiver()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for run in range(args.runs):
                cases: list[tuple[str, int, dict[str, Any]]] = [
                    ("SQLite, one server", 1, {"path": str(Path(tmp) / f"s{run}.db")}),
                    ("PostgreSQL, one server", 1, {}),
                    *((f"PostgreSQL, {k} replica{'s' if k > 1 else ''}", k, {"replicas": True}) for k in (1, 2, 3)),
                ]
                for name, replicas, state in cases:
                    schema = f"bench_{uuid.uuid4().hex[:10]}"
                    with psycopg.connect(args.url, autocommit=True) as conn:
                        conn.execute(f'CREATE SCHEMA "{schema}"')
                    try:
                        if "path" not in state:
                            state = {**state, "url": url_in_schema(schema, args.url)}
                        res = burst(rx, Path(tmp) / f"{run}-{schema}", args.n, replicas, state)
                    finally:
                        with psycopg.connect(args.url, autocommit=True) as conn:
                            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
                    print(f"run {run} {name:28} accept {res['accept_per_s']:7.0f}/s  e2e {res['e2e_per_s']:7.0f}/s  "
                          f"received {res['received']}/{args.n}", flush=True)
    finally:
        rx.close()
        stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
