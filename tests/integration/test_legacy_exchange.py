"""The whole path through each kind of legacy system: requester comm -> hub -> provider comm
-> real legacy stub process -> mapper -> StandardRecord, sealed, opened, re-encoded."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from support.aio import LoopThread
from support.four_systems import INSURER, MODERN, legacy_tables, start_four_stubs
from support.legacy import StubProcess
from support.polling import wait_for
from support.refusals import refused
from support.topology import Topology, query, start_topology

from comm_server.config import LegacyConfig
from comm_server.legacy import (
    BatchLegacyClient,
    LegacyClient,
    common,
    json_http_client,
    soap_client,
)
from comm_server.legacy.factory import open_legacy_client
from legacy_stubs.control import set_faults
from ops.deploy import Settings, registered
from renkei.comm.v1 import comm_pb2
from renkei.layout.v1 import layout_pb2

CITY, PENSION, MINISTER = "141003", "nenkin", "mhlw"
TAX, RESIDENT, PENSION_INFO, MEDICAL = (
    "地方税関係情報",
    "住民票関係情報",
    "年金給付関係情報",
    "医療保険給付関係情報",
)


class Corruptible:
    """A real legacy client whose raw answers a test may spoil (a legacy system's bad record)."""

    def __init__(self, inner: LegacyClient) -> None:
        self.inner = inner
        self.corrupt: Callable[[bytes], bytes] | None = None
        # Stands for the client receiving a hostile answer: its own parsing, on those bytes.
        self.receive: Callable[[], bytes] | None = None

    def _spoil(self, raw: bytes) -> bytes:
        if self.corrupt is None:
            return raw
        spoiled = self.corrupt(raw)
        assert spoiled != raw, raw
        return spoiled

    async def lookup(
        self, local_person_id: str, info_kind: str, query: bytes, *, timeout: float
    ) -> bytes:
        if self.receive is not None:
            return self.receive()
        return self._spoil(
            await self.inner.lookup(local_person_id, info_kind, query, timeout=timeout)
        )

    async def list_persons(self, after: str | None, limit: int, *, timeout: float) -> list[bytes]:
        return await self.inner.list_persons(after, limit, timeout=timeout)

    async def aclose(self) -> None:
        await self.inner.aclose()


class CorruptibleBatch(Corruptible):
    async def submit(
        self, local_person_id: str, info_kind: str, query: bytes, *, timeout: float
    ) -> str:
        assert isinstance(self.inner, BatchLegacyClient)
        return await self.inner.submit(local_person_id, info_kind, query, timeout=timeout)

    async def collect(self, ticket: str, *, timeout: float) -> bytes | None:
        assert isinstance(self.inner, BatchLegacyClient)
        raw = await self.inner.collect(ticket, timeout=timeout)
        return None if raw is None else self._spoil(raw)


class World:
    def __init__(
        self,
        topo: Topology,
        stubs: dict[str, StubProcess],
        tables: dict[str, Any],
        clients: dict[str, Corruptible],
    ) -> None:
        self.topo, self.stubs, self.tables, self.clients = topo, stubs, tables, clients


@pytest.fixture(scope="module")
def world(loop: LoopThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("four-systems")
    stubs = start_four_stubs(tmp)
    tables = legacy_tables(stubs)
    clients: dict[str, Corruptible] = {}
    try:
        for agency, table in tables.items():
            config = LegacyConfig.from_table(table, tmp / "comm.toml")
            inner = open_legacy_client(config)
            clients[agency] = (
                CorruptibleBatch if isinstance(inner, BatchLegacyClient) else Corruptible
            )(inner)
        settings = Settings(answer_timeout_seconds=1.0, query_timeout_seconds=5.0)
        topo = loop.run(
            start_topology(
                tmp / "topology",
                settings,
                legacy=clients,  # type: ignore[arg-type]  # structural LegacyClient
                extra=registered(INSURER, MODERN),
                legacy_tables=tables,
            ),
            timeout=60,
        )
        try:
            yield World(topo, stubs, tables, clients)
        finally:
            loop.run(topo.stop())
    finally:
        for stub in stubs.values():
            stub.stop()


def ask(
    world: World,
    loop: LoopThread,
    requester: str,
    provider: str,
    kind: str,
    item: str,
    q: bytes = b"",
    person: int = 0,
) -> comm_pb2.QueryResponse:
    request = query(requester, world.topo.people[person], provider, kind, item, query=q)

    async def go() -> comm_pb2.QueryResponse:
        async with world.topo.channel(requester, requester) as ch:
            response: comm_pb2.QueryResponse = await world.topo.requester_stub(ch).Query(
                request, timeout=10
            )
            return response

    return loop.run(go())


def refusal(
    world: World,
    loop: LoopThread,
    requester: str,
    provider: str,
    kind: str,
    item: str,
    q: bytes = b"",
) -> Any:
    request = query(requester, world.topo.people[0], provider, kind, item, query=q)

    async def go() -> Any:
        async with world.topo.channel(requester, requester) as ch:
            return await refused(world.topo.requester_stub(ch).Query(request, timeout=10))

    return loop.run(go())


# -- one answer from each kind of legacy system --------------------------------------------


def test_fixed_width_tax_answer_reaches_the_modern_city_as_its_own_json(
    world: World, loop: LoopThread
) -> None:
    response = ask(world, loop, MODERN, CITY, TAX, "十一", b"fiscal_year=2026")
    tax = response.record.local_tax
    assert (tax.fiscal_year, tax.total_income, tax.income_levy, tax.per_capita_levy) == (
        2026,
        3_850_000,
        231_000,
        6_200,
    )
    assert (tax.tax_exempt, tax.dependents) == (False, 1)
    assert response.record.layout_version == "1.0"
    # The requester's own number, never the provider's 宛名番号.
    assert response.record.local_person_id == "S-0001"
    assert json.loads(response.answer) == {
        "fiscalYear": 2026,
        "totalIncome": 3_850_000,
        "incomeLevy": 231_000,
        "perCapitaLevy": 6_200,
        "taxExempt": False,
        "dependents": 1,
    }
    provided = world.topo.store(CITY).log_rows()[-1]
    assert (provided.role, provided.outcome, provided.serial) == ("provider", "OK", response.serial)
    assert json.loads(provided.content)["local_tax"]["total_income"] == "3850000"
    assert "A0001001" not in provided.content


def test_soap_pension_answer_in_the_standard_layout(world: World, loop: LoopThread) -> None:
    response = ask(world, loop, CITY, PENSION, PENSION_INFO, "二十七")
    pension = response.record.pension_benefit
    assert pension.pension_kind == layout_pb2.PENSION_KIND_OLD_AGE_BASIC
    assert (pension.annual_amount_yen, pension.first_payment_month, pension.suspended) == (
        795_000,
        "2023-06",
        False,
    )
    assert response.record.local_person_id == "A0001001"
    assert response.answer == b""  # the city's fixed-width format carries no pension record
    mine = world.topo.store(CITY).log_rows()[-1]
    assert (mine.role, mine.outcome) == ("requester", "OK")
    assert (
        json.loads(mine.content)["pension_benefit"]["pension_kind"] == "PENSION_KIND_OLD_AGE_BASIC"
    )


def test_csv_insurer_answer_in_the_standard_layout(world: World, loop: LoopThread) -> None:
    response = ask(world, loop, MODERN, INSURER, MEDICAL, "二十六", b"treatment_month=202604")
    assert response.state == comm_pb2.ANSWER_STATE_ANSWERED
    medical = response.record.medical_insurance_benefit
    assert (medical.insurer_number, medical.benefit_kind) == (
        "01140016",
        layout_pb2.BENEFIT_KIND_HIGH_COST_MEDICAL,
    )
    assert (medical.copayment_percent, medical.benefit_amount_yen) == (30, 80_100)
    assert medical.service_month.replace("-", "") == "202604"
    assert response.answer == b""


def test_json_resident_record_reaches_the_insurer(world: World, loop: LoopThread) -> None:
    response = ask(world, loop, INSURER, MODERN, RESIDENT, "二")
    resident = response.record.resident_record
    assert resident.name.replace("\u3000", " ") == "山田 太郎"
    assert (resident.birth_date, resident.sex, resident.municipality_code) == (
        "1958-05-14",
        layout_pb2.SEX_MALE,
        "141046",  # the stubs named people all live in 横浜市中区
    )
    assert response.record.local_person_id == "K-0001"


def test_a_requester_without_a_mapper_gets_the_record_and_no_answer_bytes(
    world: World, loop: LoopThread
) -> None:
    response = ask(world, loop, MINISTER, MODERN, TAX, "一", b"fiscal_year=2026")
    assert response.record.local_tax.total_income == 3_850_000
    assert response.answer == b""


# -- bad records and garbage stay with the provider ----------------------------------------

SPOIL = {
    CITY: (
        MODERN,
        TAX,
        "十一",
        b"fiscal_year=2026",
        lambda raw: raw[:25] + b"X" + raw[26:],
        "所得割額",
    ),
    PENSION: (
        CITY,
        PENSION_INFO,
        "二十七",
        b"",
        lambda raw: raw.replace(b"NenkinShubetsu>01<", b"NenkinShubetsu>77<"),
        "NenkinShubetsu",
    ),
    INSURER: (
        MODERN,
        MEDICAL,
        "二十六",
        b"treatment_month=202604",
        lambda raw: raw.replace(b",02,", b",99,"),
        "給付種別",
    ),
    MODERN: (
        INSURER,
        RESIDENT,
        "二",
        b"",
        lambda raw: raw.replace(b'"sex":"male"', b'"sex":"other"'),
        "sex",
    ),
}


@pytest.mark.parametrize("provider", list(SPOIL))
def test_a_bad_legacy_record_is_logged_by_its_provider_and_never_reaches_the_requester(
    world: World, loop: LoopThread, provider: str
) -> None:
    requester, kind, item, q, spoil, field = SPOIL[provider]
    world.clients[provider].corrupt = spoil
    try:
        refused_ = refusal(world, loop, requester, provider, kind, item, q)
    finally:
        world.clients[provider].corrupt = None
    assert (refused_.code, refused_.reason) == (
        grpc.StatusCode.UNAVAILABLE,
        "LEGACY_RECORD_INVALID",
    )
    assert field not in refused_.message
    assert "raw" not in refused_.message
    assert set(refused_.metadata) <= {"info_kind", "serial", "provider_agency_id"}
    logged = world.topo.store(provider).log_rows()[-1]
    assert (logged.role, logged.outcome, logged.reason) == (
        "provider",
        "UNAVAILABLE",
        "LEGACY_RECORD_INVALID",
    )
    assert field in (logged.detail or "")
    assert "raw" in (logged.detail or "")
    mine = world.topo.store(requester).log_rows()[-1]
    assert (mine.reason, mine.content) == ("LEGACY_RECORD_INVALID", "")
    # The provider's server is still up and answers the next query.
    assert ask(world, loop, requester, provider, kind, item, q).record.WhichOneof("info")


@pytest.mark.parametrize("provider", list(SPOIL))
def test_legacy_garbage_is_a_clear_error_and_the_server_keeps_serving(
    world: World, loop: LoopThread, provider: str
) -> None:
    requester, kind, item, q, _, _ = SPOIL[provider]
    set_faults(world.tables[provider], garbage=True)
    try:
        refused_ = refusal(world, loop, requester, provider, kind, item, q)
    finally:
        set_faults(world.tables[provider])
    assert (refused_.code, refused_.reason) == (grpc.StatusCode.UNAVAILABLE, "LEGACY_GARBAGE")
    assert ask(world, loop, requester, provider, kind, item, q).record.WhichOneof("info")


LAUGHS = (
    '<?xml version="1.0" encoding="utf-16"?><!DOCTYPE a [<!ENTITY a "aaaaaaaaaa">'
    + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(7))
    + "]><a>&h;&h;</a>"
).encode("utf-16")
HOSTILE = {
    # What once escaped the clients as plain exceptions: INTERNAL at the hub, no log row.
    "soap-laughs-utf16": (PENSION, lambda: common.read_answer(soap_client._benefit, LAUGHS, 200)),
    "soap-odd-encoding": (
        PENSION,
        lambda: common.read_answer(soap_client._benefit, b'<?xml version="" encoding="o"?>', 200),
    ),
    "soap-deep": (
        PENSION,
        lambda: common.read_answer(soap_client._benefit, b"<a>" * 1000 + b"</a>" * 1000, 200),
    ),
    "json-deep": (
        MODERN,
        lambda: common.read_answer(json_http_client._record, b"[" * 1000, 200, "resident-record"),
    ),
    "json-lone-surrogate": (
        MODERN,
        lambda: common.read_answer(
            json_http_client._record,
            b'{"kind": "resident-record", "record": {"name": "\\ud800"}}',
            200,
            "resident-record",
        ),
    ),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_legacy_answer_is_logged_garbage_not_an_internal_error(
    world: World, loop: LoopThread, case: str
) -> None:
    provider, receive = HOSTILE[case]
    requester, kind, item, q, _, _ = SPOIL[provider]
    world.clients[provider].receive = receive
    try:
        refused_ = refusal(world, loop, requester, provider, kind, item, q)
    finally:
        world.clients[provider].receive = None
    assert (refused_.code, refused_.reason) == (grpc.StatusCode.UNAVAILABLE, "LEGACY_GARBAGE")
    assert "Traceback" not in refused_.message
    logged = world.topo.store(provider).log_rows()[-1]
    assert (logged.role, logged.outcome, logged.reason) == (
        "provider",
        "UNAVAILABLE",
        "LEGACY_GARBAGE",
    )
    assert str(logged.serial) == refused_.metadata["serial"]
    assert ask(world, loop, requester, provider, kind, item, q).record.WhichOneof("info")


# -- the insurer's answer later, with the real drop folder ---------------------------------


def test_csv_insurer_answers_later_by_ticket(world: World, loop: LoopThread) -> None:
    set_faults(world.tables[INSURER], delay_ms=1500)  # past the 1 s answer time
    try:
        pending = ask(world, loop, MODERN, INSURER, MEDICAL, "二十六", b"treatment_month=202603")
    finally:
        set_faults(world.tables[INSURER])
    assert (pending.state, pending.answer, pending.HasField("record")) == (
        comm_pb2.ANSWER_STATE_PENDING,
        b"",
        False,
    )
    assert pending.ticket

    async def fetch() -> comm_pb2.FetchAnswerResponse:
        async with world.topo.channel(MODERN, MODERN) as ch:
            answer: comm_pb2.FetchAnswerResponse = await world.topo.requester_stub(ch).FetchAnswer(
                comm_pb2.FetchAnswerRequest(
                    ticket=pending.ticket, staff_id="S-1", terminal_id="T-1"
                ),
                timeout=10,
            )
            return answer

    def fetched_or_none() -> comm_pb2.FetchAnswerResponse | None:
        try:
            return loop.run(fetch())
        except grpc.aio.AioRpcError as err:
            if err.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            return None  # the answer file is not there yet

    fetched = wait_for(
        fetched_or_none, timeout=15, every=0.2, what="the insurer's answer to be fetchable"
    )
    assert fetched.serial == pending.serial
    medical = fetched.record.medical_insurance_benefit
    assert (medical.benefit_kind, medical.benefit_amount_yen) == (
        layout_pb2.BENEFIT_KIND_MEDICAL_CARE,
        12_450,
    )
    assert fetched.record.local_person_id == "S-0001"
    halves = [r for r in world.topo.store(INSURER).log_rows() if r.serial == pending.serial]
    # Both halves; between them, fetches that came before the answer file (not ready).
    assert (halves[0].outcome, halves[-1].outcome) == ("ANSWER_PENDING", "OK")
    assert {r.reason for r in halves[1:-1]} <= {"ANSWER_NOT_READY"}
    assert (
        json.loads(halves[-1].content)["medical_insurance_benefit"]["benefit_amount_yen"] == "12450"
    )


# -- bulk queries answer through the same mappers ------------------------------------------


def test_bulk_query_through_a_mapper_answers_standard_records_and_isolates_a_bad_one(
    world: World, loop: LoopThread
) -> None:
    people = world.topo.people[:2]
    request = comm_pb2.BulkQueryRequest(
        provider_agency_id=CITY,
        info_kind=TAX,
        legal_basis_item="十一",
        purpose="bulk check",
        staff_id="S-1",
        terminal_id="T-1",
        items=[
            comm_pb2.BulkQueryItem(local_person_id=p.local_ids[MODERN], query=b"fiscal_year=2026")
            for p in people
        ],
    )

    async def go() -> comm_pb2.BulkQueryResponse:
        async with world.topo.channel(MODERN, MODERN) as ch:
            response: comm_pb2.BulkQueryResponse = await world.topo.requester_stub(ch).BulkQuery(
                request, timeout=10
            )
            return response

    good = loop.run(go())
    assert [r.HasField("error") for r in good.results] == [False, False]
    first = good.results[0]
    assert first.record.local_tax.total_income == 3_850_000
    assert first.record.local_person_id == people[0].local_ids[MODERN]
    assert json.loads(first.answer)["totalIncome"] == 3_850_000  # the modern city's own JSON

    # A bad record from the city's legacy system stays with the city.
    world.clients[CITY].corrupt = lambda raw: raw[:14] + b"+ABCDEFGHIJ" + raw[25:]
    try:
        bad = loop.run(go())
    finally:
        world.clients[CITY].corrupt = None
    assert [r.error.reason for r in bad.results] == ["LEGACY_RECORD_INVALID"] * 2
    assert all(not r.answer and not r.HasField("record") for r in bad.results)
    assert "ABCDEFGHIJ" not in str(bad)
    rows = [r for r in world.topo.store(CITY).log_rows() if r.serial == bad.results[0].serial]
    (provided,) = [r for r in rows if r.role == "provider"]
    assert provided.reason == "LEGACY_RECORD_INVALID"
    assert "ABCDEFGHIJ" in provided.detail  # the provider's own log keeps the bytes
