"""The hub's verifiable log in memory, for the agencies' verify job: no database, no socket.

``FakeHubLog`` keeps entries, their RFC 9162 tree (``MemoryHashStore`` and
``CompactRange``), and signs checkpoints with a hub key that a witness cosigns;
it answers as ``comm_server.log_client.LogReader`` does, and can be made to lie
the ways the verify job must catch: a served entry edited (``edit``), the tree
rewritten under it (``rewrite``), an entry it will not give (``withhold``), an
older checkpoint served (``publish``), no cosignature (``cosigned = False``), a
broken hub signature (``bad_signature``), or no answer at all (``unreachable``).
``MemoryVerifyStore`` is the job's store in a dict; ``start_log_service`` serves a
``FakeHubLog`` as renkei.log.v1.LogService on loopback (integration tests).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, NoReturn

import grpc
from cryptography.hazmat.primitives.asymmetric import ed25519

from comm_server.config import LogConfig
from comm_server.log_receipts import LogReceipt, ShareReceipt
from comm_server.log_trust import Status, Trusted
from comm_server.log_verify import Keys
from renkei.errors import InvalidArgument, NotFound, PermissionDenied, RenkeiError, Unavailable
from renkei.log.v1 import log_pb2, log_pb2_grpc
from renkei.tlog import checkpoint as cp
from renkei.tlog import merkle, note
from renkei.tlog.entry import EXCHANGE, OUTCOME, Entry

HUB_ORIGIN = "renkei.test/hub-log"
WITNESS_NAME = "renkei.test/witness"
LOGGED_AT = datetime(2026, 4, 1, 3, 0, tzinfo=UTC)
COSIGNED_AT = 1_780_000_000


def _salt(n: int) -> bytes:
    return n.to_bytes(16, "big")


class FakeHubLog:
    def __init__(self) -> None:
        self.signer = note.Ed25519Signer(
            HUB_ORIGIN, ed25519.Ed25519PrivateKey.from_private_bytes(b"\x11" * 32)
        )
        self.witness = cp.CosignatureSigner(
            WITNESS_NAME,
            ed25519.Ed25519PrivateKey.from_private_bytes(b"\x12" * 32),
            clock=lambda: COSIGNED_AT,
        )
        self.leaves: list[bytes] = []  # the entries the tree commits to
        self.served: dict[int, bytes] = {}  # what GetEntries gives, where it differs
        self.withheld: set[int] = set()
        self.no_proof: set[int] = set()  # leaves whose inclusion proof the hub refuses
        self.published: int | None = None  # the checkpoint's size; None: every leaf
        self.cosigned = True
        self.bad_signature = False
        self.unreachable = False
        self.asked_entries: list[list[int]] = []
        self._store = merkle.MemoryHashStore()
        self._tree = merkle.CompactRange(self._store)

    # -- writing, as the hub does ------------------------------------------------

    def append(self, entry: Entry) -> LogReceipt:
        data = entry.encode()
        index = len(self.leaves)
        self.leaves.append(data)
        self._tree.append([merkle.leaf_hash(data)])
        return LogReceipt(entry.serial, index, data)

    def exchange_entry(
        self, serial: int, requester: str, provider: str, outcome: str = ""
    ) -> LogReceipt:
        return self.append(
            Entry(
                kind=EXCHANGE,
                serial=serial,
                logged_at=LOGGED_AT,
                requester=requester,
                provider=provider,
                salt=_salt(len(self.leaves)),
                legal_basis_item="二十七",
                info_kind="年金給付関係情報",
                policy_version="v1",
                person="person-key",
                outcome=outcome,
            )
        )

    def outcome_entry(
        self, serial: int, requester: str, provider: str, outcome: str = "OK"
    ) -> LogReceipt:
        return self.append(
            Entry(
                kind=OUTCOME,
                serial=serial,
                logged_at=LOGGED_AT,
                requester=requester,
                provider=provider,
                salt=_salt(len(self.leaves)),
                outcome=outcome,
            )
        )

    def exchange(
        self, serial: int, requester: str, provider: str, outcome: str = "OK"
    ) -> tuple[LogReceipt, LogReceipt]:
        """An exchange begun and its outcome: the two receipts both sides are given."""
        begun = self.exchange_entry(serial, requester, provider)
        return begun, self.outcome_entry(serial, requester, provider, outcome)

    # -- lying ---------------------------------------------------------------------

    def edit(self, leaf: int, **changes: object) -> None:
        """The hub's row edited: GetEntries serves the change, the tree is as it was."""
        self.served[leaf] = replace(Entry.decode(self.leaves[leaf]), **changes).encode()  # type: ignore[arg-type]  # field values of the test's choosing

    def rewrite(self, leaf: int, **changes: object) -> None:
        """The tree rebuilt with that entry changed: served, hashed and signed so."""
        self.leaves[leaf] = replace(Entry.decode(self.leaves[leaf]), **changes).encode()  # type: ignore[arg-type]  # as in edit
        self._store = merkle.MemoryHashStore()
        self._tree = merkle.CompactRange(self._store)
        self._tree.append([merkle.leaf_hash(d) for d in self.leaves])

    def withhold(self, leaf: int) -> None:
        self.withheld.add(leaf)

    def publish(self, size: int | None) -> None:
        self.published = size

    # -- reading, as LogService answers (comm_server.log_client.LogReader) -------

    @property
    def size(self) -> int:
        return len(self.leaves) if self.published is None else self.published

    def root(self, size: int | None = None) -> bytes:
        return merkle.stored_root(self._store, self.size if size is None else size)

    def checkpoint_note(self) -> bytes:
        signed = cp.CheckpointSigner(self.signer).sign(self.size, self.root())
        if self.cosigned:
            signed = cp.cosign(signed, self.signer.verifier(), self.witness)
        if self.bad_signature:  # one bit of the hub's own signature flipped
            text, signatures = note.parse(signed)
            hub = self.signer.key_id
            signed = note.sign(
                text,
                [],
                keep=[
                    note.Signature(s.name, s.key_id, bytes([s.signature[0] ^ 1]) + s.signature[1:])
                    if s.key_id == hub
                    else s
                    for s in signatures
                ],
            )
        return signed

    def _reachable(self) -> None:
        if self.unreachable:
            raise Unavailable("HUB_UNAVAILABLE", "connection refused")

    async def checkpoint(self) -> bytes:
        self._reachable()
        return self.checkpoint_note()

    async def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        self._reachable()
        if not 0 <= index < size <= len(self.leaves):
            raise InvalidArgument("LEAF_INDEX_OUT_OF_RANGE", f"leaf {index} not in size {size}")
        if index in self.no_proof:
            raise NotFound("LEAF_NOT_FOUND", f"no leaf {index}")
        return merkle.stored_inclusion_proof(self._store, index, size)

    async def consistency_proof(self, old: int, new: int) -> list[bytes]:
        self._reachable()
        if not 0 < old <= new <= len(self.leaves):
            raise InvalidArgument("TREE_SIZE_OUT_OF_RANGE", f"sizes {old}, {new}")
        if old == new:
            return []
        return merkle.stored_consistency_proof(self._store, old, new)

    async def entries(self, indices: Sequence[int]) -> list[LogReceipt]:
        self._reachable()
        self.asked_entries.append(list(indices))
        if any(i in self.withheld or i >= len(self.leaves) for i in indices):
            raise PermissionDenied("ENTRY_NOT_ENTITLED", "not an entry the caller may see")
        out = []
        for i in indices:
            data = self.served.get(i, self.leaves[i])
            out.append(LogReceipt(Entry.decode(self.leaves[i]).serial, i, data))
        return out

    # -- what an agency configures -----------------------------------------------

    def log_config(self, *, require_witness: bool = True) -> LogConfig:
        return LogConfig(
            hub_key=self.signer.verifier().verifier_key(),
            witness_keys=(self.witness.verifier().verifier_key(),),
            require_witness=require_witness,
        )

    def keys(self) -> Keys:
        return Keys.from_config(self.log_config())


class MemoryVerifyStore:
    """``comm_server.log_trust.VerifyStore`` in memory."""

    def __init__(self, receipts: Sequence[ShareReceipt] = ()) -> None:
        self.receipts: dict[int, ShareReceipt] = {r.leaf_index: r for r in receipts}
        self.trust: Trusted | None = None
        self.state: Status | None = None

    def add(self, receipts: Sequence[ShareReceipt]) -> None:
        for r in receipts:
            self.receipts.setdefault(r.leaf_index, r)

    async def trusted(self) -> Trusted | None:
        return self.trust

    async def unverified(self, below: int, *, whole: bool = False) -> list[ShareReceipt]:
        return [
            r
            for _, r in sorted(self.receipts.items())
            if (whole or r.verified_at is None) and r.leaf_index < below
        ]

    async def passed(self, leaves: Sequence[int], trusted: Trusted) -> None:
        for leaf in leaves:
            self.receipts[leaf] = replace(self.receipts[leaf], verified_at=trusted.trusted_at)
        self.trust = trusted

    async def record_run(self, at: datetime, trusted_size: int, problems: Sequence[str]) -> None:
        before = self.state
        found = (0 if before is None else before.problems_found) + len(problems)
        self.state = Status(
            at,
            trusted_size,
            found,
            len(problems),
            problems[-1] if problems else (None if before is None else before.last_problem),
            at if problems else (None if before is None else before.last_problem_at),
        )

    async def status(self) -> Status | None:
        return self.state


class FakeLogServicer(log_pb2_grpc.LogServiceServicer):
    """renkei.log.v1.LogService over a ``FakeHubLog``, for a real gRPC server on loopback."""

    def __init__(self, log: FakeHubLog) -> None:
        self.log = log

    @staticmethod
    async def _refuse(context: grpc.aio.ServicerContext[Any, Any], err: RenkeiError) -> NoReturn:
        status = err.to_status()
        await context.abort(status.code, status.details, status.trailing_metadata)
        raise AssertionError("unreachable: abort raises")

    async def GetCheckpoint(  # gRPC method names are PascalCase
        self, request: log_pb2.GetCheckpointRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> log_pb2.GetCheckpointResponse:
        try:
            return log_pb2.GetCheckpointResponse(checkpoint=await self.log.checkpoint())
        except RenkeiError as err:
            await self._refuse(context, err)

    async def GetInclusionProof(  # gRPC method names are PascalCase
        self,
        request: log_pb2.GetInclusionProofRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> log_pb2.GetInclusionProofResponse:
        try:
            hashes = await self.log.inclusion_proof(request.leaf_index, request.tree_size)
        except RenkeiError as err:
            await self._refuse(context, err)
        return log_pb2.GetInclusionProofResponse(hashes=hashes)

    async def GetConsistencyProof(  # gRPC method names are PascalCase
        self,
        request: log_pb2.GetConsistencyProofRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> log_pb2.GetConsistencyProofResponse:
        try:
            hashes = await self.log.consistency_proof(request.first_size, request.second_size)
        except RenkeiError as err:
            await self._refuse(context, err)
        return log_pb2.GetConsistencyProofResponse(hashes=hashes)

    async def GetEntries(  # gRPC method names are PascalCase
        self, request: log_pb2.GetEntriesRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> log_pb2.GetEntriesResponse:
        try:
            got = await self.log.entries(list(request.leaf_indices))
        except RenkeiError as err:
            await self._refuse(context, err)
        return log_pb2.GetEntriesResponse(
            entries=[
                log_pb2.LogReceipt(serial=e.serial, leaf_index=e.leaf_index, entry=e.entry)
                for e in got
            ]
        )


async def start_log_service(log: FakeHubLog) -> tuple[grpc.aio.Server, int]:
    """A plaintext LogService on a free loopback port (the caller stops it)."""
    server = grpc.aio.server()
    log_pb2_grpc.add_LogServiceServicer_to_server(FakeLogServicer(log), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port
