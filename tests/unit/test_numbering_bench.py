"""`ops.bench.numbering` end to end on a small count (no timing assertions)."""

from __future__ import annotations

import pytest

from ops.bench import numbering as bench


def test_bench_runs_and_reports(capsys: pytest.CaptureFixture[str]) -> None:
    result = bench.run(1500, batch_size=400)
    assert result["residents"] == result["issued"] == 1500
    assert result["batch_size"] == 400
    assert result["numbers_per_second"] > 0
    assert "Numbers/s" in capsys.readouterr().out


def test_bench_wants_a_positive_count() -> None:
    with pytest.raises(ValueError, match="positive"):
        bench.run(0)
