"""The portal's own keys (renkei.agency_keys in its store, under ``[portal] master_key``):
the pages open details with its sealing key; without one the portal refuses to start."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from support.portal_env import card_authority, peers, portal_config, provision_keys

from comm_server import keys as comm_keys
from ops.cli import main
from portal import pages
from portal.bootstrap import create_app
from renkei import agency_keys, db, sealing
from renkei.config_util import ConfigError
from renkei.keystore import KeyStore, create_master_key_file, load_master_key


def test_the_bootstrap_sets_the_sealing_key_and_the_font(
    tmp_path: Path, database: tuple[str | None, str]
) -> None:
    ca = card_authority(tmp_path / "card-ca")
    config, _ = portal_config(tmp_path, ca, database, keys=False)
    public = provision_keys(config)
    app = create_app(config, peers(ca)[0])
    try:
        assert sealing.public_key_bytes(app[pages.SEALING_KEY]) == public
        assert app[pages.FONT_PATH] == config.font
    finally:
        for close in app.on_cleanup:  # the app was never started: its store closed here
            asyncio.run(close(app))


def test_a_store_without_a_sealing_key_refuses_to_start_in_one_line(tmp_path: Path) -> None:
    ca = card_authority(tmp_path / "card-ca")
    config, _ = portal_config(tmp_path, ca, (None, "nokey"), keys=False)
    with pytest.raises(ConfigError) as refused:
        create_app(config, peers(ca)[0])
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("[portal] master_key: ")
    assert "no sealing key" in message
    assert "renkei.agency_keys.provision" in message


def test_a_master_key_that_is_missing_or_another_refuses_to_start(tmp_path: Path) -> None:
    ca = card_authority(tmp_path / "card-ca")
    config, _ = portal_config(tmp_path, ca, (None, "wrong"))
    (tmp_path / "master.key").unlink()
    with pytest.raises(ConfigError, match=r"\[portal\] master_key: .*does not exist"):
        create_app(config, peers(ca)[0])
    create_master_key_file(tmp_path / "master.key")  # not the one the keys are wrapped under
    with pytest.raises(ConfigError, match=r"\[portal\] master_key: .*does not open"):
        create_app(config, peers(ca)[0])


def test_renkei_portal_serve_says_so_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = card_authority(tmp_path / "card-ca")
    portal_config(tmp_path, ca, (None, "cli"), keys=False)
    monkeypatch.setattr("renkei.logs.configure", lambda *_a, **_k: None)
    file = tmp_path / "portal.toml"
    file.write_text(
        """
[portal]
listen = "127.0.0.1:0"
public_url = "https://127.0.0.1"
database_url = "sqlite:///{config_dir}/portal.db"
master_key = "file:master.key"
[web_tls]
cert = "web/web.pem"
key = "web/web.key"
[hub]
endpoint = "127.0.0.1:1"
[registry]
endpoint = "127.0.0.1:1"
[cards]
ca_cert = "card-ca/ca.pem"
crl = "card-ca/crl.pem"
""",
        encoding="utf-8",
    )
    assert main(["portal", "serve", "--config", str(file)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"renkei portal serve: {file}: [portal] master_key: ")
    assert "no sealing key" in err[0]


def test_comm_servers_use_the_kernels_agency_keys(tmp_path: Path) -> None:
    for name in ("SEALING", "SIGNING", "OwnKeys", "sealing_key", "signing_key", "own_keys"):
        assert getattr(comm_keys, name) is getattr(agency_keys, name), name
    assert comm_keys.exchange_csr is agency_keys.exchange_csr
    create_master_key_file(tmp_path / "m.key")
    engine = db.create_engine(db.sqlite_url(str(tmp_path / "keys.db")))
    try:
        store = KeyStore(engine, load_master_key(f"file:{tmp_path / 'm.key'}"))
        public = comm_keys.provision(store)
        # The comm server's provision makes the kernel's keys and its pseudonym key.
        assert public == sealing.public_key_bytes(agency_keys.sealing_key(store))
        assert store.versions(comm_keys.PSEUDONYM)
        assert comm_keys.provision(store) == public  # once
    finally:
        engine.dispose()
