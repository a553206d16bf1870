"""`make bench-log` end to end in small (no timing assertions): every figure is printed."""

from __future__ import annotations

import pytest

from ops.bench import log as bench


def test_bench_log_runs_and_reports(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--count", "2000", "--batch-size", "500", "--rounds", "2", "--proofs", "20"]
    assert bench.main([*argv, "--rate", "50", "--seconds", "1", "--interval", "0.1"]) == 0
    out = capsys.readouterr().out
    for figure in ("entries integrated / s", "inclusion proofs / s", "witnessed checkpoint p99"):
        assert figure in out
