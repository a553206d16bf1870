"""`renkei registry ...` end to end on a SQLite file: generate, show, simulate, changes, bench.

Only that the commands work and report; never how fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from legacy_stubs.registry.cli import main
from legacy_stubs.registry.population import generate
from legacy_stubs.registry.resident_code import is_valid
from ops.bench import registry as bench
from ops.cli import main as renkei_main

FULL_WIDTH_CODE = "".join(chr(0xFF10 + int(d)) for d in "12345678903")


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'registry.db'}"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_generate_show_simulate_and_read_the_feed(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "generate", "--database-url", url, "--count", "300", "--seed", "4")
    assert code == 0
    assert out.startswith("generated 300 residents in ")

    first = next(generate(4, 1))
    code, out, _ = _run(capsys, "show", first.resident_code, "--database-url", url)
    assert code == 0
    shown = json.loads(out)
    assert shown["resident"] == first.to_dict()
    assert len(shown["history"]) == 1
    assert "\\u" not in out  # kanji printed as kanji

    code, out, _ = _run(capsys, "simulate", "--database-url", url, "--seed", "1", "--count", "40")
    assert code == 0
    assert out.startswith("recorded 40 changes (seq 1-40): ")

    code, out, _ = _run(capsys, "changes", "--database-url", url, "--since", "0", "--limit", "15")
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert [c["seq"] for c in lines] == list(range(1, 16))
    code, out, _ = _run(capsys, "changes", "--database-url", url, "--since", "35")
    assert [json.loads(line)["seq"] for line in out.splitlines()] == [36, 37, 38, 39, 40]

    # A code change: the old code still shows the person, and where they went.
    code, out, _ = _run(capsys, "changes", "--database-url", url, "--limit", "40")
    swap = next((c for c in map(json.loads, out.splitlines()) if c["kind"] == "code_change"), None)
    if swap is not None:
        code, out, _ = _run(capsys, "show", swap["resident_code"], "--database-url", url)
        shown = json.loads(out)
        assert code == 0
        assert shown["resident"] is None
        assert is_valid(shown["current_code"])


def test_generate_refuses_a_register_that_is_not_empty(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(capsys, "generate", "--database-url", url, "--count", "5", "--seed", "1")[0] == 0
    code, _, err = _run(capsys, "generate", "--database-url", url, "--count", "5", "--seed", "2")
    assert code == 1
    assert "already holds 5 residents" in err


def test_show_refuses_bad_and_unknown_codes(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    _run(capsys, "generate", "--database-url", url, "--count", "5", "--seed", "1")
    code, out, err = _run(capsys, "show", FULL_WIDTH_CODE, "--database-url", url)
    assert (code, out) == (2, "")
    assert "resident_code" in err
    code, out, err = _run(capsys, "show", "12345678904", "--database-url", url)
    assert (code, out) == (2, "")
    assert "check digit" in err
    code, out, err = _run(capsys, "show", "12345678903", "--database-url", url)
    assert (code, out) == (1, "")
    assert "no resident" in err


def test_bad_arguments_exit_2(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["generate", "--database-url", url, "--count", "0", "--seed", "1"],
        ["changes", "--database-url", url, "--since", "-1"],
        ["changes", "--database-url", url, "--limit", "0"],
        ["simulate", "--database-url", url, "--seed", "1"],
    ):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2, argv
    capsys.readouterr()
    code, _, err = _run(capsys, "changes", "--database-url", "nonsense://", "--since", "0")
    assert code == 2
    assert "database-url" in err


def test_bench_reports_both_runs(capsys: pytest.CaptureFixture[str]) -> None:
    result = bench.run(count=500, seed=3)
    assert result["count"] == 500
    assert result["generate_seconds"] > 0
    assert result["generate_and_store_seconds"] > 0
    assert result["database_bytes"] > 0
    out = capsys.readouterr().out
    assert "generate + store (SQLite)" in out
    # `renkei registry bench` is tooling: the renkei command runs it, not the mock's own CLI.
    assert renkei_main(["registry", "bench", "--count", "200"]) == 0
