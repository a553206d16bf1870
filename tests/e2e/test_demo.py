"""`make demo` as a user runs it: separate processes, a trace, exit 0, nothing left running."""

from __future__ import annotations

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
        [sys.executable, "-m", "renkei.cli", "demo", "--state-dir", str(state)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    text = " ".join(out.stdout.split())
    assert text.count("gets answer:") == 2
    assert "老齢基礎年金" in text
    assert "PERMISSION_DENIED NO_ITEM_FOR_REQUESTER" in text
    assert "NOT_FOUND PERSON_NOT_BOUND" in text
    assert "DEADLINE_EXCEEDED LEGACY_TIMEOUT" in text
    assert "every store holds only what docs/separation.md allows" in text
    assert text.count("numbering agency:") == 3
    assert "bound 3 of 3 records by the four facts" in text
    parties = ("hub", "id-issuer", "numbering", "registry-binding", "comm-141003", "comm-nenkin")
    for party in parties:
        assert f"{party} exited 0" in text
    assert (state / "hub" / "hub.db").exists()
    assert processes_mentioning(str(state)) == []
