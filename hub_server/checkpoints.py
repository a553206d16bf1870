"""Signing the log's checkpoints and having witnesses cosign them.

Every ``interval`` the hub signs a checkpoint of its committed tree (C2SP
tlog-checkpoint, key in its key store) if the tree grew or the last one is not
yet witnessed, offers it to each witness (C2SP tlog-witness add-checkpoint, with
a consistency proof from the size that witness last cosigned), keeps the
cosignatures that verify, and stores the result. An entry is thus in a signed
checkpoint within about ``interval`` of being durable, and in a witnessed one
once a witness answered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol, TypeVar

from hub_server.log_tree import TreeReader
from renkei.logs import event
from renkei.tlog import checkpoint, note
from renkei.tlog.witness_client import WitnessConflict

_log = logging.getLogger("hub_server.checkpoints")
T = TypeVar("T")


class Witness(Protocol):
    """A witness's add-checkpoint (renkei.tlog.witness_client.WitnessClient)."""

    async def add_checkpoint(
        self, old_size: int, proof: Sequence[bytes], signed_checkpoint: bytes
    ) -> bytes:
        """Its cosignature lines; WitnessConflict when it holds another size."""
        ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class NamedWitness:
    name: str  # for logs: its URL
    witness: Witness
    verifier: note.Verifier


@dataclass
class _Offered:
    witness: NamedWitness
    size: int = 0  # what the witness last cosigned (learnt from a 409 after a restart)


class Checkpointer:
    def __init__(
        self,
        head: Callable[[], tuple[int, bytes]],
        reader: TreeReader,
        signer: checkpoint.CheckpointSigner,
        log_verifier: note.Verifier,
        witnesses: Sequence[NamedWitness],
        executor: Executor,
        interval: float,
    ) -> None:
        self._head = head
        self._reader = reader
        self._signer = signer
        self._log_verifier = log_verifier
        self._witnesses = [_Offered(w) for w in witnesses]
        self._executor = executor
        self.interval = interval
        self.witnessed = False
        # (size, note) of the newest checkpoint: one reference, read by the servers.
        self.published: tuple[int, bytes] | None = None

    @property
    def latest(self) -> bytes | None:
        return None if self.published is None else self.published[1]

    @property
    def signed_size(self) -> int:
        """The size of the newest checkpoint signed; -1 before the first."""
        return -1 if self.published is None else self.published[0]

    @property
    def verifier(self) -> note.Verifier:
        """The verifier of the hub's checkpoint key, as agencies and witnesses hold it."""
        return self._log_verifier

    async def close(self) -> None:
        for offered in self._witnesses:
            await offered.witness.witness.aclose()
        if isinstance(self._executor, ThreadPoolExecutor):
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def start(self) -> None:
        """Picks up the newest stored checkpoint, so that a restart signs only what is new;
        a log that has none gets one signed now, unwitnessed, so that there is always a
        checkpoint to serve. No witness is asked here: a slow one must not hold up start."""
        latest = await self._run(self._reader.latest_checkpoint)
        if latest is None:
            size, root = self._head()
            signed = self._signer.sign(size, root)
            await self._run(self._reader.save_checkpoint, size, signed.decode(), False)
            self.published = (size, signed)
            return
        size, text = latest
        self.published = (size, text.encode())
        witnessed = await self._run(lambda: self._reader.latest_checkpoint(witnessed=True))
        self.witnessed = witnessed is not None and witnessed[0] == size
        for offered in self._witnesses:
            offered.size = witnessed[0] if witnessed is not None else 0

    async def run(self) -> None:
        """A step at once (witnessing what start signed), then one every ``interval``."""
        while True:
            try:
                await self.step()
            except Exception:
                _log.exception("checkpoint not signed; trying again")
            await asyncio.sleep(self.interval)

    async def step(self) -> bool:
        """Sign (and have witnessed) the committed tree if there is something new; True if so."""
        size, root = self._head()
        if size == self.signed_size and (self.witnessed or not self._witnesses):
            return False
        signed = self._signer.sign(size, root)
        cosigned, witnessed = signed, False
        for offered in self._witnesses:
            lines = await self._offer(offered, size, signed)
            if lines is None:
                continue
            try:
                with_line = checkpoint.add_cosignatures(cosigned, lines)
                checkpoint.verify_checkpoint(
                    with_line,
                    self._log_verifier,
                    [offered.witness.verifier],
                    origin=self._signer.origin,
                )
            except (ValueError, note.NoteError) as err:
                event(
                    _log,
                    "witness answer refused",
                    logging.WARNING,
                    witness=offered.witness.name,
                    error=str(err),
                )
                continue
            cosigned, witnessed = with_line, True
        await self._run(self._reader.save_checkpoint, size, cosigned.decode(), witnessed)
        self.witnessed, self.published = witnessed, (size, cosigned)
        return True

    async def _offer(self, offered: _Offered, size: int, signed: bytes) -> str | None:
        """The witness's cosignature lines, or None (logged) when it gave none."""
        for _ in range(2):  # once more with the size a 409 names
            old = offered.size
            if old > size:
                event(
                    _log,
                    "witness holds a larger tree than the hub's",
                    logging.ERROR,
                    witness=offered.witness.name,
                    witness_size=old,
                    size=size,
                )
                return None
            proof = await self._run(self._reader.consistency_proof, old, size) if old else []
            try:
                lines = await offered.witness.witness.add_checkpoint(old, proof, signed)
            except WitnessConflict as conflict:
                offered.size = conflict.known_size
                continue
            except Exception as err:
                event(
                    _log,
                    "witness did not cosign",
                    logging.WARNING,
                    witness=offered.witness.name,
                    size=size,
                    error=str(err) or type(err).__name__,
                )
                return None
            offered.size = size
            return lines.decode("utf-8", "replace")
        return None
