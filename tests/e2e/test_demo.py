"""`make demo` as a user runs it: separate processes, a trace, exit 0, nothing left running."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ops.audit import audit_deployment
from ops.demo_data import residents

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
    _portal_counter_and_oversight(state, out.stdout, text)
    parties = (
        "hub",
        "id-issuer",
        "numbering",
        "registry-binding",
        "portal",
        "witness",
        *(f"comm-{a}" for a in ("141003", "nenkin", "kyoukai-kenpo", "131130", "mhlw")),
        *(f"legacy-{a}" for a in ("141003", "nenkin", "kyoukai-kenpo", "131130", "mhlw")),
    )
    for party in parties:
        assert f"{party} exited 0" in text
    assert (state / "hub" / "hub.db").exists()
    assert processes_mentioning(str(state)) == []


def _portal_counter_and_oversight(state: Path, stdout: str, text: str) -> None:
    """The demo's last steps (issue 15): the portal, the counter, the oversight body."""
    yamada = residents()[0]
    # Each person's card lies next to their Number notice.
    for person in residents():
        assert (state / "notices" / f"{person.resident_code}.card.pem").exists()
        assert (state / "notices" / f"{person.resident_code}.card-key.pem").exists()
    # The portal's URL, the sign-in, and what the history shows: that person's serials only.
    printed = re.search(r"山田 太郎: ([\d, ]+)\n", stdout)
    assert printed is not None
    serials = [int(n) for n in printed.group(1).split(",")]
    assert re.search(r"opens https://127\.0\.0\.1:\d+/signin", text)
    assert "and the card signs the portal's challenge: signed in (card serial" in text
    assert f"/history shows {len(serials)} exchanges, newest first:" in text
    shown = [int(n) for n in re.findall(r"^    serial (\d+)  ", stdout, re.M)]
    assert shown == sorted(serials, reverse=True)
    assert "横浜市長 -> 日本年金機構 年金給付関係情報 OK [検証済み]" in text
    assert "legal basis 二十七: 地方税法その他の地方税に関する法律" in text
    assert "DENIED NO_ITEM_FOR_REQUESTER [検証済み]" in text
    assert re.search(
        r"verified against checkpoint size \d+, witnessed by witness\.service\.renkei\.internal",
        text,
    )
    # Details on request: applied for, answered by the agency, shown.
    assert "with the CSRF token: 303" in text
    assert "shows the application 回答あり:" in text
    assert "(11) 提供された情報:" in text
    assert "(12) 利用目的: 障害福祉サービスの提供" in text
    # The counter's PDF: written, and its text holds the entries and the checkpoint.
    pdf = state / "counter" / f"{yamada.resident_code}-history.pdf"
    assert pdf.read_bytes().startswith(b"%PDF-")
    root = re.search(r"checkpoint: \S+ size (\d+) root ([0-9a-f]{64})", stdout)
    assert root is not None
    if shutil.which("pdftotext") is not None:
        pdf_text = subprocess.run(
            ["pdftotext", "-layout", str(pdf), "-"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
        assert root.group(2) in pdf_text
        for serial in serials:
            assert re.search(rf"(?m)^\s*{serial}\s", pdf_text), serial
        assert "日本年金機構" in pdf_text
    # The oversight body: every share agrees, the report raises no anomaly.
    assert "$ renkei oversight reconcile" in text
    assert re.search(r"\d+ exchanges, \d+ agency rows of 5 agencies: no findings", text)
    assert "0 findings, 0 anomalies" in text
    assert "the shares agree and the demo's traffic raises no anomaly" in text
    assert (state / "oversight-out" / "report.html").stat().st_size > 0
    # The store audit covers the portal's store and the oversight body's files.
    report = audit_deployment(state)
    assert {"portal", "oversight"} <= report.keys()
    assert "link code (portal)" in text


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
