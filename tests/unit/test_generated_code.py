"""The committed generated code is what `make gen` makes from the protos today."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_code_is_not_stale(tmp_path: Path) -> None:
    protos = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "protos").rglob("*.proto"))
    bin_dir = str(Path(sys.executable).parent)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-I",
            "protos",
            f"--python_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            f"--mypy_out={tmp_path}",
            f"--mypy_grpc_out={tmp_path}",
            *protos,
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        env={**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")},
        timeout=60,
    )
    fresh = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert fresh, "protoc produced nothing"
    stale = [str(rel) for rel, data in fresh.items() if (ROOT / rel).read_bytes() != data]
    assert not stale, f"generated code is stale, run `make gen`: {stale}"
    committed = {
        p.relative_to(ROOT)
        for p in (ROOT / "renkei").rglob("*_pb2*.py*")
        if "__pycache__" not in p.parts
    }
    assert committed == set(fresh), "generated files without a proto, or protos not generated"
