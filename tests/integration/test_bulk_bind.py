"""Binding by the four facts (R13-R15): registry side, ID issuer, hub, correspondence table."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import grpc
import pytest
from support.aio import LoopThread
from support.refusals import refused
from support.topology import CITY, PENSION, Topology, start_topology

from comm_server.binding.bulk_bind import BindReport, LocalRecord, bulk_bind
from comm_server.hub_client import HubClient
from id_issuer.issuer import IdIssuer
from legacy_stubs.registry.resident_code import new_resident_code
from legacy_stubs.registry.source import JukiMockSource
from legacy_stubs.registry.store import RegistryStore
from ops.deploy import registry_engine
from registry_binding.binding import RegistryBinding
from registry_binding.bootstrap import RegistryBindingServer, create_server
from registry_binding.config import RegistryBindingConfig
from registry_binding.matching import Matcher
from registry_binding.records import AgencyRecord
from renkei.comm.v1 import comm_pb2, comm_pb2_grpc
from renkei.errors import RenkeiError, from_rpc_error
from renkei.fourfacts.eras import era_of
from renkei.fourfacts.normalize import FourFacts
from renkei.grpcutil.client import channel
from renkei.pki import TlsFiles
from renkei.registry.v1 import registry_pb2, registry_pb2_grpc
from renkei.residents import Resident

_FULL_WIDTH = str.maketrans("0123456789-", "０１２３４５６７８９－")


@dataclass
class Setup:
    topo: Topology
    registry: RegistryBindingServer
    fresh: list[Resident]
    """Five residents in the register that no agency has bound yet."""


@pytest.fixture
def setup(loop: LoopThread, tmp_path: Path) -> Iterator[Setup]:
    topo = loop.run(start_topology(tmp_path), timeout=120)
    # The deployment writes [registry] database_url; the rest is this test's to give.
    config = replace(
        RegistryBindingConfig.load(topo.layout.registry_config),
        id_issuer_endpoint=f"127.0.0.1:{topo.id_issuer.port}",
        listen="127.0.0.1:0",
        tls=topo.layout.pki.service("registry"),
    )
    registry = loop.run(create_server(config))
    demo = {p.resident_code for p in topo.people}
    stored = RegistryStore(registry_engine(topo.layout)).sample(1000)
    fresh = [r for r in stored if r.resident_code not in demo and r.status == "alive"][:5]
    assert len(fresh) == 5
    yield Setup(topo, registry, fresh)
    loop.run(registry.stop(0))
    loop.run(topo.stop())


def _era(value: date, i: int) -> str:
    era, year = era_of(value)
    if i % 2:
        return f"{era.letter}{year}.{value.month}.{value.day}".translate(_FULL_WIDTH)
    shown = "元" if year == 1 else str(year)
    return f"{era.name}{shown}年{value.month}月{value.day}日"


def _legacy(r: Resident, i: int) -> LocalRecord:
    """The resident as an old agency file writes them: era dates, widths, "1-2-3"."""
    a = r.address
    numbers = f"{a.chome}-{a.banchi}-{a.go}"
    return LocalRecord(
        local_person_id=f"BULK-{i:04d}",
        name=r.name.kanji.replace(" ", "　"),
        kana=r.name.kana,
        address=f"{a.prefecture}{a.municipality.replace(' ', '')}{a.town}"
        + (numbers.translate(_FULL_WIDTH) if i % 2 else numbers),
        birth_date=_era(r.birth_date, i),
        sex="男" if r.sex == "1" else "女",
    )


def _records(s: Setup) -> list[LocalRecord]:
    wrong = _legacy(s.fresh[0], 90)
    wrong_birth = s.fresh[0].birth_date - timedelta(days=1)
    bad = _legacy(s.fresh[1], 91)
    return [
        *(_legacy(r, i) for i, r in enumerate(s.fresh)),
        replace(wrong, birth_date=wrong_birth.isoformat()),
        replace(bad, birth_date="2023-02-30"),
    ]


def _stub(
    s: Setup, tls: TlsFiles
) -> tuple[grpc.aio.Channel, registry_pb2_grpc.BindingServiceAsyncStub]:
    ch = channel(f"127.0.0.1:{s.registry.port}", tls, peer="service:registry")
    return ch, registry_pb2_grpc.BindingServiceStub(ch)  # type: ignore[return-value]


def _bulk(loop: LoopThread, s: Setup, records: list[LocalRecord]) -> BindReport:
    comm = s.topo.comms[CITY]

    async def go() -> BindReport:
        ch, stub = _stub(s, s.topo.layout.pki.agency(CITY))
        async with ch:
            return await bulk_bind(comm.store, comm.hub, stub, records, batch=3)

    return loop.run(go(), timeout=60)


def test_bulk_bind_binds_unique_matches_once_and_reviews_the_rest(
    loop: LoopThread, setup: Setup
) -> None:
    s = setup
    records = _records(s)
    city = s.topo.store(CITY)
    assert all(city.link_code_for(r.local_person_id) is None for r in records)

    seen: list[int] = []
    comm = s.topo.comms[CITY]

    async def first() -> BindReport:
        ch, stub = _stub(s, s.topo.layout.pki.agency(CITY))
        async with ch:
            return await bulk_bind(
                comm.store,
                comm.hub,
                stub,
                records,
                batch=3,
                progress=lambda r: seen.append(r.bound),
            )

    report = loop.run(first(), timeout=60)
    assert (report.bound, report.already_bound) == (5, 0), report.review
    assert (report.none, report.invalid, report.ambiguous, report.failed) == (1, 1, 0, 0)
    assert seen == sorted(seen)
    assert len(seen) == 3  # 7 records in batches of 3
    assert report.samples["bound"] == [f"BULK-{i:04d}" for i in range(5)]
    review = {item.local_person_id: item for item in report.review}
    assert review["BULK-0090"].status == "none"
    assert review["BULK-0090"].reason == "no resident with this name and birth date"
    assert review["BULK-0091"].status == "invalid"
    assert review["BULK-0091"].reason.startswith("invalid record: birth_date:")

    # Each record is bound to the right person: the link code the hub gives the city
    # for that resident's own ID code (made here by the ID issuer's key, for the test).
    issuer = IdIssuer.load(s.topo.layout.id_issuer_config)

    async def expected(resident_code: str) -> str:
        link, _, _ = await comm.hub.issue_link_code(
            issuer.sealed_id_code(resident_code, CITY), timeout=5
        )
        return link

    for i, resident in enumerate(s.fresh):
        bound = city.link_code_for(f"BULK-{i:04d}")
        assert bound is not None
        assert bound == loop.run(expected(resident.resident_code))
    assert city.link_code_for("BULK-0090") is None
    assert city.link_code_for("BULK-0091") is None

    # A rerun (after a crash, say) binds nobody twice.
    again = _bulk(loop, s, records)
    assert (again.bound, again.already_bound, again.none, again.invalid) == (0, 5, 1, 1)
    assert again.samples["already_bound"] == [f"BULK-{i:04d}" for i in range(5)]


def test_answer_holds_no_resident_code_and_no_facts(loop: LoopThread, setup: Setup) -> None:
    s = setup
    records = _records(s)

    async def ask() -> registry_pb2.MatchRecordsResponse:
        ch, stub = _stub(s, s.topo.layout.pki.agency(CITY))
        async with ch:
            return await stub.MatchRecords(
                registry_pb2.MatchRecordsRequest(
                    records=[
                        registry_pb2.Record(
                            local_person_id=r.local_person_id,
                            name=r.name,
                            kana=r.kana,
                            address=r.address,
                            birth_date=r.birth_date,
                            sex=r.sex,
                        )
                        for r in records
                    ]
                ),
                timeout=30,
            )

    response = loop.run(ask())
    statuses = [o.status for o in response.outcomes]
    assert statuses == [registry_pb2.MATCH_STATUS_UNIQUE] * 5 + [
        registry_pb2.MATCH_STATUS_NONE,
        registry_pb2.MATCH_STATUS_INVALID,
    ]
    assert all(o.sealed_id_code for o in response.outcomes[:5])
    assert not any(o.sealed_id_code for o in response.outcomes[5:])
    raw = response.SerializeToString()
    for r in s.fresh:
        forbidden = [
            r.resident_code,
            r.name.family_kanji,
            r.name.given_kanji,
            r.name.family_kana,
            r.name.given_kana,
            r.address.town,
            r.birth_date.isoformat(),
        ]
        for value in forbidden:
            assert value.encode() not in raw, value


def test_agency_comes_from_the_certificate(loop: LoopThread, setup: Setup) -> None:
    s = setup
    records = _records(s)[:5]
    request = registry_pb2.MatchRecordsRequest(
        records=[
            registry_pb2.Record(
                local_person_id=r.local_person_id,
                name=r.name,
                kana=r.kana,
                address=r.address,
                birth_date=r.birth_date,
                sex=r.sex,
            )
            for r in records
        ]
    )

    async def go() -> None:
        ch, stub = _stub(s, s.topo.layout.pki.agency(PENSION))
        async with ch:
            response = await stub.MatchRecords(request, timeout=30)
        sealed = [bytes(o.sealed_id_code) for o in response.outcomes]
        assert all(sealed)
        # Sealed for the pension service: the hub opens them for it ...
        pension_hub = HubClient(f"127.0.0.1:{s.topo.hub.port}", s.topo.tls(PENSION))
        try:
            link, _, _ = await pension_hub.issue_link_code(sealed[0], timeout=5)
            assert link
        finally:
            await pension_hub.close()
        # ... and not for the city, which could not bind with them.
        with pytest.raises(RenkeiError):
            await s.topo.comms[CITY].hub.issue_link_code(sealed[0], timeout=5)

        # The hub's certificate is not an agency's.
        ch, stub = _stub(s, s.topo.layout.pki.hub())
        async with ch:
            refusal = await refused(stub.MatchRecords(request, timeout=30))
        assert refusal.code == grpc.StatusCode.PERMISSION_DENIED
        assert refusal.reason == "CALLER_NOT_AGENCY"
        # Nor is another service's (the ID issuer's).
        ch, stub = _stub(s, s.topo.layout.pki.service("id-issuer"))
        async with ch:
            refusal = await refused(stub.MatchRecords(request, timeout=30))
        assert refusal.code == grpc.StatusCode.PERMISSION_DENIED
        assert refusal.reason == "CALLER_NOT_AGENCY"

    loop.run(go(), timeout=60)
    assert all(s.topo.store(PENSION).link_code_for(r.local_person_id) is None for r in records)


class CountingSealer:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []

    async def seal(self, agency_id: str, resident_codes: list[str]) -> list[tuple[bytes, str]]:
        self.calls.append((agency_id, list(resident_codes)))
        return [(b"sealed:" + c.encode(), "") for c in resident_codes]


def test_one_seal_call_per_batch_and_only_for_unique(loop: LoopThread, setup: Setup) -> None:
    s = setup
    sealer = CountingSealer()
    binding = RegistryBinding(Matcher(JukiMockSource(_registry(s))), sealer)
    records = [
        AgencyRecord(
            r.local_person_id,
            FourFacts(
                name=r.name, kana=r.kana, address=r.address, birth_date=r.birth_date, sex=r.sex
            ),
        )
        for r in _records(s)
    ]
    outcomes = loop.run(binding.match_records(CITY, records))
    assert sealer.calls == [(CITY, [r.resident_code for r in s.fresh])]
    assert [o.status for o in outcomes] == ["unique"] * 5 + ["none", "invalid"]
    assert outcomes[6].reason.startswith("invalid record: birth_date:")
    assert [o.sealed_id_code for o in outcomes[5:]] == [b"", b""]

    empty = CountingSealer()
    nobody = RegistryBinding(Matcher(JukiMockSource(_registry(s))), empty)
    loop.run(nobody.match_records(CITY, records[5:]))
    assert empty.calls == []


def test_renkei_bind_binds_from_a_json_lines_file_and_reports(
    setup: Setup, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import dataclasses
    import json

    from ops.cli import main

    topo = setup.topo
    comm_toml = topo.layout.comm_config(CITY)
    # The deployment's ports were 0 in this in-process topology: point at the live servers.
    text = comm_toml.read_text("utf-8")
    live = tmp_path / "comm.toml"
    live.write_text(
        text.replace('hub_endpoint = "127.0.0.1:0"', f'hub_endpoint = "127.0.0.1:{topo.hub.port}"')
        .replace(
            'registry_endpoint = "127.0.0.1:0"',
            f'registry_endpoint = "127.0.0.1:{setup.registry.port}"',
        )
        .replace('"../../', f'"{comm_toml.parent}/../../')
        .replace('"tls/', f'"{comm_toml.parent}/tls/')
        .replace("{config_dir}", str(comm_toml.parent)),
        "utf-8",
    )
    live.with_name("master.key").write_bytes(comm_toml.with_name("master.key").read_bytes())
    records = tmp_path / "records.jsonl"
    lines = "".join(
        json.dumps(dataclasses.asdict(r), ensure_ascii=False) + "\n" for r in _records(setup)
    )
    # A line with a byte that is not UTF-8 (0xFF after 山): only its record is refused.
    undecodable = (
        '{"local_person_id": "BYTES", "name": "山\udcff", "address": "横浜市中区港町1-2-3",'
        ' "birth_date": "2000-01-01", "sex": "1"}\n'
    ).encode("utf-8", "surrogateescape")
    records.write_bytes(lines.encode("utf-8") + undecodable)
    report_file = tmp_path / "report.json"
    args = ["bind", "--config", str(live), "--input", str(records), "--report", str(report_file)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "bound 5, already bound 0, ambiguous 0, unmatched 1, invalid 2, failed 0" in out
    report = json.loads(report_file.read_text("utf-8"))
    assert report["bound"] == 5
    assert {item["status"] for item in report["review"]} == {"none", "invalid"}
    assert {
        "local_person_id": "BYTES",
        "status": "invalid",
        "reason": "invalid record: name: is not UTF-8 text (undecodable byte at byte offset 3)",
    } in report["review"]
    # The records are bound in the city's own store: the running server finds them.
    assert all(topo.store(CITY).link_code_for(f"BULK-{i:04d}") for i in range(5))
    assert main(args) == 0
    assert "bound 0, already bound 5" in capsys.readouterr().out


# -- twins, decoys, a mover, bad records, a crash ---------------------------------------------


def _registry(s: Setup) -> RegistryStore:
    return RegistryStore(registry_engine(s.topo.layout))


def test_twins_go_to_review_decoys_never_bind_and_a_mover_binds_by_history(
    loop: LoopThread, setup: Setup
) -> None:
    s = setup
    registry = _registry(s)
    twin_of, mover, woman, neighbour, plain = s.fresh
    taken = {r.resident_code for r in registry.sample(1000)}
    twin = replace(twin_of, resident_code=new_resident_code(random.Random(5), taken))
    registry.record_birth(twin)  # the same four facts (and reading) as twin_of
    moved_to = replace(mover.address, banchi=mover.address.banchi % 30 + 1)
    registry.move(mover.resident_code, moved_to, date(2026, 2, 1))
    other_sex = "女" if woman.sex == "1" else "男"
    next_door = replace(neighbour, address=replace(neighbour.address, go=31 + neighbour.address.go))
    records = [
        replace(_legacy(twin_of, 0), local_person_id="TWIN"),
        replace(_legacy(mover, 1), local_person_id="MOVER"),  # still the previous address
        replace(_legacy(woman, 2), local_person_id="DECOY-SEX", sex=other_sex),
        replace(_legacy(next_door, 3), local_person_id="DECOY-ADDRESS"),
        replace(_legacy(woman, 4), local_person_id="WOMAN"),
        replace(_legacy(neighbour, 5), local_person_id="NEIGHBOUR"),
        replace(_legacy(plain, 6), local_person_id="PLAIN"),
    ]
    report = _bulk(loop, s, records)
    assert (report.bound, report.ambiguous, report.none, report.invalid) == (4, 1, 2, 0)
    review = {item.local_person_id: (item.status, item.reason) for item in report.review}
    assert review == {
        "TWIN": (
            "ambiguous",
            "2 residents match name, birth date, sex and address; kana does not tell them apart",
        ),
        "DECOY-SEX": ("none", "sex differs"),
        "DECOY-ADDRESS": ("none", "address differs"),
    }
    city = s.topo.store(CITY)
    assert city.link_code_for("TWIN") is None
    assert city.link_code_for("DECOY-SEX") is None
    assert city.link_code_for("DECOY-ADDRESS") is None
    issuer = IdIssuer.load(s.topo.layout.id_issuer_config)
    comm = s.topo.comms[CITY]

    async def expected(resident_code: str) -> str:
        link, _, _ = await comm.hub.issue_link_code(
            issuer.sealed_id_code(resident_code, CITY), timeout=5
        )
        return link

    for local, resident in (("MOVER", mover), ("WOMAN", woman), ("NEIGHBOUR", neighbour)):
        assert city.link_code_for(local) == loop.run(expected(resident.resident_code)), local


def test_bad_records_go_to_review_naming_the_field_and_the_job_goes_on(
    loop: LoopThread, setup: Setup
) -> None:
    s = setup
    good = [replace(_legacy(r, i), local_person_id=f"GOOD-{i}") for i, r in enumerate(s.fresh)]
    base = _legacy(s.fresh[0], 0)
    bad = {
        "NO-NAME": replace(base, local_person_id="NO-NAME", name=""),
        "NO-BIRTH": replace(base, local_person_id="NO-BIRTH", birth_date=""),
        "ERA": replace(base, local_person_id="ERA", birth_date="平成31年5月1日"),
        "LONG": replace(base, local_person_id="LONG", address="港町" * 200),
        "BYTES": replace(base, local_person_id="BYTES", name="山田\udcff太郎"),
        "FFFD": replace(base, local_person_id="FFFD", name="山\ufffd太郎"),
        "SJIS": replace(
            base, local_person_id="SJIS", name="山田太郎".encode("shift_jis").decode("latin-1")
        ),
        "X" * 65: replace(base, local_person_id="X" * 65),
    }
    records = [good[0], *list(bad.values())[:4], good[1], *list(bad.values())[4:], *good[2:]]
    report = _bulk(loop, s, records)
    assert (report.bound, report.invalid, report.failed) == (5, len(bad), 0)
    review = {item.local_person_id: (item.status, item.reason) for item in report.review}
    assert all(status == "invalid" for status, _ in review.values())
    reasons = {k: reason for k, (_, reason) in review.items()}
    assert reasons["NO-NAME"] == "invalid record: name: is empty"
    assert reasons["NO-BIRTH"] == "invalid record: birth_date: is empty"
    assert reasons["ERA"] == (
        "invalid record: birth_date: 平成31年5月1日 does not exist:"
        " 平成 ran from 1989-01-08 to 2019-04-30"
    )
    assert reasons["LONG"] == "invalid record: address: is 400 characters; at most 256"
    assert reasons["BYTES"] == (
        "invalid record: name: is not UTF-8 text (undecodable byte at byte offset 6)"
    )
    assert reasons["FFFD"] == "invalid record: name: has U+FFFD at character 1 (undecodable bytes)"
    assert reasons["SJIS"] == "invalid record: name: contains control characters"
    assert reasons["X" * 65] == "invalid record: local_person_id: is 65 characters; at most 64"
    city = s.topo.store(CITY)
    assert all(city.link_code_for(k) is None for k in bad if len(k) <= 64)


def test_a_crash_mid_run_resumes_without_binding_anyone_twice(
    loop: LoopThread, setup: Setup
) -> None:
    s = setup
    records = [replace(_legacy(r, i), local_person_id=f"RUN-{i}") for i, r in enumerate(s.fresh)]
    comm = s.topo.comms[CITY]

    def crash_after_first_batch(report: BindReport) -> None:
        raise RuntimeError("the machine went down")

    async def crashing() -> BindReport:
        ch, stub = _stub(s, s.topo.layout.pki.agency(CITY))
        async with ch:
            return await bulk_bind(
                comm.store, comm.hub, stub, records, batch=2, progress=crash_after_first_batch
            )

    with pytest.raises(RuntimeError, match="went down"):
        loop.run(crashing(), timeout=60)
    city = s.topo.store(CITY)
    first = {r.local_person_id: city.link_code_for(r.local_person_id) for r in records[:2]}
    assert all(first.values())
    assert all(city.link_code_for(r.local_person_id) is None for r in records[2:])

    report = _bulk(loop, s, records)
    assert (report.bound, report.already_bound, report.failed) == (3, 2, 0)
    assert report.samples["already_bound"] == ["RUN-0", "RUN-1"]
    assert {k: city.link_code_for(k) for k in first} == first  # the same codes, kept
    codes = [city.link_code_for(r.local_person_id) for r in records]
    assert len(set(codes)) == 5


def test_a_crash_inside_a_batchs_transaction_binds_none_of_it_and_a_rerun_binds_it_once(
    loop: LoopThread, setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    from comm_server.binding.person_facts import PersonFactsStore

    s = setup
    records = [replace(_legacy(r, i), local_person_id=f"MID-{i}") for i, r in enumerate(s.fresh)]
    comm = s.topo.comms[CITY]
    real = PersonFactsStore.remember_handles
    calls: list[int] = []

    def crash_in_second_batch(conn: Any, pairs: list[tuple[str, str]]) -> Any:
        calls.append(len(pairs))
        if len(calls) == 2:  # the bindings of batch 2 are written, its handles are not
            raise RuntimeError("the machine went down")
        return real(conn, pairs)

    monkeypatch.setattr(PersonFactsStore, "remember_handles", staticmethod(crash_in_second_batch))

    async def crashing() -> BindReport:
        ch, stub = _stub(s, s.topo.layout.pki.agency(CITY))
        async with ch:
            return await bulk_bind(comm.store, comm.hub, stub, records, batch=2)

    with pytest.raises(RuntimeError, match="went down"):
        loop.run(crashing(), timeout=60)
    city = s.topo.store(CITY)
    facts = PersonFactsStore(city.engine)
    first = {r.local_person_id: city.link_code_for(r.local_person_id) for r in records[:2]}
    assert all(first.values())
    # The whole second batch rolled back: no binding and no handle of it stayed.
    assert [city.link_code_for(r.local_person_id) for r in records[2:]] == [None] * 3
    assert [facts.handle_for(r.local_person_id) for r in records[2:]] == [None] * 3
    handles = {r.local_person_id: facts.handle_for(r.local_person_id) for r in records[:2]}
    assert all(handles.values())

    monkeypatch.setattr(PersonFactsStore, "remember_handles", staticmethod(real))
    report = _bulk(loop, s, records)
    assert (report.bound, report.already_bound, report.failed) == (3, 2, 0)
    assert {k: city.link_code_for(k) for k in first} == first
    assert {k: facts.handle_for(k) for k in handles} == handles
    assert all(facts.handle_for(r.local_person_id) for r in records)
    issuer = IdIssuer.load(s.topo.layout.id_issuer_config)

    async def expected(resident_code: str) -> str:
        link, _, _ = await comm.hub.issue_link_code(
            issuer.sealed_id_code(resident_code, CITY), timeout=5
        )
        return link

    for record, resident in zip(records, s.fresh, strict=True):
        bound = city.link_code_for(record.local_person_id)
        assert bound == loop.run(expected(resident.resident_code))


def test_a_batch_the_hub_refuses_goes_to_review_and_the_job_goes_on(
    loop: LoopThread, setup: Setup
) -> None:
    from hub_server.id_issuer_client import IdKeyState

    s = setup
    records = [replace(_legacy(r, i), local_person_id=f"OLD-{i}") for i, r in enumerate(s.fresh)]
    hub = s.topo.hub.hub
    before = hub.id_state
    # The ID issuer still seals under version 1, which the hub no longer accepts.
    hub.id_state = IdKeyState(2, 2, {1: datetime.now(UTC) - timedelta(seconds=1)})
    try:
        report = _bulk(loop, s, records)
    finally:
        hub.id_state = before
    assert (report.bound, report.failed) == (0, 5)
    assert {item.status for item in report.review} == {"failed"}
    assert report.review[0].reason.startswith("ID_CODE_KEY_RETIRED: sealed_batch is made from")
    assert all(s.topo.store(CITY).link_code_for(r.local_person_id) is None for r in records)


@pytest.mark.parametrize("ahead", [0, 1, 3])
def test_a_registry_failure_stops_the_job_after_the_batches_before_it(
    loop: LoopThread, setup: Setup, ahead: int
) -> None:
    s = setup
    records = [
        replace(_legacy(r, i), local_person_id=f"A{ahead}-{i}") for i, r in enumerate(s.fresh)
    ]
    comm = s.topo.comms[CITY]

    class FailingSecondCall:
        def __init__(self, stub: registry_pb2_grpc.BindingServiceAsyncStub) -> None:
            self.stub, self.calls = stub, 0

        async def MatchRecords(self, request: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if self.calls == 2:
                raise RenkeiError("REGISTRY_UNAVAILABLE", "the registry went away")
            return await self.stub.MatchRecords(request, **kwargs)

    async def go() -> BindReport:
        ch, stub = _stub(s, s.topo.layout.pki.agency(CITY))
        async with ch:
            return await bulk_bind(
                comm.store,
                comm.hub,
                cast("registry_pb2_grpc.BindingServiceAsyncStub", FailingSecondCall(stub)),
                records,
                batch=2,
                ahead=ahead,
            )

    with pytest.raises(RenkeiError, match="went away"):
        loop.run(go(), timeout=60)
    city = s.topo.store(CITY)
    bound = [city.link_code_for(r.local_person_id) is not None for r in records]
    assert bound == [True, True, False, False, False]
    report = _bulk(loop, s, records)
    assert (report.bound, report.already_bound) == (3, 2)


@pytest.mark.dishonest
def test_a_person_bound_before_and_after_a_resident_code_change_is_one_person_at_the_hub(
    loop: LoopThread, setup: Setup
) -> None:
    """Issue 13, finding 6 (R8): the city binds a resident, the register gives them a new
    resident code, then the pension service binds them. Both link codes must be of one ID
    code, so the hub translates one into the other and logs one person key."""
    s = setup
    resident = s.fresh[0]
    record = _legacy(resident, 0)

    async def bind(agency: str) -> BindReport:
        comm = s.topo.comms[agency]
        ch, stub = _stub(s, s.topo.layout.pki.agency(agency))
        async with ch:
            return await bulk_bind(comm.store, comm.hub, stub, [record], batch=1)

    assert loop.run(bind(CITY), timeout=60).bound == 1
    register = RegistryStore(registry_engine(s.topo.layout))
    register.change_code(resident.resident_code, new_resident_code(random.Random(13)))
    assert loop.run(bind(PENSION), timeout=60).bound == 1

    city_code = s.topo.store(CITY).link_code_for(record.local_person_id)
    pension_code = s.topo.store(PENSION).link_code_for(record.local_person_id)
    assert city_code is not None
    assert pension_code is not None
    codec = s.topo.hub.hub.codec
    city_id, _ = codec.decode(CITY, city_code)
    pension_id, _ = codec.decode(PENSION, pension_code)
    assert city_id == pension_id
    assert s.topo.hub.hub.person_key(city_id) == s.topo.hub.hub.person_key(pension_id)

    # And a real query from the city to the pension service reaches that person: the
    # provider's log share names its own record, and the hub's row the one person key.
    async def ask() -> str:
        target = f"127.0.0.1:{s.topo.comms[CITY].port}"
        async with channel(target, s.topo.layout.pki.agency(CITY), peer=f"agency:{CITY}") as ch:
            request = comm_pb2.QueryRequest(
                local_person_id=record.local_person_id,
                provider_agency_id=PENSION,
                info_kind="年金給付関係情報",
                legal_basis_item="二十七",
                purpose="finding 6",
                staff_id="S-1",
                terminal_id="T-1",
            )
            try:  # the pension's legacy system holds no benefits for a fresh resident
                await comm_pb2_grpc.RequesterServiceStub(ch).Query(request, timeout=10)
            except grpc.aio.AioRpcError as err:
                return from_rpc_error(err, fallback_reason="").reason
            return "OK"

    assert loop.run(ask(), timeout=30) != "PERSON_NOT_BOUND"
    provided = s.topo.store(PENSION).log_rows(limit=10**6)[-1]
    assert (provided.role, provided.local_person_id) == ("provider", record.local_person_id)
    hub_row = max(s.topo.hub_log().rows(limit=10**6), key=lambda r: r.serial)
    assert hub_row.entry.person_key == s.topo.hub.hub.person_key(city_id)
