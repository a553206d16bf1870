"""A revoked exchange certificate is refused while the communication servers serve.

The agencies' CA revokes an agency's exchange certificate (its sealing and
signing keys) in the same CRL as its TLS certificates. Every communication
server rereads that list while serving, so within the reload interval nothing
is sealed to a revoked key any more, and no query signed by one is answered:
a leaked exchange key stops being of use to whoever holds it, the hub included.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator

import grpc
import pytest
from cryptography import x509
from support.aio import LoopThread
from support.topology import CITY, PENSION, Topology, query, start_topology

from ops import pki as ops_pki
from ops.deploy import Settings, exchange_certificate_path
from renkei.comm.v1 import comm_pb2_grpc
from renkei.errors import from_rpc_error
from renkei.grpcutil.client import channel

pytestmark = pytest.mark.dishonest  # docs/separation.md, "The dishonest-operator suite"

RELOAD_SECONDS = 0.2
_RUNS = itertools.count()
PENSION_QUERY = ("年金給付関係情報", "二十七")


@pytest.fixture
def topo(
    loop: LoopThread, database: tuple[str | None, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Topology]:
    url, prefix = database
    settings = Settings(
        answer_timeout_seconds=0.5,
        query_timeout_seconds=3.0,
        database_url=url,
        schema_prefix=f"{prefix}_xrev{next(_RUNS)}",  # a fresh store per test
        crl_reload_seconds=RELOAD_SECONDS,
    )
    topology = loop.run(start_topology(tmp_path_factory.mktemp("xrev"), settings))
    yield topology
    loop.run(topology.stop())


async def _ask(topo: Topology) -> tuple[str, str]:
    target = f"127.0.0.1:{topo.comms[CITY].port}"
    async with channel(target, topo.layout.pki.agency(CITY), peer=f"agency:{CITY}") as ch:
        stub = comm_pb2_grpc.RequesterServiceStub(ch)
        try:
            await stub.Query(query(CITY, topo.people[0], PENSION, *PENSION_QUERY), timeout=10)
        except grpc.aio.AioRpcError as err:
            return err.code().name, from_rpc_error(err, fallback_reason="").reason
    return "OK", ""


def _revoke_exchange(topo: Topology, agency_id: str) -> None:
    pem = exchange_certificate_path(topo.layout, agency_id).read_bytes()
    ops_pki.revoke(topo.layout.pki.agencies_ca, [x509.load_pem_x509_certificate(pem).serial_number])


def _until_refused(loop: LoopThread, topo: Topology) -> tuple[str, str]:
    async def poll() -> tuple[str, str]:
        give_up = time.monotonic() + 30  # a bound, not a speed: reloads come every 0.2 s
        while True:
            answer = await _ask(topo)
            if answer != ("OK", "") or time.monotonic() > give_up:
                return answer
            await asyncio.sleep(RELOAD_SECONDS / 2)

    return loop.run(poll(), timeout=60)


def test_the_requester_seals_nothing_to_a_revoked_provider_key(
    loop: LoopThread, topo: Topology
) -> None:
    assert loop.run(_ask(topo)) == ("OK", "")
    _revoke_exchange(topo, PENSION)

    assert _until_refused(loop, topo) == ("PERMISSION_DENIED", "PEER_CERTIFICATE_REVOKED")
    last = topo.store(CITY).log_rows(limit=10**6)[-1]
    assert (last.counterpart_agency_id, last.reason) == (PENSION, "PEER_CERTIFICATE_REVOKED")


def test_the_provider_answers_no_query_signed_by_a_revoked_requester_key(
    loop: LoopThread, topo: Topology
) -> None:
    assert loop.run(_ask(topo)) == ("OK", "")
    _revoke_exchange(topo, CITY)

    assert _until_refused(loop, topo) == ("PERMISSION_DENIED", "PEER_CERTIFICATE_REVOKED")
    provided = topo.store(PENSION).log_rows(limit=10**6)[-1]
    asked = topo.store(CITY).log_rows(limit=10**6)[-1]
    assert (provided.reason, asked.reason) == ("PEER_CERTIFICATE_REVOKED",) * 2
    assert provided.serial == asked.serial is not None  # one exchange, in both shares
