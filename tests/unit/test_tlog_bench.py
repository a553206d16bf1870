"""`ops.bench.tlog` end to end on a small tree (no timing assertions)."""

from __future__ import annotations

import pytest

from ops.bench import tlog as bench


def test_bench_runs_and_reports(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--count", "2500", "--batch-size", "1000", "--proofs", "50"]) == 0
    out = capsys.readouterr().out
    assert "leaves integrated / s (batches of 1000)" in out
    assert "consistency verifications / s" in out


def test_every_figure_is_reported() -> None:
    figures = bench.run(1200, 500, 20)
    assert len(figures) == 5
    assert all(v > 0 for v in figures.values())  # each is a count over a measured time
