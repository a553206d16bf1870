"""`make bench-legacy` with a tiny load: every legacy system answers, none fails.

Only that it runs and reports sane fields, never how fast.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from ops.bench.legacy import run_bench

pytestmark = pytest.mark.e2e


def test_bench_legacy_answers_through_every_system(tmp_path: Path) -> None:
    report = run_bench(
        tmp_path / "state", concurrency=2, seconds=30, requests=6, console=Console(quiet=True)
    )
    systems = {r["system"]: r for r in report["systems"]}
    assert set(systems) == {"fixed_tax", "soap_pension", "csv_insurer", "json_http"}
    for row in systems.values():
        assert row["answers"] == 6
        assert row["errors"] == {}
        assert row["answers_per_second"] > 0
        assert 0 < row["p50_ms"] <= row["p99_ms"]
    assert all(code == 0 for code in report["exits"].values())
    assert report["machine"]["nproc"] >= 1
