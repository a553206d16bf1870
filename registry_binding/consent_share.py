"""The registry's consent log as the oversight body reads it (R20, R27: ConsentLogService).

Every ``MatchWithConsent`` attempt (``consent_log``), in id order, a page per
query, bounded by the time it was attempted. What a row shows: who asked,
when, the consent they gave (its id, giver, purpose) and what came of it; not
the person (no local person id, no resident code, no representative's name).
The consent log has no serials: a range that names one is refused.

Only the oversight body's certificate is admitted (``require_oversight``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from registry_binding.store import consent_log
from registry_binding.store import metadata as store_metadata
from renkei.errors import invalid_field
from renkei.grpcutil.oversight import require_oversight
from renkei.oversight.v1 import oversight_pb2, oversight_pb2_grpc
from renkei.read_range import ReadRange, batch_size, read_range

# What the caller was told for each outcome; a refusal's row keeps its reason in ``answered``.
_OUTCOMES = {"matched": "MATCHED", "no_exact_match": "NO_EXACT_MATCH"}

_COLUMNS = (
    consent_log.c.id,
    consent_log.c.attempt_id,
    consent_log.c.caller,
    consent_log.c.attempted_at,
    consent_log.c.consent_id,
    consent_log.c.giver,
    consent_log.c.purpose,
    consent_log.c.outcome,
    consent_log.c.answered,
    consent_log.c.reason,
)


class ConsentLogReader:
    """Pages of ``consent_log`` in id order."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        store_metadata.create_all(engine)

    def page(
        self, bounds: ReadRange, after_id: int, limit: int
    ) -> list[oversight_pb2.ConsentLogRow]:
        """Up to ``limit`` attempts in ``bounds`` with an id above ``after_id``."""
        c = consent_log.c
        where: list[sa.ColumnElement[bool]] = [c.id > after_id]
        if bounds.start_time is not None:
            where.append(c.attempted_at >= bounds.start_time)
        if bounds.end_time is not None:
            where.append(c.attempted_at < bounds.end_time)
        query = sa.select(*_COLUMNS).where(*where).order_by(c.id).limit(limit)
        with self._engine.connect() as conn:
            return [_row(r) for r in conn.execute(query)]


def _row(r: Any) -> oversight_pb2.ConsentLogRow:  # a Row of _COLUMNS
    row = oversight_pb2.ConsentLogRow(
        id=int(r.id),
        attempt_id=r.attempt_id,
        caller=r.caller,
        consent_id=r.consent_id or "",
        giver=r.giver or "",
        purpose=r.purpose or "",
        outcome=_OUTCOMES.get(r.outcome, r.answered),
        answered=r.answered,
        reason=r.reason,
        matched=r.outcome == "matched",
    )
    row.attempted_at.FromDatetime(r.attempted_at)
    return row


class ConsentLogServicer(oversight_pb2_grpc.ConsentLogServiceServicer):
    """``ReadConsentLog``: the consent log in batches, to the oversight body only."""

    def __init__(self, reader: ConsentLogReader) -> None:
        self._reader = reader

    async def ReadConsentLog(  # gRPC method names are PascalCase
        self,
        request: oversight_pb2.ReadConsentLogRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[oversight_pb2.ReadConsentLogResponse]:
        require_oversight(context)
        bounds = read_range(request.range)
        for name, value in (
            ("start_serial", bounds.start_serial),
            ("end_serial", bounds.end_serial),
        ):
            if value:
                raise invalid_field(f"range.{name}", "the consent log has no serials")
        limit = batch_size(request.batch_size)
        after = 0
        while True:
            rows = await asyncio.to_thread(self._reader.page, bounds, after, limit)
            if not rows:
                return
            yield oversight_pb2.ReadConsentLogResponse(rows=rows)
            if len(rows) < limit:
                return
            after = rows[-1].id
