"""The modern system's JSON-over-HTTP stub as a process, with its client (legacy-formats §4)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from support.legacy import StubProcess, closed_port, refused, run, start_stub

from comm_server.legacy import JsonHttpClient, LegacyClient
from renkei.errors import DeadlineExceeded, InvalidArgument, NotFound, RenkeiError, Unavailable

TAX = "地方税関係情報"
RESIDENT = "住民票関係情報"

# Written from docs/legacy-formats.md by hand: the answer for 山田 太郎's resident record.
GOLDEN_RESPONSE = (
    '{"personId":"S-0001","kind":"resident-record","record":{"name":"山田 太郎",'
    '"nameKana":"ヤマダ タロウ","birthDate":"1958-05-14","sex":"male",'
    '"municipalityCode":"141046","address":"神奈川県横浜市中区港町１丁目２番３号",'
    '"householdHead":true,"movedInDate":"2001-04-01"}}'
).encode()
TAX_2026 = (
    b'{"dependents":1,"fiscalYear":2026,"incomeLevy":231000,"perCapitaLevy":5000,'
    b'"taxExempt":false,"totalIncome":3850000}'
)


@pytest.fixture(scope="module")
def stub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StubProcess]:
    process = start_stub("json_http", tmp_path_factory.mktemp("json"), "--generated", "21")
    yield process
    process.stop()


def base(stub: StubProcess) -> str:
    return f"http://127.0.0.1:{stub.port}"


async def get(address: str) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as session, session.get(address) as response:
        return response.status, await response.read()


async def set_faults(stub: StubProcess, **faults: Any) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(base(stub) + "/_control/faults", json=faults) as response,
    ):
        assert response.status == 200, await response.text()


@pytest.fixture(autouse=True)
def no_faults(stub: StubProcess) -> Iterator[None]:
    yield
    run(lambda: set_faults(stub, delay_ms=0, drop=False, garbage=False))


def test_golden_request_and_response(stub: StubProcess) -> None:
    answer = run(lambda: get(base(stub) + "/v1/persons/S-0001/records/resident-record"))
    assert answer == (200, GOLDEN_RESPONSE)


@pytest.mark.parametrize(
    ("path", "status", "error"),
    [
        ("/v1/persons/S-9999/records/resident-record", 404, "not_found"),
        ("/v1/persons/S-0001/records/local-tax?fiscalYear=1999", 404, "not_found"),
        ("/v1/persons/S-0001/records/pension", 400, "bad_request"),
        ("/v1/persons/S-0001/records/local-tax?fiscalYear=26", 400, "bad_request"),
        ("/v1/persons/S-0001/records/local-tax?year=2026", 400, "bad_request"),
        ("/v1/persons?limit=0", 400, "bad_request"),
    ],
)
def test_stub_errors(stub: StubProcess, path: str, status: int, error: str) -> None:
    got_status, body = run(lambda: get(base(stub) + path))
    assert got_status == status
    assert json.loads(body)["error"] == error


def test_lookups(stub: StubProcess) -> None:
    async def scenario() -> None:
        client = JsonHttpClient(base(stub) + "/")
        assert isinstance(client, LegacyClient)
        try:
            assert await client.lookup("S-0001", TAX, b"", timeout=5) == TAX_2026
            assert await client.lookup("S-0001", TAX, b"fiscal_year=2026", timeout=5) == TAX_2026
            resident = json.loads(await client.lookup("S-0004", RESIDENT, b"", timeout=5))
            assert resident["name"] == "高橋 ハル"
            assert resident["birthDate"] == "1925-01-10"
            for person, kind, query in [
                ("S-9999", RESIDENT, b""),
                ("S-0001", TAX, b"fiscal_year=1999"),
                ("S-0001", "年金給付関係情報", b""),
                ("../../_control/faults", RESIDENT, b""),  # quoted: one path segment
            ]:
                await refused(
                    client.lookup(person, kind, query, timeout=5), NotFound, "RECORD_NOT_FOUND"
                )
        finally:
            await client.aclose()

    run(scenario)


@pytest.mark.parametrize(
    ("kind", "query", "key"),
    [
        (TAX, b"fiscalYear=2026", "fiscalYear"),
        (RESIDENT, b"fiscal_year=2026", "fiscal_year"),
        (TAX, b"fiscal_year=abcd", "fiscal_year"),
        (TAX, b"fiscal_year=2026&", None),
    ],
)
def test_query_refusals(stub: StubProcess, kind: str, query: bytes, key: str | None) -> None:
    async def scenario() -> None:
        client = JsonHttpClient(base(stub))
        error = await refused(
            client.lookup("S-0001", kind, query, timeout=5), InvalidArgument, "LEGACY_QUERY_INVALID"
        )
        if key is not None:
            assert error.metadata["key"] == key
        await client.aclose()

    run(scenario)


def test_list_persons_pages_to_the_end(stub: StubProcess) -> None:
    async def scenario() -> list[bytes]:
        client = JsonHttpClient(base(stub))
        seen: list[bytes] = []
        after = None
        try:
            while page := await client.list_persons(after, 4, timeout=5):
                assert len(page) <= 4
                seen.extend(page)
                after = json.loads(page[-1])["personId"]
        finally:
            await client.aclose()
        return seen

    seen = run(scenario)
    assert len(seen) == 25
    first = json.loads(seen[0])
    assert first == {
        "address": "神奈川県横浜市中区港町１丁目２番３号",
        "birthDate": "1958-05-14",
        "name": "山田 太郎",
        "nameKana": "ヤマダ タロウ",
        "personId": "S-0001",
        "sex": "male",
    }


@pytest.mark.parametrize(
    ("faults", "error", "reason"),
    [
        ({"delay_ms": 2000}, DeadlineExceeded, "LEGACY_TIMEOUT"),
        ({"drop": True}, Unavailable, "LEGACY_UNAVAILABLE"),
        ({"garbage": True}, Unavailable, "LEGACY_GARBAGE"),
    ],
)
def test_faults_and_recovery(
    stub: StubProcess, faults: dict[str, Any], error: type[RenkeiError], reason: str
) -> None:
    async def scenario() -> None:
        client = JsonHttpClient(base(stub))
        try:
            assert await client.lookup("S-0001", TAX, b"", timeout=5) == TAX_2026
            await set_faults(stub, **faults)
            await refused(client.lookup("S-0001", TAX, b"", timeout=0.3), error, reason)
            await refused(client.list_persons(None, 5, timeout=0.3), error, reason)
            await set_faults(stub, delay_ms=0, drop=False, garbage=False)
            assert await client.lookup("S-0001", TAX, b"", timeout=5) == TAX_2026
        finally:
            await client.aclose()

    run(scenario)


def test_unreachable_and_closed() -> None:
    async def scenario() -> None:
        client = JsonHttpClient(f"http://127.0.0.1:{closed_port()}")
        await refused(
            client.lookup("S-0001", TAX, b"", timeout=2), Unavailable, "LEGACY_UNAVAILABLE"
        )
        await client.aclose()
        await refused(
            client.lookup("S-0001", TAX, b"", timeout=2), Unavailable, "LEGACY_UNAVAILABLE"
        )

    run(scenario)
