"""A dishonest hub cannot choose the keys agencies seal to, nor forge their queries and
answers (issue 13, finding 1; docs/separation.md, "Exchange certificates").

The hub is made dishonest in-process: its directory hands out a certificate (and a
sealing key) of the operator's own for an agency, or its gateway to the providers
rewrites what passes through it. Every refusal is the comm servers' and is logged in
their shares of the log.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from support.aio import LoopThread
from support.exchange_certs import FakeAgenciesCa
from support.refusals import refused
from support.topology import CITY, MINISTER, PENSION, Topology, query

from comm_server.seal_info import answer_info, query_info
from hub_server.directory import Agency, Directory
from hub_server.exchange import ProvideCall, Provided
from ops import cli
from ops.deploy import exchange_certificate_path
from renkei import exchange_cert, sealing
from renkei.comm.v1 import comm_pb2

pytestmark = pytest.mark.dishonest  # docs/separation.md, "The dishonest-operator suite"

PENSION_INFO = "年金給付関係情報"
ITEM = "二十七"
FORGED = json.dumps({"annual_amount_yen": 1}).encode()


class DishonestHub:
    """Turns the running hub dishonest for one test; honest again afterwards."""

    def __init__(self, topo: Topology) -> None:
        self.topo = topo
        self.linkage = topo.hub.hub
        self.directory = self.linkage.directory
        self.gateway = self.linkage._gateway
        # The operator's own CA, and keys it certifies under any agency's name.
        self.own_ca = FakeAgenciesCa.new("the hub operator's CA")
        self.own_keys, self.own_cert = self.own_ca.agency(PENSION)

    def agency(self, agency_id: str) -> Agency:
        return self.directory.get(agency_id)

    def substitute(self, agency_id: str, cert: bytes, sealing_public: bytes) -> None:
        """The directory hands out ``cert`` and ``sealing_public`` for ``agency_id``."""
        self.linkage.directory = Directory(
            replace(a, exchange_certificate=cert, sealing_public_key=sealing_public)
            if a.agency_id == agency_id
            else a
            for a in self.directory
        )

    def substitute_own(self, agency_id: str) -> None:
        keys, cert = self.own_ca.agency(agency_id)
        self.substitute(agency_id, cert, sealing.public_key_bytes(keys.sealing))

    def rewrite(self, rewriter: Any) -> None:
        self.linkage._gateway = Rewriting(self.gateway, rewriter)

    def restore(self) -> None:
        self.linkage.directory = self.directory
        self.linkage._gateway = self.gateway
        for comm in self.topo.comms.values():
            comm.hub.forget_certificate(PENSION)
            comm.hub.forget_certificate(CITY)
            comm.hub.forget_certificate(MINISTER)


class Rewriting:
    """The hub's gateway to providers, with what passes rewritten by ``rewriter``."""

    def __init__(self, inner: Any, rewriter: Any) -> None:
        self.inner = inner
        self.rewriter = rewriter

    async def provide(self, provider: Agency, call: ProvideCall, timeout: float) -> Provided:
        call = self.rewriter.call(provider, call)
        provided: Provided = await self.inner.provide(provider, call, timeout)
        return self.rewriter.provided(provider, call, provided)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def hub(topo: Topology) -> Iterator[DishonestHub]:
    dishonest = DishonestHub(topo)
    dishonest.restore()  # no certificate cached from earlier tests
    try:
        yield dishonest
    finally:
        dishonest.restore()


async def _query(topo: Topology, request: comm_pb2.QueryRequest) -> comm_pb2.QueryResponse:
    async with topo.channel(CITY, CITY) as ch:
        response: comm_pb2.QueryResponse = await topo.requester_stub(ch).Query(request, timeout=10)
        return response


async def _bulk(topo: Topology, local_ids: list[str]) -> comm_pb2.BulkQueryResponse:
    request = comm_pb2.BulkQueryRequest(
        provider_agency_id=PENSION,
        info_kind=PENSION_INFO,
        legal_basis_item=ITEM,
        purpose="annual check",
        staff_id="S-1",
        terminal_id="T-1",
        items=[comm_pb2.BulkQueryItem(local_person_id=i) for i in local_ids],
    )
    async with topo.channel(CITY, CITY) as ch:
        response: comm_pb2.BulkQueryResponse = await topo.requester_stub(ch).BulkQuery(
            request, timeout=10
        )
        return response


def _pension_query(topo: Topology, person: int = 0) -> comm_pb2.QueryRequest:
    return query(CITY, topo.people[person], PENSION, PENSION_INFO, ITEM)


def _rows(topo: Topology, agency: str, role: str) -> list[Any]:
    return [r for r in topo.store(agency).log_rows(limit=100_000) if r.role == role]


def _hub_serials(topo: Topology) -> set[int]:
    return {r.serial for r in topo.hub_log().rows(limit=100_000)}


# -- (a) the directory hands the requester a key of the hub's for the provider ----------


@pytest.mark.parametrize("whose", ["the operator's own CA", "another agency's genuine one"])
def test_a_requester_refuses_a_substitute_certificate_for_the_provider(
    loop: LoopThread, topo: Topology, hub: DishonestHub, whose: str
) -> None:
    if whose == "another agency's genuine one":
        minister = hub.agency(MINISTER)
        hub.substitute(PENSION, minister.exchange_certificate, minister.sealing_public_key)
    else:
        hub.substitute(PENSION, hub.own_cert, sealing.public_key_bytes(hub.own_keys.sealing))
    before, asked_before = _hub_serials(topo), len(_rows(topo, PENSION, "provider"))
    refusal = loop.run(refused(_query(topo, _pension_query(topo))))
    assert (refusal.code, refusal.reason) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "PEER_CERTIFICATE_INVALID",
    )
    assert refusal.metadata["agency_id"] == PENSION
    # Nothing was sealed to the hub's key, nothing left this agency: no hub row, no provider row.
    assert _hub_serials(topo) == before
    assert len(_rows(topo, PENSION, "provider")) == asked_before
    (mine,) = [
        r
        for r in _rows(topo, CITY, "requester")
        if r.reason == "PEER_CERTIFICATE_INVALID"
        and r.local_person_id == topo.people[0].local_ids[CITY]
    ][-1:]
    assert (mine.serial, mine.outcome, mine.counterpart_agency_id) == (
        None,
        "PERMISSION_DENIED",
        PENSION,
    )


def test_an_honest_directory_is_trusted_again_once_the_substitute_is_gone(
    loop: LoopThread, topo: Topology, hub: DishonestHub
) -> None:
    hub.substitute_own(PENSION)
    loop.run(refused(_query(topo, _pension_query(topo))))
    hub.restore()  # the directory fixed: the requester asks it again
    answered = loop.run(_query(topo, _pension_query(topo)))
    assert answered.serial > 0


# -- (b) ProvideRequest names a key of the hub's as the requester's ----------------------


def test_a_provider_refuses_a_substitute_requester_certificate_and_both_shares_log_it(
    loop: LoopThread, topo: Topology, hub: DishonestHub
) -> None:
    hub.substitute_own(CITY)
    refusal = loop.run(refused(_query(topo, _pension_query(topo))))
    assert (refusal.code, refusal.reason) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "PEER_CERTIFICATE_INVALID",
    )
    serial = int(refusal.metadata["serial"])
    (provider_row,) = [r for r in _rows(topo, PENSION, "provider") if r.serial == serial]
    (requester_row,) = [r for r in _rows(topo, CITY, "requester") if r.serial == serial]
    for row in (provider_row, requester_row):
        assert (row.outcome, row.reason) == ("PERMISSION_DENIED", "PEER_CERTIFICATE_INVALID")
    assert provider_row.content == ""  # nothing was sealed to the hub's key
    (hub_row,) = [r for r in topo.hub_log().rows(limit=100_000) if r.serial == serial]
    assert hub_row.reason == "PEER_CERTIFICATE_INVALID"


class ForgedQuery:
    """The hub seals a query of its own to the provider's genuine key."""

    def __init__(self, provider_key: bytes) -> None:
        self.provider_key = provider_key

    def call(self, provider: Agency, call: ProvideCall) -> ProvideCall:
        forged = sealing.seal(
            b"the hub's own question",
            sealing.load_public_key(self.provider_key),
            query_info(call.requester_agency_id, provider.agency_id, call.info_kind, ITEM),
        )
        return replace(call, sealed_queries=forged)

    def provided(self, provider: Agency, call: ProvideCall, provided: Provided) -> Provided:
        return provided


def test_a_provider_refuses_a_query_the_requester_did_not_sign(
    loop: LoopThread, topo: Topology, hub: DishonestHub
) -> None:
    hub.rewrite(ForgedQuery(hub.agency(PENSION).sealing_public_key))
    refusal = loop.run(refused(_query(topo, _pension_query(topo))))
    assert refusal.reason == "QUERY_SIGNATURE_INVALID"
    serial = int(refusal.metadata["serial"])
    (provider_row,) = [r for r in _rows(topo, PENSION, "provider") if r.serial == serial]
    (requester_row,) = [r for r in _rows(topo, CITY, "requester") if r.serial == serial]
    assert provider_row.reason == requester_row.reason == "QUERY_SIGNATURE_INVALID"


# -- (c) the hub answers itself, sealed to the requester's genuine key ------------------


class ForgedAnswer:
    """The hub replaces the provider's answer with its own, sealed to the requester's real
    key and bound to the exchange exactly as a provider's; signed as ``signature`` says."""

    def __init__(self, requester_key: bytes, signature: str, signer: Any = None) -> None:
        self.requester_key = requester_key
        self.signature = signature
        self.signer = signer

    def call(self, provider: Agency, call: ProvideCall) -> ProvideCall:
        return call

    def provided(self, provider: Agency, call: ProvideCall, provided: Provided) -> Provided:
        (item,) = call.items
        requester, kind = call.requester_agency_id, call.info_kind
        info = answer_info(item.serial, requester, provider.agency_id, kind, ITEM)
        forged = sealing.seal(FORGED, sealing.load_public_key(self.requester_key), info)
        if self.signature == "none":
            signature = b""
        elif self.signature == "the provider's, of its real answer":
            signature = provided.answer_signature
        else:  # the hub's own key
            signature = exchange_cert.sign(
                self.signer,
                exchange_cert.answer_context(
                    item.serial, requester, provider.agency_id, kind, ITEM, forged
                ),
            )
        return replace(provided, sealed_answers=forged, answer_signature=signature)


@pytest.mark.parametrize("signature", ["none", "the provider's, of its real answer", "the hub's"])
def test_a_requester_refuses_an_answer_the_provider_did_not_sign(
    loop: LoopThread, topo: Topology, hub: DishonestHub, signature: str
) -> None:
    hub.rewrite(ForgedAnswer(hub.agency(CITY).sealing_public_key, signature, hub.own_keys.signing))
    refusal = loop.run(refused(_query(topo, _pension_query(topo))))
    assert (refusal.code, refusal.reason) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "ANSWER_SIGNATURE_INVALID",
    )
    serial = int(refusal.metadata["serial"])
    (requester_row,) = [r for r in _rows(topo, CITY, "requester") if r.serial == serial]
    assert (requester_row.outcome, requester_row.reason, requester_row.content) == (
        "PERMISSION_DENIED",
        "ANSWER_SIGNATURE_INVALID",
        "",
    )
    (provider_row,) = [r for r in _rows(topo, PENSION, "provider") if r.serial == serial]
    assert provider_row.outcome == "OK"  # the provider answered; its answer never arrived


# -- (d) the same in bulk ---------------------------------------------------------------


def test_a_bulk_query_to_a_substitute_provider_certificate_is_refused_whole_and_logged(
    loop: LoopThread, topo: Topology, hub: DishonestHub
) -> None:
    hub.substitute_own(PENSION)
    local = [topo.people[p].local_ids[CITY] for p in (0, 1)]
    before = _hub_serials(topo)
    refusal = loop.run(refused(_bulk(topo, local)))
    assert refusal.reason == "PEER_CERTIFICATE_INVALID"
    assert _hub_serials(topo) == before
    mine = [r for r in _rows(topo, CITY, "requester") if r.purpose == "annual check"][-2:]
    assert [(r.local_person_id, r.reason) for r in mine] == [
        (lid, "PEER_CERTIFICATE_INVALID") for lid in local
    ]


def test_a_bulk_provider_refuses_a_substitute_requester_certificate_and_both_log_it(
    loop: LoopThread, topo: Topology, hub: DishonestHub
) -> None:
    hub.substitute_own(CITY)
    local = [topo.people[p].local_ids[CITY] for p in (0, 1)]
    refusal = loop.run(refused(_bulk(topo, local)))
    assert refusal.reason == "PEER_CERTIFICATE_INVALID"
    mine = [r for r in _rows(topo, CITY, "requester") if r.purpose == "annual check"][-2:]
    assert [r.reason for r in mine] == ["PEER_CERTIFICATE_INVALID"] * 2
    got = {r.serial for r in mine}
    assert None not in got
    theirs = [r for r in _rows(topo, PENSION, "provider") if r.serial in got]
    assert sorted(r.reason for r in theirs) == ["PEER_CERTIFICATE_INVALID"] * 2


class StrippedBulkSignature:
    """The hub drops the provider's signature from a bulk answer (or puts its own)."""

    def __init__(self, signer: Any = None) -> None:
        self.signer = signer

    def call(self, provider: Agency, call: ProvideCall) -> ProvideCall:
        return call

    def provided(self, provider: Agency, call: ProvideCall, provided: Provided) -> Provided:
        signature = b""
        if self.signer is not None:
            pairs = [(i.index, i.serial) for i in call.items]
            signature = exchange_cert.sign(
                self.signer,
                exchange_cert.bulk_answer_context(
                    pairs,
                    call.requester_agency_id,
                    provider.agency_id,
                    call.info_kind,
                    ITEM,
                    provided.sealed_answers,
                ),
            )
        return replace(provided, answer_signature=signature)


@pytest.mark.parametrize("own", [False, True])
def test_bulk_answers_without_the_providers_signature_fail_every_item(
    loop: LoopThread, topo: Topology, hub: DishonestHub, own: bool
) -> None:
    hub.rewrite(StrippedBulkSignature(hub.own_keys.signing if own else None))
    local = [topo.people[p].local_ids[CITY] for p in (0, 1)]
    response = loop.run(_bulk(topo, local))
    assert [r.error.reason for r in response.results] == ["ANSWER_SIGNATURE_INVALID"] * 2
    assert [r.answer for r in response.results] == [b"", b""]
    serials = {r.serial for r in response.results}
    mine = [r for r in _rows(topo, CITY, "requester") if r.serial in serials]
    assert sorted(r.reason for r in mine) == ["ANSWER_SIGNATURE_INVALID"] * 2


def test_an_honest_hub_still_relays_single_and_bulk(
    loop: LoopThread, topo: Topology, hub: DishonestHub
) -> None:
    assert loop.run(_query(topo, _pension_query(topo))).answer
    response = loop.run(_bulk(topo, [topo.people[p].local_ids[CITY] for p in (0, 1)]))
    assert [r.HasField("error") for r in response.results] == [False, False]


def test_the_deployment_certifies_every_agencys_own_keys_in_the_hubs_directory(
    topo: Topology,
) -> None:
    ca = x509.load_pem_x509_certificate(topo.layout.pki.agencies_ca.cert.read_bytes())
    for agency in topo.hub.hub.directory:
        pem = exchange_certificate_path(topo.layout, agency.agency_id).read_bytes()
        assert exchange_cert.certificate_der(pem) == agency.exchange_certificate
        peer = exchange_cert.verify_certificate(agency.exchange_certificate, ca, agency.agency_id)
        assert sealing.public_key_bytes(peer.sealing_key) == agency.sealing_public_key
        comm = topo.comms[agency.agency_id].config
        assert comm.exchange_ca is not None
        assert comm.exchange_ca.resolve() == topo.layout.pki.agencies_ca.cert.resolve()


def test_the_ceremony_in_two_commands_moves_no_private_key(
    topo: Topology, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``renkei comm exchange-csr`` at the agency, ``renkei pki sign-exchange`` at the CA:
    only the request and the certificate travel."""
    csr, pem = tmp_path / "pension.csr", tmp_path / "pension-exchange.pem"
    config = topo.layout.comm_config(PENSION)
    assert cli.main(["comm", "exchange-csr", "--config", str(config), "--output", str(csr)]) == 0
    assert b"PRIVATE" not in csr.read_bytes()
    agencies_ca = str(topo.layout.pki.agencies_ca.folder)
    sign = ["pki", "sign-exchange", "--ca", agencies_ca, "--csr", str(csr)]
    assert cli.main([*sign, "--agency", PENSION, "--output", str(pem)]) == 0
    ca = x509.load_pem_x509_certificate(topo.layout.pki.agencies_ca.cert.read_bytes())
    peer = exchange_cert.verify_certificate(
        exchange_cert.certificate_der(pem.read_bytes()), ca, PENSION
    )
    directory = topo.hub.hub.directory.get(PENSION)
    assert sealing.public_key_bytes(peer.sealing_key) == directory.sealing_public_key
    # The CA signs a request only under the name it carries.
    assert cli.main([*sign, "--agency", CITY, "--output", str(tmp_path / "x.pem")]) == 2
    assert "does not name agency" in capsys.readouterr().err
    # Only the agencies' CA certifies a sealing key: the hub's CA operator cannot.
    hub_ca = ["--ca", str(topo.layout.pki.hub_ca.folder)]
    refused = ["pki", "sign-exchange", *hub_ca, "--csr", str(csr), "--agency", PENSION]
    assert cli.main([*refused, "--output", str(tmp_path / "y.pem")]) == 2
    assert "is not the agencies' CA" in capsys.readouterr().err
