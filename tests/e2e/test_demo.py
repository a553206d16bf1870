"""`make demo` as a user runs it: separate processes, a trace, exit 0, nothing left running."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def processes_mentioning(text: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{proc.name}: {cmdline}")
    return found


def test_demo_runs_the_whole_system_and_leaves_nothing_behind(tmp_path: Path) -> None:
    state = tmp_path / "demo-state"
    out = subprocess.run(
        [sys.executable, "-m", "ops.cli", "demo", "--state-dir", str(state)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    text = " ".join(out.stdout.split())
    flat = "".join(out.stdout.split())  # long JSON lines wrap anywhere
    # One answer through each of the four legacy systems, the city's and the minister's
    # and the insurer's answer fetched later with its ticket: all in the standard layout.
    assert text.count("gets answer: standard layout") == 6
    for system in ("fixed_tax", "soap_pension", "csv_insurer", "json_http"):
        assert f"legacy system ({system}) -> {system} mapper -> standard layout -> OK" in text
    assert "PENSION_KIND_OLD_AGE_BASIC" in flat
    assert "BENEFIT_KIND_HIGH_COST_MEDICAL" in flat
    # The fixed-width tax record, decoded, re-encoded in 渋谷区's own JSON.
    assert "re-encoded in 渋谷区長's own json_http format:" in text
    assert '"totalIncome":3850000' in flat
    # The JSON resident record, decoded, re-encoded as the city's 256-byte cp932 record.
    assert "re-encoded in 横浜市長's own fixed_tax format:" in text
    assert "256bytescp932:A0001001|ヤマダタロウ|山田太郎|3330514" in flat
    assert "PERMISSION_DENIED NO_ITEM_FOR_REQUESTER" in text
    assert "PERMISSION_DENIED STAFF_NOT_REGISTERED" in text
    assert "NOT_FOUND RECORD_NOT_FOUND" in text
    assert "DEADLINE_EXCEEDED LEGACY_TIMEOUT" in text
    assert "gets a ticket" in text
    assert "it fetches with the ticket" in text
    assert "BENEFIT_KIND_MEDICAL_CARE" in flat
    assert "every store holds only what docs/separation.md allows" in text
    assert "no party's configuration or keys open another party's store" in text
    assert text.count("numbering agency:") == 3
    # Each legacy system's person file, read through its mapper, binds the three residents.
    for fmt in ("fixed_tax", "soap_pension", "csv_insurer", "json_http"):
        assert f"read its {fmt} person file; bound 3" in text
    parties = (
        "hub",
        "id-issuer",
        "numbering",
        "registry-binding",
        *(f"comm-{a}" for a in ("141003", "nenkin", "kyoukai-kenpo", "131130", "mhlw")),
        *(f"legacy-{a}" for a in ("141003", "nenkin", "kyoukai-kenpo", "131130", "mhlw")),
    )
    for party in parties:
        assert f"{party} exited 0" in text
    assert (state / "hub" / "hub.db").exists()
    assert processes_mentioning(str(state)) == []


def test_renkei_load_drives_the_demo_kept_serving(tmp_path: Path) -> None:
    """`renkei demo --keep-serving` leaves a deployment `renkei load --target comm` can drive."""
    state = tmp_path / "demo-state"
    report = tmp_path / "load.json"
    demo_args = ["demo", "--state-dir", str(state), "--keep-serving", "120"]
    load_args = [
        *("load", "--target", "comm", "--deployment", str(state)),
        *("--scenario", "ops/load/scenarios/demo.toml"),
        *("--requests", "40", "--concurrency", "4", "--quiet", "--json", str(report)),
    ]
    demo = subprocess.Popen(
        [sys.executable, "-m", "ops.cli", *demo_args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        assert demo.stdout is not None
        for line in demo.stdout:  # the parties are up once the demo says it is serving
            if "every party stays up" in line:
                break
        else:
            pytest.fail("the demo ended before serving")
        load = subprocess.run(
            [sys.executable, "-m", "ops.cli", *load_args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert load.returncode == 0, load.stdout[-3000:] + load.stderr[-3000:]
    finally:
        demo.terminate()  # SIGTERM ends the serving early; the demo stops every party
        rest, _ = demo.communicate(timeout=60)
    assert demo.returncode == 0, rest[-3000:]
    result = json.loads(report.read_text(encoding="utf-8"))
    assert result["requests"] == 40
    assert result["unexpected"] == 0, result["errors"]
    assert result["ok"] > 0  # lawful linkages answered through the demo's legacy systems
    assert not processes_mentioning(str(state))
