"""`make bench-bulk` end to end with a tiny load: every person answered, fields sane.

Only that it runs and reports; never how fast (timings on a shared machine prove nothing).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ops.bench import bulk as bench_bulk


@pytest.mark.e2e
def test_bench_bulk_reports_bulk_and_unary_without_errors(tmp_path: Path) -> None:
    output = tmp_path / "bench-bulk.json"
    args = bench_bulk.parser().parse_args(
        [
            "--state-dir",
            str(tmp_path / "state"),
            "--persons",
            "20",
            "--requests",
            "2",
            "--concurrency",
            "1",
            "--unary",
            "10",
            "--output",
            str(output),
        ]
    )

    assert bench_bulk.main(args) == 0

    report = json.loads(output.read_text(encoding="utf-8"))
    paths = report["paths"]
    assert set(paths) == {"bulk", "unary Relay"}
    assert (paths["bulk"]["calls"], paths["bulk"]["persons"]) == (2, 40)
    assert (paths["bulk"]["answered"], paths["bulk"]["errors"]) == (40, 0)
    assert paths["unary Relay"]["answered"] == 10
    assert set(paths["bulk"]["cpu_us_per_person"]) == {"hub", "provider comm", "driver"}
    assert all(code == 0 for code in report["exit_codes"].values())
