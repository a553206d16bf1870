"""The ``[log]`` table of comm.toml: the keys the verify job trusts and how often it runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.log_fakes import FakeHubLog

from comm_server.config import CommConfig, LogConfig
from renkei.config_util import ConfigError

BASE = (
    '[comm]\nagency_id = "city"\nhub_endpoint = "127.0.0.1:1"\n'
    'database_url = "sqlite://"\nmaster_key = "file:m.key"\n[legacy]\nport = 5000\n'
)
LOG = FakeHubLog().log_config()
HUB, WITNESS = LOG.hub_key, LOG.witness_keys[0]


def load(tmp_path: Path, log: str | None) -> CommConfig:
    path = tmp_path / "comm.toml"
    path.write_text(BASE + ("" if log is None else "[log]\n" + log), encoding="utf-8")
    return CommConfig.load(path)


def test_no_log_table_is_no_check(tmp_path: Path) -> None:
    assert load(tmp_path, None).log is None


def test_a_log_table_with_defaults(tmp_path: Path) -> None:
    got = load(tmp_path, f'hub_key = "{HUB}"\nwitness_keys = ["{WITNESS}"]\n').log
    assert got == LogConfig(HUB, (WITNESS,), True, None, 60.0)


def test_the_schedule_may_be_off_and_the_witness_not_required(tmp_path: Path) -> None:
    got = load(
        tmp_path,
        f'hub_key = "{HUB}"\nrequire_witness = false\nverify_every_seconds = 0\n'
        'origin = "renkei.test/other-origin"\n',
    ).log
    assert got == LogConfig(HUB, (), False, "renkei.test/other-origin", 0.0)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("", "missing key 'hub_key'"),
        (f'hub_key = "{HUB}"\n', "witness_keys: at least one witness key is required"),
        ('hub_key = "nonsense"\nrequire_witness = false\n', "hub_key:"),
        (f'hub_key = "{HUB}"\nwitness_keys = ["x+1+2"]\n', "witness_keys[0]:"),
        (f'hub_key = "{HUB}"\nwitness_keys = "{WITNESS}"\n', "witness_keys"),
        (
            f'hub_key = "{HUB}"\nwitness_keys = ["{WITNESS}"]\nverify_every_seconds = -1\n',
            "verify_every_seconds",
        ),
    ],
)
def test_a_bad_log_table_is_refused_naming_the_key(
    tmp_path: Path, table: str, message: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, table)
    assert message in str(err.value)
    assert "[log]" in str(err.value)
