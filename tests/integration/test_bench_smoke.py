"""`make bench` end to end with a tiny load: both paths answer, nothing fails on the hub's.

Only that it runs and reports; never how fast (timings on a shared machine prove nothing).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from renkei import bench


@pytest.mark.e2e
def test_bench_reports_both_paths_without_hub_errors(tmp_path: Path) -> None:
    output = tmp_path / "bench.json"
    args = argparse.Namespace(
        state_dir=tmp_path / "state", requests=40, concurrency=4, output=output
    )

    assert bench.main(args) == 0

    report = json.loads(output.read_text(encoding="utf-8"))
    paths = report["paths"]
    assert set(paths) == {"hub", "bare"}
    for path in paths.values():
        assert path["requests"] > 0
        assert len(path["rounds"]) == 2
    assert paths["hub"]["errors"] == 0
    assert report["warmup_errors"]["hub"] == 0
    assert all(code == 0 for code in report["exit_codes"].values())
    assert set(report["exit_codes"]) == {"hub", "bare-relay", "comm-nenkin", "legacy-nenkin"}


@pytest.mark.e2e
def test_binding_bench_end_to_end_binds_rightly_and_reports(tmp_path: Path) -> None:
    from renkei import bench_binding

    result = bench_binding.run(300, batch=50, state_dir=tmp_path / "state", echo=False)
    assert result["records"] == 300
    assert result["bound_wrong"] == 0
    assert result["bound"] == result["bound_right"] == 255  # plain, form and moved: 85 %
    assert result["recall"] == 1.0
    assert result["ambiguous"] == 3  # the twins
    assert result["failed"] == 0
    assert result["bound"] + result["ambiguous"] + result["none"] + result["invalid"] == 300
    assert set(result["cpu_seconds"]) == {
        "id-issuer",
        "hub",
        "registry-binding",
        "driver (comm server side)",
    }
