"""The [legacy] config, the client factory and query parsing shared by the legacy clients."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from comm_server.config import LegacyConfig
from comm_server.legacy import (
    BatchLegacyClient,
    CsvDropboxClient,
    FixedTaxClient,
    JsonHttpClient,
    JsonlLegacyClient,
    LegacyClient,
    SoapPensionClient,
)
from comm_server.legacy.common import parse_query
from comm_server.legacy.factory import open_legacy_client
from renkei.config_util import ConfigError
from renkei.errors import FailedPrecondition, InvalidArgument

CONFIG = Path("/etc/renkei/agencies/x/comm.toml")


@pytest.mark.parametrize(
    ("table", "expected", "cls"),
    [
        ({"port": 5000}, LegacyConfig("jsonl", "127.0.0.1", 5000), JsonlLegacyClient),
        (
            {"kind": "fixed_tax", "format": "fixed_tax", "host": "10.0.0.1", "port": 6000},
            LegacyConfig("fixed_tax", "10.0.0.1", 6000, format="fixed_tax"),
            FixedTaxClient,
        ),
        (
            {"kind": "soap", "format": "soap_pension", "url": "http://127.0.0.1:8080/soap"},
            LegacyConfig("soap", url="http://127.0.0.1:8080/soap", format="soap_pension"),
            SoapPensionClient,
        ),
        (
            {"kind": "json_http", "format": "json_http", "url": "https://modern.example/"},
            LegacyConfig("json_http", url="https://modern.example/", format="json_http"),
            JsonHttpClient,
        ),
        (
            {
                "kind": "csv_dropbox",
                "format": "csv_insurer",
                "folder": "drop",
                "poll_interval_seconds": 0.5,
            },
            LegacyConfig(
                "csv_dropbox",
                folder=CONFIG.parent / "drop",
                poll_interval_seconds=0.5,
                format="csv_insurer",
            ),
            CsvDropboxClient,
        ),
    ],
)
def test_kinds_and_factory(
    table: dict[str, object], expected: LegacyConfig, cls: type[object]
) -> None:
    config = LegacyConfig.from_table(table, CONFIG)
    assert config == expected
    client = open_legacy_client(config)
    assert type(client) is cls
    assert isinstance(client, LegacyClient)
    assert isinstance(client, BatchLegacyClient) == (cls is CsvDropboxClient)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"kind": "ftp"}, "kind 'ftp' is unknown; known: 'jsonl', 'fixed_tax'"),
        ({"kind": "fixed_tax"}, "missing key 'port'"),
        ({"kind": "fixed_tax", "port": 70000}, "port: must be an integer from 1 to 65535"),
        ({"kind": "soap"}, "missing key 'url'"),
        ({"kind": "json_http", "url": "ftp://x"}, "url: must start with http:// or https://"),
        ({"kind": "csv_dropbox"}, "missing key 'folder'"),
        (
            {"kind": "csv_dropbox", "folder": "d", "poll_interval_seconds": 0},
            "poll_interval_seconds: must be a number > 0",
        ),
    ],
)
def test_config_refusals(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        LegacyConfig.from_table(table, CONFIG)
    assert message in str(caught.value)
    assert "[legacy]" in str(caught.value)


def test_parse_query() -> None:
    assert parse_query(b"", ("fiscal_year",), "k") == {}
    assert parse_query(b"fiscal_year=2026", ("fiscal_year",), "k") == {"fiscal_year": "2026"}
    assert parse_query(b"treatment_month=202604", ("treatment_month",), "k") == {
        "treatment_month": "202604"
    }


@pytest.mark.parametrize(
    ("query", "allowed", "message", "key"),
    [
        (b"year=2026", ("fiscal_year",), "query key 'year' is not understood for k", "year"),
        (b"year=2026", (), "(keys: none)", "year"),
        (b"fiscal_year=2026&fiscal_year=2026", ("fiscal_year",), "given twice", "fiscal_year"),
        (b"fiscal_year=20260", ("fiscal_year",), "is not 4 digits", "fiscal_year"),
        (b"treatment_month=202600", ("treatment_month",), "is not YYYYMM", "treatment_month"),
        (b"fiscal_year", ("fiscal_year",), "is not key=value", None),
        (b"a\xffb", ("fiscal_year",), "not valid UTF-8 (byte 1)", None),
    ],
)
def test_parse_query_refusals(
    query: bytes, allowed: tuple[str, ...], message: str, key: str | None
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_query(query, allowed, "k")
    assert caught.value.reason == "LEGACY_QUERY_INVALID"
    assert message in caught.value.message
    assert caught.value.metadata.get("key") == key
    assert caught.value.metadata["field"] == "query"


def test_jsonl_client_has_no_person_file() -> None:
    client = JsonlLegacyClient("127.0.0.1", 1)  # never connects: refused up front
    with pytest.raises(FailedPrecondition) as caught:
        asyncio.run(client.list_persons(None, 10, timeout=1))
    assert caught.value.reason == "LEGACY_LIST_UNSUPPORTED"


def test_a_legacy_system_other_than_json_lines_needs_its_mapper_format() -> None:
    with pytest.raises(ConfigError) as caught:
        LegacyConfig.from_table({"kind": "fixed_tax", "port": 6000}, CONFIG)
    assert "[legacy] format" in str(caught.value)
    assert "(e.g. 'fixed_tax') is required for kind 'fixed_tax'" in str(caught.value)


def test_an_unknown_format_stops_the_server_naming_the_known_ones() -> None:
    from dataclasses import replace

    from comm_server.bootstrap import load_format
    from comm_server.config import CommConfig

    config = CommConfig(
        agency_id="141003",
        listen="127.0.0.1:0",
        hub_endpoint="127.0.0.1:1",
        database_url="sqlite://",
        master_key="file:/nonexistent",
        legacy=LegacyConfig("fixed_tax", port=6000, format="fixed_tx"),
        tls=None,
    )
    with pytest.raises(ConfigError) as caught:
        load_format(config)
    assert "no mapper for format 'fixed_tx'" in str(caught.value)
    assert "fixed_tax" in str(caught.value).split("known:")[1]
    assert load_format(replace(config, legacy=replace(config.legacy, format="fixed_tax")))
    assert load_format(replace(config, legacy=LegacyConfig("jsonl", port=1))) is None
