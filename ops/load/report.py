"""The final table and the JSON report."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Mapping
from typing import Any

import grpc
from hdrh.histogram import HdrHistogram
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ops.load.runner import Plan, Progress, Run
from ops.load.stats import CLASSES, OK, Results, summary_ms


def machine() -> dict[str, Any]:
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
    }


def _rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


def build(
    run: Run, plan: Plan, target: str, scenario: str, endpoints: Mapping[str, str]
) -> dict[str, Any]:
    r = run.results
    seconds = r.measured_seconds()
    overall = r.overall()
    rows: dict[str, Any] = {}
    for name, histogram in (*r.histograms.items(), ("all", overall)):
        count = sum(n for (k, _, _, _), n in r.tally.items() if name in ("all", k))
        rows[name] = {
            "requests": count,
            "per_second": round(_rate(count, seconds), 2),
            # Closed loop with a correction: the histogram holds back-filled values too.
            "histogram_count": histogram.get_total_count(),
            **summary_ms(histogram),
        }
    return {
        "target": target,
        "scenario": scenario,
        "endpoints": dict(endpoints),
        "plan": {
            "mode": plan.mode,
            "concurrency": plan.concurrency if plan.mode == "closed" else None,
            "rate": plan.rate if plan.mode == "open" else None,
            "duration_s": plan.duration,
            "requests": plan.requests,
            "warmup_s": plan.warmup,
            "workers": plan.workers,
            "channels": plan.channels,
            "timeout_s": plan.timeout,
            "max_seconds": plan.max_seconds,
            "expected_interval_s": plan.expected_interval or None,
        },
        "machine": machine(),
        "measured_seconds": round(seconds, 4),
        "wall_seconds": round(run.seconds, 3),
        "requests": r.completed,
        "ok": sum(n for (_, code, _, _), n in r.tally.items() if code == OK),
        "expected_errors": r.expected_errors,
        "unexpected": r.unexpected,
        "warmup_requests": r.warmup,
        "throughput_per_second": round(_rate(r.completed, seconds), 2),
        "latency_ms": rows,
        # Open loop: send to answer, without the wait behind schedule (for comparison).
        "service_time_ms": summary_ms(r.service),
        "errors": r.errors_by_status(),
        "series": series(r),
        "worker_failures": {str(k): v for k, v in sorted(run.failures.items())},
    }


def series(r: Results) -> list[dict[str, Any]]:
    """Per second of the measured window: completions and latency percentiles."""
    out = []
    for index in range(max(r.seconds, default=-1) + 1):
        second = r.seconds.get(index)
        h: HdrHistogram | None = second.histogram if second else None
        out.append(
            {
                "second": index,
                "completed": second.completed if second else 0,
                "unexpected": second.unexpected if second else 0,
                **(summary_ms(h) if h is not None else {}),
            }
        )
    return out


def table(report: Mapping[str, Any]) -> Table:
    plan = report["plan"]
    load = (
        f"{plan['concurrency']} in flight"
        if plan["mode"] == "closed"
        else f"{plan['rate']:g}/s offered"
    )
    t = Table(
        "requests",
        "count",
        "per s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        title=f"renkei load: {report['target']}, {plan['mode']} loop, {load},"
        f" {plan['workers']} worker(s), {report['measured_seconds']:.1f} s measured",
    )
    for name in (*CLASSES, "all"):
        row = report["latency_ms"][name]
        if name != "all" and not row["requests"]:
            continue
        t.add_row(
            name,
            str(row["requests"]),
            f"{row['per_second']:.1f}",
            *(f"{row[k]:.2f}" for k in ("p50_ms", "p90_ms", "p99_ms", "p99.9_ms", "max_ms")),
        )
    return t


def errors_table(report: Mapping[str, Any]) -> Table:
    t = Table("status", "reason", "count", "expected", title="errors by status and reason")
    for e in report["errors"]:
        t.add_row(e["code"], e["reason"] or "-", str(e["count"]), "yes" if e["expected"] else "NO")
    return t


def print_report(console: Console, report: Mapping[str, Any]) -> None:
    console.print(table(report))
    if report["errors"]:
        console.print(errors_table(report))
    console.print(
        f"ok {report['ok']}, expected errors {report['expected_errors']},"
        f" unexpected {report['unexpected']}; {report['warmup_requests']} warm-up requests"
        f" left out; throughput {report['throughput_per_second']:.1f}/s"
    )
    for worker, why in report["worker_failures"].items():
        console.print(f"worker {worker} failed: {why}")


class LiveLine:
    """The progress line: phase, elapsed time, measured completions and errors, all workers."""

    def __init__(self) -> None:
        self.workers: dict[int, Progress] = {}

    def update(self, p: Progress) -> None:
        self.workers[p.worker] = Progress(**vars(p))

    def __rich__(self) -> Text:
        ws = list(self.workers.values())
        if not ws:
            return Text("connecting...")
        phases = sorted({w.phase for w in ws})
        done = sum(w.completed for w in ws)
        # Workers' clocks are CLOCK_MONOTONIC, as time.monotonic here.
        elapsed = max(0.0, time.monotonic() - min(w.started for w in ws))
        return Text(
            f"{'/'.join(phases)} {elapsed:.1f} s: {done} measured,"
            f" {sum(w.warmup for w in ws)} warm-up,"
            f" {sum(w.in_flight for w in ws)} in flight,"
            f" errors {sum(w.expected_errors for w in ws)} expected"
            f" / {sum(w.unexpected for w in ws)} unexpected"
        )
