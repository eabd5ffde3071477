#!/usr/bin/env python3
"""One entry point for a fresh machine: ``python3 dev.py run`` or ``python3 dev.py test``.

Creates ``.venv`` beside this file (once), installs the project with its test extras into
it, then runs the server or the whole test suite there. Extra arguments pass through
(``python3 dev.py test -k webhook``, ``python3 dev.py run --config my.toml``).
SIGTERM and SIGINT sent to dev.py are passed on to what it runs (Ctrl-C reaches both
directly); dev.py then waits for it and exits with its exit status (128 + N if signal N
ended it). A failed install stops it with pip's output.
"""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"
STAMP = VENV / ".installed"


def _requirements_digest() -> str:
    return hashlib.sha256((ROOT / "setup.cfg").read_bytes()).hexdigest()


def ensure_environment() -> None:
    """Create the virtual environment and (re)install when setup.cfg changed."""
    if not PYTHON.exists():
        print("creating .venv …", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = _requirements_digest()
    if STAMP.exists() and STAMP.read_text() == digest:
        return
    print("installing the project and its test dependencies …", flush=True)
    subprocess.run([str(PYTHON), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True)
    subprocess.run([str(PYTHON), "-m", "pip", "install", "--quiet", "-e", f"{ROOT}[test]"], check=True)
    STAMP.write_text(digest)


def run_forwarding_signals(args: list[str]) -> int:
    """Run ``args``, pass SIGTERM and SIGINT on to it, wait for it to end (however many
    signals arrive) and return its exit status, 128 + N if signal N ended it.

    A SIGINT is not passed on while dev.py is in the terminal's foreground: that one comes
    from Ctrl-C, which the terminal already sent to the child (same process group), and a
    second one would make the server skip its drain.
    """
    pending: list[int] = []
    child: subprocess.Popen[bytes] | None = None

    def forward(signum: int, frame: object) -> None:
        if child is None:
            pending.append(signum)  # passed on as soon as it is started
        elif child.poll() is None and not (signum == signal.SIGINT and _holding_terminal()):
            child.send_signal(signum)

    previous = {signum: signal.signal(signum, forward) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        child = subprocess.Popen(args, cwd=ROOT)
        for signum in pending:  # arrived while it was being started
            child.send_signal(signum)
        status = child.wait()  # a signal handler runs, then the wait goes on
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 128 - status if status < 0 else status


def _holding_terminal() -> bool:
    """True when stdin is a terminal whose foreground process group is dev.py's."""
    try:
        fd = sys.stdin.fileno()
        return os.isatty(fd) and os.tcgetpgrp(fd) == os.getpgrp()
    except (AttributeError, OSError, ValueError):  # no stdin, or no job control (Windows)
        return False


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("run", "test"):
        print(__doc__)
        return 2
    ensure_environment()
    command, rest = argv[0], argv[1:]
    if command == "run":
        args = [str(PYTHON), str(ROOT / "server.py"), *rest]
    else:
        args = [str(PYTHON), "-m", "pytest", *rest]
    return run_forwarding_signals(args)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except subprocess.CalledProcessError as exc:
        sys.exit(f"setup failed: {' '.join(map(str, exc.cmd))} exited {exc.returncode}")
    except KeyboardInterrupt:  # Ctrl-C while setting up .venv, before anything was started
        sys.exit(128 + signal.SIGINT)
