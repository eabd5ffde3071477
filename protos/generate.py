"""Regenerate the committed protobuf/gRPC modules from the ``.proto`` sources.

Run from anywhere: ``python protos/generate.py``. Exits non-zero if protoc fails.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ("protos/incidents.proto", "protos/alerts.proto", "protos/notifications.proto", "protos/admin.proto")


def generate(out_dir: Path = ROOT) -> int:
    """Write ``*_pb2.py``, ``*_pb2.pyi`` and ``*_pb2_grpc.py`` under ``out_dir/protos``."""
    import grpc_tools
    from grpc_tools import protoc

    include = str(Path(grpc_tools.__file__).parent / "_proto")
    return protoc.main(["protoc", f"-I{ROOT}", f"-I{include}", f"--python_out={out_dir}",
                        f"--pyi_out={out_dir}", f"--grpc_python_out={out_dir}", *PROTOS])


if __name__ == "__main__":
    sys.exit(generate())
