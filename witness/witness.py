"""The witness (c2sp.org/tlog-witness add-checkpoint): cosign a log's checkpoint only if it
is consistent with the latest one the witness accepted from that log.

The witness keeps, per log origin, the latest checkpoint it cosigned. A new one
is cosigned only when the log signed it, the caller names the witness's size as
the old size, and a consistency proof leads from the witness's root to the new
one; the check and the update are one compare-and-swap in the store, so two
requests racing from the same size cannot both win (the spec's rollback race).
A log that shows two trees to two parties has then to get both past the same
witness, which refuses the second: the split view is caught.

Every refusal is a :class:`WitnessError` carrying the HTTP status the spec
prescribes, so the HTTP layer only copies it out.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar, Protocol

from renkei.logs import event
from renkei.tlog import merkle, note
from renkei.tlog.checkpoint import Checkpoint, CheckpointFormatError, CosignatureSigner

_log = logging.getLogger("witness")

# The store keeps sizes as signed 64-bit integers; no real log comes near.
MAX_STORED_SIZE = (1 << 63) - 1


class WitnessError(Exception):
    """A refused add-checkpoint; ``status`` is the HTTP status the spec names for it."""

    status: ClassVar[int] = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class MalformedRequest(WitnessError):
    """The body, the checkpoint or its sizes are not what the spec allows (400)."""

    status = 400


class BadLogSignature(WitnessError):
    """No valid signature by the log's key, or a bad one by it (403)."""

    status = 403


class UnknownLog(WitnessError):
    """The checkpoint's origin is no log this witness is configured for (404)."""

    status = 404


class SizeConflict(WitnessError):
    """The old size is not the witness's latest size for the log (409); ``known_size`` is."""

    status = 409

    def __init__(self, message: str, known_size: int) -> None:
        super().__init__(message)
        self.known_size = known_size


class Inconsistent(WitnessError):
    """The checkpoint does not extend what the witness accepted (422): a fork or a bad proof."""

    status = 422


@dataclass(frozen=True)
class Accepted:
    """The latest checkpoint accepted for a log: its size and root, the cosigned note."""

    origin: str
    size: int
    root_hash: bytes
    checkpoint: bytes  # the log's verified signatures and the witness's cosignature
    accepted_at: datetime


class CheckpointStore(Protocol):
    """Where the witness keeps its one checkpoint per log."""

    def latest(self, origin: str) -> Accepted | None:
        """The latest accepted checkpoint of ``origin``, None before the first."""
        ...

    def advance(self, old_size: int, old_root: bytes | None, new: Accepted) -> int | None:
        """Store ``new`` if the log's record is still (``old_size``, ``old_root``), as one
        atomic step; ``old_root`` None means no record yet. None on success, else the
        size now stored (another request got there first)."""
        ...


class Witness:
    """``logs`` maps each origin the witness serves to the log's note verifier."""

    def __init__(
        self,
        store: CheckpointStore,
        signer: CosignatureSigner,
        logs: Mapping[str, note.Verifier],
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._signer = signer
        self._logs = dict(logs)
        self._now = now

    @property
    def origins(self) -> tuple[str, ...]:
        return tuple(self._logs)

    def latest(self, origin: str) -> Accepted | None:
        return self._store.latest(origin)

    def add_checkpoint(
        self, old_size: int, consistency_proof: Sequence[bytes], signed_checkpoint: bytes
    ) -> str:
        """The witness's cosignature line(s) for ``signed_checkpoint``, or a WitnessError."""
        checkpoint, log_signatures = self._verified(signed_checkpoint)
        where = f"{checkpoint.origin} {checkpoint.size}"
        if old_size > checkpoint.size:
            raise MalformedRequest(f"old size {old_size} is above the checkpoint's size ({where})")
        if checkpoint.size > MAX_STORED_SIZE:
            raise MalformedRequest(f"checkpoint size {checkpoint.size} is over 2^63-1")
        known = self._store.latest(checkpoint.origin)
        known_size = 0 if known is None else known.size
        if old_size != known_size:
            raise SizeConflict(
                f"old size {old_size} is not this witness's size {known_size} of"
                f" {checkpoint.origin}",
                known_size,
            )
        self._check_consistent(checkpoint, known, consistency_proof, signed_checkpoint)
        line = note.Signature(
            self._signer.name, self._signer.key_id, self._signer.sign(checkpoint.format().encode())
        )
        cosigned = note.sign(checkpoint.format(), [], keep=[*log_signatures, line])
        accepted = Accepted(
            checkpoint.origin, checkpoint.size, checkpoint.root_hash, cosigned, self._now()
        )
        now_stored = self._store.advance(
            known_size, None if known is None else known.root_hash, accepted
        )
        if now_stored is not None:
            raise SizeConflict(
                f"another checkpoint of {checkpoint.origin} was accepted meanwhile: this"
                f" witness's size is now {now_stored}",
                now_stored,
            )
        event(_log, "checkpoint cosigned", origin=checkpoint.origin, old_size=old_size,
              size=checkpoint.size)  # fmt: skip
        return line.line()

    def _verified(self, signed: bytes) -> tuple[Checkpoint, tuple[note.Signature, ...]]:
        """The checkpoint and the log's signatures on it: 400, 404 or 403 otherwise."""
        try:
            text, _ = note.parse(signed)
            checkpoint = Checkpoint.parse(text)
        except note.MalformedNoteError as err:
            raise MalformedRequest(f"not a signed checkpoint: {err}") from None
        except CheckpointFormatError as err:
            raise MalformedRequest(f"not a checkpoint: {err}") from None
        verifier = self._logs.get(checkpoint.origin)
        if verifier is None:
            raise UnknownLog(f"this witness knows no log with origin {checkpoint.origin!r}")
        try:
            opened = note.open(signed, [verifier])
        except (note.InvalidSignatureError, note.UnknownKeyError) as err:
            raise BadLogSignature(f"checkpoint of {checkpoint.origin}: {err}") from None
        except note.NoteError as err:
            raise MalformedRequest(f"not a signed checkpoint: {err}") from None
        return checkpoint, opened.signatures

    def _check_consistent(
        self,
        checkpoint: Checkpoint,
        known: Accepted | None,
        proof: Sequence[bytes],
        signed: bytes,
    ) -> None:
        def refuse(why: str) -> Inconsistent:
            # The spec: the request "might be proof of log misbehavior": the signed note and
            # the proof are kept in the log, where the oversight body can take them as evidence.
            event(_log, "checkpoint refused as inconsistent", logging.WARNING,
                  origin=checkpoint.origin, size=checkpoint.size, why=why,
                  known_size=None if known is None else known.size,
                  signed_checkpoint=signed.decode(),
                  proof=[base64.b64encode(h).decode() for h in proof])  # fmt: skip
            return Inconsistent(f"checkpoint {checkpoint.origin} {checkpoint.size}: {why}")

        if checkpoint.size == 0 and checkpoint.root_hash != merkle.EMPTY_ROOT:
            raise refuse("a tree of size 0 must have the empty tree's root hash")
        if known is None or known.size == 0:
            if proof:
                raise refuse(f"from size 0 the consistency proof must be empty, not {len(proof)}")
            return
        try:
            merkle.verify_consistency(
                known.size, checkpoint.size, known.root_hash, checkpoint.root_hash, proof
            )
        except merkle.ProofError as err:
            raise refuse(
                f"not consistent with size {known.size} this witness accepted: {err}"
            ) from None
