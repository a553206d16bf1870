"""Targets: each turns a drawn scenario entry into one gRPC call.

A target names the endpoint a caller talks to, the stub, and how to build
the request (well formed, or malformed on purpose). Adding one means a class
with these four methods and an entry in ``TARGETS``.

- ``hub``: HubService.Approve as the requester agency. A denial is an answer
  there, counted as the pseudo-status ``DENIED`` with the answer's reason.
- ``comm``: RequesterService.Query at the requester's own communication
  server, as that agency: a full linkage (requester comm -> hub -> provider
  comm -> legacy system and back).
- ``numbering``: NumberingService.LookupNumber, by default as the registry
  (``service:registry``), the one party allowed to look Numbers up.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

import grpc

from ops.load.scenario import Entry, Pick, Scenario, ScenarioError
from ops.load.stats import DENIED, OK, Outcome
from renkei.comm.v1 import comm_pb2, comm_pb2_grpc
from renkei.hub.v1 import hub_pb2, hub_pb2_grpc
from renkei.numbering.v1 import numbering_pb2, numbering_pb2_grpc

HUB_ENDPOINT, NUMBERING_ENDPOINT = "hub", "numbering"


# The comm target queries as this staff member, from terminal LOAD-<worker>; the
# requester's staff register must grant it (docs/load-testing.md).
LOAD_STAFF_ID = "LOAD"


class Target(Protocol):
    name: ClassVar[str]
    needs: ClassVar[tuple[str, ...]]

    def endpoint_of(self, caller: str) -> str:
        """Which endpoint a caller's requests go to: "hub", "numbering" or an agency id."""
        ...

    def stub(self, channel: grpc.aio.Channel) -> Any: ...

    async def call(self, stub: Any, pick: Pick, timeout: float, terminal: str) -> Outcome:
        """One call; an answer's outcome (a refusal raises grpc.aio.AioRpcError)."""
        ...


def check(target: Target, scenario: Scenario) -> None:
    """Refuse a scenario that lacks what the target needs, naming the entry and field."""
    for entry in (*scenario.lawful, *scenario.unlawful):
        for name in target.needs:
            if not getattr(entry, name):
                raise ScenarioError(f"{entry.where}: the {target.name} target needs {name}")


class HubApprove:
    name: ClassVar[str] = "hub"
    needs: ClassVar[tuple[str, ...]] = ("provider", "info_kind", "item")

    def endpoint_of(self, caller: str) -> str:
        return HUB_ENDPOINT

    def stub(self, channel: grpc.aio.Channel) -> Any:
        return hub_pb2_grpc.HubServiceStub(channel)

    async def call(self, stub: Any, pick: Pick, timeout: float, terminal: str) -> Outcome:
        e = pick.entry
        # Malformed: no legal-basis item (INVALID_ARGUMENT INVALID_FIELD).
        item = "" if pick.klass == "malformed" else e.item
        request = hub_pb2.ApproveRequest(
            provider_agency_id=e.provider, info_kind=e.info_kind, legal_basis_item=item
        )
        answer = await stub.Approve(request, timeout=timeout)
        if answer.decision == hub_pb2.DECISION_APPROVED:
            return Outcome(OK)
        return Outcome(DENIED, answer.reason)


class CommQuery:
    name: ClassVar[str] = "comm"
    needs: ClassVar[tuple[str, ...]] = ("provider", "info_kind", "item", "persons")

    def endpoint_of(self, caller: str) -> str:
        return caller  # each agency queries through its own server

    def stub(self, channel: grpc.aio.Channel) -> Any:
        return comm_pb2_grpc.RequesterServiceStub(channel)

    async def call(self, stub: Any, pick: Pick, timeout: float, terminal: str) -> Outcome:
        e = pick.entry
        # Malformed: no local person id (INVALID_ARGUMENT INVALID_FIELD).
        person = "" if pick.klass == "malformed" else pick.person
        request = comm_pb2.QueryRequest(
            local_person_id=person,
            provider_agency_id=e.provider,
            info_kind=e.info_kind,
            legal_basis_item=e.item,
            purpose="load test (renkei load)",
            staff_id=LOAD_STAFF_ID,
            terminal_id=terminal,
        )
        await stub.Query(request, timeout=timeout)
        return Outcome(OK)


class NumberingLookup:
    name: ClassVar[str] = "numbering"
    needs: ClassVar[tuple[str, ...]] = ("persons",)

    def endpoint_of(self, caller: str) -> str:
        return NUMBERING_ENDPOINT

    def stub(self, channel: grpc.aio.Channel) -> Any:
        return numbering_pb2_grpc.NumberingServiceStub(channel)

    async def call(self, stub: Any, pick: Pick, timeout: float, terminal: str) -> Outcome:
        # Malformed: a resident code of 5 digits, not 11 (INVALID_ARGUMENT INVALID_FIELD).
        code = pick.person[:5] if pick.klass == "malformed" else pick.person
        await stub.LookupNumber(
            numbering_pb2.LookupNumberRequest(resident_code=code), timeout=timeout
        )
        return Outcome(OK)


TARGETS: dict[str, type[HubApprove] | type[CommQuery] | type[NumberingLookup]] = {
    t.name: t for t in (HubApprove, CommQuery, NumberingLookup)
}


def target(name: str) -> Target:
    try:
        return TARGETS[name]()
    except KeyError:
        raise ValueError(f"unknown target {name!r}; one of {sorted(TARGETS)}") from None


def entries(scenario: Scenario) -> tuple[Entry, ...]:
    return (*scenario.lawful, *scenario.unlawful)
