"""The change feed for bound persons (R14, R20) and a private body's consent flow (R20),
through the real registry binding server, ID issuer, hub and communication servers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from support.aio import LoopThread
from support.refusals import refused
from support.topology import CITY, PENSION, Topology, start_topology

from comm_server.binding.bulk_bind import BindReport, LocalRecord, bulk_bind
from comm_server.binding.consent import ConsentItem, bind_with_consent
from comm_server.binding.feed import FollowReport, follow_once
from comm_server.binding.person_facts import PersonFactsStore
from id_issuer.issuer import IdIssuer
from legacy_stubs.registry.store import RegistryStore
from ops import audit
from ops.deploy import AgencySpec, registry_engine
from registry_binding.bootstrap import RegistryBindingServer, create_server
from registry_binding.config import RegistryBindingConfig
from registry_binding.consent import ConsentLog
from renkei.grpcutil.client import channel
from renkei.pki import TlsFiles
from renkei.registry.v1 import registry_pb2, registry_pb2_grpc
from renkei.residents import Address, Resident

BANK = "example-bank"
CHIYODA = Address("東京都", "131016", "千代田区", "丸の内", 1, 1, 1)


@dataclass
class Setup:
    topo: Topology
    registry: RegistryBindingServer
    store: RegistryStore
    fresh: list[Resident]


@pytest.fixture
def setup(loop: LoopThread, tmp_path: Path) -> Iterator[Setup]:
    topo = loop.run(
        start_topology(tmp_path, extra=[AgencySpec(BANK, "例示銀行", ("民間事業者",))]),
        timeout=120,
    )
    config = replace(
        RegistryBindingConfig.load(topo.layout.registry_config),
        id_issuer_endpoint=f"127.0.0.1:{topo.id_issuer.port}",
        listen="127.0.0.1:0",
        tls=topo.layout.pki.service("registry"),
        private_bodies=(BANK,),
    )
    registry = loop.run(create_server(config))
    store = RegistryStore(registry_engine(topo.layout))
    demo = {p.resident_code for p in topo.people}
    fresh = [r for r in store.sample(1000) if r.resident_code not in demo and r.status == "alive"]
    yield Setup(topo, registry, store, fresh[:8])
    loop.run(registry.stop(0))
    loop.run(topo.stop())
    store.engine.dispose()


def _stub(
    s: Setup, tls: TlsFiles
) -> tuple[grpc.aio.Channel, registry_pb2_grpc.BindingServiceAsyncStub]:
    ch = channel(f"127.0.0.1:{s.registry.port}", tls, peer="service:registry")
    return ch, registry_pb2_grpc.BindingServiceStub(ch)  # type: ignore[return-value]


def _local(r: Resident, local_id: str) -> LocalRecord:
    a = r.address
    return LocalRecord(
        local_person_id=local_id,
        name=r.name.kanji,
        kana=r.name.kana,
        address=f"{a.prefecture}{a.municipality.replace(' ', '')}{a.town}"
        f"{a.chome}-{a.banchi}-{a.go}",
        birth_date=r.birth_date.isoformat(),
        sex=r.sex,
    )


def _lid(s: Setup, r: Resident) -> str:
    """A local number (never the resident code: an agency's store must not hold one)."""
    return f"F-{s.fresh.index(r):04d}"


def _bind(loop: LoopThread, s: Setup, agency: str, people: list[Resident]) -> BindReport:
    comm = s.topo.comms[agency]

    async def go() -> BindReport:
        ch, stub = _stub(s, s.topo.layout.pki.agency(agency))
        async with ch:
            return await bulk_bind(
                comm.store, comm.hub, stub, [_local(r, _lid(s, r)) for r in people]
            )

    return loop.run(go(), timeout=60)


def _follow(loop: LoopThread, s: Setup, agency: str, page_size: int = 2) -> FollowReport:
    facts = PersonFactsStore(s.topo.store(agency).engine)

    async def go() -> FollowReport:
        ch, stub = _stub(s, s.topo.layout.pki.agency(agency))
        async with ch:
            return await follow_once(facts, stub, page_size=page_size)

    return loop.run(go(), timeout=60)


def test_moves_and_deaths_reach_the_agencies_that_bound_the_person(
    loop: LoopThread, setup: Setup
) -> None:
    s = setup
    mover, dying, other, stranger = s.fresh[:4]
    assert _bind(loop, s, CITY, [mover, dying, other]).bound == 3
    assert _bind(loop, s, PENSION, [mover]).bound == 1
    city = PersonFactsStore(s.topo.store(CITY).engine)
    pension = PersonFactsStore(s.topo.store(PENSION).engine)
    ids = {r.resident_code: _lid(s, r) for r in (mover, dying, other)}

    # Handles: kept next to the local number, different for each agency.
    city_handle = city.handle_for(ids[mover.resident_code])
    pension_handle = pension.handle_for(ids[mover.resident_code])
    assert city_handle
    assert pension_handle
    assert city_handle != pension_handle
    assert mover.resident_code not in (city_handle, pension_handle)

    # The first read gives each bound person's facts as the register holds them.
    first = _follow(loop, s, CITY)
    assert (first.entries, first.pages) == (3, 2)
    assert city.current_municipality(ids[mover.resident_code]) == mover.address.municipality_code

    s.store.move(mover.resident_code, CHIYODA, date(2026, 5, 1))
    s.store.record_death(dying.resident_code, date(2026, 5, 2))
    s.store.move(stranger.resident_code, CHIYODA, date(2026, 5, 3))  # bound by nobody

    # A restart: a new store object on the same database resumes from the cursor.
    again = _follow(loop, s, CITY)
    assert again.entries == 2
    assert city.current_municipality(ids[mover.resident_code]) == "131016"
    moved = city.facts_for(ids[mover.resident_code])
    assert moved is not None
    assert (moved.kind, moved.effective_date, moved.address) == (
        "moved",
        "2026-05-01",
        "東京都千代田区丸の内1丁目1番1号",
    )
    dead = city.facts_for(ids[dying.resident_code])
    assert dead is not None
    assert (dead.deceased, dead.died_on, dead.kind) == (True, "2026-05-02", "deceased")
    still = city.facts_for(ids[other.resident_code])
    assert still is not None
    assert (still.kind, still.deceased) == ("subscribed", False)
    assert _follow(loop, s, CITY).entries == 0  # nothing new

    # The pension service hears of its one person only: subscribed, then moved.
    theirs = _follow(loop, s, PENSION, page_size=100)
    assert theirs.entries == 2
    assert pension.current_municipality(ids[mover.resident_code]) == "131016"

    # An agency never reads another's handles or anyone it did not bind.
    async def raw(agency: str) -> registry_pb2.ListChangesResponse:
        ch, stub = _stub(s, s.topo.layout.pki.agency(agency))
        async with ch:
            return await stub.ListChanges(registry_pb2.ListChangesRequest(), timeout=10)

    seen = {c.subscription_handle for c in loop.run(raw(PENSION)).changes}
    assert seen == {pension_handle}
    names = {c.facts.name for c in loop.run(raw(CITY)).changes}
    assert stranger.name.kanji not in names
    assert loop.run(raw(BANK)).changes == []

    # The audit: the city holds its own handles and four facts, the binding party
    # all handles and no facts, the register no handles.
    report = audit.audit_deployment(s.topo.layout.root)
    assert audit.breaches(report) == {}
    assert f"{audit.HANDLE} ({CITY})" in report[f"agency:{CITY}"]
    assert audit.FOUR_FACTS in report[f"agency:{CITY}"]
    assert f"{audit.HANDLE} ({PENSION})" in report["registry-binding"]
    assert audit.RESIDENT_CODE in report["registry-binding"]
    assert audit.FOUR_FACTS not in report["registry-binding"]
    assert not any(k.startswith(audit.HANDLE) for k in report["registry"])
    assert not any(k.startswith(audit.HANDLE) for k in report["hub"])


def test_feed_refusals(loop: LoopThread, setup: Setup) -> None:
    s = setup

    async def go() -> None:
        ch, stub = _stub(s, s.topo.layout.pki.hub())
        async with ch:
            refusal = await refused(stub.ListChanges(registry_pb2.ListChangesRequest(), timeout=10))
        assert refusal.code == grpc.StatusCode.PERMISSION_DENIED
        assert refusal.reason == "CALLER_NOT_AGENCY"
        ch, stub = _stub(s, s.topo.layout.pki.agency(CITY))
        async with ch:
            for request, field in [
                (registry_pb2.ListChangesRequest(cursor="abc"), "cursor"),
                # 19 digits, above int64: the database driver would overflow (INTERNAL).
                (registry_pb2.ListChangesRequest(cursor="9999999999999999999"), "cursor"),
                (registry_pb2.ListChangesRequest(cursor="9223372036854775808"), "cursor"),
                (registry_pb2.ListChangesRequest(page_size=1001), "page_size"),
            ]:
                refusal = await refused(stub.ListChanges(request, timeout=10))
                assert refusal.code == grpc.StatusCode.INVALID_ARGUMENT
                assert refusal.reason == "INVALID_FIELD"
                assert refusal.metadata["field"] == field

    loop.run(go(), timeout=30)


def _consent(consent_id: str) -> registry_pb2.Consent:
    at = Timestamp()
    at.FromDatetime(datetime(2026, 11, 1, tzinfo=UTC))
    return registry_pb2.Consent(
        consent_id=consent_id,
        giver=registry_pb2.CONSENT_GIVER_PERSON,
        consented_at=at,
        purpose="口座開設時の本人確認",
        document_sha256=bytes(range(32)),
    )


def test_a_private_body_binds_only_exact_current_matches_with_consent(
    loop: LoopThread, setup: Setup
) -> None:
    s = setup
    exact, moved, dead, typo = s.fresh[4:8]
    old = _local(moved, "B-moved")
    s.store.move(moved.resident_code, CHIYODA, date(2026, 5, 1))
    s.store.record_death(dead.resident_code, date(2026, 5, 2))
    family, given = typo.name.kanji.split(" ")
    one_off = ("斉" if given[0] != "斉" else "斎") + given[1:]
    no_purpose = _consent("C-6")
    no_purpose.ClearField("purpose")
    items = [
        ConsentItem(
            replace(_local(exact, "B-exact"), name=exact.name.kanji.replace(" ", "　")),
            _consent("C-1"),
        ),
        ConsentItem(old, _consent("C-2")),
        ConsentItem(_local(dead, "B-dead"), _consent("C-3")),
        ConsentItem(replace(_local(typo, "B-typo"), name=f"{family} {one_off}"), _consent("C-4")),
        ConsentItem(_local(typo, "B-no-consent"), registry_pb2.Consent()),
        ConsentItem(_local(typo, "B-no-purpose"), no_purpose),
    ]
    bank = s.topo.comms[BANK]

    async def go() -> list[tuple[str, str, str]]:
        ch, stub = _stub(s, s.topo.layout.pki.agency(BANK))
        async with ch:
            report = await bind_with_consent(bank.store, bank.hub, stub, items)
        return [(x.local_person_id, x.result, x.detail) for x in report.lines]

    lines = loop.run(go(), timeout=60)
    assert lines[:4] == [
        ("B-exact", "bound", "MATCHED"),
        ("B-moved", "no_exact_match", "NO_EXACT_MATCH"),
        ("B-dead", "no_exact_match", "NO_EXACT_MATCH"),
        ("B-typo", "no_exact_match", "NO_EXACT_MATCH"),
    ]
    assert lines[4][:2] == ("B-no-consent", "refused")
    assert "INVALID_FIELD" in lines[4][2]
    assert "(field consent)" in lines[4][2]
    assert lines[5][:2] == ("B-no-purpose", "refused")
    assert "(field consent.purpose)" in lines[5][2]

    # Bound to the right person: the link code the hub gives the bank for that resident.
    issuer = IdIssuer.load(s.topo.layout.id_issuer_config)
    link, _, _ = loop.run(
        bank.hub.issue_link_code(issuer.sealed_id_code(exact.resident_code, BANK), timeout=5)
    )
    assert s.topo.store(BANK).link_code_for("B-exact") == link
    for other in ("B-moved", "B-dead", "B-typo", "B-no-consent", "B-no-purpose"):
        assert s.topo.store(BANK).link_code_for(other) is None
    # A private body follows nobody: consent covers this look-up, not a subscription.
    assert s.registry.store.handles(BANK) == {}

    # Every attempt is in the binding party's log, with the detail the body was not told.
    rows = ConsentLog(s.registry.store.engine).rows(f"agency:{BANK}")
    assert [(r["local_person_id"], r["outcome"]) for r in rows] == [
        ("B-exact", "matched"),
        ("B-moved", "no_exact_match"),
        ("B-dead", "no_exact_match"),
        ("B-typo", "no_exact_match"),
        ("B-no-consent", "refused"),
        ("B-no-purpose", "refused"),
    ]
    assert rows[0]["resident_code"] == exact.resident_code
    assert rows[1]["reason"] == "address is not the current address"
    assert rows[2]["reason"] == "deceased"
    assert rows[3]["reason"].startswith("none: ")
    assert rows[0]["consent_id"] == "C-1"
    assert rows[0]["document_sha256"] == bytes(range(32)).hex()


def test_consent_flow_refusals(loop: LoopThread, setup: Setup) -> None:
    s = setup
    person = s.fresh[4]
    request = registry_pb2.MatchWithConsentRequest(
        record=registry_pb2.Record(
            local_person_id="X-1",
            name=person.name.kanji,
            address=person.address.text,
            birth_date=person.birth_date.isoformat(),
            sex=person.sex,
        ),
        consent=_consent("C-9"),
    )

    async def go() -> None:
        # An agency that is not a private body may not use the consent flow ...
        ch, stub = _stub(s, s.topo.layout.pki.agency(CITY))
        async with ch:
            refusal = await refused(stub.MatchWithConsent(request, timeout=10))
        assert refusal.code == grpc.StatusCode.PERMISSION_DENIED
        assert refusal.reason == "CALLER_NOT_PRIVATE_BODY"
        # ... and a private body may not bind any other way.
        ch, stub = _stub(s, s.topo.layout.pki.agency(BANK))
        async with ch:
            refusal = await refused(
                stub.MatchRecords(
                    registry_pb2.MatchRecordsRequest(records=[request.record]), timeout=10
                )
            )
            assert refusal.code == grpc.StatusCode.PERMISSION_DENIED
            assert refusal.reason == "PRIVATE_BODY_NEEDS_CONSENT"
            no_consent = registry_pb2.MatchWithConsentRequest(record=request.record)
            refusal = await refused(stub.MatchWithConsent(no_consent, timeout=10))
            assert refusal.code == grpc.StatusCode.INVALID_ARGUMENT
            assert refusal.metadata["field"] == "consent"
            answer = await stub.MatchWithConsent(request, timeout=10)
            assert answer.status == registry_pb2.CONSENT_MATCH_STATUS_MATCHED
            assert answer.sealed_id_code
            assert answer.attempt_id

    loop.run(go(), timeout=30)
    outcomes = [(r["caller"], r["outcome"]) for r in ConsentLog(s.registry.store.engine).rows()]
    assert outcomes == [
        (f"agency:{CITY}", "refused"),
        (f"agency:{BANK}", "refused"),
        (f"agency:{BANK}", "matched"),
    ]


def _live_config(s: Setup, agency: str, tmp_path: Path) -> Path:
    """The agency's comm.toml pointed at the live servers (ports were 0 when written)."""
    comm_toml = s.topo.layout.comm_config(agency)
    text = comm_toml.read_text("utf-8")
    live = tmp_path / agency / "comm.toml"
    live.parent.mkdir()
    live.write_text(
        text.replace(
            'hub_endpoint = "127.0.0.1:0"', f'hub_endpoint = "127.0.0.1:{s.topo.hub.port}"'
        )
        .replace(
            'registry_endpoint = "127.0.0.1:0"',
            f'registry_endpoint = "127.0.0.1:{s.registry.port}"',
        )
        .replace('"../../', f'"{comm_toml.parent}/../../')
        .replace('"tls/', f'"{comm_toml.parent}/tls/')
        .replace("{config_dir}", str(comm_toml.parent)),
        "utf-8",
    )
    live.with_name("master.key").write_bytes(comm_toml.with_name("master.key").read_bytes())
    return live


def test_the_cli_follows_shows_facts_and_binds_with_consent(
    loop: LoopThread, setup: Setup, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from ops.cli import main

    s = setup
    mover, exact = s.fresh[0], s.fresh[4]
    assert _bind(loop, s, CITY, [mover]).bound == 1
    s.store.move(mover.resident_code, CHIYODA, date(2026, 5, 1))
    city = str(_live_config(s, CITY, tmp_path))
    assert main(["comm", "follow", "--config", city]) == 0
    assert "2 entries in 1 pages applied" in capsys.readouterr().out
    assert main(["comm", "facts", "--config", city, _lid(s, mover), "NOBODY"]) == 1
    out = capsys.readouterr().out
    assert f"{_lid(s, mover)}: municipality 131016 千代田区;" in out
    assert "last change moved 2026-05-01" in out
    assert "NOBODY: no facts from the registry" in out

    record = _local(exact, "B-cli")
    line = {
        "local_person_id": record.local_person_id,
        "name": record.name,
        "address": record.address,
        "birth_date": record.birth_date,
        "sex": record.sex,
        "consent": {
            "consent_id": "C-CLI",
            "giver": "person",
            "consented_at": "2026-11-01T09:00:00+09:00",
            "purpose": "口座開設時の本人確認",
        },
    }
    consents = tmp_path / "consents.jsonl"
    consents.write_text(json.dumps(line, ensure_ascii=False) + "\n", "utf-8")
    bank = str(_live_config(s, BANK, tmp_path))
    assert main(["comm", "bind-consent", "--config", bank, "--input", str(consents)]) == 0
    out = capsys.readouterr().out
    assert "B-cli: bound: MATCHED" in out
    assert "bound 1, already bound 0, no exact match 0, refused 0, failed 0" in out
    assert s.topo.store(BANK).link_code_for("B-cli")
    consents.write_text('{"local_person_id": "B-2", "colour": "red"}\n', "utf-8")
    assert main(["comm", "bind-consent", "--config", bank, "--input", str(consents)]) == 2
    assert "consents.jsonl:1: unknown fields ['colour']" in capsys.readouterr().err


def test_a_consent_time_out_of_range_is_invalid_field_after_the_caller_check(
    loop: LoopThread, setup: Setup
) -> None:
    s = setup
    person = s.fresh[4]
    record = registry_pb2.Record(
        local_person_id="X-2",
        name=person.name.kanji,
        address=person.address.text,
        birth_date=person.birth_date.isoformat(),
        sex=person.sex,
    )

    def request(seconds: int, nanos: int) -> registry_pb2.MatchWithConsentRequest:
        consent = _consent("C-10")
        consent.consented_at.CopyFrom(Timestamp(seconds=seconds, nanos=nanos))
        return registry_pb2.MatchWithConsentRequest(record=record, consent=consent)

    after_9999, before_0001 = 253402300800, -62135596801

    async def go() -> None:
        # Not a private body: refused as such, whatever the consent's time.
        ch, stub = _stub(s, s.topo.layout.pki.agency(CITY))
        async with ch:
            refusal = await refused(stub.MatchWithConsent(request(after_9999, 0), timeout=10))
        assert refusal.code == grpc.StatusCode.PERMISSION_DENIED
        assert refusal.reason == "CALLER_NOT_PRIVATE_BODY"
        ch, stub = _stub(s, s.topo.layout.pki.agency(BANK))
        async with ch:
            for seconds, nanos in [(after_9999, 0), (before_0001, 0), (0, -1), (0, 10**9)]:
                refusal = await refused(stub.MatchWithConsent(request(seconds, nanos), timeout=10))
                assert refusal.code == grpc.StatusCode.INVALID_ARGUMENT, (seconds, nanos)
                assert refusal.reason == "INVALID_FIELD"
                assert refusal.metadata["field"] == "consent.consented_at"

    loop.run(go(), timeout=30)
    rows = ConsentLog(s.registry.store.engine).rows()
    assert [(r["caller"], r["outcome"], r["answered"]) for r in rows] == [
        (f"agency:{CITY}", "refused", "CALLER_NOT_PRIVATE_BODY")
    ] + [(f"agency:{BANK}", "refused", "INVALID_FIELD")] * 4
    assert all(r["consented_at"] is None and r["consent_id"] == "C-10" for r in rows)
