"""A PNG of latency percentiles and throughput per second of the measured window."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display, no GUI toolkit

import matplotlib.pyplot as plt


def plot(report: Mapping[str, Any], path: Path) -> None:
    rows = [r for r in report["series"] if r["completed"]]
    seconds = [r["second"] for r in report["series"]]
    fig, (lat, thr) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    try:
        for key, label in (
            ("p50_ms", "p50"),
            ("p90_ms", "p90"),
            ("p99_ms", "p99"),
            ("p99.9_ms", "p99.9"),
            ("max_ms", "max"),
        ):
            lat.plot([r["second"] for r in rows], [r[key] for r in rows], label=label)
        lat.set_ylabel("latency (ms)")
        lat.set_yscale("log")
        lat.legend(loc="upper left", fontsize="small")
        lat.grid(True, alpha=0.3)
        plan = report["plan"]
        load = (
            f"{plan['concurrency']} in flight"
            if plan["mode"] == "closed"
            else f"{plan['rate']:g}/s offered"
        )
        lat.set_title(f"renkei load: {report['target']}, {plan['mode']} loop, {load}")
        thr.bar(seconds, [r["completed"] for r in report["series"]], width=0.9, label="completed")
        thr.bar(
            seconds,
            [r["unexpected"] for r in report["series"]],
            width=0.9,
            color="tab:red",
            label="unexpected errors",
        )
        thr.set_ylabel("requests per second")
        thr.set_xlabel("second of the measured window")
        thr.legend(loc="upper left", fontsize="small")
        thr.grid(True, alpha=0.3)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
