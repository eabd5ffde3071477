"""examples/node/client.js against a real server: a non-Python client loads the protos from
the repository root, submits an alert and reads the incident back.

Runs when Node.js is installed and either examples/node/node_modules exists (``npm install``
there) or IM_TEST_NODE=1 allows installing the two packages into a temporary directory
(that needs the npm registry). Otherwise it is skipped, saying which.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from protos import incidents_pb2
from tests.support.process import ROOT
from tests.support.server import TIMEOUT, make_settings, running

EXAMPLE = ROOT / "examples" / "node"
NODE, NPM = shutil.which("node"), shutil.which("npm")


@pytest.fixture(scope="module")
def node_modules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not NODE:
        pytest.skip("node is not installed")
    if (EXAMPLE / "node_modules").is_dir():
        return EXAMPLE / "node_modules"
    if os.environ.get("IM_TEST_NODE") != "1":
        pytest.skip("examples/node/node_modules is absent: run `npm install` in examples/node, or set "
                    "IM_TEST_NODE=1 to install @grpc/grpc-js and @grpc/proto-loader into a temp dir")
    if not NPM:
        pytest.skip("IM_TEST_NODE=1 but npm is not installed")
    target = tmp_path_factory.mktemp("node")
    shutil.copy(EXAMPLE / "package.json", target)
    install = subprocess.run([NPM, "install", "--no-audit", "--no-fund"], cwd=target, capture_output=True,
                             text=True, timeout=300)
    if install.returncode != 0:
        pytest.skip(f"npm install failed (no registry?): {install.stderr.strip()[-300:]}")
    return target / "node_modules"


def test_the_node_client_submits_an_alert_and_reads_the_incident_back(tmp_path, node_modules):
    with running(make_settings(tmp_path)) as (engine, api, client):
        result = subprocess.run([NODE, str(EXAMPLE / "client.js"), f"127.0.0.1:{api.port}"],
                                capture_output=True, text=True, timeout=60, cwd=tmp_path,
                                env={**os.environ, "NODE_PATH": str(node_modules)})
        assert result.returncode == 0, result.stderr
        ack_line, incident_line = result.stdout.splitlines()
        incident_id = ack_line.split("(incident ", 1)[1].split(",", 1)[0]
        stored = client.incidents.GetIncident(incidents_pb2.GetIncidentRequest(id=incident_id), timeout=TIMEOUT)
    assert ": ACCEPTED (incident " in ack_line and "new: true" in ack_line
    assert (stored.title, stored.source, stored.severity, stored.type) == (
        "High Latency", "node-example", incidents_pb2.P1, incidents_pb2.PERFORMANCE)
    assert incident_line == (f'incident {incident_id}: DETECTED P1 PERFORMANCE "High Latency" '
                             "from node-example, 1 alert(s)")


def test_the_node_client_reports_an_unreachable_server_and_exits_1(tmp_path, node_modules):
    result = subprocess.run([NODE, str(EXAMPLE / "client.js"), "127.0.0.1:1"], capture_output=True, text=True,
                            timeout=60, env={**os.environ, "NODE_PATH": str(node_modules)})
    assert result.returncode == 1 and result.stderr.startswith("error: UNAVAILABLE: ")
