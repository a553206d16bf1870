"""`make bench-linkage` end to end with a tiny load: every path answers, none fails.

Only that it runs and reports sane fields; never how fast (timings on a shared
machine prove nothing). The nginx path is skipped when nginx is not installed,
and the report then says why.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from ops.bench import linkage, nginx

HAVE_NGINX = nginx.find_nginx() is not None


@pytest.mark.e2e
def test_bench_reports_every_path_without_errors(tmp_path: Path) -> None:
    output = tmp_path / "bench.json"
    args = argparse.Namespace(
        state_dir=tmp_path / "state",
        requests=40,
        concurrency=4,
        output=output,
        time_budget=60.0,
        nginx=None,
    )

    assert linkage.main(args) == 0

    report = json.loads(output.read_text(encoding="utf-8"))
    paths = report["paths"]
    assert set(paths) == {"direct", "bare", "nginx", "hub", "hub_no_tree"}
    ran = {"direct", "bare", "hub", "hub_no_tree"} | ({"nginx"} if HAVE_NGINX else set())
    for name in ran:
        path = paths[name]
        assert path["requests"] == 40
        assert path["errors"] == 0
        assert report["warmup_errors"][name] == 0
        assert len(path["rounds"]) == 2
        assert path["linkages_per_second"] > 0
        assert 0 < path["p50_ms"] <= path["p99_ms"] <= path["max_ms"]
        cpu = path["cpu_ms_per_linkage"]
        assert set(cpu) == {"relay", "provider comm", "legacy stub", "driver"}
        assert (cpu["relay"] is None) == (name == "direct")
        assert all(v is None or v >= 0 for v in cpu.values())
    if not HAVE_NGINX:
        assert "nginx not found" in paths["nginx"]["skipped"]
    ratio = report["ratio"]
    assert ratio["throughput_hub_per_bare"] > 0
    assert ratio["throughput_hub_per_hub_no_tree"] > 0  # the tree's cost (issue 14)
    assert ("throughput_hub_per_nginx" in ratio) == HAVE_NGINX
    machine = report["machine"]
    assert machine["nproc"] >= 1
    assert machine["memory_gib"] > 0
    assert machine["python"]
    assert bool(machine["nginx"]) == HAVE_NGINX
    assert all(code == 0 for code in report["exit_codes"].values())
    expected = {"hub", "hub-no-tree", "bare-relay", "comm-nenkin", "legacy-nenkin"}
    assert set(report["exit_codes"]) == expected | ({"nginx"} if HAVE_NGINX else set())


@pytest.mark.e2e
def test_bench_without_nginx_says_why(tmp_path: Path) -> None:
    output = tmp_path / "bench.json"
    args = argparse.Namespace(
        state_dir=tmp_path / "state",
        requests=8,
        concurrency=2,
        output=output,
        time_budget=60.0,
        nginx=str(tmp_path / "no-such-nginx"),
    )

    assert linkage.main(args) == 0

    report = json.loads(output.read_text(encoding="utf-8"))
    assert report["paths"]["nginx"]["skipped"].startswith("nginx not found in ")
    assert "nginx" not in report["exit_codes"]
    assert "throughput_hub_per_nginx" not in report["ratio"]


@pytest.mark.e2e
def test_binding_bench_end_to_end_binds_rightly_and_reports(tmp_path: Path) -> None:
    from ops.bench import binding as bench_binding

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
