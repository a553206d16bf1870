"""Checking this agency's share of the hub's log against the hub's signed tree (issue 14).

One run: the hub's latest checkpoint, trusted only under the hub's signature and
a trusted witness's cosignature; a consistency proof from the last checkpoint
this server trusted (a failure is a fork, a smaller tree a rollback); then for
every receipt not yet verified below the checkpoint's size, an inclusion proof
of the leaf hash of *our own* copy of the entry, and the hub's copy compared
byte for byte. Every problem names what failed (the serial, the leaf, the
field and both values), is logged at ERROR and counted in the status row; only
a run with none marks the receipts verified and trusts the new checkpoint, so
a problem is found again on every run until someone looks.

The run returns what a proof bundle needs (the checkpoint, the previous one and
the consistency proof, per receipt our entry, its inclusion proof and what the
hub served), so ``renkei comm log verify --bundle`` can write one.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import grpc

from comm_server.config import LogConfig
from comm_server.log_client import MAX_ENTRIES_PER_CALL, LogReader
from comm_server.log_receipts import LogReceipt, ShareReceipt
from comm_server.log_trust import Status, Trusted, VerifyStore
from renkei.errors import RenkeiError
from renkei.logs import event
from renkei.tlog import checkpoint as tlog_checkpoint
from renkei.tlog import merkle, note
from renkei.tlog.entry import Entry, EntryError, differences

_log = logging.getLogger("comm_server.log_verify")

# Problem kinds.
SIGNATURE = "signature"  # the hub's signature is missing or bad
WITNESS = "witness"  # no trusted witness cosigned the checkpoint
ROLLBACK = "rollback"  # the tree is smaller than one trusted before
FORK = "fork"  # the tree is not an extension of the one trusted before
NOT_IN_TREE = "not_in_tree"  # our entry's leaf is not in the tree
MISSING = "missing"  # the hub cannot give its copy of our entry
# The hub's refusal of an entry it purged under retention (hub_server.retention).
ENTRY_PURGED = "ENTRY_PURGED"
CHANGED = "changed"  # the hub's copy differs from ours
RECEIPT = "receipt"  # a receipt kept here is not what it says

# Refusals that say the hub could not be asked, not that it answered wrong.
_CANNOT_RUN = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.CANCELLED,
    }
)
# Inclusion proofs asked at once.
_CONCURRENT_PROOFS = 16


class CannotVerify(Exception):
    """The job could not run (the hub unreachable, no LogService): the message says why."""


@dataclass(frozen=True)
class Keys:
    """Whom the job trusts: the hub's checkpoint key and the witnesses' keys."""

    hub: note.Verifier
    witnesses: tuple[note.Verifier, ...]
    require_witness: bool = True
    origin: str | None = None

    @classmethod
    def from_config(cls, config: LogConfig) -> Keys:
        return cls(
            note.parse_verifier_key(config.hub_key),
            tuple(tlog_checkpoint.parse_cosignature_verifier_key(w) for w in config.witness_keys),
            config.require_witness,
            config.origin,
        )


@dataclass(frozen=True)
class Problem:
    kind: str
    text: str
    serial: int | None = None
    leaf_index: int | None = None


@dataclass(frozen=True)
class ProvenEntry:
    """One receipt checked: what a proof bundle holds for it."""

    leaf_index: int
    serial: int
    entry: bytes  # our own copy, the one the inclusion proof is for
    inclusion: tuple[bytes, ...]  # empty when the hub refused it
    served: bytes | None  # the hub's copy; None when it could not give it
    purged: bool = False  # the hub purged its copy under retention (ENTRY_PURGED)


@dataclass(frozen=True)
class VerifyReport:
    checkpoint: bytes  # the signed note as the hub served it
    size: int
    root_hash: bytes
    previous: bytes | None  # the note trusted before, where the consistency proof starts
    previous_size: int
    consistency: tuple[bytes, ...]
    entries: tuple[ProvenEntry, ...]
    problems: tuple[Problem, ...]

    @property
    def clean(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        checked = f"{len(self.entries)} receipts checked against the checkpoint of size {self.size}"
        if self.clean:
            return f"{checked}: no problem"
        return f"{checked}: {len(self.problems)} problems"


def _cannot_run(err: RenkeiError) -> bool:
    return err.code in _CANNOT_RUN


def _refusal(err: RenkeiError) -> str:
    return f"{err.reason}: {err.message}"


def _where(r: ShareReceipt) -> str:
    return f"serial {r.serial} (leaf {r.leaf_index})"


def _shown(value: object) -> str:
    if isinstance(value, bytes):
        return repr(base64.b64encode(value).decode())
    if isinstance(value, datetime):
        return repr(value.isoformat())
    return repr(value)


def describe_difference(ours: bytes, theirs: bytes) -> str:
    """How the hub's copy of an entry differs from ours, field by field."""
    try:
        mine = Entry.decode(ours)
    except EntryError as err:
        return f"our copy is not an entry ({err})"
    try:
        hub = Entry.decode(theirs)
    except EntryError as err:
        return f"the hub's copy is not an entry ({err})"
    fields = differences(mine, hub)
    if not fields:  # canonical encodings: equal entries have equal bytes
        return "the hub's copy differs in its bytes"
    shown = ", ".join(
        f"{f} ({_shown(getattr(mine, f))} ours, {_shown(getattr(hub, f))} the hub's)"
        for f in fields
    )
    return f"the hub's entry differs in {shown}"


class ShareVerifier:
    """The verify job of one communication server."""

    def __init__(
        self,
        reader: LogReader,
        store: VerifyStore,
        keys: Keys,
        *,
        agency_id: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        # With it, a receipt kept for an entry this agency is no party to is a problem.
        self._agency_id = agency_id
        self._reader = reader
        self._store = store
        self._keys = keys
        self._clock = clock

    async def run(self, *, whole: bool = False) -> VerifyReport:
        """One run; ``CannotVerify`` if the hub could not be asked. Problems are in the report
        (and logged, and counted), not raised. ``whole`` checks every receipt of the share
        again, not only those since the last run: what catches an entry the hub's operator
        edited after this server had checked it (its leaf hash is unchanged in the tree)."""
        try:
            signed = await self._reader.checkpoint()
        except RenkeiError as err:
            raise CannotVerify(f"the hub's checkpoint: {_refusal(err)}") from None
        trusted = await self._store.trusted()
        try:
            cp = tlog_checkpoint.verify_checkpoint(
                signed,
                self._keys.hub,
                self._keys.witnesses,
                self._keys.require_witness,
                origin=self._keys.origin,
            )
        except tlog_checkpoint.MissingCosignatureError as err:
            return await self._finish(signed, None, trusted, (), [], [Problem(WITNESS, str(err))])
        except note.NoteError as err:
            problem = Problem(SIGNATURE, f"the hub's checkpoint is refused: {err}")
            return await self._finish(signed, None, trusted, (), [], [problem])
        problems: list[Problem] = []
        consistency = await self._consistency(cp, trusted, problems)
        receipts = await self._store.unverified(cp.size, whole=whole)
        proven = await self._entries(cp, receipts, problems)
        return await self._finish(signed, cp, trusted, consistency, proven, problems)

    async def _consistency(
        self,
        cp: tlog_checkpoint.Checkpoint,
        trusted: Trusted | None,
        problems: list[Problem],
    ) -> tuple[bytes, ...]:
        """The proof from the trusted checkpoint to ``cp``; a fork or rollback into problems."""
        if trusted is None or trusted.size == 0:
            return ()
        old = trusted.size
        if cp.size < old:
            problems.append(
                Problem(
                    ROLLBACK,
                    f"rollback: the hub's checkpoint has size {cp.size}, smaller than the size"
                    f" {old} this server trusted",
                )
            )
            return ()
        if cp.size == old:
            if cp.root_hash != trusted.root_hash:
                problems.append(
                    Problem(
                        FORK,
                        f"fork: the hub's checkpoint of size {cp.size} has root"
                        f" {cp.root_hash.hex()}, the one this server trusted at size {old}"
                        f" root {trusted.root_hash.hex()}",
                    )
                )
            return ()
        try:
            proof = await self._reader.consistency_proof(old, cp.size)
        except RenkeiError as err:
            if _cannot_run(err):
                raise CannotVerify(f"a consistency proof: {_refusal(err)}") from None
            problems.append(
                Problem(
                    FORK,
                    f"fork: the hub refused a consistency proof from size {old} (trusted) to"
                    f" size {cp.size} ({_refusal(err)})",
                )
            )
            return ()
        try:
            merkle.verify_consistency(old, cp.size, trusted.root_hash, cp.root_hash, proof)
        except ValueError as err:  # merkle.ProofError, or a malformed hash
            problems.append(
                Problem(
                    FORK,
                    f"fork: the hub's checkpoint of size {cp.size} is not consistent with the"
                    f" one of size {old} this server trusted ({err})",
                )
            )
        return tuple(proof)

    async def _entries(
        self,
        cp: tlog_checkpoint.Checkpoint,
        receipts: list[ShareReceipt],
        problems: list[Problem],
    ) -> list[ProvenEntry]:
        for r in receipts:
            self._check_receipt(r, problems)
        limit = asyncio.Semaphore(_CONCURRENT_PROOFS)

        async def prove(r: ShareReceipt) -> tuple[bytes, ...] | RenkeiError:
            async with limit:
                try:
                    return tuple(await self._reader.inclusion_proof(r.leaf_index, cp.size))
                except RenkeiError as err:
                    if _cannot_run(err):
                        raise CannotVerify(f"an inclusion proof: {_refusal(err)}") from None
                    return err

        proofs = await asyncio.gather(*(prove(r) for r in receipts))
        purged: set[int] = set()
        served = await self._served([r.leaf_index for r in receipts], purged)
        proven: list[ProvenEntry] = []
        for r, proof in zip(receipts, proofs, strict=True):
            if isinstance(proof, RenkeiError):
                problems.append(
                    Problem(
                        NOT_IN_TREE,
                        f"{_where(r)}: not in the tree of size {cp.size} (the hub refused"
                        f" its inclusion proof: {_refusal(proof)})",
                        r.serial,
                        r.leaf_index,
                    )
                )
                proof = ()
            else:
                try:
                    merkle.verify_inclusion(
                        merkle.leaf_hash(r.entry), r.leaf_index, cp.size, proof, cp.root_hash
                    )
                except ValueError as err:  # merkle.ProofError, or a malformed hash
                    problems.append(
                        Problem(
                            NOT_IN_TREE,
                            f"{_where(r)}: not in the tree of size {cp.size} ({err})",
                            r.serial,
                            r.leaf_index,
                        )
                    )
            theirs = served.get(r.leaf_index)
            if theirs is None and r.leaf_index in purged:
                pass  # past its retention at the hub: our copy, proven above, is the record
            elif theirs is None:
                problems.append(
                    Problem(
                        MISSING,
                        f"{_where(r)}: missing from the hub's log",
                        r.serial,
                        r.leaf_index,
                    )
                )
            elif theirs != r.entry:
                problems.append(
                    Problem(
                        CHANGED,
                        f"{_where(r)}: {describe_difference(r.entry, theirs)}",
                        r.serial,
                        r.leaf_index,
                    )
                )
            proven.append(
                ProvenEntry(r.leaf_index, r.serial, r.entry, proof, theirs, r.leaf_index in purged)
            )
        return proven

    def _check_receipt(self, r: ShareReceipt, problems: list[Problem]) -> None:
        """A receipt kept here that is not what its row says (the hub gave a bad one, or it
        was edited since), in full: the one canonical encoding, the serial, the parties."""
        try:
            entry = Entry.decode(r.entry)
        except EntryError as err:
            problems.append(
                Problem(
                    RECEIPT,
                    f"{_where(r)}: the receipt kept here is not an entry ({err})",
                    r.serial,
                    r.leaf_index,
                )
            )
            return
        if entry.serial != r.serial:
            problems.append(
                Problem(
                    RECEIPT,
                    f"{_where(r)}: the receipt kept here names serial {entry.serial}",
                    r.serial,
                    r.leaf_index,
                )
            )
        elif self._agency_id is not None and not entry.entitled(self._agency_id):
            problems.append(
                Problem(
                    RECEIPT,
                    f"{_where(r)}: the receipt kept here is an entry between"
                    f" {entry.requester!r} and {entry.provider!r}, not this agency's",
                    r.serial,
                    r.leaf_index,
                )
            )

    async def _served(self, indices: Sequence[int], purged: set[int]) -> dict[int, bytes]:
        """The hub's copies by leaf index; a leaf it cannot give is absent (and in
        ``purged`` when the hub said it purged it under retention).

        A batch refused is asked again in halves, down to single leaves, so that
        one entry the hub lacks (or refuses) hides none of the others.
        """
        out: dict[int, bytes] = {}
        pending = [
            list(indices[start : start + MAX_ENTRIES_PER_CALL])
            for start in range(0, len(indices), MAX_ENTRIES_PER_CALL)
        ]
        while pending:
            batch = pending.pop()
            got = await self._fetch(batch, purged)
            if got is not None:
                self._take(batch, got, out)
            elif len(batch) > 1:
                half = len(batch) // 2
                pending += [batch[:half], batch[half:]]
        return out

    async def _fetch(self, batch: list[int], purged: set[int]) -> list[LogReceipt] | None:
        try:
            return await self._reader.entries(batch)
        except RenkeiError as err:
            if _cannot_run(err):
                raise CannotVerify(f"the hub's entries: {_refusal(err)}") from None
            if len(batch) == 1 and err.reason == ENTRY_PURGED:
                purged.add(batch[0])
            return None

    @staticmethod
    def _take(asked: list[int], got: list[LogReceipt], out: dict[int, bytes]) -> None:
        wanted = set(asked)
        for e in got:
            if e.leaf_index in wanted:
                out.setdefault(e.leaf_index, e.entry)

    async def _finish(
        self,
        signed: bytes,
        cp: tlog_checkpoint.Checkpoint | None,
        trusted: Trusted | None,
        consistency: tuple[bytes, ...],
        proven: list[ProvenEntry],
        problems: list[Problem],
    ) -> VerifyReport:
        now = self._clock()
        if cp is not None and not problems:
            await self._store.passed(
                [p.leaf_index for p in proven], Trusted(cp.size, cp.root_hash, signed, now)
            )
            trusted_size = cp.size
        else:
            trusted_size = 0 if trusted is None else trusted.size
        await self._store.record_run(now, trusted_size, [p.text for p in problems])
        for p in problems:
            event(
                _log,
                "the hub's log failed a check of this agency's share",
                logging.ERROR,
                kind=p.kind,
                problem=p.text,
                serial=p.serial,
                leaf_index=p.leaf_index,
            )
        report = VerifyReport(
            checkpoint=signed,
            size=0 if cp is None else cp.size,
            root_hash=b"" if cp is None else cp.root_hash,
            previous=None if trusted is None else trusted.note,
            previous_size=0 if trusted is None else trusted.size,
            consistency=consistency,
            entries=tuple(proven),
            problems=tuple(problems),
        )
        event(
            _log,
            "this agency's share of the hub's log checked",
            logging.INFO if report.clean else logging.ERROR,
            size=report.size,
            receipts=len(proven),
            problems=len(problems),
        )
        return report


async def run_every(job: Callable[[], Awaitable[VerifyReport]], every: float) -> None:
    """``job`` every ``every`` seconds until cancelled; a failed run is logged, never raised."""
    while True:
        await asyncio.sleep(every)
        try:
            await job()
        except CannotVerify as err:
            event(_log, "the check of the hub's log could not run", logging.WARNING, why=str(err))
        except Exception:  # the server must outlive a bug in its checker; it is logged
            _log.exception("the check of the hub's log failed")


def describe_status(status: Status | None) -> str:
    """``renkei comm log status``: the last run, what is trusted, the problems found."""
    if status is None:
        return "the hub's log has never been checked here"
    lines = [
        f"last run: {status.last_run_at.isoformat()}",
        f"trusted tree size: {status.trusted_size}",
        f"problems in the last run: {status.last_run_problems}",
        f"problems found in all: {status.problems_found}",
    ]
    if status.last_problem is not None and status.last_problem_at is not None:
        lines.append(f"last problem ({status.last_problem_at.isoformat()}): {status.last_problem}")
    return "\n".join(lines)
