#!/usr/bin/env python3
"""The project's benchmark: one command, loopback only, bounded, side by side with Alertmanager.

    .venv/bin/python bench/run.py            # full run (about 12 minutes on 2 cores)
    .venv/bin/python bench/run.py --quick    # about a minute, smaller counts, 1 run each

Every figure is measured against a real server process (``server.py --config <generated
toml>``, temp store, webhook channel pointed at bench/receiver.py in its own process). It
prints one table (median and min..max over runs), writes the figures as JSON and a PNG plot
of submission→delivery latency against offered load to bench/results/. Alertmanager is
measured in the same run with ../shared/bench/alertmanager/am_bench.py when
``prometheus-alertmanager`` is installed. See bench/README.md for what each figure means.

Every process started here is stopped by its PID (SIGTERM, then SIGKILL after a bounded
wait); every loop is bounded in count and in time.
"""
from __future__ import annotations

import argparse
import atexit
import http.client
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import sqlite3
import statistics as st
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402

from protos import (alerts_pb2, alerts_pb2_grpc, incidents_pb2, incidents_pb2_grpc, notifications_pb2,  # noqa: E402
                    notifications_pb2_grpc)

AM_DIR = (ROOT / ".." / "shared" / "bench" / "alertmanager").resolve()
SCHEMA_PATH = ROOT / "actors" / "store" / "schema.sql"
CLK_TCK = os.sysconf("SC_CLK_TCK")
mono = time.monotonic

PROFILES: dict[str, dict[str, Any]] = {
    "full": dict(runs=3, unary_n=3_000, unary_threads=4, stream_n=5_000, storm_n=100_000,
                 burst_n=10_000, rates=(200, 500, 1000), paced_secs=10.0, backlog_n=1_000_000,
                 backlog_settle=10.0, recovery_n=100_000, recovery_window=10.0, am_runs=3,
                 drain_timeout=60.0),
    "quick": dict(runs=1, unary_n=500, unary_threads=4, stream_n=1_000, storm_n=5_000,
                  burst_n=2_000, rates=(200, 500, 1000), paced_secs=2.0, backlog_n=50_000,
                  backlog_settle=3.0, recovery_n=10_000, recovery_window=3.0, am_runs=1,
                  drain_timeout=30.0),
}
PHASES = ("ingest", "storm", "burst", "routes", "silences", "paced", "backlog", "recovery", "am")
#: Routes in the tree of the "routes" phase (--routes).
DEFAULT_ROUTES = 50
#: Active silences during the burst of the "silences" phase (--silences).
DEFAULT_SILENCES = 1_000


# --------------------------------------------------------------------------------------------
# process bookkeeping: everything we start is registered and stopped by PID
# --------------------------------------------------------------------------------------------
_PROCS: list[subprocess.Popen] = []
#: processes to stop with another first signal (am_bench.py cleans up its children on SIGINT only)
_FIRST_SIGNAL: dict[int, int] = {}


def stop_process(proc: subprocess.Popen, grace: float = 10.0) -> None:
    if proc.poll() is None:
        try:
            os.kill(proc.pid, _FIRST_SIGNAL.get(proc.pid, signal.SIGTERM))
        except ProcessLookupError:
            pass
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(5)
    if proc in _PROCS:
        _PROCS.remove(proc)


def stop_all() -> None:
    for proc in list(reversed(_PROCS)):
        stop_process(proc, grace=5.0)


def spawn(cmd: list[str], **kw: Any) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, **kw)
    _PROCS.append(proc)
    return proc


def _on_signal(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------
def proc_status(pid: int, key: str) -> int | None:
    """A /proc/<pid>/status value in bytes (VmRSS, VmHWM), or None if the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def proc_cpu(pid: int) -> float | None:
    """utime + stime of a process in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
        return (int(parts[11]) + int(parts[12])) / CLK_TCK
    except (FileNotFoundError, ProcessLookupError):
        return None


def children(pid: int) -> list[int]:
    """Pids of the direct children of a process (the server's sender worker processes)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(entry))
            except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
                pass
    return out


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds per thread (tid) of a process."""
    out: dict[int, float] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                parts = f.read().rsplit(")", 1)[1].split()
            out[int(tid)] = (int(parts[11]) + int(parts[12])) / CLK_TCK
        except (FileNotFoundError, ProcessLookupError, ValueError):
            pass
    return out


def py_spy_exe() -> str | None:
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return exe if Path(exe).exists() else None


def thread_names(pid: int) -> dict[int, str]:
    """Python thread names by tid (from ``py-spy dump``; empty if py-spy is not installed)."""
    exe = py_spy_exe()
    if not exe:
        return {}
    try:
        text = subprocess.run([exe, "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return {int(m.group(1)): m.group(2) for m in re.finditer(r'^Thread (\d+) \([^)]*\): "([^"]+)"', text, re.M)}


def self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def pct(xs: list[float], p: float) -> float:
    """Linear-interpolated percentile (same definition as am_bench.py)."""
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100.0
    f = int(k)
    c = min(f + 1, len(xs) - 1)
    return xs[f] + (xs[c] - xs[f]) * (k - f)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):  # an inline table (in a list: the routes of a routing tree)
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {v!r} as TOML")


def route_tree(n: int) -> dict[str, Any]:
    """A ``[route]`` of n routes over the bench alerts' fields, every one to the default receiver
    (so each alert is still one webhook). The first route reads each alert's unique ``id`` label,
    so no answer can be cached and every event walks the tree; then one route per service
    (``service="svc-k"`` and a regex on ``team``), tried in order; services past n - 1 fall
    through to the root."""
    routes = [{"name": "no-id", "matchers": ['id=~"nomatch-.*"'], "receiver": "default"}]
    routes += [{"name": f"svc-{k}", "matchers": [f'service="svc-{k}"', 'team=~"t[0-9]+"'], "receiver": "default"}
               for k in range(n - 1)]
    return {"receiver": "default", "routes": routes}


def routing_cost_us(n: int, events: int = 20_000) -> dict[str, float]:
    """Microseconds per event of the routing decision for :func:`route_tree` (n routes), in this
    process: every event new to the cache (the tree walked), and every event answered from it."""
    from actors.domain.config import settings_from_mapping
    from actors.domain.models import Incident, IncidentState, IncidentType, Severity, utc_now
    from actors.domain.routing import Routing

    settings = settings_from_mapping({"notifications": {"webhook_enabled": True, "default_webhook_url": "http://x/"},
                                      "route": route_tree(n)})
    now = utc_now()

    def incident(i: int) -> Incident:
        return Incident(f"i{i}", "fp", "t", "", Severity.P2, IncidentType.APPLICATION, IncidentState.DETECTED,
                        "bench", now, now, now, labels={"id": f"a-{i}", "team": f"t{i % 10}"},
                        affected_services=(f"svc-{i % 50}",))

    distinct = [incident(i) for i in range(events)]
    walked, cached = Routing.of(settings), Routing.of(settings)
    t0 = time.perf_counter()
    for one in distinct:
        walked.route(one)
    t1 = time.perf_counter()
    same = distinct[0]
    cached.route(same)
    t2 = time.perf_counter()
    for _ in range(events):
        cached.route(same)
    t3 = time.perf_counter()
    return {"miss_us": (t1 - t0) / events * 1e6, "hit_us": (t3 - t2) / events * 1e6}


def write_toml(path: Path, data: dict[str, dict[str, Any]]) -> None:
    lines = []

    def section(name: str, table: dict[str, Any]) -> None:
        lines.append(f"[{name}]")
        subs = []
        for k, v in table.items():
            if isinstance(v, dict):
                subs.append((f"{name}.{k}", v))
            else:
                lines.append(f"{k} = {toml_value(v)}")
        lines.append("")
        for sub_name, sub in subs:
            section(sub_name, sub)

    for name, table in data.items():
        section(name, table)
    path.write_text("\n".join(lines), encoding="utf-8")


def code_fingerprint() -> str:
    """A digest of the server's code (server.py, actors/, protos/), to notice edits during a run."""
    import hashlib
    h = hashlib.sha256()
    files = [ROOT / "server.py", *sorted((ROOT / "actors").rglob("*.py")), *sorted((ROOT / "actors").rglob("*.sql")),
             *sorted((ROOT / "protos").glob("*.py"))]
    for f in files:
        try:
            h.update(str(f.relative_to(ROOT)).encode() + b"\0" + f.read_bytes())
        except OSError:
            pass
    return h.hexdigest()[:12]


def parse_override(text: str) -> tuple[list[str], Any]:
    """``section.key=value`` (value parsed as TOML: 4, 2.5, true, "x")."""
    import tomllib
    key, _, raw = text.partition("=")
    if not key or not _:
        raise SystemExit(f"--set expects section.key=value, got {text!r}")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.strip().split("."), value


# --------------------------------------------------------------------------------------------
# the webhook receiver (separate process) and a blackhole (in this process)
# --------------------------------------------------------------------------------------------
class Receiver:
    def __init__(self) -> None:
        self.proc = spawn([sys.executable, str(HERE / "receiver.py"), "--port", "0"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        line = self.proc.stdout.readline().strip()  # type: ignore[union-attr]
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        if not m:
            raise RuntimeError(f"receiver did not start: {line!r}")
        self.port = int(m.group(1))
        self.url = f"http://127.0.0.1:{self.port}/hook"

    def get(self, path: str, timeout: float = 30.0) -> dict[str, Any]:
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return json.loads(r.read())
        finally:
            c.close()

    def stats(self) -> dict[str, Any]:
        return self.get("/_stats")

    def reset(self) -> None:
        self.get("/_reset")

    def dump(self) -> list[list[Any]]:
        return self.get("/_dump", timeout=120)["arrivals"]

    def store(self, on: bool) -> None:
        self.get("/_store?on=" + ("1" if on else "0"))

    def wait_count(self, n: int, timeout: float, poll: float = 0.01) -> int:
        """Poll until at least ``n`` POSTs arrived or ``timeout`` passed; returns the count."""
        deadline = mono() + timeout
        count = 0
        while mono() < deadline:
            count = self.stats()["count"]
            if count >= n:
                break
            time.sleep(poll)
        return count

    def wait_quiet(self, quiet: float, timeout: float) -> int:
        """Wait until no POST arrived for ``quiet`` seconds (bounded by ``timeout``)."""
        deadline = mono() + timeout
        last = -1
        since = mono()
        while mono() < deadline:
            count = self.stats()["count"]
            if count != last:
                last, since = count, mono()
            elif mono() - since >= quiet:
                break
            time.sleep(0.05)
        return last

    def cpu(self) -> float:
        return proc_cpu(self.proc.pid) or 0.0

    def close(self) -> None:
        stop_process(self.proc)


class Blackhole:
    """A loopback listener that accepts connections and never answers (deliveries stay owed)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.first_accept: float | None = None
        self.conns: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set() and len(self.conns) < 10_000:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            if self.first_accept is None:
                self.first_accept = mono()
            self.conns.append(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for c in self.conns:
            c.close()
        self.sock.close()


# --------------------------------------------------------------------------------------------
# the server under test
def silence_matchers(n: int) -> Iterator[list[str]]:
    """The matchers of n silences that never hold for a bench alert but that each alert must
    test: keyed on one of the bench alerts' 200 ``instance`` values (so every alert has about
    n / 200 candidates to try), then ``env="prod"``, which the bench's ``env="bench"`` fails."""
    for k in range(n):
        yield [f'instance="host-{k % 200}:9100"', 'env="prod"', f'silence="{k}"']


def silencing_cost_us(n: int, events: int = 20_000) -> dict[str, float]:
    """Microseconds per event of asking :func:`silence_matchers`' n silences about an incident
    (none holds), in this process."""
    from datetime import timedelta

    from actors.domain.models import Incident, IncidentState, IncidentType, Severity, utc_now
    from actors.domain.silences import ActiveSilences, Silence, checked_matchers

    now = utc_now()
    silences = ActiveSilences()
    for k, matchers in enumerate(silence_matchers(n)):
        silences.put(Silence(f"s{k}", checked_matchers(matchers), now, now + timedelta(hours=1), "bench", "bench",
                             now, now))
    incidents = [Incident(f"i{i}", "fp", "t", "", Severity.P2, IncidentType.APPLICATION, IncidentState.DETECTED,
                          "bench", now, now, now, labels={"instance": f"host-{i % 200}:9100", "env": "bench"},
                          affected_services=(f"svc-{i % 50}",)) for i in range(events)]
    t0 = time.perf_counter()
    for incident in incidents:
        if silences.silencing(incident, now) is not None:
            raise RuntimeError("a bench silence matched")
    return {"us": (time.perf_counter() - t0) / events * 1e6}


# --------------------------------------------------------------------------------------------
class Server:
    """``python server.py --config <toml>`` on a free loopback port, with its own temp store."""

    def __init__(self, workdir: Path, webhook_url: str, overrides: list[tuple[list[str], Any]],
                 db_path: Path | None = None, webhook_timeout: float = 10.0, routes: int = 0) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.db_path = db_path or workdir / "incidents.db"
        self.config: dict[str, dict[str, Any]] = {
            "server": {"host": "127.0.0.1", "grpc_port": 0, "shutdown_grace_secs": 2.0},
            "state": {"path": str(self.db_path)},
            "observability": {"log_level": "info"},
            "notifications": {"webhook_enabled": True, "default_webhook_url": webhook_url,
                              "webhook_timeout_secs": webhook_timeout},
        }
        if routes:
            self.config["route"] = route_tree(routes)
        for path, value in overrides:
            table = self.config
            for part in path[:-1]:
                table = table.setdefault(part, {})
            table[path[-1]] = value
        self.config_path = workdir / "bench.toml"
        write_toml(self.config_path, self.config)
        self.proc: subprocess.Popen | None = None
        self.channel: grpc.Channel | None = None

    def start(self, timeout: float = 60.0) -> float:
        """Start and wait until it serves; returns seconds from spawn to the listening line."""
        self.log_path = self.workdir / "server.log"
        self.log = open(self.log_path, "w")
        self.t_spawn = mono()
        self.proc = spawn([sys.executable, str(ROOT / "server.py"), "--config", str(self.config_path)],
                          stdout=self.log, stderr=subprocess.STDOUT, cwd=str(ROOT))
        deadline = self.t_spawn + timeout
        port = None
        while mono() < deadline:
            text = self.log_path.read_text(errors="replace")
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", text)
            if m:
                port = int(m.group(1))
                break
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited ({self.proc.returncode}):\n{text[-3000:]}")
            time.sleep(0.005)
        if port is None:
            raise RuntimeError(f"server not listening after {timeout}s; see {self.log_path}")
        self.t_listening = mono()
        self.port = port
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(self.channel).result(timeout=max(1.0, deadline - mono()))
        self.alerts = alerts_pb2_grpc.AlertIngestionStub(self.channel)
        self.incidents = incidents_pb2_grpc.IncidentServiceStub(self.channel)
        self.notifications = notifications_pb2_grpc.NotificationServiceStub(self.channel)
        return self.t_listening - self.t_spawn

    def add_silences(self, n: int) -> None:
        """n active silences (:func:`silence_matchers`: none holds for a bench alert), for an hour."""
        ends = datetime.now(timezone.utc).timestamp() + 3600
        for matchers in silence_matchers(n):
            request = notifications_pb2.CreateSilenceRequest(matchers=matchers, comment="bench")
            request.ends_at.FromSeconds(int(ends))
            self.notifications.CreateSilence(request, timeout=30)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def rss(self) -> int | None:
        return proc_status(self.pid, "VmRSS")

    def hwm(self) -> int | None:
        return proc_status(self.pid, "VmHWM")

    def cpu(self) -> float:
        """The server process's CPU seconds, its worker processes' included."""
        return sum(proc_cpu(pid) or 0.0 for pid in (self.pid, *children(self.pid)))

    def worker_cpu(self) -> float:
        return sum(proc_cpu(pid) or 0.0 for pid in children(self.pid))

    def hwm_workers(self) -> int:
        """Peak RSS of the worker processes, added up."""
        return sum(proc_status(pid, "VmHWM") or 0 for pid in children(self.pid))

    def stop(self) -> None:
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if self.proc is not None:
            stop_process(self.proc, grace=20.0)
            self.log.close()
            self.proc = None

    def warmup(self, rx: Receiver, n: int = 20, deliveries: bool = True) -> None:
        """A few alerts end to end (first connections, imports, caches), then a clean receiver."""
        tag = f"warm{int(time.time() * 1000) % 10**8}"
        acks = stream(self, (make_alert(f"{tag}-{i}", f"warmup {tag} {i}", i) for i in range(n)), timeout=30)
        if acks["accepted"] != n:
            raise RuntimeError(f"warm-up: {acks}")
        if not deliveries:
            return
        rx.wait_count(n, timeout=15)
        rx.wait_quiet(0.2, timeout=5)
        rx.reset()


def make_alert(alert_id: str, title: str, i: int) -> alerts_pb2.AlertRequest:
    """An alert shaped like am_bench.py's (8 labels, 2 annotations, one service)."""
    return alerts_pb2.AlertRequest(
        alert_id=alert_id, source="bench", title=title,
        description="synthetic alert for loopback throughput test",
        severity=3 if i % 3 else 2, type=2,  # P2/P1, APPLICATION
        labels={"alertname": "BenchAlert", "id": alert_id, "job": "bench", "env": "bench",
                "service": f"svc-{i % 50}", "instance": f"host-{i % 200}:9100",
                "severity": "critical" if i % 3 == 0 else "warning", "team": f"t{i % 10}"},
        annotations={"summary": f"bench alert {alert_id}",
                     "description": "synthetic alert for loopback throughput test"},
        affected_services=[f"svc-{i % 50}"])


def _tally(acks: dict[str, Any], ack: alerts_pb2.AlertAck) -> None:
    if ack.status == alerts_pb2.ACCEPTED:
        acks["accepted"] += 1
        acks["new"] += ack.new_incident
    elif ack.status == alerts_pb2.DUPLICATE:
        acks["duplicate"] += 1
    elif ack.status == alerts_pb2.RATE_LIMITED:
        acks["rate_limited"] += 1
    else:
        acks["rejected"] += 1


def new_acks() -> dict[str, Any]:
    return {"accepted": 0, "new": 0, "duplicate": 0, "rate_limited": 0, "rejected": 0,
            "errors": 0, "error": "", "t_last_ack": None}


def stream(server: Server, requests: Iterable[alerts_pb2.AlertRequest], timeout: float) -> dict[str, Any]:
    """One StreamAlerts call; returns ack counts (bounded by ``timeout`` via the RPC deadline)."""
    acks = new_acks()
    call = server.alerts.StreamAlerts(iter(requests), timeout=timeout)
    try:
        for ack in call:
            _tally(acks, ack)
            acks["t_last_ack"] = mono()
    except grpc.RpcError as exc:
        acks["errors"] += 1
        acks["error"] = f"{exc.code().name}: {exc.details()}"
    return acks


#: Alerts per SubmitAlerts call in the burst and the storm: what Prometheus posts to Alertmanager.
CALL_BATCH = 64


def submit_batches(server: Server, requests: list[alerts_pb2.AlertRequest], timeout: float,
                   submitted: list[float] | None = None) -> dict[str, Any]:
    """One sequential client sending ``requests`` in SubmitAlerts calls of CALL_BATCH alerts
    (as am_bench.py posts to Alertmanager); returns ack counts. ``submitted[i]`` gets the time
    alert i's call was handed to gRPC. Every call has a deadline within ``timeout``."""
    acks = new_acks()
    deadline = mono() + timeout
    for start in range(0, len(requests), CALL_BATCH):
        chunk = requests[start:start + CALL_BATCH]
        now = mono()
        if submitted is not None:
            submitted[start:start + len(chunk)] = [now] * len(chunk)
        try:
            reply = server.alerts.SubmitAlerts(alerts_pb2.AlertBatch(alerts=chunk), timeout=max(1.0, deadline - now))
        except grpc.RpcError as exc:
            acks["errors"] += 1
            acks["error"] = f"{exc.code().name}: {exc.details()}"
            break
        for ack in reply.acks:
            _tally(acks, ack)
        acks["t_last_ack"] = mono()
    return acks


def list_incidents(server: Server, page_size: int = 50, max_pages: int = 10_000) -> list[Any]:
    out: list[Any] = []
    token = ""
    for _ in range(max_pages):
        resp = server.incidents.ListIncidents(
            incidents_pb2.ListIncidentsRequest(page_size=page_size, page_token=token), timeout=30)
        out.extend(resp.incidents)
        token = resp.next_page_token
        if not token:
            break
    return out


# --------------------------------------------------------------------------------------------
# the phases
# --------------------------------------------------------------------------------------------
class Bench:
    def __init__(self, args: argparse.Namespace, prof: dict[str, Any], results_dir: Path) -> None:
        self.a = args
        self.p = prof
        self.results_dir = results_dir
        self.tmp = Path(tempfile.mkdtemp(prefix="imbench-", dir=args.tmpdir))
        self.rx = Receiver()
        self.overrides = [parse_override(s) for s in args.set]
        self.seq = 0
        self.log_lines: list[str] = []

    def close(self) -> None:
        self.rx.close()
        if not self.a.keep_tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def limit(self, n: int) -> float:
        """The time bound for moving ``n`` alerts through: drain_timeout, or n/50 s if longer."""
        return max(self.p["drain_timeout"], n / 50.0)

    def say(self, text: str) -> None:
        print(text, flush=True)
        self.log_lines.append(text)

    def server(self, db_path: Path | None = None, url: str | None = None, **kw: Any) -> Server:
        self.seq += 1
        return Server(self.tmp / f"s{self.seq}", url or self.rx.url, self.overrides, db_path, **kw)

    def tag(self, name: str) -> str:
        self.seq += 1
        return f"{name}{self.seq}t{int(time.time()) % 100000}"

    # -- 1. ingest ---------------------------------------------------------------------------
    def ingest_unary(self, run: int) -> dict[str, Any]:
        n, threads = self.p["unary_n"], self.p["unary_threads"]
        tag = self.tag("u")
        reqs = [make_alert(f"{tag}-{i}", f"unary {tag} {i}", i) for i in range(n)]
        s = self.server()
        s.start()
        try:
            s.warmup(self.rx)
            acks = [new_acks() for _ in range(threads)]
            barrier = threading.Barrier(threads + 1)
            deadline_box = [0.0]

            def worker(k: int) -> None:
                mine = reqs[k::threads]
                barrier.wait()
                for r in mine:
                    if mono() > deadline_box[0]:
                        break
                    try:
                        _tally(acks[k], s.alerts.SubmitAlert(r, timeout=30))
                        acks[k]["t_last_ack"] = mono()
                    except grpc.RpcError as exc:
                        acks[k]["errors"] += 1
                        acks[k]["error"] = f"{exc.code().name}: {exc.details()}"

            ths = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(threads)]
            for t in ths:
                t.start()
            cpu0 = s.cpu()
            t0 = mono()
            deadline_box[0] = t0 + self.limit(n)
            barrier.wait()
            for t in ths:
                t.join(self.limit(n) + 40)
            t_end = max(a["t_last_ack"] or t0 for a in acks)
            cpu1 = s.cpu()
            accepted = sum(a["accepted"] for a in acks)
            errors = sum(a["errors"] for a in acks)
            res = {"n": n, "threads": threads, "accepted": accepted, "errors": errors,
                   "rate_limited": sum(a["rate_limited"] for a in acks),
                   "secs": t_end - t0, "per_s": accepted / (t_end - t0) if t_end > t0 else 0.0,
                   "cpu_per_1k": (cpu1 - cpu0) * 1000 / max(1, accepted),
                   "error": next((a["error"] for a in acks if a["error"]), "")}
        finally:
            s.stop()
        self.say(f"  ingest unary  run {run}: {res['accepted']}/{n} acked in {res['secs']:.2f}s "
                 f"= {res['per_s']:.0f}/s ({threads} threads), errors={res['errors']} {res['error']}")
        return res

    def ingest_stream(self, run: int, channels: bool = True) -> dict[str, Any]:
        n = self.p["stream_n"]
        tag = self.tag("s")
        reqs = [make_alert(f"{tag}-{i}", f"stream {tag} {i}", i) for i in range(n)]
        s = self.server()
        if not channels:  # intake alone: no channel enabled, so no deliveries compete for the CPU
            s.config["notifications"]["webhook_enabled"] = False
            write_toml(s.config_path, s.config)
        s.start()
        try:
            s.warmup(self.rx, deliveries=channels)
            cpu0 = s.cpu()
            t0 = mono()
            acks = stream(s, reqs, timeout=self.limit(n))
            t_end = acks["t_last_ack"] or mono()
            cpu1 = s.cpu()
            res = {"n": n, "accepted": acks["accepted"], "errors": acks["errors"], "error": acks["error"],
                   "rate_limited": acks["rate_limited"], "secs": t_end - t0,
                   "per_s": acks["accepted"] / (t_end - t0) if t_end > t0 else 0.0,
                   "cpu_per_1k": (cpu1 - cpu0) * 1000 / max(1, acks["accepted"])}
        finally:
            s.stop()
        self.say(f"  ingest stream{'' if channels else ' (no channels)'} run {run}: {res['accepted']}/{n} acked in {res['secs']:.2f}s "
                 f"= {res['per_s']:.0f}/s, errors={res['errors']} {res['error']}")
        return res

    # -- 2. duplicate storm ------------------------------------------------------------------
    def storm(self, run: int) -> dict[str, Any]:
        n, fps = self.p["storm_n"], 100
        tag = self.tag("d")
        reqs = [make_alert(f"{tag}-{i}", f"storm {tag} fp{i % fps}", i % fps) for i in range(n)]
        s = self.server()
        s.start()
        profiler = None
        try:
            s.warmup(self.rx)
            if self.a.py_spy and run == 0:
                profiler = self.start_py_spy(s.pid, "storm")
            cpu0 = s.cpu()
            t0 = mono()
            acks = submit_batches(s, reqs, timeout=self.limit(n))
            t_end = acks["t_last_ack"] or mono()
            cpu1 = s.cpu()
            if profiler is not None:
                self.stop_py_spy(profiler)
            self.rx.wait_count(fps, timeout=30)
            self.rx.wait_quiet(1.0, timeout=10)  # give any extra notification time to show up
            arrivals = [a for a in self.rx.dump() if a[1] and a[1].startswith(f"storm {tag} ")]
            incidents = list_incidents(s, page_size=50)
            mine = [i for i in incidents if i.title.startswith(f"storm {tag} ")]
            res = {"n": n, "fingerprints": fps, "accepted": acks["accepted"], "new_incidents_acked": acks["new"],
                   "errors": acks["errors"], "error": acks["error"], "secs": t_end - t0,
                   "per_s": acks["accepted"] / (t_end - t0) if t_end > t0 else 0.0,
                   "cpu_per_1k": (cpu1 - cpu0) * 1000 / max(1, acks["accepted"]),
                   "incidents_listed": len(mine), "alert_count_sum": sum(i.alert_count for i in mine),
                   "notifications": len(arrivals),
                   "notified_incidents": len({a[3] for a in arrivals}),
                   "notified_titles": len({a[1] for a in arrivals})}
            res["ok"] = (res["incidents_listed"] == fps and res["notifications"] == fps
                         and res["notified_incidents"] == fps and res["alert_count_sum"] == n
                         and res["accepted"] == n)
        finally:
            s.stop()
            self.rx.reset()
        self.say(f"  storm         run {run}: {res['accepted']}/{n} over {fps} fps in {res['secs']:.2f}s = "
                 f"{res['per_s']:.0f}/s; incidents={res['incidents_listed']} (alerts {res['alert_count_sum']}) "
                 f"notifications={res['notifications']} -> {'OK' if res['ok'] else 'WRONG'}")
        return res

    # -- 3. end to end -----------------------------------------------------------------------
    def _latencies(self, prefix: str, submit: list[float]) -> tuple[list[float], float, int, int]:
        """Latencies (s) of first deliveries of this run's alerts, last arrival, count, duplicates."""
        lat: list[float] = []
        seen: set[int] = set()
        last = 0.0
        dups = 0
        for t, title, _nid, _iid, _et in self.rx.dump():
            if not title or not title.startswith(prefix):
                continue
            i = int(title.rsplit(" ", 1)[1])
            if i in seen:
                dups += 1
                continue
            seen.add(i)
            if submit[i] > 0:
                lat.append(t - submit[i])
            last = max(last, t)
        return lat, last, len(seen), dups

    def burst(self, run: int, routes: int = 0, silences: int = 0) -> dict[str, Any]:
        """The burst; with ``routes``, through a routing tree of that many routes (route_tree);
        with ``silences``, that many active silences none of which holds (silence_matchers)."""
        n = self.p["burst_n"]
        tag = self.tag("b")
        prefix = f"burst {tag} "
        reqs = [make_alert(f"{tag}-{i}", f"{prefix}{i}", i) for i in range(n)]
        submit = [0.0] * n
        s = self.server(routes=routes)
        s.start()
        profiler = None
        try:
            s.add_silences(silences)
            s.warmup(self.rx)
            rss_idle = s.rss()
            if self.a.py_spy and run == 0:
                profiler = self.start_py_spy(s.pid, "burst")

            names = thread_names(s.pid) if run == 0 else {}
            tcpu0 = thread_cpu(s.pid)
            cpu0, rcpu0, ccpu0, wcpu0 = s.cpu(), self.rx.cpu(), self_cpu(), s.worker_cpu()
            t0 = mono()
            acks = submit_batches(s, reqs, timeout=self.limit(n), submitted=submit)
            t_acked = acks["t_last_ack"] or mono()
            got = self.rx.wait_count(n, timeout=max(1.0, t0 + self.limit(n) - mono()))
            cpu1, rcpu1, ccpu1, wcpu1 = s.cpu(), self.rx.cpu(), self_cpu(), s.worker_cpu()
            tcpu1 = thread_cpu(s.pid)
            by_thread = {names.get(tid, str(tid)): round((c - tcpu0.get(tid, 0.0)) * 1000 / n, 4)
                         for tid, c in tcpu1.items() if c - tcpu0.get(tid, 0.0) >= 0.01}
            hwm, hwm_workers = s.hwm(), s.hwm_workers()
            lat, last, received, dups = self._latencies(prefix, submit)
            res = {"n": n, "accepted": acks["accepted"], "errors": acks["errors"], "error": acks["error"],
                   "received": received, "duplicates": dups, "timed_out": got < n,
                   "accept_s": t_acked - t0, "accept_per_s": acks["accepted"] / (t_acked - t0),
                   "e2e_s": last - t0, "e2e_per_s": received / (last - t0) if received else 0.0,
                   "lat_p50_ms": pct(lat, 50) * 1e3, "lat_p99_ms": pct(lat, 99) * 1e3,
                   "lat_max_ms": max(lat) * 1e3 if lat else float("nan"),
                   "rss_idle": rss_idle, "rss_hwm": hwm, "rss_hwm_workers": hwm_workers,
                   "cpu_per_1k": (cpu1 - cpu0) * 1000 / n, "rx_cpu_per_1k": (rcpu1 - rcpu0) * 1000 / n,
                   "workers_cpu_per_1k": (wcpu1 - wcpu0) * 1000 / n,
                   "client_cpu_per_1k": (ccpu1 - ccpu0) * 1000 / n,
                   "server_cpu_per_1k_by_thread": dict(sorted(by_thread.items(), key=lambda kv: -kv[1]))}
        finally:
            if profiler:
                self.stop_py_spy(profiler)
            s.stop()
            self.rx.reset()
        case = f" {routes} routes" if routes else f" {silences} silences" if silences else ""
        self.say(f"  burst{case:<13} run {run}: accept {res['accept_per_s']:.0f}/s, e2e {res['e2e_per_s']:.0f}/s "
                 f"({res['e2e_s']:.2f}s, got {received}/{n}, dups {dups}), p50 {res['lat_p50_ms']:.1f}ms "
                 f"p99 {res['lat_p99_ms']:.1f}ms max {res['lat_max_ms']:.1f}ms, RSS idle/peak "
                 f"{(rss_idle or 0) / 2**20:.1f}/{(hwm or 0) / 2**20:.1f} MiB (+{hwm_workers / 2**20:.1f} workers), "
                 f"CPU/1k alerts server {res['cpu_per_1k']:.3f}s (workers {res['workers_cpu_per_1k']:.3f}s) rx {res['rx_cpu_per_1k']:.3f}s client {res['client_cpu_per_1k']:.3f}s")
        if run == 0 and by_thread:
            self.say("    server CPU s per 1,000 alerts by thread: " + ", ".join(
                f"{k} {v:.3f}" for k, v in res["server_cpu_per_1k_by_thread"].items()))
        return res

    def paced(self, run: int) -> dict[int, dict[str, Any]]:
        out: dict[int, dict[str, Any]] = {}
        s = self.server()
        s.start()
        try:
            s.warmup(self.rx)
            for rate in self.p["rates"]:
                n = int(rate * self.p["paced_secs"])
                tag = self.tag(f"p{rate}_")
                prefix = f"paced {tag} "
                reqs = [make_alert(f"{tag}-{i}", f"{prefix}{i}", i) for i in range(n)]
                submit = [0.0] * n
                late = [0.0]

                def gen() -> Iterator[alerts_pb2.AlertRequest]:
                    t_first = mono()
                    for i, r in enumerate(reqs):
                        due = t_first + i / rate
                        d = due - mono()
                        if d > 0:
                            time.sleep(d)
                        else:
                            late[0] = max(late[0], -d)
                        submit[i] = due  # intended time: no coordinated omission if we fall behind
                        yield r

                cpu0 = s.cpu()
                t0 = mono()
                acks = stream(s, gen(), timeout=self.p["paced_secs"] + self.limit(n))
                got = self.rx.wait_count(n, timeout=max(1.0, t0 + self.p["paced_secs"] + self.limit(n) - mono()))
                cpu1 = s.cpu()
                lat, last, received, dups = self._latencies(prefix, submit)
                out[rate] = {"rate": rate, "n": n, "accepted": acks["accepted"], "received": received,
                             "duplicates": dups, "timed_out": got < n, "error": acks["error"],
                             "lat_p50_ms": pct(lat, 50) * 1e3, "lat_p99_ms": pct(lat, 99) * 1e3,
                             "lat_max_ms": max(lat) * 1e3 if lat else float("nan"),
                             "generator_late_ms": late[0] * 1e3, "drain_after_s": last - (t0 + n / rate),
                             "cpu_per_1k": (cpu1 - cpu0) * 1000 / n}
                r = out[rate]
                self.say(f"  paced {rate:>5}/s run {run}: got {received}/{n}, p50 {r['lat_p50_ms']:.1f}ms "
                         f"p99 {r['lat_p99_ms']:.1f}ms max {r['lat_max_ms']:.1f}ms, last delivery "
                         f"{r['drain_after_s']:+.2f}s after the last due submit, CPU/1k {r['cpu_per_1k']:.3f}s")
                self.rx.wait_quiet(0.3, timeout=5)
                self.rx.reset()
        finally:
            s.stop()
            self.rx.reset()
        return out

    # -- 4/5. backlog on disk ----------------------------------------------------------------
    def make_backlog(self, path: Path, n: int, tag: str) -> float:
        """Write ``n`` owed webhook deliveries (one incident each) straight into a fresh store,
        following actors/store/schema.sql. Returns seconds taken."""
        t0 = mono()
        schema = SCHEMA_PATH.read_text(encoding="utf-8")
        conn = sqlite3.connect(str(path), isolation_level=None)
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.executescript(schema)  # the project's own schema, then without its indexes while loading
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL").fetchall():
            conn.execute(f'DROP INDEX "{name}"')
        now = time.time() - 60.0
        iso = datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        snap = json.dumps({
            "id": "@ID@", "fingerprint": "@FP@", "title": "@TITLE@",
            "description": "synthetic alert for loopback throughput test", "severity": "P2",
            "type": "APPLICATION", "state": "DETECTED", "source": "bench", "created_at": iso,
            "updated_at": iso, "last_alert_at": iso, "alert_count": 1,
            "labels": {"alertname": "BenchAlert", "job": "bench", "env": "bench", "id": "@AID@"},
            "affected_services": ["svc-1"], "assignees": [], "resolution": None},
            separators=(",", ":"))
        a, b = snap.split("@ID@")
        b1, rest = b.split("@FP@")
        c1, rest = rest.split("@TITLE@")
        d1, e1 = rest.split("@AID@")
        chunk = 50_000
        conn.execute("BEGIN")
        for start in range(0, n, chunk):
            rows_i, rows_t, rows_n = [], [], []
            for i in range(start, min(n, start + chunk)):
                iid = f"00000000-0000-4000-8000-{i:012d}"
                fp = f"{i:064x}"
                at = now + i * 1e-5
                data = f"{a}{iid}{b1}{fp}{c1}backlog {tag} {i}{d1}{tag}-{i}{e1}"
                rows_i.append((iid, fp, 1, 1, 3, "bench", at, data))
                rows_t.append((i + 1, iid, "created", at, "bench", f'{{"alert_id":"{tag}-{i}"}}', data))
                rows_n.append((i + 1, f"10000000-0000-4000-8000-{i:012d}", iid, i + 1, "webhook", "default",
                               "incident.detected", at, "queued", at, at, at))
            conn.executemany("INSERT INTO incidents (id, fingerprint, active, state, severity, source, "
                             "created_at, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows_i)
            conn.executemany("INSERT INTO timeline (id, incident_id, kind, at, actor, detail, snapshot) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?)", rows_t)
            conn.executemany("INSERT INTO notifications (seq, id, incident_id, timeline_id, channel, destination, "
                             "event_type, occurred_at, status, due_at, created_at, updated_at) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows_n)
        conn.execute("COMMIT")
        conn.executescript(schema)  # the indexes again
        conn.close()
        fd = os.open(path, os.O_RDONLY)  # flush it now, so the server's first sync does not pay for it
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return mono() - t0

    def backlog(self) -> dict[str, Any]:
        n = self.p["backlog_n"]
        tag = self.tag("k")
        work = self.tmp / f"backlog{self.seq}"
        work.mkdir()
        db = work / "incidents.db"
        build_s = self.make_backlog(db, n, tag)
        size = db.stat().st_size
        self.say(f"  backlog: wrote {n:,} owed deliveries in {build_s:.1f}s ({size / 2**20:.0f} MiB on disk)")
        hole = Blackhole()
        s = self.server(db_path=db, url=hole.url, webhook_timeout=60.0)
        try:
            listening_s = s.start(timeout=120)
            deadline = mono() + 60
            while hole.first_accept is None and mono() < deadline:
                time.sleep(0.005)
            first_attempt_s = hole.first_accept - s.t_spawn if hole.first_accept else None
            rss_max = 0
            t_end = mono() + self.p["backlog_settle"]
            while mono() < t_end:
                rss_max = max(rss_max, s.rss() or 0)
                time.sleep(0.05)
            res = {"n": n, "db_bytes": size, "build_s": build_s, "listening_s": listening_s,
                   "first_attempt_s": first_attempt_s, "rss": s.rss(), "rss_peak_sampled": rss_max,
                   "rss_hwm": s.hwm(), "settle_s": self.p["backlog_settle"], "blackhole_conns": len(hole.conns)}
        finally:
            hole.close()  # answer the hanging sends with a reset so shutdown is quick
            s.stop()
            shutil.rmtree(work, ignore_errors=True)
        first = res["first_attempt_s"]
        self.say(f"  backlog {n:,}: listening after {listening_s:.2f}s, first delivery attempt after "
                 f"{first if first is None else round(first, 3)}s, RSS {(res['rss'] or 0) / 2**20:.1f} MiB "
                 f"(peak {(res['rss_hwm'] or 0) / 2**20:.1f} MiB) after {self.p['backlog_settle']:.0f}s "
                 f"with the receiver blackholed")
        return res

    def recovery(self, runs: int) -> list[dict[str, Any]]:
        n = self.p["recovery_n"]
        tag = self.tag("r")
        master = self.tmp / f"recovery{self.seq}.db"
        build_s = self.make_backlog(master, n, tag)
        self.say(f"  recovery: wrote {n:,} owed deliveries in {build_s:.1f}s")
        out = []
        try:
            for run in range(runs):
                work = self.tmp / f"recovery{self.seq}-{run}"
                work.mkdir()
                db = work / "incidents.db"
                shutil.copyfile(master, db)
                self.rx.reset()
                self.rx.store(False)
                s = self.server(db_path=db)
                try:
                    listening_s = s.start(timeout=120)
                    deadline = mono() + 60
                    first = None
                    while mono() < deadline:
                        st_ = self.rx.stats()
                        if st_["first"] is not None:
                            first = st_["first"]
                            break
                        time.sleep(0.005)
                    window = self.p["recovery_window"]
                    if first is not None:
                        time.sleep(max(0.0, first + window - mono()))
                        count = self.rx.stats()["count"]
                    else:
                        count = 0
                    res = {"n": n, "listening_s": listening_s,
                           "first_delivery_s": (first - s.t_spawn) if first is not None else None,
                           "drain_per_s": count / window, "window_s": window, "rss": s.rss(), "rss_hwm": s.hwm()}
                finally:
                    s.stop()
                    self.rx.store(True)
                    self.rx.reset()
                    shutil.rmtree(work, ignore_errors=True)
                fd = res["first_delivery_s"]
                self.say(f"  recovery {n:,} run {run}: listening after {listening_s:.2f}s, first delivery after "
                         f"{fd if fd is None else round(fd, 3)}s, then {res['drain_per_s']:.0f} deliveries/s "
                         f"over {window:.0f}s")
                out.append(res)
        finally:
            master.unlink(missing_ok=True)
        return out

    # -- 6. Alertmanager ---------------------------------------------------------------------
    def am(self) -> dict[str, Any]:
        am_bin = self.a.am_bin or shutil.which("prometheus-alertmanager")
        script = AM_DIR / "am_bench.py"
        if not am_bin or not script.exists():
            why = ("prometheus-alertmanager is not installed (apt-get update && apt-get install -y "
                   "prometheus-alertmanager)" if not am_bin else f"{script} not found")
            self.say(f"  Alertmanager: not measured: {why}")
            return {"measured": False, "why": why}
        out: dict[str, Any] = {"measured": True, "bin": am_bin}
        jobs = [("burst", ["--ns", str(self.p["burst_n"]), "--runs", str(self.p["am_runs"]), "--batch", "64"])]
        for rate in self.p["rates"]:
            jobs.append((f"paced{rate}", ["--ns", str(int(rate * self.p["paced_secs"])), "--runs",
                                          str(self.p["am_runs"]), "--batch", "1", "--rate", str(rate)]))
        for name, extra in jobs:
            js = self.results_dir / f"am_{name}.json"
            cmd = [sys.executable, str(script), "--am-bin", am_bin, "--port", str(free_port()),
                   "--rport", str(free_port()), "--tmpdir", str(self.tmp), "--json", str(js), *extra]
            proc = spawn(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            _FIRST_SIGNAL[proc.pid] = signal.SIGINT  # its finally blocks stop Alertmanager and its receiver
            try:
                text, _ = proc.communicate(timeout=900)
            except subprocess.TimeoutExpired:
                stop_process(proc)
                self.say(f"  Alertmanager {name}: timed out")
                continue
            finally:
                if proc in _PROCS:
                    _PROCS.remove(proc)
            for line in text.splitlines():
                if line.startswith("  N="):
                    self.say(f"  AM {name:>10}:{line[1:]}")
            if proc.returncode != 0 or not js.exists():
                self.say(f"  Alertmanager {name}: failed ({proc.returncode}):\n{text[-2000:]}")
                continue
            out[name] = json.loads(js.read_text())["rows"]
        return out

    # -- py-spy (optional) -------------------------------------------------------------------
    def start_py_spy(self, pid: int, name: str) -> subprocess.Popen | None:
        exe = py_spy_exe()
        if not exe:
            self.say("  (py-spy not installed; --py-spy ignored)")
            return None
        out = self.results_dir / f"pyspy-{name}.txt"
        proc = spawn([exe, "record", "--pid", str(pid), "--format", "raw", "--rate", "200",
                      "--duration", str(int(self.limit(self.p["burst_n"]) + 30)), "--threads", "--gil", "-o", str(out)],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        return proc

    def stop_py_spy(self, proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGINT)  # py-spy writes its output on SIGINT
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                pass
        stop_process(proc)


# --------------------------------------------------------------------------------------------
# summary
# --------------------------------------------------------------------------------------------
def summary(values: Iterable[float | None]) -> dict[str, Any] | None:
    vals = [float(v) for v in values if v is not None and v == v]
    if not vals:
        return None
    return {"median": st.median(vals), "min": min(vals), "max": max(vals), "values": vals}


def fmt_summary(s: dict[str, Any] | None, fmt: str) -> str:
    if s is None:
        return "n/a"
    text = fmt.format(s["median"])
    if len(s["values"]) > 1:
        text += f" ({fmt.format(s['min'])}..{fmt.format(s['max'])})"
    return text


def build_figures(res: dict[str, Any], prof: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of the table: key, label, unit, ours, AM, better ('higher'/'lower'), format."""
    MiB = 1 / 2**20
    rows: list[dict[str, Any]] = []
    am = res.get("am") or {}

    def am_vals(job: str, key: str, scale: float = 1.0) -> dict[str, Any] | None:
        rr = am.get(job) if am.get("measured") else None
        if not rr:
            return None
        return summary(r[key] * scale if r.get(key) is not None else None for r in rr)

    def add(key: str, label: str, ours: dict[str, Any] | None, fmt: str, better: str = "",
            amv: dict[str, Any] | None = None, note: str = "") -> None:
        rows.append({"key": key, "label": label, "ours": ours, "am": amv, "better": better, "fmt": fmt,
                     "note": note})

    def col(rows_: list[dict[str, Any]] | None, key: str, scale: float = 1.0) -> dict[str, Any] | None:
        if not rows_:
            return None
        return summary((r.get(key) * scale if r.get(key) is not None else None) for r in rows_)

    if "ingest_unary" in res:
        add("ingest_unary_per_s", f"ingest unary, {prof['unary_threads']} client threads: alerts/s acked",
            col(res["ingest_unary"], "per_s"), "{:,.0f}", "higher")
    if "ingest_stream" in res:
        add("ingest_stream_per_s", "ingest StreamAlerts (1 stream): alerts/s acked",
            col(res["ingest_stream"], "per_s"), "{:,.0f}", "higher")
    if "ingest_stream_nochannel" in res:
        add("ingest_stream_nochannel_per_s", "ingest StreamAlerts, no channel enabled (intake alone): alerts/s",
            col(res["ingest_stream_nochannel"], "per_s"), "{:,.0f}", "higher")
    if "storm" in res:
        rr = res["storm"]
        add("storm_per_s", f"duplicate storm {prof['storm_n']:,} alerts / 100 fps: alerts/s",
            col(rr, "per_s"), "{:,.0f}", "higher")
        add("storm_incidents", "duplicate storm: incidents (ListIncidents) / expected 100",
            col(rr, "incidents_listed"), "{:.0f}")
        add("storm_notifications", "duplicate storm: webhook notifications / expected 100",
            col(rr, "notifications"), "{:.0f}")
        add("storm_ok_runs", f"duplicate storm: runs with every count right (of {len(rr)})",
            summary([sum(1 for r in rr if r["ok"])]), "{:.0f}")
    if "burst" in res:
        rr = res["burst"]
        n = prof["burst_n"]
        incomplete = any(r["timed_out"] for r in rr)
        add("burst_accept_per_s", f"{n:,}-alert burst: accepted alerts/s", col(rr, "accept_per_s"),
            "{:,.0f}", "higher", am_vals("burst", "accept_per_s"))
        add("burst_e2e_per_s", f"{n:,}-alert burst: end-to-end notifications/s" + (" !" if incomplete else ""),
            col(rr, "e2e_per_s"), "{:,.0f}", "higher", am_vals("burst", "e2e_per_s"),
            note="incomplete" if incomplete else "")
        add("burst_p50_ms", f"{n:,}-alert burst: latency p50 ms", col(rr, "lat_p50_ms"), "{:.1f}", "lower",
            am_vals("burst", "lat_p50_ms"))
        add("burst_p99_ms", f"{n:,}-alert burst: latency p99 ms", col(rr, "lat_p99_ms"), "{:.1f}", "lower",
            am_vals("burst", "lat_p99_ms"))
        add("burst_rss_peak_mib", f"{n:,}-alert burst: peak RSS MiB (VmHWM)", col(rr, "rss_hwm", MiB),
            "{:.1f}", "lower", am_vals("burst", "rss_hwm", MiB))
        add("idle_rss_mib", "idle RSS MiB (after warm-up)", col(rr, "rss_idle", MiB), "{:.1f}", "lower",
            am_vals("burst", "rss_idle", MiB))
        add("burst_cpu_per_1k", "CPU s per 1,000 alerts (server process)", col(rr, "cpu_per_1k"),
            "{:.3f}", "lower", am_vals("burst", "cpu_am_s", 1000 / n))
        add("burst_rx_cpu_per_1k", "CPU s per 1,000 alerts (webhook receiver)", col(rr, "rx_cpu_per_1k"),
            "{:.3f}", "lower", am_vals("burst", "cpu_rx_s", 1000 / n))
    if "burst_routes" in res:
        rr = res["burst_routes"]
        n, routes = prof["burst_n"], prof["routes"]
        add("routes_accept_per_s", f"{n:,}-alert burst, {routes}-route tree: accepted alerts/s",
            col(rr, "accept_per_s"), "{:,.0f}", "higher")
        add("routes_e2e_per_s", f"{n:,}-alert burst, {routes}-route tree: end-to-end notifications/s"
            + (" !" if any(r["timed_out"] for r in rr) else ""), col(rr, "e2e_per_s"), "{:,.0f}", "higher")
        add("routes_p50_ms", f"{n:,}-alert burst, {routes}-route tree: latency p50 ms", col(rr, "lat_p50_ms"),
            "{:.1f}", "lower")
        add("routes_p99_ms", f"{n:,}-alert burst, {routes}-route tree: latency p99 ms", col(rr, "lat_p99_ms"),
            "{:.1f}", "lower")
        add("routes_cpu_per_1k", f"CPU s per 1,000 alerts (server process), {routes}-route tree",
            col(rr, "cpu_per_1k"), "{:.3f}", "lower")
    if "burst_silences" in res:
        rr = res["burst_silences"]
        n, silences = prof["burst_n"], prof["silences"]
        add("silences_accept_per_s", f"{n:,}-alert burst, {silences:,} active silences: accepted alerts/s",
            col(rr, "accept_per_s"), "{:,.0f}", "higher")
        add("silences_e2e_per_s", f"{n:,}-alert burst, {silences:,} active silences: end-to-end notifications/s"
            + (" !" if any(r["timed_out"] for r in rr) else ""), col(rr, "e2e_per_s"), "{:,.0f}", "higher")
        add("silences_p50_ms", f"{n:,}-alert burst, {silences:,} active silences: latency p50 ms",
            col(rr, "lat_p50_ms"), "{:.1f}", "lower")
        add("silences_p99_ms", f"{n:,}-alert burst, {silences:,} active silences: latency p99 ms",
            col(rr, "lat_p99_ms"), "{:.1f}", "lower")
        add("silences_cpu_per_1k", f"CPU s per 1,000 alerts (server process), {silences:,} active silences",
            col(rr, "cpu_per_1k"), "{:.3f}", "lower")
    if "silencing_cost" in res:
        add("silencing_us", f"silence check, {prof['silences']:,} active silences (none holds): us/event",
            summary([res["silencing_cost"]["us"]]), "{:.2f}", "lower")
    if "routing_cost" in res:
        cost = res["routing_cost"]
        add("routing_miss_us", f"routing decision, {prof['routes']}-route tree, walked (not cached): us/event",
            summary([cost["miss_us"]]), "{:.1f}", "lower")
        add("routing_hit_us", f"routing decision, {prof['routes']}-route tree, cached: us/event",
            summary([cost["hit_us"]]), "{:.2f}", "lower")
    if "paced" in res:
        for rate in prof["rates"]:
            rr = [run[rate] for run in res["paced"] if rate in run]
            over = any(r["drain_after_s"] > 1.0 or r["received"] < r["n"] for r in rr)
            for p in ("50", "99"):
                add(f"paced{rate}_p{p}_ms", f"paced {rate}/s for {prof['paced_secs']:.0f}s: latency p{p} ms"
                    + (" *" if over else ""), col(rr, f"lat_p{p}_ms"), "{:.1f}", "lower",
                    am_vals(f"paced{rate}", f"lat_p{p}_ms"),
                    note="overloaded" if over else "")
    if "backlog" in res:
        b = res["backlog"]
        add("backlog_rss_mib", f"RSS with {b['n']:,} deliveries owed on disk, MiB", summary([b["rss"] * MiB if b["rss"] else None]),
            "{:.1f}", "lower")
        add("backlog_first_attempt_s", f"{b['n']:,} owed: start -> first delivery attempt, s",
            summary([b["first_attempt_s"]]), "{:.2f}", "lower")
    if "recovery" in res:
        rr = res["recovery"]
        n = rr[0]["n"] if rr else prof["recovery_n"]
        add("recovery_first_s", f"recovery, {n:,} owed: start -> first delivery, s", col(rr, "first_delivery_s"),
            "{:.2f}", "lower")
        add("recovery_drain_per_s", f"recovery, {n:,} owed: deliveries/s in the first {prof['recovery_window']:.0f}s",
            col(rr, "drain_per_s"), "{:,.0f}", "higher")
    return rows


def print_table(rows: list[dict[str, Any]], am_measured: bool, am_why: str) -> str:
    head = ("figure", "ours", "Alertmanager", "ours/AM")
    body = []
    for r in rows:
        ours = fmt_summary(r["ours"], r["fmt"])
        if r["am"] is not None:
            amt = fmt_summary(r["am"], r["fmt"])
            ratio = (r["ours"]["median"] / r["am"]["median"]) if r["ours"] and r["am"]["median"] else None
            rt = "n/a" if ratio is None else f"{ratio:.2f}x ({r['better']} is better)"
        else:
            amt = "not measured" if not am_measured and r["better"] and r["key"].startswith(("burst", "paced", "idle")) else "-"
            rt = "-"
        body.append((r["label"], ours, amt, rt))
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(head, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in body]
    if any(r["note"] == "overloaded" for r in rows):
        lines.append("* overloaded: the offered load is above what the server sustained (the last delivery came "
                     ">1 s after the last submit, or not all arrived), so this latency is mostly queueing time")
    if any(r["note"] == "incomplete" for r in rows):
        lines.append("! incomplete: not every notification arrived within the time bound; figures cover those that did")
    if not am_measured:
        lines.append(f"Alertmanager not measured: {am_why}")
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def plot(res: dict[str, Any], prof: dict[str, Any], path: Path, mode: str) -> str:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib not installed (pip install -e '.[bench]'); no plot written"
    rates = list(prof["rates"])
    fig, ax = plt.subplots(figsize=(11, 5.5))

    def series(rows_by_rate: dict[int, list[dict[str, Any]]], key: str) -> tuple[list, list, list]:
        xs, ys, err = [], [], []
        for rate in rates:
            s = summary(r.get(key) for r in rows_by_rate.get(rate, []))
            if s:
                xs.append(rate)
                ys.append(s["median"])
                err.append((s["median"] - s["min"], s["max"] - s["median"]))
        return xs, ys, err

    ours = {rate: [run[rate] for run in res.get("paced", []) if rate in run] for rate in rates}
    am = res.get("am") or {}
    am_rows = {rate: am.get(f"paced{rate}") or [] for rate in rates} if am.get("measured") else {}
    for label, data, color in (("ours", ours, "tab:blue"), ("Alertmanager", am_rows, "tab:orange")):
        for p, style in (("50", "-o"), ("99", "--s")):
            xs, ys, err = series(data, f"lat_p{p}_ms")
            if xs:
                ax.errorbar(xs, ys, yerr=list(zip(*err)) if err else None, fmt=style, color=color,
                            capsize=3, label=f"{label} p{p}")
    # the unpaced burst, placed at its achieved accept rate
    for label, rows_, key, color in (("ours", res.get("burst") or [], "accept_per_s", "tab:blue"),
                                     ("Alertmanager", (am.get("burst") or []) if am.get("measured") else [],
                                      "accept_per_s", "tab:orange")):
        for r in rows_:
            ax.scatter([r[key]], [r["lat_p99_ms"]], marker="x", color=color)
            ax.scatter([r[key]], [r["lat_p50_ms"]], marker="+", color=color)
        if rows_:
            ax.scatter([], [], marker="x", color=color, label=f"{label} {prof['burst_n']:,} burst p99 (+ p50) at its accept rate")
    if not ax.has_data():
        plt.close(fig)
        return "no latency data (burst/paced not run); no plot written"
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("offered load, alerts/s")
    ax.set_ylabel("submission -> webhook latency, ms")
    ax.set_title(f"Submission -> webhook latency vs offered load ({mode} mode, {os.cpu_count()} cores, loopback)",
                 fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    from matplotlib.ticker import ScalarFormatter
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(ScalarFormatter())
    ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"plot: {path}"


# --------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small counts, one run each (about a minute)")
    ap.add_argument("--runs", type=int, help="repetitions of each repeated phase (default: 3 full, 1 quick)")
    ap.add_argument("--phases", default=",".join(PHASES), help=f"comma list from {','.join(PHASES)}")
    ap.add_argument("--skip-am", action="store_true", help="do not measure Alertmanager")
    ap.add_argument("--am-bin", help="Alertmanager binary (default: prometheus-alertmanager on PATH)")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="server setting for every server started (repeatable), e.g. notifications.worker_threads=4")
    ap.add_argument("--count", action="append", default=[], metavar="NAME=N",
                    help="override a profile count, e.g. burst_n=20000 (see PROFILES in run.py)")
    ap.add_argument("--routes", type=int, default=DEFAULT_ROUTES, metavar="N",
                    help=f"routes in the tree of the routes phase (default {DEFAULT_ROUTES}): the burst again, "
                         "through that tree, each run right after the plain burst's")
    ap.add_argument("--silences", type=int, default=DEFAULT_SILENCES, metavar="N",
                    help=f"active silences in the silences phase (default {DEFAULT_SILENCES:,}): the burst again "
                         "with that many silences none of which holds, each run right after the plain burst's")
    ap.add_argument("--py-spy", action="store_true", help="profile the server during the first storm and the first burst (py-spy raw output, one file per phase)")
    ap.add_argument("--results", default=str(HERE / "results"), help="output directory (default bench/results)")
    ap.add_argument("--tmpdir", default=tempfile.gettempdir())
    ap.add_argument("--keep-tmp", action="store_true")
    a = ap.parse_args(argv)
    prof = dict(PROFILES["quick" if a.quick else "full"])
    for item in a.count:
        k, _, v = item.partition("=")
        if k not in prof:
            raise SystemExit(f"--count: unknown name {k!r}; one of {', '.join(prof)}")
        prof[k] = type(prof[k])(float(v)) if not isinstance(prof[k], tuple) else tuple(int(x) for x in v.split(","))
    if a.routes < 1:
        raise SystemExit("--routes: give at least 1")
    prof["routes"] = a.routes
    if a.silences < 1:
        raise SystemExit("--silences: give at least 1")
    prof["silences"] = a.silences
    if a.runs:
        prof["runs"] = a.runs
        prof["am_runs"] = a.runs
    phases = [p.strip() for p in a.phases.split(",") if p.strip()]
    unknown = set(phases) - set(PHASES)
    if unknown:
        raise SystemExit(f"unknown phases: {', '.join(sorted(unknown))}")
    if a.skip_am and "am" in phases:
        phases.remove("am")
    results_dir = Path(a.results)
    results_dir.mkdir(parents=True, exist_ok=True)

    signal.signal(signal.SIGTERM, _on_signal)
    atexit.register(stop_all)
    started = datetime.now(timezone.utc)
    t_start = mono()
    mode = "quick" if a.quick else "full"
    try:
        rev = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True,
                             text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        rev = ""
    code_before = code_fingerprint()
    print(f"== llm-incident-manager benchmark ({mode}): {os.cpu_count()} cores, "
          f"{platform.python_implementation()} {platform.python_version()}, load {os.getloadavg()[0]:.2f}, "
          f"git {rev or '?'} (code {code_before}); runs={prof['runs']}; loopback only", flush=True)
    if prof is not None and a.set:
        print(f"   server overrides: {', '.join(a.set)}")
    res: dict[str, Any] = {}
    bench = Bench(a, prof, results_dir)
    interrupted = False
    errors: list[str] = []
    try:
        runs = prof["runs"]

        def failed(what: str, exc: BaseException) -> None:
            errors.append(f"{what}: {exc!r}")
            traceback.print_exc()
            print(f"  !! {what} failed: {exc!r} (continuing with the next phase)", flush=True)

        def repeat(key: str, fn: Callable[[int], Any]) -> None:
            out = res.setdefault(key, [])
            for r in range(runs):
                try:
                    out.append(fn(r))
                except Exception as exc:  # report it, keep what was measured, go on
                    failed(f"{key} run {r}", exc)
                    break
            if not out:
                del res[key]

        def repeat_once(key: str, fn: Callable[[], Any]) -> None:
            """One more run of a repeated phase (runs of two phases interleaved)."""
            try:
                res.setdefault(key, []).append(fn())
            except Exception as exc:
                failed(key, exc)

        def once(key: str, fn: Callable[[], Any]) -> None:
            try:
                res[key] = fn()
            except Exception as exc:
                failed(key, exc)

        if "ingest" in phases:
            print("-- 1. ingest (distinct fingerprints; fresh server per run)", flush=True)
            repeat("ingest_unary", bench.ingest_unary)
            repeat("ingest_stream", bench.ingest_stream)
            repeat("ingest_stream_nochannel", lambda r: bench.ingest_stream(r, channels=False))
        if "storm" in phases:
            print("-- 2. duplicate storm", flush=True)
            repeat("storm", bench.storm)
        if "burst" in phases or "routes" in phases or "silences" in phases:
            with_routes, with_silences = "routes" in phases, "silences" in phases
            print("-- 3a. end to end: burst" + (f", and again through a {a.routes}-route tree" if with_routes else "")
                  + (f", and again with {a.silences:,} active silences" if with_silences else "")
                  + (" (alternating runs)" if with_routes or with_silences else ""), flush=True)
            for r in range(runs):  # alternating, so all see the same moment of a shared machine
                if "burst" in phases:
                    repeat_once("burst", lambda: bench.burst(r))
                if with_routes:
                    repeat_once("burst_routes", lambda: bench.burst(r, routes=a.routes))
                if with_silences:
                    repeat_once("burst_silences", lambda: bench.burst(r, silences=a.silences))
            if with_silences:
                once("silencing_cost", lambda: silencing_cost_us(a.silences))
                cost = res.get("silencing_cost")
                if cost:
                    print(f"  silence check, {a.silences:,} active silences: {cost['us']:.2f} us/event", flush=True)
            if with_routes:
                once("routing_cost", lambda: routing_cost_us(a.routes))
                cost = res.get("routing_cost")
                if cost:
                    print(f"  routing decision, {a.routes}-route tree: {cost['miss_us']:.1f} us/event walked, "
                          f"{cost['hit_us']:.2f} us/event cached", flush=True)
        if "paced" in phases:
            print("-- 3b. end to end: paced loads (latency uses the intended send time)", flush=True)
            repeat("paced", bench.paced)
        if "backlog" in phases:
            print("-- 4. memory with a backlog on disk (receiver blackholed)", flush=True)
            once("backlog", bench.backlog)
        if "recovery" in phases:
            print("-- 5. recovery: start with deliveries owed, receiver up", flush=True)
            once("recovery", lambda: bench.recovery(runs))
        if "am" in phases:
            print("-- 6. Alertmanager anchor (../shared/bench/alertmanager/am_bench.py)", flush=True)
            once("am", bench.am)
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted; stopping everything and reporting what was measured", flush=True)
    finally:
        stop_all()
        bench.close()

    code_after = code_fingerprint()
    if code_after != code_before:
        errors.append(f"the server's code changed during the run (digest {code_before} -> {code_after}); "
                      "the figures may mix versions: run again")
    am = res.get("am") or {}
    am_why = am.get("why", "skipped (--skip-am or phase not selected); install with "
                    "apt-get update && apt-get install -y prometheus-alertmanager")
    rows = build_figures(res, prof)
    print(f"\n== results ({mode}; median (min..max) over {prof['runs']} run(s); "
          f"{mono() - t_start:.0f}s total)", flush=True)
    table = print_table(rows, bool(am.get("measured")), am_why)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    doc = {"meta": {"mode": mode, "started": started.isoformat(), "seconds": mono() - t_start,
                    "cores": os.cpu_count(), "python": platform.python_version(), "git": rev,
                    "code_digest": code_before, "code_digest_after": code_after,
                    "profile": prof, "overrides": a.set, "phases": phases, "interrupted": interrupted,
                    "errors": errors},
           "figures": {r["key"]: {"label": r["label"], "ours": r["ours"], "alertmanager": r["am"],
                                  "ratio": (r["ours"]["median"] / r["am"]["median"])
                                  if r["ours"] and r["am"] and r["am"]["median"] else None,
                                  "better": r["better"]} for r in rows},
           "raw": res, "table": table}
    js = results_dir / f"bench-{mode}-{stamp}.json"
    js.write_text(json.dumps(doc, indent=1, default=str))
    shutil.copyfile(js, results_dir / f"latest-{mode}.json")
    print(f"json: {js}")
    print(plot(res, prof, results_dir / f"latency-vs-load-{mode}.png", mode))
    for e in errors:
        print(f"error: {e}")
    return 130 if interrupted else (1 if errors else 0)


if __name__ == "__main__":
    sys.exit(main())
