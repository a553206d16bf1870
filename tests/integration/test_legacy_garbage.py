"""Each client's framing checks, against answers written by hand (not by the stubs)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web
from support.legacy import refused, run

from comm_server.legacy import CsvDropboxClient, FixedTaxClient, JsonHttpClient, SoapPensionClient
from renkei.errors import RenkeiError, Unavailable

TAX = "地方税関係情報"
RECORD = b"A0001001  2026+0003850000000231000000620000" + b" " * 213


@asynccontextmanager
async def tcp_answering(answer: bytes) -> AsyncIterator[int]:
    """A TCP server that reads one framed request, sends ``answer`` and closes."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        prefix = await reader.readexactly(6)
        request = await reader.readexactly(int(prefix))
        writer.write(answer.replace(b"{n}", request[2:10]))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    ("answer", "reason", "words"),
    [
        (b"00002XRS", "LEGACY_GARBAGE", "length prefix is not 6 digits"),
        (b"000276RX{n}00000001  " + RECORD, "LEGACY_GARBAGE", "not an RS response"),
        (b"000276RS9999999900000001  " + RECORD, "LEGACY_GARBAGE", "answer to another request"),
        (b"000276RS{n}00000002  " + RECORD, "LEGACY_GARBAGE", "record count does not match"),
        (b"000020RS{n}00000000  ", "LEGACY_GARBAGE", "0 records answer a lookup"),
        (b"000020RS{n}55000000  ", "LEGACY_GARBAGE", "unknown result code"),
        (b"000020RS{n}90000000  ", "LEGACY_ERROR", "answered the request with an error"),
        (b"000276RS{n}00000001  " + RECORD[:100], "LEGACY_UNAVAILABLE", "mid-answer"),
        (b"", "LEGACY_UNAVAILABLE", "without answering"),
    ],
)
def test_fixed_width_framing(answer: bytes, reason: str, words: str) -> None:
    async def scenario() -> RenkeiError:
        async with tcp_answering(answer) as port:
            client = FixedTaxClient("127.0.0.1", port)
            try:
                return await refused(
                    client.lookup("A0001001", TAX, b"", timeout=5), Unavailable, reason
                )
            finally:
                await client.aclose()

    assert words in run(scenario).message


@asynccontextmanager
async def http_answering(status: int, body: bytes) -> AsyncIterator[str]:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=status, body=body)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


SOAP_OPEN = (
    b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"'
    b' xmlns:nk="urn:renkei:stub:nenkin:v1"><soap:Body>'
)
SOAP_CLOSE = b"</soap:Body></soap:Envelope>"


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (200, b"<a><b></a>", "LEGACY_GARBAGE"),
        (200, b"<Envelope/>", "LEGACY_GARBAGE"),
        (200, SOAP_OPEN + b"<nk:GetBenefitResponse/>" + SOAP_CLOSE, "LEGACY_GARBAGE"),
        (200, SOAP_OPEN + b"<nk:Other/>" + SOAP_CLOSE, "LEGACY_GARBAGE"),
        (
            200,
            SOAP_OPEN
            + b'<nk:GetBenefitResponse><nk:Benefit><x xmlns="urn:other"/></nk:Benefit>'
            + b"</nk:GetBenefitResponse>"
            + SOAP_CLOSE,
            "LEGACY_GARBAGE",
        ),
        (500, b"Internal Server Error", "LEGACY_GARBAGE"),
        (
            500,
            SOAP_OPEN
            + b"<soap:Fault><faultcode>soap:Server</faultcode><faultstring>Down</faultstring>"
            + b"</soap:Fault>"
            + SOAP_CLOSE,
            "LEGACY_ERROR",
        ),
    ],
)
def test_soap_envelope(status: int, body: bytes, reason: str) -> None:
    async def scenario() -> None:
        async with http_answering(status, body) as base:
            client = SoapPensionClient(base + "/soap")
            try:
                await refused(
                    client.lookup("1", "年金給付関係情報", b"", timeout=5), Unavailable, reason
                )
            finally:
                await client.aclose()

    run(scenario)


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (200, b"[1, 2]", "LEGACY_GARBAGE"),
        (200, b'{"personId": "S-0001", "kind": "local-tax"}', "LEGACY_GARBAGE"),
        (200, b'{"kind": "resident-record", "record": {}}', "LEGACY_GARBAGE"),
        (200, b"\xff{}", "LEGACY_GARBAGE"),
        (400, b'{"error": "bad_request", "message": "no"}', "LEGACY_ERROR"),
        (404, b'{"error": "no_route"}', "LEGACY_ERROR"),
        (503, b"<html>busy</html>", "LEGACY_GARBAGE"),
    ],
)
def test_json_shape(status: int, body: bytes, reason: str) -> None:
    async def scenario() -> None:
        async with http_answering(status, body) as base:
            client = JsonHttpClient(base)
            try:
                await refused(client.lookup("S-0001", TAX, b"", timeout=5), Unavailable, reason)
            finally:
                await client.aclose()

    run(scenario)


HEADER = "要求番号,結果,保険者番号,被保険者番号,給付種別,自己負担割合,給付額,診療年月\r\n"


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (HEADER + "{t},0,01140016,K-0001,01,30,100,202604", "LEGACY_GARBAGE"),  # no CRLF
        (HEADER + "{t},0,01140016,K-0001,01,30,100\r\n", "LEGACY_GARBAGE"),  # 7 columns
        ("要求番号,結果\r\n{t},0\r\n", "LEGACY_GARBAGE"),  # wrong header
        (HEADER + "other,0,01140016,K-0001,01,30,100,202604\r\n", "LEGACY_GARBAGE"),
        (HEADER + "{t},7,,,,,,\r\n", "LEGACY_GARBAGE"),
        (HEADER + "{t},0,a,b,c,d,e,f\r\n{t},0,a,b,c,d,e,f\r\n", "LEGACY_GARBAGE"),
        (HEADER + "{t},0,01140016,K-0001,01,30,100,2026\n04\r\n", "LEGACY_GARBAGE"),
        (HEADER + "{t},9,,,,,,\r\n", "LEGACY_ERROR"),
        (HEADER + ",9,,,,,,\r\n", "LEGACY_ERROR"),
    ],
)
def test_csv_answer_files(tmp_path: Path, answer: str, reason: str) -> None:
    (tmp_path / "inbox").mkdir()
    (tmp_path / "outbox").mkdir()

    async def scenario() -> None:
        client = CsvDropboxClient(tmp_path)
        ticket = await client.submit("K-0001", "医療保険給付関係情報", b"", timeout=5)
        (tmp_path / "outbox" / f"{ticket}.csv").write_bytes(
            answer.replace("{t}", ticket).encode("cp932")
        )
        await refused(client.collect(ticket, timeout=5), Unavailable, reason)
        assert not (tmp_path / "outbox" / f"{ticket}.csv").exists()  # collected once

    run(scenario)
