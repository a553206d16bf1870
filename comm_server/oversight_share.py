"""This agency's share of the log as the oversight body reads it (R24, R27: AgencyLogService).

Rows come in id order, a page per query (``id > last`` with a limit), so a
read of millions of rows holds one page at a time. Each row shows the person
only as a pseudonym, HMAC-SHA256 of the local person id under this agency's
own key (``comm_server.keys.PSEUDONYM``): the same person is the same value in
every read of this share, and nothing joins it to another agency's. The
person's municipality, as this agency knows it from the registry's feed
(``person_facts``), comes in the same query, by joins. Content (11) is shown
only as its SHA-256, enough for the oversight body to compare the requester's
and the provider's rows of one exchange without reading either.

Only the oversight body's certificate is admitted (``require_oversight``).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from comm_server.binding.person_facts import metadata as facts_metadata
from comm_server.binding.person_facts import person_facts, registry_handles
from comm_server.store import agency_log
from renkei.grpcutil.oversight import require_oversight
from renkei.oversight.v1 import oversight_pb2, oversight_pb2_grpc
from renkei.read_range import ReadRange, batch_size, read_range

ROLES = {
    "requester": oversight_pb2.ROLE_REQUESTER,
    "provider": oversight_pb2.ROLE_PROVIDER,
}


@dataclass(frozen=True, slots=True)
class ShareRow:
    """One row of the share, as the oversight body may see it."""

    id: int
    serial: int  # 0: refused before the hub gave one
    role: str
    logged_at: datetime
    counterpart_agency_id: str
    info_kind: str
    legal_basis_item: str
    person: str  # the pseudonym; "" when the row names no person
    staff_id: str
    terminal_id: str
    content_sha256: bytes
    purpose: str
    outcome: str
    reason: str
    person_municipality: str  # "" when the feed has told nothing of the person


def pseudonym(key: bytes, local_person_id: str | None) -> str:
    """HMAC-SHA256 (hex) of a local person id under the agency's pseudonym key."""
    if not local_person_id:
        return ""
    return hmac.digest(key, local_person_id.encode("utf-8"), "sha256").hex()  # one-shot: fast


class AgencyLogReader:
    """Pages of ``agency_log`` in id order, with each person's municipality joined."""

    def __init__(self, engine: Engine, pseudonym_key: bytes) -> None:
        self._engine = engine
        self._key = pseudonym_key
        facts_metadata.create_all(engine)  # a server that never followed the feed: empty tables
        log, handles, facts = agency_log.c, registry_handles.c, person_facts.c
        joined = agency_log.outerjoin(
            registry_handles, handles.local_person_id == log.local_person_id
        ).outerjoin(person_facts, facts.handle == handles.handle)
        self._select = (
            sa.select(
                log.id,
                log.serial,
                log.role,
                log.logged_at,
                log.counterpart_agency_id,
                log.info_kind,
                log.legal_basis_item,
                log.local_person_id,
                log.staff_id,
                log.terminal_id,
                log.content,
                log.purpose,
                log.outcome,
                log.reason,
                facts.municipality_code,
            )
            .select_from(joined)
            .order_by(log.id)
        )

    def page(self, bounds: ReadRange, after_id: int, limit: int) -> list[ShareRow]:
        """Up to ``limit`` rows in ``bounds`` with an id above ``after_id``."""
        log = agency_log.c
        where: list[sa.ColumnElement[bool]] = [log.id > after_id]
        logged_at, at = self._logged_at()
        if bounds.start_time is not None:
            where.append(logged_at >= at(bounds.start_time))
        if bounds.end_time is not None:
            where.append(logged_at < at(bounds.end_time))
        if bounds.start_serial:
            where.append(log.serial >= bounds.start_serial)  # NULL serials fall out here
        if bounds.end_serial:
            # A row without a serial reads as serial 0, below any end.
            where.append(sa.or_(log.serial.is_(None), log.serial < bounds.end_serial))
        with self._engine.connect() as conn:
            rows = conn.execute(self._select.where(*where).limit(limit)).all()
        persons: dict[str | None, str] = {}  # a person's rows come in runs: one HMAC each
        return [self._row(tuple(r), persons) for r in rows]

    def _logged_at(self) -> tuple[sa.ColumnElement[Any], Callable[[datetime], Any]]:
        """``logged_at`` and how to bind a time to compare it with.

        On SQLite the share's rows are written by sqlite3's own adapter
        (``CommStore.append_logs``), which leaves out ``.000000`` on a whole
        second, where SQLAlchemy would bind it: compared as text, a row at
        exactly a bound would fall on the wrong side. Bound in the adapter's
        format, a time compares right with either form.
        """
        if self._engine.dialect.name != "sqlite":
            return agency_log.c.logged_at, lambda when: when
        return sa.type_coerce(agency_log.c.logged_at, sa.String), _sqlite_text

    def _row(self, r: tuple[Any, ...], persons: dict[str | None, str]) -> ShareRow:
        # By position, in the select's order: a page is thousands of rows.
        (row_id, serial, role, logged_at, counterpart, kind, item, local) = r[:8]
        (staff, terminal, content, purpose, outcome, reason, municipality) = r[8:]
        person = persons.get(local)
        if person is None:
            person = persons[local] = pseudonym(self._key, local)
        return ShareRow(
            int(row_id),
            int(serial or 0),
            role,
            logged_at,
            counterpart,
            kind,
            item,
            person,
            staff,
            terminal,
            hashlib.sha256(content.encode("utf-8")).digest(),
            purpose or "",
            outcome,
            reason,
            municipality or "",
        )


def _sqlite_text(when: datetime) -> sa.BindParameter[str]:
    return sa.literal(when.astimezone(UTC).replace(tzinfo=None).isoformat(" "), sa.String)


def to_proto(row: ShareRow, agency_id: str) -> oversight_pb2.AgencyLogRow:
    message = oversight_pb2.AgencyLogRow(
        id=row.id,
        serial=row.serial,
        role=ROLES.get(row.role, oversight_pb2.ROLE_UNSPECIFIED),
        agency_id=agency_id,
        counterpart_agency_id=row.counterpart_agency_id,
        info_kind=row.info_kind,
        legal_basis_item=row.legal_basis_item,
        person=row.person,
        staff_id=row.staff_id,
        terminal_id=row.terminal_id,
        content_sha256=row.content_sha256,
        purpose=row.purpose,
        outcome=row.outcome,
        reason=row.reason,
        person_municipality=row.person_municipality,
    )
    message.logged_at.FromDatetime(row.logged_at)
    return message


class AgencyLogServicer(oversight_pb2_grpc.AgencyLogServiceServicer):
    """``ReadAgencyLog``: the share in batches, to the oversight body only."""

    def __init__(self, reader: AgencyLogReader, agency_id: str) -> None:
        self._reader = reader
        self._agency_id = agency_id

    async def ReadAgencyLog(  # gRPC method names are PascalCase
        self,
        request: oversight_pb2.ReadAgencyLogRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[oversight_pb2.ReadAgencyLogResponse]:
        require_oversight(context)
        bounds = read_range(request.range)
        limit = batch_size(request.batch_size)
        after = 0
        while True:
            rows: Sequence[ShareRow] = await asyncio.to_thread(
                self._reader.page, bounds, after, limit
            )
            if not rows:
                return
            yield oversight_pb2.ReadAgencyLogResponse(
                rows=[to_proto(r, self._agency_id) for r in rows]
            )
            if len(rows) < limit:
                return
            after = rows[-1].id
