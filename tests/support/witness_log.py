"""A toy log for the witness's tests: leaves, signed checkpoints, proofs; and a store in memory."""

from __future__ import annotations

import threading
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric import ed25519

from renkei.tlog import merkle, note
from renkei.tlog.checkpoint import CheckpointSigner, CosignatureSigner
from witness.witness import Accepted

ORIGIN = "renkei.example/hub-log"
WITNESS_NAME = "witness.renkei.example"
NOW = 1_780_000_000


class ToyLog:
    """``leaves`` leaf hashes; ``checkpoint(n)`` the log's signed checkpoint of the first n."""

    def __init__(self, origin: str = ORIGIN, leaves: int = 40, seed: bytes = b"") -> None:
        self.signer = note.Ed25519Signer.generate(origin)
        self.verifier = self.signer.verifier()
        self.leaves = [merkle.leaf_hash(seed + b"entry %d" % i) for i in range(leaves)]
        self._checkpoints = CheckpointSigner(self.signer, origin)

    @property
    def origin(self) -> str:
        return self._checkpoints.origin

    def root(self, size: int) -> bytes:
        return merkle.root(self.leaves[:size])

    def checkpoint(self, size: int, root: bytes | None = None) -> bytes:
        return self._checkpoints.sign(size, self.root(size) if root is None else root)

    def proof(self, old: int, new: int) -> list[bytes]:
        if old == 0:
            return []
        return merkle.consistency_proof(self.leaves, old, new)


def witness_signer(clock: Callable[[], int] = lambda: NOW) -> CosignatureSigner:
    return CosignatureSigner(WITNESS_NAME, ed25519.Ed25519PrivateKey.generate(), clock)


class MemoryCheckpointStore:
    """The witness's store in a dict; ``advance`` under a lock, as a database makes it atomic."""

    def __init__(self) -> None:
        self.rows: dict[str, Accepted] = {}
        self._lock = threading.Lock()
        # Called at each latest(): lets a test line up racing requests.
        self.on_read: Callable[[], None] = lambda: None

    def latest(self, origin: str) -> Accepted | None:
        row = self.rows.get(origin)
        self.on_read()
        return row

    def advance(self, old_size: int, old_root: bytes | None, new: Accepted) -> int | None:
        with self._lock:
            row = self.rows.get(new.origin)
            if old_root is None:
                if row is not None:
                    return row.size
            elif row is None or (row.size, row.root_hash) != (old_size, old_root):
                return 0 if row is None else row.size
            self.rows[new.origin] = new
            return None
