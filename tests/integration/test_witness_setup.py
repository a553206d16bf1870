"""Setting a witness up (witness.setup.init_witness), its config, and `renkei witness key`."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.witness_log import ORIGIN, ToyLog

from ops import cli
from ops.deploy import tls_table
from ops.pki import PkiLayout, init_pki
from renkei.config_util import ConfigError
from renkei.tlog import checkpoint as cp
from witness import keys
from witness.config import WitnessConfig
from witness.setup import init_witness


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiLayout:
    return init_pki(tmp_path_factory.mktemp("pki"), [], services=["witness"])


def _setup(folder: Path, pki: PkiLayout, log: ToyLog) -> str:
    return init_witness(
        folder,
        listen="127.0.0.1:0",
        tls=tls_table(pki.service("witness"), folder),
        logs=[(log.origin, log.verifier.verifier_key())],
        database_url="sqlite:///{config_dir}/witness.db",
        name="witness.renkei.example",
    )


def test_init_writes_a_config_that_loads_and_returns_the_cosigning_vkey(
    tmp_path: Path, pki: PkiLayout, capsys: pytest.CaptureFixture[str]
) -> None:
    log = ToyLog()
    folder = tmp_path / "witness"
    vkey = _setup(folder, pki, log)
    verifier = cp.parse_cosignature_verifier_key(vkey)
    assert verifier.name == "witness.renkei.example"
    config = WitnessConfig.load(folder / "witness.toml")
    assert [(entry.origin, entry.key) for entry in config.logs] == [
        (ORIGIN, log.verifier.verifier_key())
    ]
    assert config.tls is not None
    assert config.tls.cert.resolve() == pki.service("witness").cert.resolve()
    # The key is in the key store, under the master key; the config holds no secret.
    assert "PRIVATE" not in (folder / "witness.toml").read_text(encoding="utf-8")
    assert (folder / "master.key").stat().st_mode & 0o777 == 0o600
    # `renkei witness key` prints the same vkey.
    assert cli.main(["witness", "key", "--config", str(folder / "witness.toml")]) == 0
    assert capsys.readouterr().out.strip() == vkey


def test_init_never_replaces_a_witness(tmp_path: Path, pki: PkiLayout) -> None:
    log = ToyLog()
    _setup(tmp_path / "w", pki, log)
    with pytest.raises(FileExistsError):
        _setup(tmp_path / "w", pki, log)


def test_a_key_store_without_the_key_is_reported(
    tmp_path: Path, pki: PkiLayout, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "w"
    _setup(folder, pki, ToyLog())
    (folder / "witness.db").unlink()
    assert cli.main(["witness", "key", "--config", str(folder / "witness.toml")]) == 2
    assert "no cosigning key" in capsys.readouterr().err
    with pytest.raises(keys.MissingKeyError):
        keys.verifier_key(folder / "witness.toml")


@pytest.mark.parametrize(
    ("logs", "why"),
    [
        ("", "no log configured"),
        ('[[witness.log]]\norigin = "a"\nkey = "nonsense"\n', "key: verifier key"),
        ('[[witness.log]]\norigin = ""\nkey = "k"\n', "origin"),
        ("[[witness.log]]\norigin = 5\n", "must be a string"),
        ('listen = "8443"\n', "listen: listen address"),
        ('listen = "host:99999"\n', "listen: listen address"),
    ],
)
def test_config_errors_name_the_key(
    tmp_path: Path, logs: str, why: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "witness.toml"
    path.write_text(
        '[witness]\ndatabase_url = "sqlite:///x.db"\nmaster_key = "file:m"\n'
        f'name = "w.example"\n{logs}',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=why):
        WitnessConfig.load(path)
    assert cli.main(["witness", "serve", "--config", str(path)]) == 2
    assert why.split(":")[0] in capsys.readouterr().err


def test_a_log_listed_twice_and_a_bad_name_are_refused(tmp_path: Path) -> None:
    log = ToyLog()
    entry = f'[[witness.log]]\norigin = "{ORIGIN}"\nkey = "{log.verifier.verifier_key()}"\n'
    path = tmp_path / "witness.toml"
    base = '[witness]\ndatabase_url = "sqlite:///x.db"\nmaster_key = "file:m"\n'
    path.write_text(base + 'name = "w.example"\n' + entry * 2, encoding="utf-8")
    with pytest.raises(ConfigError, match="listed twice"):
        WitnessConfig.load(path)
    path.write_text(base + 'name = "a b"\n' + entry, encoding="utf-8")
    with pytest.raises(ConfigError, match="not a key name"):
        WitnessConfig.load(path)


def test_serving_without_tls_needs_the_development_flag(tmp_path: Path) -> None:
    import asyncio

    from renkei.grpcutil.server import InsecurePortRefused
    from witness.bootstrap import create_server

    folder = tmp_path / "w"
    log = ToyLog()
    init_witness(
        folder,
        listen="127.0.0.1:0",
        tls={},
        logs=[(log.origin, log.verifier.verifier_key())],
        database_url="sqlite:///{config_dir}/witness.db",
        name="w.example",
    )
    config = WitnessConfig.load(folder / "witness.toml")
    with pytest.raises(InsecurePortRefused):
        asyncio.run(create_server(config))
