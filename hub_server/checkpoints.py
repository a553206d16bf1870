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

_log = logging.getLogger("hub_server.checkpoints")
T = TypeVar("T")


class WitnessSizeConflict(Exception):
    """The witness holds another size for the log than the one offered as old."""

    def __init__(self, known_size: int) -> None:
        super().__init__(f"the witness knows size {known_size}")
        self.known_size = known_size


class Witness(Protocol):
    @property
    def name(self) -> str: ...

    async def add_checkpoint(self, old_size: int, proof: list[bytes], signed: bytes) -> str:
        """The witness's cosignature lines; WitnessSizeConflict, or another error."""
        ...


@dataclass
class _Offered:
    witness: Witness
    verifier: note.Verifier
    size: int = 0  # what the witness last cosigned (learnt from a 409 after a restart)


class Checkpointer:
    def __init__(
        self,
        head: Callable[[], tuple[int, bytes]],
        reader: TreeReader,
        signer: checkpoint.CheckpointSigner,
        log_verifier: note.Verifier,
        witnesses: Sequence[tuple[Witness, note.Verifier]],
        executor: Executor,
        interval: float,
    ) -> None:
        self._head = head
        self._reader = reader
        self._signer = signer
        self._log_verifier = log_verifier
        self._witnesses = [_Offered(w, v) for w, v in witnesses]
        self._executor = executor
        self.interval = interval
        self.signed_size = -1
        self.witnessed = False
        self.latest: bytes | None = None

    @property
    def verifier(self) -> note.Verifier:
        """The verifier of the hub's checkpoint key, as agencies and witnesses hold it."""
        return self._log_verifier

    def close(self) -> None:
        if isinstance(self._executor, ThreadPoolExecutor):
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def start(self) -> None:
        """Picks up the newest stored checkpoint, so that a restart signs only what is new."""
        latest = await self._run(self._reader.latest_checkpoint)
        if latest is not None:
            size, text = latest
            self.signed_size, self.latest = size, text.encode()
            witnessed = await self._run(lambda: self._reader.latest_checkpoint(witnessed=True))
            self.witnessed = witnessed is not None and witnessed[0] == size
            for offered in self._witnesses:
                offered.size = witnessed[0] if witnessed is not None else 0

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.step()
            except Exception:
                _log.exception("checkpoint not signed; trying again")

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
                    with_line, self._log_verifier, [offered.verifier], origin=self._signer.origin
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
        self.signed_size, self.witnessed, self.latest = size, witnessed, cosigned
        return True

    async def _offer(self, offered: _Offered, size: int, signed: bytes) -> str | None:
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
                lines = await offered.witness.add_checkpoint(old, proof, signed)
            except WitnessSizeConflict as conflict:
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
            return lines
        return None
