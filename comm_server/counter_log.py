"""The municipality's log of counter reports (窓口, R26): who printed whose history, from where.

``renkei counter report`` writes one row per request, printed or not: the
time, the staff member and the terminal (both in the municipality's staff
register, R19), the card's serial (never a Number), how many exchanges the
report showed and the checkpoint size they were verified against, and the
outcome. The table lives in the municipality's comm store beside its share of
the access log, so the oversight body reads it with the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from comm_server.staff_register import Permission, StaffRegister
from renkei import db

PRINTED = "PRINTED"  # the report was written and every entry verified
PRINTED_UNVERIFIED = "PRINTED_UNVERIFIED"  # written, and it says what did not verify
REFUSED = "REFUSED"  # the staff member or terminal may not print reports
FAILED = "FAILED"  # the portal refused the card or did not answer

metadata = sa.MetaData()

counter_requests = sa.Table(
    "counter_requests",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("requested_at", db.UtcDateTime(), nullable=False, index=True),
    sa.Column("staff_id", sa.String(64), nullable=False),
    sa.Column("terminal_id", sa.String(64), nullable=False),
    sa.Column("card_serial", sa.String(64), nullable=False),
    sa.Column("entries_shown", sa.Integer, nullable=False),
    sa.Column("checkpoint_size", sa.BigInteger, nullable=True),
    sa.Column("outcome", sa.String(32), nullable=False),
    sa.Column("reason", sa.String(400), nullable=False),
)


@dataclass(frozen=True)
class CounterRequest:
    requested_at: datetime
    staff_id: str
    terminal_id: str
    card_serial: str
    entries_shown: int
    checkpoint_size: int | None
    outcome: str
    reason: str = ""


class CounterLog:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        metadata.create_all(engine)

    def record(self, request: CounterRequest) -> int:
        with self._engine.begin() as conn:
            result = conn.execute(
                counter_requests.insert().values(
                    requested_at=request.requested_at,
                    staff_id=request.staff_id,
                    terminal_id=request.terminal_id,
                    card_serial=request.card_serial,
                    entries_shown=request.entries_shown,
                    checkpoint_size=request.checkpoint_size,
                    outcome=request.outcome,
                    reason=request.reason[:400],
                )
            )
            key = result.inserted_primary_key
            return int(key[0]) if key else 0

    def all(self) -> list[CounterRequest]:
        c = counter_requests.c
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    c.requested_at,
                    c.staff_id,
                    c.terminal_id,
                    c.card_serial,
                    c.entries_shown,
                    c.checkpoint_size,
                    c.outcome,
                    c.reason,
                ).order_by(c.id)
            ).all()
        return [CounterRequest(*row) for row in rows]


def check_staff(register: StaffRegister, staff_id: str, terminal_id: str, day: date) -> Permission:
    """The register's permission for this staff member at this terminal on ``day``.

    A counter report is no exchange, so no affair is checked: the staff member
    must be registered, in force, and allowed the terminal (reasons as R19's).
    """
    return register.at_terminal(staff_id, terminal_id, day, work="work")[0]
