"""The disclosure room's tables: applications and deferrals, beside the agency's log share.

``disclosure_applications`` is this agency's record of every application and
of who decided it (``decided_by``, ``decided_at``); ``disclosure_deferrals``
of who held an exchange's details back and why (``set_by``). Neither is a row
of ``agency_log``: that share holds exchanges only. The exchange rows are read
from ``agency_log`` and found by the person's link code through the
correspondence table, as the provider side finds them (current, next or
previous code).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa

from comm_server.disclosure.types import Application, Deferral, State
from comm_server.store import CommStore, LogRecord, agency_log
from renkei import db
from renkei.errors import FailedPrecondition, NotFound

metadata = sa.MetaData()

disclosure_applications = sa.Table(
    "disclosure_applications",
    metadata,
    sa.Column("application_id", sa.String(64), primary_key=True),
    sa.Column("serial", sa.BigInteger, nullable=False, index=True),
    sa.Column("request_serial", sa.BigInteger, nullable=False),
    sa.Column("recipient_agency_id", sa.String(64), nullable=False),
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("created_at", db.UtcDateTime(), nullable=False),
    sa.Column("decided_at", db.UtcDateTime(), nullable=True),
    sa.Column("decided_by", sa.String(64), nullable=True),
    sa.Column("refusal_reason", sa.String(400), nullable=True),
)

disclosure_deferrals = sa.Table(
    "disclosure_deferrals",
    metadata,
    sa.Column("serial", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("until", db.UtcDateTime(), nullable=False),
    sa.Column("legal_reason", sa.String(400), nullable=False),
    sa.Column("set_by", sa.String(64), nullable=False),
    sa.Column("set_at", db.UtcDateTime(), nullable=False),
)


def _application(row: sa.RowMapping) -> Application:
    return Application(**{**row, "state": State(row["state"])})


class DisclosureStore:
    """SQLAlchemy Core on the agency's own database (SQLite or PostgreSQL)."""

    def __init__(self, comm: CommStore) -> None:
        self._comm = comm
        self._engine = comm.engine
        metadata.create_all(self._engine)

    # -- the exchange's rows ------------------------------------------------

    def person_rows(self, serial: int, link_code: str) -> list[LogRecord]:
        """This agency's rows of exchange ``serial`` about the person ``link_code`` names,
        oldest first; [] when the code is unknown or the exchange is someone else's."""
        local = self._comm.local_person_for(link_code)
        if local is None:
            return []
        log = agency_log.c
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(agency_log)
                .where(log.serial == serial, log.local_person_id == local)
                .order_by(log.id)
            ).mappings()
            return [LogRecord(**{k: v for k, v in r.items() if k != "id"}) for r in rows]

    def exchange_rows(self, serial: int) -> list[LogRecord]:
        """Every row of exchange ``serial`` in this share (staff decisions), oldest first."""
        log = agency_log.c
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(agency_log).where(log.serial == serial).order_by(log.id)
            ).mappings()
            return [LogRecord(**{k: v for k, v in r.items() if k != "id"}) for r in rows]

    # -- applications -------------------------------------------------------

    def application(self, application_id: str) -> Application | None:
        a = disclosure_applications.c
        with self._engine.connect() as conn:
            row = (
                conn.execute(
                    sa.select(disclosure_applications).where(a.application_id == application_id)
                )
                .mappings()
                .first()
            )
        return None if row is None else _application(row)

    def add_application(self, application: Application) -> Application:
        """Record a new application; the one already there if the id is taken (a repeat
        call racing this one)."""
        values = {**application.__dict__, "state": application.state.value}
        try:
            with self._engine.begin() as conn:
                conn.execute(disclosure_applications.insert().values(**values))
        except sa.exc.IntegrityError:
            existing = self.application(application.application_id)
            if existing is None:
                raise
            return existing
        return application

    def applications(self, state: State | None = None) -> list[Application]:
        a = disclosure_applications.c
        query = sa.select(disclosure_applications).order_by(a.created_at, a.application_id)
        if state is not None:
            query = query.where(a.state == state.value)
        with self._engine.connect() as conn:
            return [_application(r) for r in conn.execute(query).mappings()]

    def decide(
        self,
        application_id: str,
        state: State,
        staff_id: str,
        at: datetime,
        refusal_reason: str | None = None,
    ) -> Application:
        """A PENDING application becomes ``state`` (ANSWERED or REFUSED), decided by
        ``staff_id``; NOT_FOUND or FAILED_PRECONDITION when it is not PENDING."""
        a = disclosure_applications.c
        with self._engine.begin() as conn:
            done = conn.execute(
                disclosure_applications.update()
                .where(a.application_id == application_id, a.state == State.PENDING.value)
                .values(
                    state=state.value,
                    decided_at=at,
                    decided_by=staff_id,
                    refusal_reason=refusal_reason,
                )
            ).rowcount
        found = self.application(application_id)
        if found is None:
            raise NotFound(
                "APPLICATION_NOT_FOUND",
                f"no application {application_id!r} at this agency",
                {"application_id": application_id},
            )
        if not done:
            raise FailedPrecondition(
                "APPLICATION_ALREADY_DECIDED",
                f"application {application_id!r} is {found.state.value}, decided by"
                f" {found.decided_by} at {found.decided_at}; only a PENDING one is decided",
                {"application_id": application_id, "state": found.state.value},
            )
        return found

    # -- deferrals ------------------------------------------------------------

    def deferral(self, serial: int) -> Deferral | None:
        d = disclosure_deferrals.c
        with self._engine.connect() as conn:
            row = (
                conn.execute(sa.select(disclosure_deferrals).where(d.serial == serial))
                .mappings()
                .first()
            )
        return None if row is None else Deferral(**row)

    def set_deferral(self, deferral: Deferral) -> None:
        """Record the deferral of ``deferral.serial``, replacing any earlier one."""
        d = disclosure_deferrals.c
        for attempt in range(2):
            try:
                with self._engine.begin() as conn:
                    conn.execute(disclosure_deferrals.delete().where(d.serial == deferral.serial))
                    conn.execute(disclosure_deferrals.insert().values(**deferral.__dict__))
                return
            except sa.exc.IntegrityError:
                if attempt:  # another staff member's deferral of the same serial, twice over
                    raise

    def deferrals(self) -> Sequence[Deferral]:
        d = disclosure_deferrals.c
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(disclosure_deferrals).order_by(d.serial)).mappings()
            return [Deferral(**r) for r in rows]
