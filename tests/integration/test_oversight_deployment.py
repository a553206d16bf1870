"""The oversight body in a whole deployment (issue 15): its folder and certificate from
``renkei deploy init``, and the real servers' read-only services (every communication
server's ``AgencyLogService``, the registry's ``ConsentLogService``) after real exchanges.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import stat
import tomllib
from typing import Any

import grpc
from support.aio import LoopThread
from support.refusals import refusal_of
from support.topology import CITY, PENSION, Topology, query

from comm_server import keys as comm_keys
from comm_server.binding.person_facts import FeedItem, PersonFacts, PersonFactsStore
from ops import audit
from ops.deploy import DEMO_AGENCIES
from renkei.grpcutil.client import channel
from renkei.keystore import KeyStore, load_master_key
from renkei.oversight.v1 import oversight_pb2, oversight_pb2_grpc
from renkei.pki import TlsFiles
from renkei.registry.v1 import registry_pb2, registry_pb2_grpc

PENSION_INFO = "年金給付関係情報"


def _key(topo: Topology, agency: str) -> bytes:
    comm = topo.comms[agency]
    store = KeyStore(topo.store(agency).engine, load_master_key(comm.config.master_key))
    return comm_keys.pseudonym_key(store)


async def _share(topo: Topology, agency: str, tls: TlsFiles) -> list[oversight_pb2.AgencyLogRow]:
    target = f"127.0.0.1:{topo.comms[agency].port}"
    async with channel(target, tls, peer=f"agency:{agency}") as ch:
        stub: Any = oversight_pb2_grpc.AgencyLogServiceStub(ch)
        request = oversight_pb2.ReadAgencyLogRequest(batch_size=100)
        return [r async for m in stub.ReadAgencyLog(request, timeout=10) for r in m.rows]


async def _consents(topo: Topology, tls: TlsFiles) -> list[oversight_pb2.ConsentLogRow]:
    async with channel(f"127.0.0.1:{topo.registry.port}", tls, peer="service:registry") as ch:
        stub: Any = oversight_pb2_grpc.ConsentLogServiceStub(ch)
        request = oversight_pb2.ReadConsentLogRequest()
        return [r async for m in stub.ReadConsentLog(request, timeout=10) for r in m.rows]


def _denied(loop: LoopThread, coro: Any) -> tuple[grpc.StatusCode, str | None]:
    try:
        loop.run(coro)
    except grpc.aio.AioRpcError as err:
        refusal = refusal_of(err)
        return refusal.code, refusal.reason
    raise AssertionError("the read was not refused")


def test_the_deployment_lays_out_the_oversight_body(topo: Topology) -> None:
    layout = topo.layout
    tls = layout.pki.oversight()
    assert tls.key.parent == layout.root / "oversight" / "tls"
    assert stat.S_IMODE(tls.key.stat().st_mode) == 0o600
    assert not list(layout.oversight_dir.glob("*.key"))  # no store, so no master key
    config = tomllib.loads(layout.oversight_config.read_text(encoding="utf-8"))
    base = layout.oversight_dir
    assert (base / config["tls"]["cert"]).resolve() == tls.cert.resolve()
    assert (base / config["tls"]["key"]).resolve() == tls.key.resolve()
    assert (base / config["tls"]["ca_cert"]).resolve() == layout.pki.roots.resolve()
    assert len(config["tls"]["crls"]) == 4
    comm = tomllib.loads(layout.comm_config(CITY).read_text(encoding="utf-8"))
    assert config["hub"]["log_key"] == comm["log"]["hub_key"]
    assert config["hub"]["witness_keys"] == comm["log"]["witness_keys"]
    assert config["hub"]["endpoint"] == comm["comm"]["hub_endpoint"]
    assert [a["id"] for a in config["agency"]] == [a.agency_id for a in DEMO_AGENCIES]
    assert config["agency"][0]["endpoint"] == comm["comm"]["listen"]
    assert config["registry"]["endpoint"] == comm["comm"]["registry_endpoint"]
    assert config["output"] == {"dir": "out"}
    # The portal's internal port, where the oversight body holds applications (R25).
    portal = tomllib.loads((layout.root / "portal" / "portal.toml").read_text(encoding="utf-8"))
    assert config["portal"]["endpoint"] == portal["portal"]["internal_listen"]
    # Health and reflection name the new services.
    assert oversight_pb2_grpc.AgencyLogService.__name__ == "AgencyLogService"
    agency_service = oversight_pb2.DESCRIPTOR.services_by_name["AgencyLogService"].full_name
    consent_service = oversight_pb2.DESCRIPTOR.services_by_name["ConsentLogService"].full_name
    assert agency_service in topo.comms[CITY].handle.services
    assert consent_service in topo.registry.handle.services


def test_the_oversight_body_reads_both_sides_of_an_exchange(
    loop: LoopThread, topo: Topology
) -> None:
    person = topo.people[0]
    # The city's feed knows where the person lives (as renkei comm follow would store it).
    facts = PersonFactsStore(topo.store(CITY).engine)
    facts.remember_handle(person.local_ids[CITY], "oversight-test-h0")
    moved = PersonFacts(
        "moved", "2027-01-01", person.name, person.kana, "1960-01-01", "1", "住所", "141046",
        "横浜市 中区", False, None,
    )  # fmt: skip
    facts.apply([FeedItem("oversight-test-h0", moved)], "oversight-test")

    async def exchange() -> int:
        request = query(CITY, person, PENSION, PENSION_INFO, "二十七", staff_id="S-1")
        async with topo.channel(CITY, CITY) as ch:
            answer = await topo.requester_stub(ch).Query(request, timeout=10)
        return int(answer.serial)

    serial = loop.run(exchange())
    oversight = topo.layout.pki.oversight()
    city_rows = [r for r in loop.run(_share(topo, CITY, oversight)) if r.serial == serial]
    pension_rows = [r for r in loop.run(_share(topo, PENSION, oversight)) if r.serial == serial]
    [asked], [answered] = city_rows, pension_rows
    assert (asked.role, asked.agency_id, asked.counterpart_agency_id) == (
        oversight_pb2.ROLE_REQUESTER,
        CITY,
        PENSION,
    )
    assert (answered.role, answered.agency_id, answered.counterpart_agency_id) == (
        oversight_pb2.ROLE_PROVIDER,
        PENSION,
        CITY,
    )
    assert (asked.info_kind, asked.legal_basis_item, asked.outcome) == (
        PENSION_INFO,
        "二十七",
        "OK",
    )
    assert asked.staff_id == "S-1"
    # Both sides logged the same content (11): the same hash, and it is the stored one's.
    stored = next(r for r in topo.store(CITY).log_rows() if r.serial == serial)
    assert asked.content_sha256 == hashlib.sha256(stored.content.encode()).digest()
    assert asked.content_sha256 == answered.content_sha256
    # Each agency's pseudonym, under its own key; nothing joins the two.
    city_key, pension_key = _key(topo, CITY), _key(topo, PENSION)
    assert city_key != pension_key
    local = person.local_ids
    assert asked.person == hmac.new(city_key, local[CITY].encode(), hashlib.sha256).hexdigest()
    assert (
        answered.person
        == hmac.new(pension_key, local[PENSION].encode(), hashlib.sha256).hexdigest()
    )
    assert asked.person != answered.person
    assert asked.person_municipality == "141046"
    assert answered.person_municipality == ""  # the pension service follows no feed here
    # What the oversight body would keep of it holds no identifier (the store audit).
    out = topo.layout.oversight_dir / "out"
    out.mkdir(exist_ok=True)
    fetched = [
        {"person": r.person, "serial": r.serial, "content": r.content_sha256.hex()}
        for r in (asked, answered)
    ]
    (out / "agency_rows.json").write_text(json.dumps(fetched), encoding="utf-8")
    report = audit.audit_deployment(topo.layout.root)
    assert report["oversight"] == {}
    assert "oversight" not in audit.breaches(report)


def test_only_the_oversight_certificate_reads_a_comm_servers_share(
    loop: LoopThread, topo: Topology
) -> None:
    pki = topo.layout.pki
    for tls in (pki.agency(CITY), pki.agency(PENSION), pki.hub(), pki.service("registry")):
        assert _denied(loop, _share(topo, CITY, tls)) == (
            grpc.StatusCode.PERMISSION_DENIED,
            "CALLER_NOT_OVERSIGHT",
        )


def test_the_registry_serves_its_consent_log_to_the_oversight_body_only(
    loop: LoopThread, topo: Topology
) -> None:
    pki = topo.layout.pki

    async def attempt() -> None:  # refused: _denied reads why
        # The city is no private body: refused, and logged as every attempt is.
        target = f"127.0.0.1:{topo.registry.port}"
        async with channel(target, pki.agency(CITY), peer="service:registry") as ch:
            stub: Any = registry_pb2_grpc.BindingServiceStub(ch)
            request = registry_pb2.MatchWithConsentRequest(
                record=registry_pb2.Record(local_person_id="OV-1", name="名")
            )
            await stub.MatchWithConsent(request, timeout=10)

    assert _denied(loop, attempt()) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "CALLER_NOT_PRIVATE_BODY",
    )
    rows = loop.run(_consents(topo, pki.oversight()))
    mine = [r for r in rows if r.caller == f"agency:{CITY}"]
    assert mine
    assert (mine[-1].outcome, mine[-1].matched) == ("CALLER_NOT_PRIVATE_BODY", False)
    assert "OV-1" not in str(rows)
    for tls in (pki.agency(CITY), pki.hub()):
        assert _denied(loop, _consents(topo, tls)) == (
            grpc.StatusCode.PERMISSION_DENIED,
            "CALLER_NOT_OVERSIGHT",
        )
