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
            {"kind": "fixed_tax", "host": "10.0.0.1", "port": 6000},
            LegacyConfig("fixed_tax", "10.0.0.1", 6000),
            FixedTaxClient,
        ),
        (
            {"kind": "soap", "url": "http://127.0.0.1:8080/soap"},
            LegacyConfig("soap", url="http://127.0.0.1:8080/soap"),
            SoapPensionClient,
        ),
        (
            {"kind": "json_http", "url": "https://modern.example/"},
            LegacyConfig("json_http", url="https://modern.example/"),
            JsonHttpClient,
        ),
        (
            {"kind": "csv_dropbox", "folder": "drop", "poll_interval_seconds": 0.5},
            LegacyConfig("csv_dropbox", folder=CONFIG.parent / "drop", poll_interval_seconds=0.5),
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
