"""The numbering agency's config, who may call it, and its notice document."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import pytest

from numbering.authorization import Authorization
from numbering.config import NumberingConfig
from numbering.notice import render_notice
from renkei.config_util import ConfigError
from renkei.errors import PermissionDenied, Unauthenticated
from renkei.grpcutil.caller import parse_party
from renkei.pki import PeerIdentity

REGISTRY = PeerIdentity("service", "registry")
HUB = PeerIdentity("hub", "hub")
CITY = PeerIdentity("agency", "141003")
XHTML = "{http://www.w3.org/1999/xhtml}"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "numbering.toml"
    path.write_text(text, encoding="utf-8")
    return path


MINIMAL = """
[numbering]
database_url = "sqlite:///{config_dir}/numbering.db"
registry_endpoint = "127.0.0.1:50073"
"""


# ------------------------------------------------------------------ config


def test_minimal_config_defaults(tmp_path: Path) -> None:
    config = NumberingConfig.load(_write(tmp_path, MINIMAL))
    assert config.database_url == f"sqlite:///{tmp_path}/numbering.db"
    assert config.registry_endpoint == "127.0.0.1:50073"
    assert config.registry_timeout_seconds == 5.0
    assert config.tls is None
    assert not config.insecure_development
    assert config.authorize == Authorization()
    for op in ("issue", "lookup", "change"):
        assert config.authorize.allowed(op) == {"service:registry"}


def test_full_config(tmp_path: Path) -> None:
    config = NumberingConfig.load(
        _write(
            tmp_path,
            MINIMAL
            + """
listen = "127.0.0.1:0"
database_schema = "numbering"
shutdown_grace_seconds = 1.5
log_level = "DEBUG"

[authorize]
issue = ["service:registry"]
lookup = ["service:registry", "agency:141003"]
change = []

[tls]
ca_cert = "pki/ca.pem"
cert = "pki/services/numbering.pem"
key = "pki/services/numbering.key"
""",
        )
    )
    assert config.listen == "127.0.0.1:0"
    assert config.database_schema == "numbering"
    assert config.shutdown_grace_seconds == 1.5
    assert config.log_level == "DEBUG"
    assert config.tls is not None
    assert config.tls.cert == tmp_path / "pki/services/numbering.pem"
    assert config.authorize.allowed("lookup") == {"service:registry", "agency:141003"}
    assert config.authorize.allowed("change") == frozenset()


@pytest.mark.parametrize(
    ("authorize", "problem"),
    [
        ('lookup = ["hub"]', "the hub may never"),
        ('issue = ["service:registry", "hub"]', "the hub may never"),
        ('lookup = ["registry"]', "is not 'hub'"),
        ('lookup = ["agency:"]', "invalid agency id"),
        ('lookup = "service:registry"', "must be a list"),
        ('delete = ["service:registry"]', "unknown operation groups"),
    ],
)
def test_bad_authorize_table_is_refused(tmp_path: Path, authorize: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        NumberingConfig.load(_write(tmp_path, MINIMAL + "\n[authorize]\n" + authorize + "\n"))


def test_required_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="registry_endpoint"):
        NumberingConfig.load(_write(tmp_path, '[numbering]\ndatabase_url = "sqlite://"\n'))


@pytest.mark.parametrize(
    "line",
    [
        'registry_database_url = "sqlite:///{config_dir}/../registry/registry.db"',
        'registry_database_schema = "renkei_registry"',
    ],
)
def test_a_config_holding_the_registry_store_is_refused(tmp_path: Path, line: str) -> None:
    """Issue 13: the numbering agency must not be able to open the registry's store."""
    with pytest.raises(ConfigError) as exc:
        NumberingConfig.load(_write(tmp_path, MINIMAL + line + "\n"))
    message = str(exc.value)
    assert "\n" not in message
    assert line.split(" ")[0] in message
    assert "must not hold the registry's store" in message


# ------------------------------------------------------------------ authorization


def test_only_the_registry_by_default() -> None:
    auth = Authorization()
    for op in ("issue", "lookup", "change"):
        auth.check(op, REGISTRY)
        for other in (CITY, PeerIdentity("service", "id-issuer"), HUB):
            with pytest.raises(PermissionDenied) as exc:
                auth.check(op, other)
            assert exc.value.reason == "CALLER_NOT_AUTHORIZED"


def test_the_hub_is_refused_even_if_listed() -> None:
    # Config loading refuses "hub"; a hand-built Authorization cannot let it in either.
    auth = Authorization(lookup=frozenset({"hub"}))
    with pytest.raises(PermissionDenied) as exc:
        auth.check("lookup", HUB)
    assert exc.value.metadata == {"caller": "hub", "operation": "lookup"}


def test_no_certificate_is_unauthenticated() -> None:
    with pytest.raises(Unauthenticated) as exc:
        Authorization().check("issue", None)
    assert exc.value.reason == "CLIENT_CERT_REQUIRED"


def test_party_names() -> None:
    assert parse_party("hub") == HUB
    assert parse_party("agency:141003") == CITY
    assert parse_party("service:registry") == REGISTRY
    for bad in ("", "service", "person:x", "agency:../x", "service:a b"):
        with pytest.raises(ValueError):  # noqa: PT011  # the message names the input
            parse_party(bad)


# ------------------------------------------------------------------ the notice


def test_notice_is_a_printable_japanese_document() -> None:
    issued = datetime(2025, 3, 31, 15, 30, tzinfo=UTC)  # 1 April in Japan
    page = render_notice("123456789018", issued)
    text = page.decode("utf-8")
    assert text.startswith("<!DOCTYPE html>")
    root = ET.fromstring(page)  # well-formed (polyglot XHTML)
    assert root.get("lang") == "ja"
    assert root.findtext(f"{XHTML}head/{XHTML}title") == "個人番号通知書"
    assert root.findtext(f".//{XHTML}h1") == "個人番号通知書"
    shown = root.find(f".//{XHTML}dd[@class='number']")
    assert shown is not None
    assert shown.text == "1234 5678 9018"
    time = root.find(f".//{XHTML}time")
    assert time is not None
    assert (time.get("datetime"), time.text) == ("2025-04-01", "2025年4月1日")
    style = root.findtext(f"{XHTML}head/{XHTML}style") or ""
    assert "@media print" in style
    assert "@page" in style
    assert "あなたの個人番号" in text


def test_notice_carries_no_four_facts_and_no_resident_code() -> None:
    page = render_notice("621498320257", datetime(2025, 4, 1, tzinfo=UTC)).decode()
    # The numbering agency holds none of them; the municipality addresses the envelope.
    for absent in ("10000000001", "生年月日:", "性別:", "氏名:"):
        assert absent not in page
    assert "氏名・住所・生年月日・性別は記載していません" in page
