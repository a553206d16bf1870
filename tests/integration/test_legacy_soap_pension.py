"""The pension body's SOAP stub as a process, with the SOAP client (legacy-formats §2)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from support.legacy import StubProcess, closed_port, refused, run, start_stub

from comm_server.legacy import LegacyClient, SoapPensionClient
from renkei.errors import DeadlineExceeded, InvalidArgument, NotFound, RenkeiError, Unavailable

PENSION = "年金給付関係情報"
NK = "urn:renkei:stub:nenkin:v1"
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"

# Written from docs/legacy-formats.md by hand.
GET_BENEFIT = (
    b'<?xml version="1.0" encoding="utf-8"?>'
    b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"'
    b' xmlns:nk="urn:renkei:stub:nenkin:v1"><soap:Body>'
    b"<nk:GetBenefit><nk:KisoNenkinBango>1234-567890</nk:KisoNenkinBango></nk:GetBenefit>"
    b"</soap:Body></soap:Envelope>"
)
BENEFIT_XML = (
    "<nk:Benefit><nk:KisoNenkinBango>1234-567890</nk:KisoNenkinBango>"
    "<nk:NenkinShubetsu>01</nk:NenkinShubetsu><nk:NengakuYen>795000</nk:NengakuYen>"
    "<nk:ShikyuKaishiNengetsu>2023-06</nk:ShikyuKaishiNengetsu><nk:Teishi>false</nk:Teishi>"
    "</nk:Benefit>"
)
GOLDEN_RESPONSE = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"'
    ' xmlns:nk="urn:renkei:stub:nenkin:v1"><soap:Body>'
    f"<nk:GetBenefitResponse>{BENEFIT_XML}</nk:GetBenefitResponse>"
    "</soap:Body></soap:Envelope>"
).encode()
BENEFIT = BENEFIT_XML.replace(
    "<nk:Benefit>", '<nk:Benefit xmlns:nk="urn:renkei:stub:nenkin:v1">'
).encode()


@pytest.fixture(scope="module")
def stub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StubProcess]:
    process = start_stub("soap_pension", tmp_path_factory.mktemp("soap"), "--generated", "25")
    yield process
    process.stop()


def url(stub: StubProcess, path: str = "/soap") -> str:
    return f"http://127.0.0.1:{stub.port}{path}"


async def post(
    address: str, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(address, data=body, headers=headers) as response,
    ):
        return response.status, await response.read()


async def set_faults(stub: StubProcess, **faults: Any) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url(stub, "/_control/faults"), json=faults) as response,
    ):
        assert response.status == 200, await response.text()


@pytest.fixture(autouse=True)
def no_faults(stub: StubProcess) -> Iterator[None]:
    yield
    run(lambda: set_faults(stub, delay_ms=0, drop=False, garbage=False))


def test_golden_request_and_response(stub: StubProcess) -> None:
    headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"GetBenefit"'}
    assert run(lambda: post(url(stub), GET_BENEFIT, headers)) == (200, GOLDEN_RESPONSE)


@pytest.mark.parametrize(
    ("body", "action", "faultstring"),
    [
        (GET_BENEFIT.replace(b"1234-567890", b"0000-000000"), "GetBenefit", "NotFound"),
        (b"<not xml", "GetBenefit", "BadRequest: not XML"),
        (GET_BENEFIT, "ListPersons", "BadRequest: unknown operation"),
        (GET_BENEFIT.replace(b"1234-567890", b""), "GetBenefit", "BadRequest: KisoNenkinBango"),
    ],
)
def test_stub_faults_for_bad_requests(
    stub: StubProcess, body: bytes, action: str, faultstring: str
) -> None:
    status, answer = run(lambda: post(url(stub), body, {"SOAPAction": f'"{action}"'}))
    assert status == 500
    fault = ET.fromstring(answer).find(f"{{{SOAP}}}Body/{{{SOAP}}}Fault")
    assert fault is not None
    assert fault.findtext("faultcode") == "soap:Client"
    assert (fault.findtext("faultstring") or "").startswith(faultstring)


def test_control_refuses_bad_faults(stub: StubProcess) -> None:
    status, answer = run(lambda: post(url(stub, "/_control/faults"), b'{"delay_ms": -1}'))
    assert status == 400
    assert b"delay_ms" in answer
    status, answer = run(lambda: post(url(stub, "/_control/faults"), b'{"slow": true}'))
    assert (status, b"slow" in answer) == (400, True)


def test_lookups(stub: StubProcess) -> None:
    async def scenario() -> None:
        client = SoapPensionClient(url(stub))
        assert isinstance(client, LegacyClient)
        try:
            assert await client.lookup("1234-567890", PENSION, b"", timeout=5) == BENEFIT
            suspended = await client.lookup("3456-789012", PENSION, b"", timeout=5)
            assert b"<nk:Teishi>true</nk:Teishi>" in suspended
            # Known person without a benefit, unknown person, unknown kind.
            for person, kind in [("4567-890123", PENSION), ("0000-000000", PENSION)]:
                await refused(
                    client.lookup(person, kind, b"", timeout=5), NotFound, "RECORD_NOT_FOUND"
                )
            await refused(
                client.lookup("1234-567890", "地方税関係情報", b"", timeout=5),
                NotFound,
                "RECORD_NOT_FOUND",
            )
            # Escaped on the way out, not an injection.
            await refused(
                client.lookup("<x/>&", PENSION, b"", timeout=5), NotFound, "RECORD_NOT_FOUND"
            )
        finally:
            await client.aclose()

    run(scenario)


@pytest.mark.parametrize(
    ("person", "query", "key"),
    [
        ("1234-567890", b"fiscal_year=2026", "fiscal_year"),
        ("1234-567890", b"=x", None),
        ("", b"", None),
        ("1234\x00567890", b"", None),
    ],
)
def test_query_refusals(stub: StubProcess, person: str, query: bytes, key: str | None) -> None:
    async def scenario() -> None:
        client = SoapPensionClient(url(stub))
        error = await refused(
            client.lookup(person, PENSION, query, timeout=5),
            InvalidArgument,
            "LEGACY_QUERY_INVALID",
        )
        if key is not None:
            assert error.metadata["key"] == key
        await client.aclose()

    run(scenario)


def test_list_persons_pages_to_the_end(stub: StubProcess) -> None:
    async def scenario() -> list[bytes]:
        client = SoapPensionClient(url(stub))
        seen: list[bytes] = []
        after = None
        try:
            while page := await client.list_persons(after, 6, timeout=5):
                assert len(page) <= 6
                seen.extend(page)
                after = ET.fromstring(page[-1]).findtext(f"{{{NK}}}KisoNenkinBango")
        finally:
            await client.aclose()
        return seen

    seen = run(scenario)
    assert len(seen) == 29
    first = ET.fromstring(seen[0])
    assert first.tag == f"{{{NK}}}Person"
    assert first.findtext(f"{{{NK}}}Shimei") == "山田\u3000太郎"
    assert first.findtext(f"{{{NK}}}SeinenGappi") == "1958-05-14"
    assert seen[0].startswith(b'<nk:Person xmlns:nk="urn:renkei:stub:nenkin:v1">')


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
        client = SoapPensionClient(url(stub))
        try:
            assert await client.lookup("1234-567890", PENSION, b"", timeout=5) == BENEFIT
            await set_faults(stub, **faults)
            await refused(client.lookup("1234-567890", PENSION, b"", timeout=0.3), error, reason)
            await refused(client.list_persons(None, 5, timeout=0.3), error, reason)
            await set_faults(stub, delay_ms=0, drop=False, garbage=False)
            assert await client.lookup("1234-567890", PENSION, b"", timeout=5) == BENEFIT
        finally:
            await client.aclose()

    run(scenario)


def test_unreachable_and_closed() -> None:
    async def scenario() -> None:
        client = SoapPensionClient(f"http://127.0.0.1:{closed_port()}/soap")
        await refused(
            client.lookup("1234-567890", PENSION, b"", timeout=2), Unavailable, "LEGACY_UNAVAILABLE"
        )
        await client.aclose()
        await refused(
            client.lookup("1234-567890", PENSION, b"", timeout=2), Unavailable, "LEGACY_UNAVAILABLE"
        )

    run(scenario)
