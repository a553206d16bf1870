"""renkei load's report and plot from known results (no servers)."""

from __future__ import annotations

import json
from pathlib import Path

from ops.load import plot, report
from ops.load.runner import Plan, Run
from ops.load.stats import OK, Outcome, Results


def known() -> Results:
    # Measured from t=10: 100 lawful answers in 2 ms over two seconds, 10 refusals in 1 ms.
    r = Results(10.0)
    for n in range(100):
        t = 10.0 + n * 0.02
        r.record("lawful", t, t, t + 0.002, Outcome(OK), True)
    for n in range(10):
        t = 10.0 + n * 0.1
        r.record("unlawful", t, t, t + 0.001, Outcome("PERMISSION_DENIED", "R"), True)
    r.warmup = 7
    return r


def test_the_report_of_known_results() -> None:
    plan = Plan("closed", concurrency=2, duration=2.0, warmup=1.0)
    built = report.build(Run(known(), {}, 3.5), plan, "comm", "s.toml", {"141003": "127.0.0.1:1"})

    assert built["requests"] == 110
    assert (built["ok"], built["expected_errors"], built["unexpected"]) == (100, 10, 0)
    assert built["warmup_requests"] == 7
    assert built["measured_seconds"] == 1.982  # last answer at 10 + 99 * 0.02 + 0.002
    assert built["throughput_per_second"] == round(110 / 1.982, 2)
    assert built["latency_ms"]["lawful"]["requests"] == 100
    assert built["latency_ms"]["lawful"]["p50_ms"] == 2.0
    assert built["latency_ms"]["unlawful"]["max_ms"] == 1.0
    assert built["latency_ms"]["all"]["p99.9_ms"] == 2.0
    assert built["errors"] == [
        {"code": "PERMISSION_DENIED", "reason": "R", "expected": True, "count": 10}
    ]
    assert [s["completed"] for s in built["series"]] == [60, 50]
    json.dumps(built)  # plain data throughout


def test_the_plot_is_written_even_when_nothing_completed(tmp_path: Path) -> None:
    plan = Plan("open", rate=5.0, duration=1.0)
    full = report.build(Run(known(), {}, 3.0), plan, "hub", "s", {})
    empty = report.build(Run(Results(0.0), {0: "failed"}, 1.0), plan, "hub", "s", {})

    for name, built in (("full.png", full), ("empty.png", empty)):
        plot.plot(built, tmp_path / name)
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert empty["worker_failures"] == {"0": "failed"}
