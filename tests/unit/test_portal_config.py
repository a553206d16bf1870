"""hub.toml's ``[portal]`` table: the one agency PersonalLogService answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub_server.config import HubConfig
from renkei.config_util import ConfigError

HUB = """[hub]
database_url = "sqlite:///{config_dir}/hub.db"
directory = "directory.toml"
policy = "policy"
master_key = "file:master.key"
"""


def _load(tmp_path: Path, extra: str = "") -> HubConfig:
    path = tmp_path / "hub.toml"
    # A bare key goes before [hub], at the top level.
    path.write_text(extra + HUB if "[" not in extra else HUB + extra, encoding="utf-8")
    return HubConfig.load(path)


def test_the_portal_is_portal_unless_the_file_says_otherwise(tmp_path: Path) -> None:
    assert _load(tmp_path).portal.agency_id == "portal"
    assert _load(tmp_path, '[portal]\nagency_id = "myportal"\n').portal.agency_id == "myportal"


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ("[portal]\nagency_id = 7\n", "[portal] agency_id: must be a string"),
        ('[portal]\nagency_id = "no spaces"\n', "[portal] agency_id: must be 1-64"),
        ('[portal]\nagency_id = ""\n', "[portal] agency_id: must be 1-64"),
        ('portal = "portal"\n', "[portal] must be a table"),
    ],
)
def test_a_wrong_portal_table_names_the_key(tmp_path: Path, extra: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, extra)
    assert fragment in str(caught.value)
