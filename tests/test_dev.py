"""``python3 dev.py run`` as a process: signals reach the server, which drains and exits 0."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.support.process import ROOT

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to find the server")


def children_of(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc/<n>/stat: the field after the name)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # ended meanwhile
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_dev_py_run_drains_the_server_and_exits_with_its_code(tmp_path, signum):
    config = tmp_path / "dev.toml"
    config.write_text(f"""
[server]
grpc_port = 0
[state]
path = "{tmp_path / 'data' / 'store.db'}"
[observability]
json_logs = true
""")
    # stdin from /dev/null: dev.py must not take the test's terminal (if any) for its own.
    dev = subprocess.Popen([sys.executable, str(ROOT / "dev.py"), "run", "--config", str(config)],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, cwd=ROOT)
    stdout: list[str] = []
    stderr: list[str] = []
    listening = threading.Event()

    def read_stdout() -> None:
        for line in dev.stdout:
            stdout.append(line)
            if "listening on" in line:
                listening.set()

    readers = [threading.Thread(target=read_stdout, daemon=True),
               threading.Thread(target=lambda: stderr.extend(dev.stderr), daemon=True)]
    for reader in readers:
        reader.start()
    servers: list[int] = []
    try:
        assert listening.wait(60), "dev.py run never listened:\n" + "".join(stdout + stderr)
        servers = children_of(dev.pid)
        assert len(servers) == 1
        dev.send_signal(signum)
        code = dev.wait(60)
        for reader in readers:
            reader.join(10)
        assert not alive(servers[0]), "the server outlived dev.py"
        output = "".join(stdout + stderr)
        assert code == 0, output
        assert "Traceback" not in output and "KeyboardInterrupt" not in output
        events = [json.loads(line)["event"] for line in stderr if line.startswith("{")]
        assert events[-2:] == ["engine_stopped", "stopped"], output  # drained to the end
    finally:
        if dev.poll() is None:
            dev.kill()
            dev.wait(10)
        for pid in servers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
