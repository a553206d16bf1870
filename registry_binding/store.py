"""The binding party's own database: handles, each agency's queue, the feed's position, consent.

Tables (SQLAlchemy Core, SQLite or PostgreSQL), none of them the register's:

``subscriptions``
    Which agency follows which person: a random handle per agency and person
    (``subscriptions.new_handle``) and the person's CURRENT resident code,
    which a "code_change" in the register's feed rewrites.
``deliveries``
    Each agency's queue of entries to read (its ``id`` is the agency's
    cursor): "subscribed" when a handle is minted, and "move", "name_change",
    "death" for every change of a followed person.
``feed_state``
    One row: the seq of the register's change feed applied so far. Every
    transaction that writes subscriptions or deliveries updates this row
    first, so they are serialised on both backends (a change is queued once,
    a handle minted once) and, on SQLite, take the write lock up front.
``consent_log``
    Every consent-flow attempt of a private body (``consent``), for the
    oversight body (R27).
``cards``
    Each card the card CA issued (``cards``): its certificate serial, whose
    it is (the resident code at issue and the code the person's ID code is
    made from), when it was issued and revoked.
``card_bindings``
    Every ``BindCard`` attempt (time, caller, card serial, outcome), for the
    oversight body.

The four facts are never stored here: ``ListChanges`` joins each entry to the
register's facts as they are when it is read.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from renkei.db import UtcDateTime

metadata = sa.MetaData()
_Id = sa.BigInteger().with_variant(sa.Integer, "sqlite")

subscriptions = sa.Table(
    "subscriptions",
    metadata,
    sa.Column("handle", sa.String(32), primary_key=True),
    sa.Column("agency_id", sa.String(64), nullable=False),
    sa.Column("resident_code", sa.String(11), nullable=False, index=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.UniqueConstraint("agency_id", "resident_code", name="subscriptions_agency_resident"),
)

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", _Id, primary_key=True, autoincrement=True),
    sa.Column("agency_id", sa.String(64), nullable=False),
    sa.Column("handle", sa.String(32), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("effective_date", sa.Date, nullable=False),
    sa.Index("ix_deliveries_agency_id", "agency_id", "id"),
    # Ids are cursors: never reuse a deleted one.
    sqlite_autoincrement=True,
)

feed_state = sa.Table(
    "feed_state",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("applied_seq", sa.BigInteger, nullable=False),
)

consent_log = sa.Table(
    "consent_log",
    metadata,
    sa.Column("id", _Id, primary_key=True, autoincrement=True),
    sa.Column("attempt_id", sa.String(32), nullable=False, unique=True),
    # The certificate's party: "agency:<id>" (or "service:<name>", refused).
    sa.Column("caller", sa.String(80), nullable=False, index=True),
    sa.Column("attempted_at", UtcDateTime(), nullable=False),
    sa.Column("local_person_id", sa.String(64), nullable=True),
    sa.Column("consent_id", sa.String(64), nullable=True),
    sa.Column("giver", sa.String(24), nullable=True),
    sa.Column("representative_name", sa.String(100), nullable=True),
    sa.Column("consented_at", UtcDateTime(), nullable=True),
    sa.Column("purpose", sa.String(400), nullable=True),
    sa.Column("document_sha256", sa.String(64), nullable=True),
    sa.Column("outcome", sa.String(16), nullable=False),
    # What the caller was told (a status or a refusal's reason) ...
    sa.Column("answered", sa.String(40), nullable=False),
    # ... and what the oversight body reads.
    sa.Column("reason", sa.String(400), nullable=False),
    sa.Column("resident_code", sa.String(11), nullable=True),
    sqlite_autoincrement=True,
)

cards = sa.Table(
    "cards",
    metadata,
    # A certificate serial is up to 20 octets (RFC 5280): kept as decimal text.
    sa.Column("serial", sa.String(49), primary_key=True),
    sa.Column("resident_code", sa.String(11), nullable=False, index=True),
    sa.Column("id_basis", sa.String(11), nullable=False),
    sa.Column("issued_at", UtcDateTime(), nullable=False),
    sa.Column("revoked_at", UtcDateTime(), nullable=True),
)

card_bindings = sa.Table(
    "card_bindings",
    metadata,
    sa.Column("id", _Id, primary_key=True, autoincrement=True),
    sa.Column("attempted_at", UtcDateTime(), nullable=False, index=True),
    sa.Column("caller", sa.String(80), nullable=False),
    # Empty when the certificate could not be read.
    sa.Column("card_serial", sa.String(49), nullable=False),
    # "bound" or the refusal's reason.
    sa.Column("outcome", sa.String(40), nullable=False),
    sqlite_autoincrement=True,
)


class BindingStore:
    """The binding party's tables on one engine (made if missing)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        metadata.create_all(engine)
        try:
            with engine.begin() as conn:
                if conn.execute(sa.select(feed_state.c.id)).first() is None:
                    conn.execute(feed_state.insert().values(id=1, applied_seq=0))
        except sa.exc.IntegrityError:
            pass  # another process opened the same store at the same moment and made it

    @property
    def engine(self) -> Engine:
        return self._engine

    def handles(self, agency_id: str | None = None) -> dict[str, list[str]]:
        """Agency -> its handles (for audits)."""
        query = sa.select(subscriptions.c.agency_id, subscriptions.c.handle)
        if agency_id is not None:
            query = query.where(subscriptions.c.agency_id == agency_id)
        out: dict[str, list[str]] = {}
        with self._engine.connect() as conn:
            for agency, handle in conn.execute(query):
                out.setdefault(agency, []).append(handle)
        return out

    def applied_seq(self) -> int:
        """How far the register's change feed has been applied to the queues."""
        with self._engine.connect() as conn:
            return int(conn.execute(sa.select(feed_state.c.applied_seq)).scalar_one())


def lock(conn: sa.Connection) -> int:
    """Serialise with every other writer of the queues; the applied seq (module docstring)."""
    updated = conn.execute(
        feed_state.update().where(feed_state.c.id == 1).values(applied_seq=feed_state.c.applied_seq)
    ).rowcount
    if updated != 1:
        raise RuntimeError("the binding store's feed_state row is missing")
    return int(conn.execute(sa.select(feed_state.c.applied_seq)).scalar_one())
