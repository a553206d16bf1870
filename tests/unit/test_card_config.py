"""registry.toml's portals and card CA folder (issue 15), and portal.toml's refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from portal.config import PortalConfig
from registry_binding.config import RegistryBindingConfig
from renkei.config_util import ConfigError

REGISTER = '[registry]\ndatabase_url = "sqlite:///{config_dir}/registry.db"\n'


def _registry(tmp_path: Path, text: str) -> RegistryBindingConfig:
    path = tmp_path / "registry" / "registry.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text, "utf-8")
    return RegistryBindingConfig.load(path)


def test_by_default_the_portal_binds_cards_with_the_deployments_card_ca(tmp_path: Path) -> None:
    config = _registry(tmp_path, REGISTER)
    assert config.portals == ("portal",)
    assert config.card_ca_dir is not None
    assert config.card_ca_dir.resolve() == tmp_path / "pki" / "card-ca"


def test_portals_and_the_card_ca_can_be_named(tmp_path: Path) -> None:
    config = _registry(
        tmp_path, REGISTER + 'portals = ["portal", "portal-2"]\n[cards]\nca_dir = "/srv/card-ca"\n'
    )
    assert config.portals == ("portal", "portal-2")
    assert config.card_ca_dir == Path("/srv/card-ca")
    with pytest.raises(ConfigError, match="portals"):
        _registry(tmp_path, REGISTER + 'portals = ["Not An Agency"]\n')


PORTAL = """
[portal]
public_url = "{url}"
database_url = "sqlite:///{{config_dir}}/portal.db"
master_key = "file:master.key"
[web_tls]
cert = "w.pem"
key = "w.key"
[hub]
endpoint = "h:1"
[registry]
endpoint = "r:1"
[cards]
ca_cert = "ca.pem"
{crl}
{extra}
"""


@pytest.mark.parametrize(
    ("url", "extra", "message"),
    [
        ("http://portal.example.jp", "", "must be https"),
        ("https://portal.example.jp", '[verify]\nlog_key = "nonsense"\n', r"\[verify\]"),
        ("https://portal.example.jp", "[rate_limit]\nper_client_burst = 0\n", "per_client_burst"),
        ("https://portal.example.jp", "[retention]\nyears = 7\n", r"\[retention\]: unknown"),
        ("https://portal.example.jp", "[retention]\ndays = 0\n", "days"),
    ],
)
def test_a_bad_portal_config_names_the_key(
    tmp_path: Path, url: str, extra: str, message: str
) -> None:
    path = tmp_path / "portal.toml"
    crl = 'crl = "crl.pem"'
    path.write_text(PORTAL.format(url=url, crl=crl, extra=extra), "utf-8")
    with pytest.raises(ConfigError, match=message):
        PortalConfig.load(path)
    path.write_text(PORTAL.format(url="https://portal.example.jp", crl="", extra=""), "utf-8")
    with pytest.raises(ConfigError, match="crl"):
        PortalConfig.load(path)
    path.write_text(PORTAL.format(url="https://portal.example.jp", crl=crl, extra=""), "utf-8")
    config = PortalConfig.load(path)
    assert config.card_crl == tmp_path / "crl.pem"
    assert config.web_cert == tmp_path / "w.pem"
    assert config.master_key == f"file:{tmp_path / 'master.key'}"
    assert config.internal_listen is None  # no internal port unless asked for
    assert config.retention.days == 2557
    assert config.retention.every_seconds == 0


def test_the_portal_config_names_its_master_key_internal_port_and_retention(
    tmp_path: Path,
) -> None:
    path = tmp_path / "portal.toml"
    text = PORTAL.format(url="https://portal.example.jp", crl='crl = "crl.pem"', extra="")
    path.write_text(text.replace('master_key = "file:master.key"\n', ""), "utf-8")
    with pytest.raises(ConfigError, match="master_key"):
        PortalConfig.load(path)
    extra = "[retention]\ndays = 30\nevery_seconds = 3600\n"
    text = PORTAL.format(url="https://portal.example.jp", crl='crl = "crl.pem"', extra=extra)
    text = text.replace("[web_tls]", 'internal_listen = "127.0.0.1:50081"\n[web_tls]')
    path.write_text(text, "utf-8")
    config = PortalConfig.load(path)
    assert config.internal_listen == "127.0.0.1:50081"
    assert (config.retention.days, config.retention.every_seconds) == (30, 3600)
