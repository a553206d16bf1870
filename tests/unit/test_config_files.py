"""Every party's config loader: a bad file is one ConfigError naming the file and key.

Issue 12, finding 9: a quoted ``"false"`` loaded as True (``bool`` on a string),
wrong TOML types escaped as TypeError, and a non-UTF-8 byte or a deeply nested
array gave a bare exception naming no file.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import pytest

from comm_server.config import CommConfig
from hub_server.config import HubConfig
from hub_server.directory import Directory
from id_issuer.config import IdIssuerConfig
from id_issuer.issuer import open_key_store
from numbering.config import NumberingConfig
from registry_binding.config import RegistryBindingConfig
from renkei import config_util
from renkei.config_util import ConfigError
from renkei.tlog import note
from witness.config import WitnessConfig


class ServerConfig(Protocol):
    insecure_development: bool


KEY = base64.b64encode(bytes(32)).decode()
LOG_VKEY = note.Ed25519Signer.generate("log.example").verifier().verifier_key()

# party: (file name, the table, a minimal file, the loader)
PARTIES: dict[str, tuple[str, str, str, Callable[[Path], ServerConfig]]] = {
    "hub": (
        "hub.toml",
        "hub",
        '[hub]\ndatabase_url = "sqlite://"\ndirectory = "d.toml"\npolicy = "p.toml"\n'
        'master_key = "file:m.key"\n',
        HubConfig.load,
    ),
    "comm": (
        "comm.toml",
        "comm",
        '[comm]\nagency_id = "city"\nhub_endpoint = "127.0.0.1:1"\n'
        'database_url = "sqlite://"\nmaster_key = "file:m.key"\n[legacy]\nport = 5000\n',
        CommConfig.load,
    ),
    "numbering": (
        "numbering.toml",
        "numbering",
        '[numbering]\ndatabase_url = "sqlite://"\nregistry_endpoint = "127.0.0.1:1"\n',
        NumberingConfig.load,
    ),
    "id_issuer": (
        "issuer.toml",
        "id_issuer",
        f'[id_issuer]\ndatabase_url = "sqlite://"\nmaster_key = "file:m.key"\n'
        f'hub_sealing_public_key = "{KEY}"\n',
        IdIssuerConfig.load,
    ),
    "registry_binding": (
        "registry.toml",
        "registry",
        '[registry]\ndatabase_url = "sqlite://"\n',
        RegistryBindingConfig.load,
    ),
    "witness": (
        "witness.toml",
        "witness",
        '[witness]\ndatabase_url = "sqlite://"\nmaster_key = "file:m.key"\nname = "w.example"\n'
        f'[[witness.log]]\norigin = "log.example"\nkey = "{LOG_VKEY}"\n',
        WitnessConfig.load,
    ),
}


def _with(text: str, table: str, line: str) -> str:
    """``line`` added at the top of ``[table]``."""
    return text.replace(f"[{table}]\n", f"[{table}]\n{line}\n", 1)


def _refused(load: Callable[[Path], object], path: Path, *fragments: str) -> str:
    with pytest.raises(ConfigError) as exc:
        load(path)
    message = str(exc.value)
    assert message.startswith(f"{path}: "), message
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


@pytest.mark.parametrize("party", PARTIES)
def test_a_minimal_file_loads_with_tls_off_only_when_asked(party: str, tmp_path: Path) -> None:
    name, table, text, load = PARTIES[party]
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    assert load(path).insecure_development is False
    path.write_text(_with(text, table, "insecure_development = true"), encoding="utf-8")
    assert load(path).insecure_development is True


@pytest.mark.parametrize("value", ['"false"', '"no"', "0", "1", '""'])
@pytest.mark.parametrize("party", PARTIES)
def test_insecure_development_must_be_a_toml_boolean(
    party: str, value: str, tmp_path: Path
) -> None:
    """``"false"`` in quotes loaded as True: a server that would serve plaintext."""
    name, table, text, load = PARTIES[party]
    path = tmp_path / name
    path.write_text(_with(text, table, f"insecure_development = {value}"), encoding="utf-8")
    _refused(load, path, f"[{table}] insecure_development", "true or false")


@pytest.mark.parametrize("party", PARTIES)
def test_a_byte_that_is_not_utf8_names_the_file_and_line(party: str, tmp_path: Path) -> None:
    name, _, text, load = PARTIES[party]
    path = tmp_path / name
    path.write_bytes(text.encode() + b'log_level = "\xff"\n')
    line = text.count("\n") + 1
    _refused(load, path, f"line {line}", "not UTF-8")


@pytest.mark.parametrize("party", PARTIES)
def test_a_deeply_nested_array_names_the_file(party: str, tmp_path: Path) -> None:
    name, _, text, load = PARTIES[party]
    path = tmp_path / name
    path.write_text(text + "x = " + "[" * 500 + "]" * 500 + "\n", encoding="utf-8")
    _refused(load, path, "nested too deeply")


@pytest.mark.parametrize(
    ("party", "line", "fragments"),
    [
        (
            "comm",
            "answer_timeout_seconds = []",
            ("answer_timeout_seconds", "a number, not an array"),
        ),
        ("comm", 'answer_timeout_seconds = "2"', ("answer_timeout_seconds", "a number")),
        ("comm", "answer_timeout_seconds = true", ("answer_timeout_seconds", "a number")),
        ("comm", "answer_timeout_seconds = 0", ("answer_timeout_seconds", "> 0")),
        ("comm", "answer_timeout_seconds = nan", ("answer_timeout_seconds", "> 0")),
        ("comm", "staff_register = 3", ("staff_register", "a string")),
        ("comm", "registry_endpoint = {}", ("registry_endpoint", "a string, not a table")),
        ("comm", "database_schema = 1", ("database_schema", "a string")),
        ("comm", "agency_id = 42", ("agency_id", "a string")),
        ("hub", "directory = [1, 2]", ("directory", "a string, not an array")),
        ("hub", "provider_streams = 'yes'", ("provider_streams", "true or false")),
        ("hub", "relay_ceiling_seconds = -1", ("relay_ceiling_seconds", "> 0")),
        ("hub", "id_issuer_endpoint = 5", ("id_issuer_endpoint", "a string")),
        ("hub", "log_level = 10", ("log_level", "a string")),
        ("numbering", "shutdown_grace_seconds = '5'", ("shutdown_grace_seconds", "a number")),
        ("id_issuer", "hub_sealing_public_key = [1, 2]", ("hub_sealing_public_key", "a string")),
        ("id_issuer", "hub_sealing_public_key = 'AAAA'", ("hub_sealing_public_key", "3 bytes")),
        ("registry_binding", "private_bodies = 'bank'", ("private_bodies", "array of strings")),
        ("registry_binding", "id_issuer_endpoint = 1", ("id_issuer_endpoint", "a string")),
    ],
)
def test_a_value_of_the_wrong_type_names_the_key(
    party: str, line: str, fragments: tuple[str, ...], tmp_path: Path
) -> None:
    name, table, text, load = PARTIES[party]
    path = tmp_path / name
    key = line.split(" = ")[0]
    # Replace a key the minimal file has, or add it.
    lines = [x for x in text.splitlines() if not x.startswith(f"{key} = ")]
    path.write_text(_with("\n".join(lines) + "\n", table, line), encoding="utf-8")
    _refused(load, path, *fragments)


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("port = true", "port: must be an integer, not a boolean"),
        ("port = 70000", "port: must be an integer from 1 to 65535"),
        ("host = 1", "host: must be a string"),
        ("kind = 3", "kind: must be a string"),
    ],
)
def test_the_legacy_table_refuses_wrong_types(line: str, fragment: str, tmp_path: Path) -> None:
    _, _, text, _ = PARTIES["comm"]
    path = tmp_path / "comm.toml"
    key = line.split(" = ")[0]
    lines = [x for x in text.splitlines() if not x.startswith(f"{key} = ")]
    path.write_text(_with("\n".join(lines) + "\n", "legacy", line), encoding="utf-8")
    _refused(CommConfig.load, path, f"[legacy] {fragment}")


def test_the_tls_table_refuses_a_path_that_is_not_a_string(tmp_path: Path) -> None:
    _, _, text, _ = PARTIES["hub"]
    path = tmp_path / "hub.toml"
    path.write_text(text + '[tls]\nca_cert = "ca.pem"\ncert = ["c"]\nkey = "k"\n', "utf-8")
    _refused(HubConfig.load, path, "[tls] cert: must be a string, not an array")


def test_the_id_issuers_key_store_reads_the_same_checked_key(tmp_path: Path) -> None:
    _, _, text, _ = PARTIES["id_issuer"]
    path = tmp_path / "issuer.toml"
    path.write_text(text.replace(f'"{KEY}"', "[1, 2]"), encoding="utf-8")
    _refused(open_key_store, path, "hub_sealing_public_key: must be a string")


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ('id = "city"\nendpoint = "e"\nsealing_public_key = [1, 2]', "sealing_public_key: must be"),
        ('id = "city"\nendpoint = "e"\nsealing_public_key = "!!"', "is not base64"),
        ('id = "city"\nendpoint = "e"\nsealing_public_key = "AAAA"', "3 bytes"),
        (f'id = 7\nendpoint = "e"\nsealing_public_key = "{KEY}"', "id: must be a string"),
        (f'id = "city"\nsealing_public_key = "{KEY}"', "missing key 'endpoint'"),
        (f'id = "city"\nendpoint = "e"\nclasses = "x"\nsealing_public_key = "{KEY}"', "classes"),
        (
            f'id = "city"\nendpoint = "e"\nsealing_public_key = "{KEY}"\n'
            'exchange_certificate = "not PEM"',
            "exchange_certificate: is not a PEM certificate",
        ),
    ],
)
def test_the_hubs_directory_names_the_entry_and_key(
    entry: str, fragment: str, tmp_path: Path
) -> None:
    path = tmp_path / "directory.toml"
    path.write_text(f"[[agency]]\n{entry}\n", encoding="utf-8")
    message = _refused(Directory.load, path, fragment)
    assert "agency[0]" in message


def test_the_directory_must_hold_agency_tables(tmp_path: Path) -> None:
    path = tmp_path / "directory.toml"
    path.write_text('agency = "x"\n', encoding="utf-8")
    _refused(Directory.load, path, "array of tables")
    path.write_bytes(b"[[agency]]\nid = '\xfe'\n")
    _refused(Directory.load, path, "line 2", "not UTF-8")


def test_readers_refuse_what_bool_float_and_str_accepted(tmp_path: Path) -> None:
    where = "x.toml: [t]"
    with pytest.raises(ConfigError, match=r"^x.toml: \[t\] on: must be true or false"):
        config_util.boolean({"on": "false"}, "on", where, True)
    with pytest.raises(ConfigError, match="must be a number, not the string '1'"):
        config_util.number({"n": "1"}, "n", where, 1.0)
    with pytest.raises(ConfigError, match="must be a string, not an integer"):
        config_util.text({"s": 1}, "s", where)
    with pytest.raises(ConfigError, match="missing key 's'"):
        config_util.text({}, "s", where)
    assert config_util.number({"n": 0}, "n", where, 1.0, positive=False) == 0.0
    assert config_util.optional_text({}, "s", where) is None
    assert config_util.path({"p": "a/b"}, "p", where, tmp_path) == tmp_path / "a/b"
    assert config_util.text_list({}, "l", where, ("a",)) == ("a",)


def test_the_comm_servers_exchange_ca_defaults_to_its_tls_ca(tmp_path: Path) -> None:
    _, _, text, _ = PARTIES["comm"]
    path = tmp_path / "comm.toml"
    tls = '[tls]\nca_cert = "ca.pem"\ncert = "c.pem"\nkey = "k.pem"\n'
    path.write_text(text + tls, encoding="utf-8")
    assert CommConfig.load(path).exchange_ca == tmp_path / "ca.pem"
    path.write_text(text + tls + 'exchange_ca = "agencies-ca.pem"\n', encoding="utf-8")
    assert CommConfig.load(path).exchange_ca == tmp_path / "agencies-ca.pem"
    path.write_text(text, encoding="utf-8")
    assert CommConfig.load(path).exchange_ca is None
