"""``renkei <party> serve`` with a config it cannot use: one line naming file and key, exit 2.

Issue 12, finding 9: every serve printed a traceback for any config error.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ops.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_hub_serve_with_a_quoted_false_exits_2_with_one_line_and_no_traceback(
    tmp_path: Path,
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(
        '[hub]\ndatabase_url = "sqlite://"\ndirectory = "d.toml"\npolicy = "p.toml"\n'
        'master_key = "file:m.key"\ninsecure_development = "false"\n',
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, "-m", "ops.cli", "hub", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert lines == [
        f"renkei hub serve: {config}: [hub] insecure_development:"
        " must be true or false (unquoted), not the string 'false'"
    ]
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("argv", "file_name", "text", "fragment"),
    [
        (["comm", "serve"], "comm.toml", b"[comm]\nagency_id = \xff\n", "line 2: not UTF-8"),
        (["numbering", "serve"], "numbering.toml", b"x = " + b"[" * 500, "nested too deeply"),
        (["id-issuer", "serve"], "issuer.toml", b"[id_issuer]\n", "missing key 'database_url'"),
        (["registry-binding", "serve"], "registry.toml", b"registry = 1\n", "must be a table"),
        (
            ["numbering", "serve"],
            "numbering.toml",
            b'[numbering]\ndatabase_url = "sqlite://"\nregistry_endpoint = "127.0.0.1:1"\n'
            b'registry_database_url = "sqlite:///{config_dir}/../registry/registry.db"\n',
            "registry_database_url: the numbering agency must not hold the registry's store",
        ),
        (
            ["registry-binding", "serve"],
            "registry.toml",
            b'[registry]\ndatabase_url = "sqlite://"\n[authorize]\ndirectory = ["hub"]\n',
            "the hub may never call the resident directory",
        ),
        (["hub", "serve"], "missing.toml", None, "no such config file"),
    ],
)
def test_every_serve_answers_a_config_error_with_one_line(
    argv: list[str],
    file_name: str,
    text: bytes | None,
    fragment: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / file_name
    if text is not None:
        config.write_bytes(text)
    assert main([*argv, "--config", str(config)]) == 2
    err = capsys.readouterr().err
    [line] = err.splitlines()
    assert line.startswith(f"renkei {argv[0]} serve: {config}: "), line
    assert fragment in line


@pytest.mark.parametrize(
    ("policy", "fragment"),
    [
        ("[[item]\n", "p.toml"),  # not TOML
        ("effective = 2020-01-01\n", "no [[item]] tables"),
    ],
)
def test_hub_serve_with_a_broken_policy_answers_one_line(
    policy: str, fragment: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "p.toml").write_text(policy, encoding="utf-8")
    config = tmp_path / "hub.toml"
    config.write_text(
        f'[hub]\ndatabase_url = "sqlite:///{tmp_path}/hub.db"\ndirectory = "d.toml"\n'
        'policy = "p.toml"\nmaster_key = "file:m.key"\ninsecure_development = true\n',
        encoding="utf-8",
    )
    assert main(["hub", "serve", "--config", str(config)]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"renkei hub serve: {config}: {tmp_path / 'p.toml'}"), line
    assert fragment in line
    assert not (tmp_path / "hub.db").exists()  # refused before any store was opened


@pytest.mark.parametrize(
    "argv",
    [
        ["comm", "bind", "--input", "in.jsonl"],
        ["comm", "rekey"],
        ["comm", "follow"],
        ["bind"],
        ["id-issuer", "seal", "--agency", "x", "--input", "in.jsonl"],
        ["id-issuer", "rotate", "--window-days", "7"],
    ],
)
def test_every_command_with_a_config_answers_its_error_with_one_line(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("agency_id = []\n", encoding="utf-8")
    (tmp_path / "in.jsonl").write_text("", encoding="utf-8")
    argv = [str(tmp_path / a) if a == "in.jsonl" else a for a in argv]
    assert main([*argv, "--config", str(config)]) == 2
    [line] = capsys.readouterr().err.splitlines()
    command = " ".join(argv[:2] if argv[0] in ("comm", "id-issuer") else argv[:1])
    assert line.startswith(f"renkei {command}: {config}: "), line
    assert "missing key" in line
