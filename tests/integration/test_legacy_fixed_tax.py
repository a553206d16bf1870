"""The municipal tax stub as a process, with the fixed-width cp932 client (legacy-formats §1)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.legacy import StubProcess, refused, run, start_stub

from comm_server.legacy import FixedTaxClient, LegacyClient
from legacy_stubs.fixed_tax.records import generate_residents
from legacy_stubs.fixed_tax.server import TaxServer, fault_request
from renkei.errors import DeadlineExceeded, InvalidArgument, NotFound, RenkeiError, Unavailable

TAX = "地方税関係情報"
RESIDENT = "住民票関係情報"

# Written from docs/legacy-formats.md by hand: 山田 太郎's 2026 tax record.
TAX_2026 = (
    b"A0001001  "  # 宛名番号
    b"2026"  # 課税年度
    b"+0003850000"  # 総所得金額
    b"000231000"  # 所得割額
    b"0006200"  # 均等割額
    b"0"  # 非課税区分
    b"01"  # 扶養人数
) + b" " * 212
RESIDENT_YAMADA = (
    b"A0001001  "
    + "ヤマダ\u3000タロウ".ljust(20, "\u3000").encode("cp932")
    + "山田\u3000太郎".ljust(20, "\u3000").encode("cp932")
    + b"3330514"  # 昭和33年5月14日
    + b"1"
    + b"141046"
    + "神奈川県横浜市中区港町１丁目２番３号".ljust(60, "\u3000").encode("cp932")
    + b"1"
    + b"4130401"  # 平成13年4月1日
    + b" " * 24
)


@pytest.fixture(scope="module")
def stub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StubProcess]:
    process = start_stub("fixed_tax", tmp_path_factory.mktemp("fixed_tax"), "--generated", "30")
    yield process
    process.stop()


async def ask(port: int, message: bytes) -> bytes:
    """Send one framed message by hand; the whole framed answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(message)
        await writer.drain()
        prefix = await reader.readexactly(6)
        return prefix + await reader.readexactly(int(prefix))
    finally:
        writer.close()


async def set_faults(
    port: int, delay_ms: int = 0, drop: bool = False, garbage: bool = False
) -> None:
    answer = await ask(port, fault_request(7, delay_ms, drop, garbage))
    assert answer == b"000020RS0000000700000000  "


@pytest.fixture(autouse=True)
def no_faults(stub: StubProcess) -> Iterator[None]:
    yield
    run(lambda: set_faults(stub.port))


def test_golden_request_and_response(stub: StubProcess) -> None:
    request = b"000040" + b"LQ" + b"00000042" + b"A0001001  " + b"01" + b"2026" + b" " * 14
    answer = run(lambda: ask(stub.port, request))
    assert answer == b"000276RS0000004200000001  " + TAX_2026
    request = b"000040LQ00000043A0001001  02    " + b" " * 14
    answer = run(lambda: ask(stub.port, request))
    assert answer == b"000276RS0000004300000001  " + RESIDENT_YAMADA


@pytest.mark.parametrize(
    "body",
    [
        b"LQ00000044A0001001  0",  # short
        b"LQ00000044A0001001  03    " + b" " * 14,  # unknown 情報種別
        b"XX00000044A0001001  01    " + b" " * 14,  # unknown 電文種別
        b"LQ00000044          01    " + b" " * 14,  # no 宛名番号
        b"LQ00000044A0001001  0120x6" + b" " * 14,  # 課税年度 not digits
    ],
)
def test_stub_answers_bad_requests_with_90(stub: StubProcess, body: bytes) -> None:
    answer = run(lambda: ask(stub.port, f"{len(body):06d}".encode() + body))
    assert answer[:8] == b"000020RS"
    assert answer[16:24] == b"90000000"


def test_client_golden_request() -> None:
    """The exact bytes the client sends, against a hand-written answer."""
    seen: list[bytes] = []

    async def scenario() -> bytes:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            prefix = await reader.readexactly(6)
            seen.append(prefix + await reader.readexactly(int(prefix)))
            writer.write(b"000276RS" + seen[0][8:16] + b"00000001  " + TAX_2026)
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            async with server:
                client = FixedTaxClient("127.0.0.1", port)
                try:
                    return await client.lookup("A0001001", TAX, b"fiscal_year=2026", timeout=5)
                finally:
                    await client.aclose()
        finally:
            server.close()

    assert run(scenario) == TAX_2026
    assert seen == [b"000040LQ00000001A0001001  012026" + b" " * 14]


def test_lookups(stub: StubProcess) -> None:
    async def scenario() -> None:
        client = FixedTaxClient("127.0.0.1", stub.port)
        assert isinstance(client, LegacyClient)
        try:
            assert await client.lookup("A0001001", TAX, b"", timeout=5) == TAX_2026  # latest
            older = await client.lookup("A0001001", TAX, b"fiscal_year=2024", timeout=5)
            assert older[10:14] == b"2024"
            assert await client.lookup("A0001001", RESIDENT, b"", timeout=5) == RESIDENT_YAMADA
            await refused(
                client.lookup("A9999999", TAX, b"", timeout=5), NotFound, "RECORD_NOT_FOUND"
            )
            await refused(
                client.lookup("A0001001", TAX, b"fiscal_year=1999", timeout=5),
                NotFound,
                "RECORD_NOT_FOUND",
            )
            await refused(
                client.lookup("A0001001", "年金給付関係情報", b"", timeout=5),
                NotFound,
                "RECORD_NOT_FOUND",
            )
        finally:
            await client.aclose()

    run(scenario)


@pytest.mark.parametrize(
    ("person", "kind", "query", "key"),
    [
        ("A0001001", TAX, b"month=202604", "month"),
        ("A0001001", RESIDENT, b"fiscal_year=2026", "fiscal_year"),
        ("A0001001", TAX, b"fiscal_year=26", "fiscal_year"),
        ("A0001001", TAX, b"fiscal_year=2026&fiscal_year=2025", "fiscal_year"),
        ("A0001001", TAX, b"fiscal_year", None),
        ("A0001001", TAX, b"\xff", None),
        ("A00010010000", TAX, b"", None),
        ("山田", TAX, b"", None),
    ],
)
def test_query_refusals(
    stub: StubProcess, person: str, kind: str, query: bytes, key: str | None
) -> None:
    async def scenario() -> None:
        client = FixedTaxClient("127.0.0.1", stub.port)
        error = await refused(
            client.lookup(person, kind, query, timeout=5), InvalidArgument, "LEGACY_QUERY_INVALID"
        )
        if key is not None:
            assert error.metadata["key"] == key
            assert repr(key) in error.message
        await client.aclose()

    run(scenario)


def test_list_persons_pages_to_the_end(stub: StubProcess) -> None:
    async def scenario() -> list[bytes]:
        client = FixedTaxClient("127.0.0.1", stub.port)
        seen: list[bytes] = []
        after = None
        try:
            while page := await client.list_persons(after, 7, timeout=5):
                assert len(page) <= 7
                seen.extend(page)
                after = page[-1][:10].decode("ascii").rstrip()
            await refused(
                client.list_persons(None, 0, timeout=5), InvalidArgument, "LEGACY_QUERY_INVALID"
            )
        finally:
            await client.aclose()
        return seen

    seen = run(scenario)
    assert len(seen) == 33  # 3 named 横浜 residents and 30 generated
    assert seen[0] == RESIDENT_YAMADA
    ids = [r[:10] for r in seen]
    assert ids == sorted(set(ids))
    assert all(len(r) == 256 for r in seen)


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
        client = FixedTaxClient("127.0.0.1", stub.port)
        try:
            assert await client.lookup("A0001001", TAX, b"", timeout=5) == TAX_2026  # pooled
            await set_faults(stub.port, **faults)
            await refused(client.lookup("A0001001", TAX, b"", timeout=0.3), error, reason)
            await refused(client.list_persons(None, 5, timeout=0.3), error, reason)
            await set_faults(stub.port)
            # The client stays usable.
            assert await client.lookup("A0001001", TAX, b"", timeout=5) == TAX_2026
        finally:
            await client.aclose()

    run(scenario)


def test_unreachable_and_closed() -> None:
    async def scenario() -> None:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        client = FixedTaxClient("127.0.0.1", port)
        await refused(
            client.lookup("A0001001", TAX, b"", timeout=2), Unavailable, "LEGACY_UNAVAILABLE"
        )
        await client.aclose()
        await refused(
            client.lookup("A0001001", TAX, b"", timeout=2), Unavailable, "LEGACY_UNAVAILABLE"
        )

    run(scenario)


def test_process_refuses_a_bad_data_file(tmp_path: Path) -> None:
    bad = tmp_path / "data.json"
    bad.write_text('{"format": "soap_pension"}')
    with pytest.raises(AssertionError, match="cannot load data"):
        start_stub("fixed_tax", tmp_path, "--data", str(bad))


def test_in_process_pooling_restart_and_concurrency() -> None:
    async def scenario() -> None:
        server = TaxServer(generate_residents(5, 3))
        port = await server.start()
        client = FixedTaxClient("127.0.0.1", port)
        try:
            answers = await asyncio.gather(
                *(client.lookup("A0001001", TAX, b"", timeout=5) for _ in range(12))
            )
            assert answers == [TAX_2026] * 12
            assert server.connections_accepted <= 8  # max_connections
            before = server.connections_accepted
            assert await client.lookup("A0001001", RESIDENT, b"", timeout=5) == RESIDENT_YAMADA
            assert server.connections_accepted == before  # pooled
            # The legacy system restarts: the pooled connections are dead, the lookup is not.
            await server.stop()
            server = TaxServer(generate_residents(5, 3), port=port)
            await server.start()
            assert await client.lookup("A0001001", TAX, b"", timeout=5) == TAX_2026
        finally:
            await client.aclose()
            await server.stop()

    run(scenario)
