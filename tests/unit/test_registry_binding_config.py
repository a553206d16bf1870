"""registry.toml as the binding party reads it: its own store and its resident source."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry_binding.config import RegistryBindingConfig
from renkei.config_util import ConfigError


def _load(tmp_path: Path, text: str) -> RegistryBindingConfig:
    path = tmp_path / "registry.toml"
    path.write_text(text, "utf-8")
    return RegistryBindingConfig.load(path)


def test_a_config_from_before_the_own_store_keeps_working(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        '[registry]\ndatabase_url = "sqlite:///{config_dir}/registry.db"\n'
        'private_bodies = ["example-bank"]\n',
    )
    assert config.database_url == f"sqlite:///{tmp_path}/registry_binding.db"
    assert config.database_schema is None
    assert config.resident_source == "juki_mock"
    assert config.resident_source_options == {"database_url": f"sqlite:///{tmp_path}/registry.db"}
    assert config.private_bodies == ("example-bank",)


def test_on_postgresql_the_default_store_is_a_schema_of_its_own(tmp_path: Path) -> None:
    url = "postgresql+psycopg://root@127.0.0.1:5432/test"
    config = _load(
        tmp_path, f'[registry]\ndatabase_url = "{url}"\ndatabase_schema = "demo_registry"\n'
    )
    assert (config.database_url, config.database_schema) == (url, "demo_registry_binding")
    assert config.resident_source_options == {
        "database_url": url,
        "database_schema": "demo_registry",
    }


def test_the_store_and_the_source_can_be_named(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        '[registry]\ndatabase_url = "sqlite:///{config_dir}/registry.db"\n'
        '[binding]\ndatabase_url = "sqlite:///{config_dir}/own.db"\n'
        '[resident_source]\nkind = "juki_mock"\ndatabase_url = "sqlite:///{config_dir}/other.db"\n',
    )
    assert config.database_url == f"sqlite:///{tmp_path}/own.db"
    assert config.resident_source_options == {"database_url": f"sqlite:///{tmp_path}/other.db"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[binding]\n", "missing key 'database_url'"),
        ('[registry]\ndatabase_url = "x"\nprivate_bodies = "bank"\n', "private_bodies"),
        ('resident_source = "juki_mock"\n[registry]\ndatabase_url = "x"\n', "must be a table"),
    ],
)
def test_bad_configs_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _load(tmp_path, text)


REGISTER = '[registry]\ndatabase_url = "sqlite:///{config_dir}/registry.db"\n'


def test_only_the_numbering_agency_asks_the_directory_by_default(tmp_path: Path) -> None:
    assert _load(tmp_path, REGISTER).directory_callers == {"service:numbering"}
    listed = _load(
        tmp_path, REGISTER + '[authorize]\ndirectory = ["service:numbering", "service:audit"]\n'
    )
    assert listed.directory_callers == {"service:numbering", "service:audit"}
    assert _load(tmp_path, REGISTER + "[authorize]\ndirectory = []\n").directory_callers == set()


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ('directory = ["hub"]', "the hub may never call the resident directory"),
        ('directory = ["numbering"]', "is not 'hub'"),
        ('directory = "service:numbering"', "array of strings"),
        ('match = ["agency:141003"]', "unknown groups"),
    ],
)
def test_a_bad_authorize_table_is_refused(tmp_path: Path, table: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        _load(tmp_path, REGISTER + "[authorize]\n" + table + "\n")
