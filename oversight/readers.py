"""Reading every share of the log (R27): the hub's entries, each agency's rows, the consent log.

The hub's entries come from ``renkei.log.v1.LogService`` (GetEntries by leaf
index, for the oversight body every entry) and are trusted only as far as a
checkpoint the hub signed and a witness cosigned: every entry up to the
checkpoint's size is read, the tree is rebuilt from their leaf hashes, and its
root must be the checkpoint's. When it is not, the hub served at least one
entry its log does not hold; ``_locate`` finds which by halving the tree with
inclusion proofs (each half's hash the hub claims must add up to the verified
hash above it), a few dozen proofs per forged entry, and those entries are
reported and left out. An entry that does not decode, or comes back under
another leaf index or serial, is left out too.

Agencies' rows stream from each communication server's ``AgencyLogService``,
the consent log from the registry's ``ConsentLogService``; both are the
parties' own word, which reconcile (oversight/reconcile.py) holds against the
hub's. Every call is bounded in time; a refusal or an unreachable party is a
``RenkeiError`` (its reason, or ``OVERSIGHT_PEER_UNAVAILABLE``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

import aiohttp
import grpc
from google.protobuf import timestamp_pb2

from oversight.config import HubSource
from oversight.model import PROVIDER, REQUESTER, AgencyRow, ConsentRow, HubEntry
from renkei.errors import (
    FailedPrecondition,
    PermissionDenied,
    RenkeiError,
    Unavailable,
    from_rpc_error,
)
from renkei.log.v1 import log_pb2, log_pb2_grpc
from renkei.oversight.v1 import oversight_pb2, oversight_pb2_grpc
from renkei.pki import HUB_ID, TlsFiles, party_host
from renkei.tlog import checkpoint as tlog_checkpoint
from renkei.tlog import merkle, note, tiles
from renkei.tlog.entry import Entry, EntryError
from renkei.tlog.witness_client import client_context

T = TypeVar("T")
PEER_UNAVAILABLE = "OVERSIGHT_PEER_UNAVAILABLE"
CALL_TIMEOUT_SECONDS = 30.0
_ROLES = {oversight_pb2.ROLE_REQUESTER: REQUESTER, oversight_pb2.ROLE_PROVIDER: PROVIDER}


@dataclass(frozen=True, slots=True)
class Unverified:
    """A leaf whose served entry the checkpoint does not commit to, and why."""

    leaf_index: int
    problem: str


@dataclass
class HubRead:
    """The hub's entries under one verified checkpoint."""

    checkpoint: tlog_checkpoint.Checkpoint
    note: bytes  # the signed checkpoint as the hub served it, cosignatures included
    entries: list[HubEntry] = field(default_factory=list)
    unverified: list[Unverified] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)  # every served entry, when kept

    @property
    def verified(self) -> bool:
        return not self.unverified


async def _all(work: Sequence[Awaitable[T]]) -> list[T]:
    """Every result in order; on a failure the rest are cancelled and it is raised as itself."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(_awaited(w)) for w in work]
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return [t.result() for t in tasks]


async def _awaited(work: Awaitable[T]) -> T:
    return await work


def _rpc_error(err: grpc.aio.AioRpcError) -> RenkeiError:
    return from_rpc_error(err, fallback_reason=PEER_UNAVAILABLE)


def verify_note(signed: bytes, source: HubSource) -> tlog_checkpoint.Checkpoint:
    """The checkpoint, if the hub's key signed it and (unless configured off) a witness."""
    try:
        return tlog_checkpoint.verify_checkpoint(
            signed,
            source.log_verifier(),
            source.witness_verifiers(),
            source.require_witness,
            origin=source.origin,
        )
    except note.NoteError as err:
        raise FailedPrecondition(
            "CHECKPOINT_NOT_VERIFIED", f"the hub's checkpoint does not verify: {err}"
        ) from None


class HubReader:
    """LogService on a channel the caller holds (and closes)."""

    def __init__(
        self, channel: grpc.aio.Channel, source: HubSource, *, timeout: float = CALL_TIMEOUT_SECONDS
    ) -> None:
        self._stub = log_pb2_grpc.LogServiceStub(channel)
        self._source = source
        self._timeout = timeout

    async def checkpoint(self) -> bytes:
        try:
            response = await self._stub.GetCheckpoint(
                log_pb2.GetCheckpointRequest(), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as err:
            raise _rpc_error(err) from None
        return bytes(response.checkpoint)

    async def _entries(self, indices: Sequence[int]) -> list[log_pb2.LogReceipt]:
        try:
            response = await self._stub.GetEntries(
                log_pb2.GetEntriesRequest(leaf_indices=indices), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as err:
            raise _rpc_error(err) from None
        return list(response.entries)

    async def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        try:
            response = await self._stub.GetInclusionProof(
                log_pb2.GetInclusionProofRequest(leaf_index=index, tree_size=size),
                timeout=self._timeout,
            )
        except grpc.aio.AioRpcError as err:
            raise _rpc_error(err) from None
        return [bytes(h) for h in response.hashes]

    async def read(self, *, keep_raw: bool = False) -> HubRead:
        """Every entry up to the latest witnessed checkpoint, each verified against it."""
        signed = await self.checkpoint()
        cp = verify_note(signed, self._source)
        size = cp.size
        batch, gate = self._source.batch, asyncio.Semaphore(self._source.parallel)

        async def chunk(lo: int) -> list[log_pb2.LogReceipt]:
            async with gate:
                return await self._entries(range(lo, min(lo + batch, size)))

        served: list[bytes] = []
        # In waves, so a million entries are not a thousand tasks at once.
        wave = batch * self._source.parallel * 4
        for start in range(0, size, wave):
            parts = await _all([chunk(lo) for lo in range(start, min(start + wave, size), batch)])
            for lo, part in zip(range(start, size, batch), parts, strict=False):
                served.extend(_in_place(lo, part, size))
        if len(served) != size:
            raise FailedPrecondition(
                "HUB_ENTRIES_INCOMPLETE",
                f"the hub served {len(served)} entries of the {size} its checkpoint names",
            )
        leaves = [merkle.leaf_hash(e) for e in served]
        bad: dict[int, str] = {}
        if merkle.root(leaves) != cp.root_hash:
            forged = await _locate(leaves, size, cp.root_hash, self.inclusion_proof)
            bad = dict.fromkeys(
                forged, "not the entry the checkpoint commits to (forged or altered)"
            )
        read = entries_of(served, cp, signed, bad)
        if keep_raw:
            read.raw = served
        return read


def _in_place(lo: int, part: Sequence[log_pb2.LogReceipt], size: int) -> list[bytes]:
    """The entries of a GetEntries answer; b"" for any not at the leaf index asked for."""
    want = min(lo + len(part), size) - lo
    out = []
    for i, receipt in enumerate(part[:want]):
        out.append(bytes(receipt.entry) if receipt.leaf_index == lo + i else b"")
    return out


def verify_entries(served: list[bytes], cp: tlog_checkpoint.Checkpoint, signed: bytes) -> HubRead:
    """The entries ``served`` (leaf 0 on) as far as ``cp`` commits to them, offline.

    Without proofs a forged entry cannot be told from the others: when the
    entries do not rebuild the checkpoint's root, every one is unverified.
    """
    leaves = [merkle.leaf_hash(e) for e in served]
    if merkle.root(leaves) == cp.root_hash:
        return entries_of(served, cp, signed, {})
    why = "the entries do not rebuild the checkpoint's root"
    return entries_of(served, cp, signed, dict.fromkeys(range(len(served)), why))


def entries_of(
    served: list[bytes], cp: tlog_checkpoint.Checkpoint, signed: bytes, bad: dict[int, str]
) -> HubRead:
    """A HubRead of ``served`` but the leaves ``bad`` names (index -> problem)."""
    read = HubRead(cp, signed)
    for i, data in enumerate(served):
        if i in bad:
            read.unverified.append(Unverified(i, bad[i]))
            continue
        try:
            read.entries.append(HubEntry.of(i, Entry.decode(data)))
        except EntryError as err:  # committed to, but not an entry: the hub wrote garbage
            read.unverified.append(Unverified(i, f"not an entry: {err}"))
    return read


def _split(width: int) -> int:
    """RFC 9162: the largest power of two smaller than ``width``."""
    return 1 << ((width - 1).bit_length() - 1)


def _path(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges of leaf ``index``'s inclusion proof, leaf upwards (RFC 9162 2.1.3.1)."""
    lo, hi, out = 0, size, []
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo += k
    return out[::-1]


async def _locate(
    leaves: list[bytes],
    size: int,
    root: bytes,
    proof: Callable[[int, int], Awaitable[list[bytes]]],
) -> list[int]:
    """The leaves whose hashes are not those the tree of ``root`` holds.

    A subtree whose rebuilt hash is the verified one is fine; otherwise its two
    halves' hashes are taken from the hub's inclusion proofs of their first
    leaves, checked to combine into the verified hash, and the search goes on
    in each half that differs. Proofs that do not combine are a hub that lies.
    """
    proofs: dict[int, dict[tuple[int, int], bytes]] = {}

    async def sibling(index: int, lo: int, hi: int) -> bytes:
        if index not in proofs:
            hashes = await proof(index, size)
            ranges = _path(index, size)
            if len(hashes) != len(ranges):
                raise FailedPrecondition(
                    "HUB_PROOF_INVALID",
                    f"the hub's inclusion proof of leaf {index} has {len(hashes)} hashes,"
                    f" not {len(ranges)}",
                )
            proofs[index] = dict(zip(ranges, hashes, strict=True))
        return proofs[index][(lo, hi)]

    bad: list[int] = []
    todo = [(0, size, root)]
    while todo:
        lo, hi, want = todo.pop()
        if merkle.root(leaves[lo:hi]) == want:
            continue
        if hi - lo == 1:
            bad.append(lo)
            continue
        mid = lo + _split(hi - lo)
        right = await sibling(lo, mid, hi)
        left = await sibling(mid, lo, mid)
        if merkle.node_hash(left, right) != want:
            raise FailedPrecondition(
                "HUB_PROOF_INVALID",
                f"the hub's proofs for leaves {lo} to {hi - 1} do not add up to its checkpoint",
            )
        todo += [(mid, hi, right), (lo, mid, left)]
    return sorted(bad)


# -- the hub over tlog-tiles (HTTPS) ---------------------------------------------------------


class TilesReader:
    """The hub's log by C2SP tlog-tiles over HTTPS (hub_server/tiles_server.py).

    Entry bundles (256 entries a request) go only to the oversight body's client
    certificate. The entries are verified as over gRPC, by rebuilding the root;
    a forged entry is located with the level-0 hash tiles (the leaf hashes),
    which must themselves rebuild the checkpoint's root.
    """

    def __init__(
        self,
        url: str,
        tls: TlsFiles,
        source: HubSource,
        *,
        server_name: str | None = None,
        timeout: float = CALL_TIMEOUT_SECONDS,
    ) -> None:
        self._url = url.rstrip("/")
        self._ssl = client_context(tls.ca_cert, cert=tls.cert, key=tls.key)
        self._server_name = server_name or party_host(HUB_ID)
        self._source = source
        self._timeout = timeout

    async def _get(self, session: aiohttp.ClientSession, path: str) -> bytes:
        url = f"{self._url}/{path}"
        try:
            async with asyncio.timeout(self._timeout):
                async with session.get(
                    url, ssl=self._ssl, server_hostname=self._server_name
                ) as response:
                    body = await response.read()
                    status = response.status
        except (TimeoutError, aiohttp.ClientError, OSError) as err:
            raise Unavailable(PEER_UNAVAILABLE, f"{url}: {type(err).__name__}: {err}") from None
        if status == 403:
            raise PermissionDenied(
                "ENTRY_BUNDLES_REFUSED", f"{url}: {body.decode('utf-8', 'replace')[:200]}"
            )
        if status != 200:
            raise Unavailable(
                PEER_UNAVAILABLE, f"{url}: HTTP {status} {body.decode('utf-8', 'replace')[:200]}"
            )
        return body

    async def read(self, *, keep_raw: bool = False) -> HubRead:
        async with aiohttp.ClientSession() as session:
            signed = await self._get(session, tiles.CHECKPOINT_PATH)
            cp = verify_note(signed, self._source)
            size = cp.size
            gate = asyncio.Semaphore(self._source.parallel * 4)
            count = -(-size // tiles.TILE_WIDTH)

            async def bundle(n: int) -> list[bytes]:
                width = min(tiles.TILE_WIDTH, size - n * tiles.TILE_WIDTH)
                async with gate:
                    body = await self._get(session, tiles.EntryBundle(n, width).path())
                try:
                    got = tiles.decode_bundle(body)
                except ValueError as err:
                    raise FailedPrecondition(
                        "HUB_ENTRIES_INCOMPLETE", f"entry bundle {n}: {err}"
                    ) from None
                if len(got) != width:
                    raise FailedPrecondition(
                        "HUB_ENTRIES_INCOMPLETE",
                        f"entry bundle {n}: {len(got)} entries, not {width}",
                    )
                return got

            async def leaf_tile(n: int) -> list[bytes]:
                width = min(tiles.TILE_WIDTH, size - n * tiles.TILE_WIDTH)
                async with gate:
                    body = await self._get(session, tiles.HashTile(0, n, width).path())
                if len(body) != width * merkle.HASH_SIZE:
                    raise FailedPrecondition(
                        "HUB_PROOF_INVALID", f"hash tile 0/{n}: {len(body)} bytes"
                    )
                h = merkle.HASH_SIZE
                return [body[i : i + h] for i in range(0, len(body), h)]

            served: list[bytes] = []
            wave = 256  # bundles in flight per wave: 65,536 entries
            for start in range(0, count, wave):
                parts = await _all([bundle(n) for n in range(start, min(start + wave, count))])
                for part in parts:
                    served.extend(part)
            leaves = [merkle.leaf_hash(e) for e in served]
            bad: dict[int, str] = {}
            if merkle.root(leaves) != cp.root_hash:
                true: list[bytes] = []
                for start in range(0, count, wave):
                    for part in await _all(
                        [leaf_tile(n) for n in range(start, min(start + wave, count))]
                    ):
                        true.extend(part)
                if merkle.root(true) != cp.root_hash:
                    raise FailedPrecondition(
                        "HUB_PROOF_INVALID", "the hub's hash tiles do not add up to its checkpoint"
                    )
                why = "not the entry the checkpoint commits to (forged or altered)"
                bad = {i: why for i, (a, b) in enumerate(zip(leaves, true, strict=True)) if a != b}
        read = entries_of(served, cp, signed, bad)
        if keep_raw:
            read.raw = served
        return read


# -- agencies and the registry -------------------------------------------------------------


def read_range(start: datetime | None, end: datetime | None) -> oversight_pb2.ReadRange:
    r = oversight_pb2.ReadRange()
    if start is not None:
        r.start_time.FromDatetime(start.astimezone(UTC))
    if end is not None:
        r.end_time.FromDatetime(end.astimezone(UTC))
    return r


def _time(ts: timestamp_pb2.Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)


def agency_row(r: oversight_pb2.AgencyLogRow) -> AgencyRow:
    role = _ROLES.get(r.role)
    if role is None:
        raise FailedPrecondition(
            "AGENCY_ROW_INVALID", f"row {r.id} of agency {r.agency_id!r}: no role"
        )
    return AgencyRow(
        r.id,
        r.serial,
        role,
        _time(r.logged_at),
        r.agency_id,
        r.counterpart_agency_id,
        r.info_kind,
        r.legal_basis_item,
        r.person,
        r.staff_id,
        r.terminal_id,
        bytes(r.content_sha256),
        r.purpose,
        r.outcome,
        r.reason,
        r.person_municipality,
    )


def consent_row(r: oversight_pb2.ConsentLogRow) -> ConsentRow:
    return ConsentRow(
        r.id,
        r.attempt_id,
        r.caller,
        _time(r.attempted_at),
        r.consent_id,
        r.giver,
        r.purpose,
        r.outcome,
        r.answered,
        r.reason,
        r.matched,
    )


async def read_agency(
    channel: grpc.aio.Channel,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    batch_size: int = 5000,
    timeout: float = 600.0,
) -> list[AgencyRow]:
    """An agency's share, rows logged in [start, end), in id order."""
    stub = oversight_pb2_grpc.AgencyLogServiceStub(channel)
    request = oversight_pb2.ReadAgencyLogRequest(
        range=read_range(start, end), batch_size=batch_size
    )
    rows: list[AgencyRow] = []
    try:
        async for response in stub.ReadAgencyLog(request, timeout=timeout):
            rows.extend(agency_row(r) for r in response.rows)
    except grpc.aio.AioRpcError as err:
        raise _rpc_error(err) from None
    return rows


async def read_consent(
    channel: grpc.aio.Channel,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    batch_size: int = 5000,
    timeout: float = 600.0,
) -> list[ConsentRow]:
    """The registry's consent log, attempts in [start, end), in id order."""
    stub = oversight_pb2_grpc.ConsentLogServiceStub(channel)
    request = oversight_pb2.ReadConsentLogRequest(
        range=read_range(start, end), batch_size=batch_size
    )
    rows: list[ConsentRow] = []
    try:
        async for response in stub.ReadConsentLog(request, timeout=timeout):
            rows.extend(consent_row(r) for r in response.rows)
    except grpc.aio.AioRpcError as err:
        raise _rpc_error(err) from None
    return rows
