"""The committed generated protobuf code matches the .proto sources."""
from __future__ import annotations

import filecmp
from pathlib import Path

from protos.generate import PROTOS, ROOT, generate


def test_generated_code_is_up_to_date(tmp_path):
    assert generate(tmp_path) == 0
    stale = []
    for proto in PROTOS:
        stem = Path(proto).with_suffix("").name
        for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"):
            fresh = tmp_path / "protos" / f"{stem}{suffix}"
            if not filecmp.cmp(fresh, ROOT / "protos" / f"{stem}{suffix}", shallow=False):
                stale.append(f"{stem}{suffix}")
    assert not stale, f"run `python protos/generate.py`: stale {stale}"
