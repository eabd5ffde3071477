"""Run the real server as a separate process (for kill -9, signals and exit codes)."""
from __future__ import annotations

import queue
import re
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_LISTENING = re.compile(r"listening on [\d.]+:(\d+)")


class ServerProcess:
    """``server.py --config <path>``; :meth:`start` returns once it prints its port."""

    def __init__(self, config_path: Path, env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> None:
        self.config_path = config_path
        self.env = env
        self.args = args
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0
        self.output: list[str] = []

    def start(self, timeout: float = 30.0) -> "ServerProcess":
        self.output = []
        command = [sys.executable, str(ROOT / "server.py"), "--config", str(self.config_path), *self.args]
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
                                     env=self.env)
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            assert self.proc and self.proc.stdout
            for line in self.proc.stdout:
                self.output.append(line)
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        while True:
            line = lines.get(timeout=timeout)
            if line is None:
                raise AssertionError("server exited before listening:\n" + "".join(self.output))
            match = _LISTENING.search(line)
            if match:
                self.port = int(match.group(1))
                return self

    def wait(self, timeout: float = 30.0) -> int:
        assert self.proc
        return self.proc.wait(timeout)

    def stop(self) -> None:
        """Kill it if it is still running (only this process, by its own handle)."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def write_config(path: Path, store: Path, webhook_url: str, extra: str = "", server: str = "") -> Path:
    """``extra`` lines go into ``[notifications]`` (new tables may follow them); ``server``
    lines into ``[server]``."""
    path.write_text(f"""
[server]
host = "127.0.0.1"
grpc_port = 0
shutdown_grace_secs = 5
{server}

[state]
path = "{store}"

[observability]
log_level = "warning"

[notifications]
webhook_enabled = true
default_webhook_url = "{webhook_url}"
retry_backoff_secs = 0.05
{extra}
""")
    return path
