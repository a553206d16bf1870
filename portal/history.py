"""Placeholder for the history's verification, written in another branch.

Only what the bootstrap sets: ``VERIFIER`` and a ``HistoryVerifier`` holding
the keys. It verifies nothing; nothing here claims an entry is verified.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from renkei.tlog import checkpoint as tlog_checkpoint
from renkei.tlog import note


class HistoryVerifier:
    """Holds the hub log's key and the witnesses' (the real one checks proofs with them)."""

    def __init__(
        self,
        log_key: note.Verifier,
        witnesses: Sequence[tlog_checkpoint.CosignatureVerifier],
        quorum: int = 1,
    ) -> None:
        self.log_key = log_key
        self.witnesses = tuple(witnesses)
        self.quorum = quorum


VERIFIER = web.AppKey("verifier", HistoryVerifier)
