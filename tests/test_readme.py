"""The README stands on its own and its quick start works, on the default configuration, to
its last line."""
from __future__ import annotations

import ast
import dataclasses
import json
import re
import shlex
import sys

import pytest
import structlog

from actors.cli import main
from actors.domain.config import load_settings
from tests.support.process import ROOT
from tests.support.server import running

README = ROOT / "README.md"
BENCH_README = ROOT / "bench" / "README.md"
#: The one thing bench/README.md may point at outside the repository: where the Alertmanager
#: anchor script lives when that checkout is present.
ANCHOR_SCRIPT = "../shared/bench/alertmanager/"


def section(text: str, title: str) -> str:
    """The body of the ``## title`` section."""
    return text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


@pytest.mark.parametrize("path", [README, BENCH_README], ids=["README", "bench/README"])
def test_the_readmes_point_at_nothing_outside_the_repository(path):
    text = path.read_text(encoding="utf-8")
    outside = [m.start() for m in re.finditer(r"\.\./", text) if not text.startswith(ANCHOR_SCRIPT, m.start())]
    assert outside == [], [text[i - 40:i + 40] for i in outside]
    if path == README:
        assert "../shared" not in text
    for target in re.findall(r"\]\(([^)#]+)\)", text):
        assert target.startswith(("http://", "https://")) or (path.parent / target).exists(), target


def test_every_exit_code_of_the_server_is_listed_in_the_readme():
    tree = ast.parse((ROOT / "server.py").read_text(encoding="utf-8"))
    codes = {node.targets[0].id: node.value.value for node in tree.body
             if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
             and node.targets[0].id.startswith("EXIT_")}
    assert codes, "server.py defines its exit codes as EXIT_* constants"
    listed = set(re.findall(r"^\| (\d+) \|", README.read_text(encoding="utf-8"), flags=re.M))
    assert {str(code) for code in codes.values()} | {"0"} <= listed, (codes, listed)


@pytest.fixture
def quiet_engine_logs():
    """Keep the engine's log lines out of captured stdout (where imctl prints)."""
    saved = structlog.get_config()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.__stderr__))
    yield
    structlog.configure(**saved)


def test_the_quick_start_works_to_its_last_line_on_the_default_configuration(tmp_path, capsys, quiet_engine_logs):
    quick_start = section(README.read_text(encoding="utf-8"), "Quick start")
    default = load_settings(ROOT / "config.toml")
    settings = dataclasses.replace(default, server=dataclasses.replace(default.server, grpc_port=0),
                                   state=dataclasses.replace(default.state, path=str(tmp_path / "store.db")))
    commands = [shlex.split(line, comments=True)[1:] for block in code_blocks(quick_start, "sh")
                for line in block.splitlines() if line.startswith(".venv/bin/imctl")]
    commands = [args for args in commands if args[0] != "watch"]  # runs until stopped (see test_cli.py)
    (console,) = code_blocks(quick_start, "console")
    prompt, *expected = console.strip().splitlines()
    with running(settings) as (engine, api, client):
        def imctl(args: list[str], incident_id: str = "") -> tuple[int, str, str]:
            capsys.readouterr()
            code = main(["--server", f"127.0.0.1:{api.port}", *[a.replace("<id>", incident_id) for a in args]])
            return (code, *capsys.readouterr())

        first, *rest = commands
        code, out, err = imctl(first + ["--json"])
        assert code == 0, err
        incident_id = json.loads(out)["incident_id"]
        for args in rest:
            code, out, err = imctl(args, incident_id)
            assert code == 0, (args, err)
        code, out, err = imctl(shlex.split(prompt.removeprefix("$ "))[1:])
    assert code == 1 and err.strip().splitlines() == expected


def test_the_routing_example_is_the_example_file_and_imctl_routes_test_prints_what_is_shown(capsys):
    routing = README.read_text(encoding="utf-8").split("\n### Receivers and routes\n", 1)[1].split("\n## ", 1)[0]
    routing = routing.split("\n### ", 1)[0]  # up to the next subsection (Silences and inhibition)
    (example,) = code_blocks(routing, "toml")
    assert example in (ROOT / "examples" / "config" / "routes.toml").read_text(encoding="utf-8")
    (console,) = code_blocks(routing, "console")
    prompt, *expected = console.strip().splitlines()
    command = shlex.split(prompt.removeprefix("$ "))
    assert command[0] == ".venv/bin/imctl"
    capsys.readouterr()
    assert main([arg.replace("examples/", f"{ROOT}/examples/") for arg in command[1:]]) == 0
    assert capsys.readouterr().out.splitlines() == expected
