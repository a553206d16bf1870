"""``[disclosure]`` in comm.toml: "auto" by default, "staff" on request, nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest

from comm_server.config import CommConfig, DisclosureConfig
from renkei.config_util import ConfigError

BASE = (
    '[comm]\nagency_id = "141003"\nhub_endpoint = "127.0.0.1:1"\nmaster_key = "env:X"\n'
    'database_url = "sqlite:///comm.db"\n[legacy]\nkind = "jsonl"\nport = 1\n'
)


def _load(tmp_path: Path, extra: str) -> CommConfig:
    path = tmp_path / "comm.toml"
    # A top-level key must come before the first table.
    text = extra + BASE if not extra.startswith("[") else BASE + extra
    path.write_text(text, encoding="utf-8")
    return CommConfig.load(path)


def test_auto_by_default_and_staff_on_request(tmp_path: Path) -> None:
    assert _load(tmp_path, "").disclosure == DisclosureConfig("auto")
    assert _load(tmp_path, '[disclosure]\napproval = "staff"\n').disclosure.approval == "staff"


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ('[disclosure]\napproval = "manual"\n', r"\[disclosure\] approval: 'manual' is unknown"),
        ("[disclosure]\napproval = true\n", r"\[disclosure\].*approval"),
        ('disclosure = "auto"\n', r"\[disclosure\] must be a table"),
    ],
)
def test_a_wrong_value_is_refused_naming_the_key(tmp_path: Path, table: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        _load(tmp_path, table)
