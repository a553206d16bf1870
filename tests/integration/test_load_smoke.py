"""`renkei load` end to end against the in-process topology: a few dozen requests each run.

Only that it runs and reports sane fields; never how fast.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.aio import LoopThread
from support.topology import CITY, MINISTER, PENSION, TEST_STAFF, Topology, start_topology

from comm_server.staff_register import Grant
from ops.deploy import Settings
from ops.load import cli
from ops.load.scenario import bundled
from ops.load.targets import LOAD_STAFF_ID


@pytest.fixture(scope="module")
def topology(loop: LoopThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    settings = Settings(
        answer_timeout_seconds=2.0,
        query_timeout_seconds=5.0,
        log_level="WARNING",
        # The comm target asks as staff LOAD; a register must allow it like anyone else.
        extra_staff=(TEST_STAFF, Grant(LOAD_STAFF_ID, name="load generator")),
    )
    topo = loop.run(start_topology(tmp_path_factory.mktemp("load"), settings))
    yield topo
    loop.run(topo.stop())


def endpoints(topo: Topology) -> list[str]:
    """The topology's servers bound port 0, so the deployment's configs do not know them."""
    ports = {
        "hub": topo.hub.port,
        "numbering": topo.numbering.port,
        **{aid: topo.comms[aid].port for aid in (CITY, PENSION, MINISTER)},
    }
    return [
        arg for name, port in ports.items() for arg in ("--endpoint", f"{name}=127.0.0.1:{port}")
    ]


def run_load(topo: Topology, tmp_path: Path, *args: str) -> tuple[int, dict[str, Any], Path]:
    out, png = tmp_path / "load.json", tmp_path / "load.png"
    code = cli.main(
        [
            "--deployment",
            str(topo.layout.root),
            *endpoints(topo),
            "--json",
            str(out),
            "--plot",
            str(png),
            "--quiet",
            *args,
        ]
    )
    return code, json.loads(out.read_text(encoding="utf-8")), png


REFUSALS = {
    "hub": {
        ("DENIED", "NO_ITEM_FOR_REQUESTER"),
        ("DENIED", "INFO_KIND_NOT_LISTED"),
        ("INVALID_ARGUMENT", "INVALID_FIELD"),
    },
    "comm": {
        ("PERMISSION_DENIED", "NO_ITEM_FOR_REQUESTER"),
        ("PERMISSION_DENIED", "INFO_KIND_NOT_LISTED"),
        ("INVALID_ARGUMENT", "INVALID_FIELD"),
    },
    "numbering": {
        ("PERMISSION_DENIED", "CALLER_NOT_AUTHORIZED"),
        ("INVALID_ARGUMENT", "INVALID_FIELD"),
    },
}


def assert_sane(report: dict[str, Any], requests: int) -> None:
    assert report["requests"] == requests
    assert report["unexpected"] == 0, report["errors"]
    assert report["ok"] + report["expected_errors"] == requests
    assert report["throughput_per_second"] > 0
    rows = report["latency_ms"]
    assert rows["all"]["requests"] == requests
    assert 0 < rows["all"]["p50_ms"] <= rows["all"]["p90_ms"] <= rows["all"]["p99_ms"]
    assert rows["all"]["p99_ms"] <= rows["all"]["p99.9_ms"] <= rows["all"]["max_ms"]
    assert sum(s["completed"] for s in report["series"]) == requests
    assert all(e["expected"] for e in report["errors"])
    assert report["worker_failures"] == {}


@pytest.mark.parametrize(
    ("target", "scenario"),
    [("hub", "demo.toml"), ("comm", "demo.toml"), ("numbering", "numbering.toml")],
)
def test_closed_loop_against_each_target(
    topology: Topology, tmp_path: Path, target: str, scenario: str
) -> None:
    code, report, png = run_load(
        topology,
        tmp_path,
        "--target",
        target,
        "--scenario",
        str(bundled(scenario)),
        "--mode",
        "closed",
        "--concurrency",
        "4",
        "--requests",
        "40",
    )

    assert code == 0
    assert_sane(report, 40)
    assert report["target"] == target
    # Every refusal is one the scenario asks for: read from the status details as sent.
    assert {(e["code"], e["reason"]) for e in report["errors"]} <= REFUSALS[target]
    assert png.stat().st_size > 0


def test_open_loop_with_warmup(topology: Topology, tmp_path: Path) -> None:
    code, report, png = run_load(
        topology,
        tmp_path,
        "--target",
        "comm",
        "--scenario",
        str(bundled("demo.toml")),
        "--mode",
        "open",
        "--rate",
        "40",
        "--requests",
        "30",
        "--warmup",
        "0.25",
    )

    assert code == 0
    assert_sane(report, 30)
    assert report["plan"]["mode"] == "open"
    assert report["warmup_requests"] > 0
    assert png.stat().st_size > 0


def test_two_worker_processes_merge(topology: Topology, tmp_path: Path) -> None:
    code, report, _ = run_load(
        topology,
        tmp_path,
        "--target",
        "hub",
        "--scenario",
        str(bundled("demo.toml")),
        "--mode",
        "closed",
        "--concurrency",
        "4",
        "--requests",
        "41",
        "--workers",
        "2",
    )

    assert code == 0
    assert_sane(report, 41)
    assert report["plan"]["workers"] == 2
