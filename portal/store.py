"""The portal's own database (SQLAlchemy Core, SQLite or PostgreSQL).

``portal_persons``
    card serial -> the portal's link code for the person (from the hub on the
    first sign-in). No Number, resident code or ID code, ever.
``portal_applications``
    the persons' applications for details (``app_keys.Applications``), by an
    integer ``id`` the retention purge deletes ranges of (``portal.retention``).
``portal_purges``
    one row per purge transaction: when, the cutoff, how many rows, the ids.
``portal_sessions``
    signed-in sessions: the SHA-256 of the session id (the cookie's value is
    never stored), the card serial, the CSRF token, created, expires.
``portal_challenges``
    sign-in challenges handed out: the nonce, when it expires, whether used
    (a challenge signs in once).
"""

from __future__ import annotations

import hashlib
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from portal.app_keys import Application
from renkei.db import UtcDateTime

metadata = sa.MetaData()
_SERIAL = sa.String(49)  # a certificate serial (up to 20 octets) in decimal
_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")  # SQLite autoincrements INTEGER only

persons = sa.Table(
    "portal_persons",
    metadata,
    sa.Column("card_serial", _SERIAL, primary_key=True),
    sa.Column("link_code", sa.String(128), nullable=False),
    sa.Column("bound_at", UtcDateTime(), nullable=False),
)

applications = sa.Table(
    "portal_applications",
    metadata,
    sa.Column("id", _ID, primary_key=True),
    sa.Column("application_id", sa.String(64), nullable=False, unique=True),
    sa.Column("card_serial", _SERIAL, nullable=False, index=True),
    sa.Column("serial", sa.BigInteger, nullable=False),
    sa.Column("agency_id", sa.String(64), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Column("sealed_details", sa.LargeBinary, nullable=False),
    sa.Column("request_serial", sa.BigInteger, nullable=False),
    sa.Column("deferred_until", UtcDateTime(), nullable=True),
    sa.Column("note", sa.String(400), nullable=False),
)

purges = sa.Table(
    "portal_purges",
    metadata,
    sa.Column("id", _ID, primary_key=True),
    sa.Column("purged_at", UtcDateTime(), nullable=False),
    sa.Column("cutoff", UtcDateTime(), nullable=False),
    sa.Column("rows", sa.BigInteger, nullable=False),
    # The portal_applications ids that went, as JSON [[first, last], ...] (inclusive).
    sa.Column("id_ranges", sa.Text, nullable=False),
)

sessions = sa.Table(
    "portal_sessions",
    metadata,
    sa.Column("id_hash", sa.String(64), primary_key=True),
    sa.Column("card_serial", _SERIAL, nullable=False, index=True),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("expires_at", UtcDateTime(), nullable=False, index=True),
)

challenges = sa.Table(
    "portal_challenges",
    metadata,
    sa.Column("nonce", sa.String(64), primary_key=True),  # base64url
    sa.Column("expires_at", UtcDateTime(), nullable=False, index=True),
    sa.Column("used", sa.Boolean, nullable=False),
)


def id_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class PortalStore:
    """The portal's tables on one engine (made if missing)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        metadata.create_all(engine)

    @property
    def engine(self) -> Engine:
        return self._engine

    # -- persons -----------------------------------------------------------

    def link_code(self, card_serial: str) -> str | None:
        with self._engine.connect() as conn:
            return conn.execute(
                sa.select(persons.c.link_code).where(persons.c.card_serial == card_serial)
            ).scalar_one_or_none()

    def bind(self, card_serial: str, link_code: str, at: datetime) -> str:
        """Keeps the card's link code, the one the hub gave at this sign-in (each sign-in
        binds the card again, so a re-key at the hub reaches the portal then)."""
        for _ in range(2):  # a race between two first sign-ins: the update then wins
            with self._engine.begin() as conn:
                values = {"link_code": link_code, "bound_at": at}
                if conn.execute(
                    persons.update().where(persons.c.card_serial == card_serial).values(values)
                ).rowcount:
                    return link_code
            try:
                with self._engine.begin() as conn:
                    conn.execute(persons.insert().values(card_serial=card_serial, **values))
                return link_code
            except sa.exc.IntegrityError:
                continue
        raise RuntimeError(f"card {card_serial}: its link code could not be kept")

    def forget_link_codes(self) -> int:
        """Forgets every kept link code (``renkei portal rekey``): each person's next
        sign-in binds the card again, under the hub's current keys."""
        with self._engine.begin() as conn:
            return int(conn.execute(persons.delete()).rowcount)

    # -- sign-in challenges ------------------------------------------------

    def add_challenge(self, nonce: str, expires_at: datetime) -> None:
        with self._engine.begin() as conn:
            conn.execute(challenges.insert().values(nonce=nonce, expires_at=expires_at, used=False))

    def use_challenge(self, nonce: str, now: datetime) -> bool:
        """True once for a challenge handed out and not expired; False after (or if unknown)."""
        with self._engine.begin() as conn:
            done = conn.execute(
                challenges.update()
                .where(
                    challenges.c.nonce == nonce,
                    challenges.c.used.is_(False),
                    challenges.c.expires_at > now,
                )
                .values(used=True)
            ).rowcount
        return done == 1

    # -- sessions ----------------------------------------------------------

    def add_session(
        self, session_id: str, card_serial: str, csrf_token: str, at: datetime, expires: datetime
    ) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                sessions.insert().values(
                    id_hash=id_hash(session_id),
                    card_serial=card_serial,
                    csrf_token=csrf_token,
                    created_at=at,
                    expires_at=expires,
                )
            )

    def session(self, session_id: str, now: datetime) -> tuple[str, str, datetime] | None:
        """(card serial, CSRF token, created) of a live session."""
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(
                    sessions.c.card_serial, sessions.c.csrf_token, sessions.c.created_at
                ).where(sessions.c.id_hash == id_hash(session_id), sessions.c.expires_at > now)
            ).first()
        return None if row is None else (row.card_serial, row.csrf_token, row.created_at)

    def end_session(self, session_id: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(sessions.delete().where(sessions.c.id_hash == id_hash(session_id)))

    def expire(self, now: datetime) -> int:
        """Deletes expired sessions and challenges; how many rows went."""
        with self._engine.begin() as conn:
            gone = conn.execute(sessions.delete().where(sessions.c.expires_at <= now)).rowcount
            gone += conn.execute(challenges.delete().where(challenges.c.expires_at <= now)).rowcount
        return int(gone)


class SqlApplications:
    """``app_keys.Applications`` on ``portal_applications``."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        metadata.create_all(engine)

    def save(self, application: Application) -> None:
        a = application
        values = {
            "card_serial": a.card_serial,
            "serial": a.serial,
            "agency_id": a.agency_id,
            "state": a.state,
            "created_at": a.created_at,
            "updated_at": a.updated_at,
            "sealed_details": a.sealed_details,
            "request_serial": a.request_serial,
            "deferred_until": a.deferred_until,
            "note": a.note,
        }
        with self._engine.begin() as conn:
            updated = conn.execute(
                applications.update()
                .where(
                    applications.c.application_id == a.application_id,
                    applications.c.card_serial == a.card_serial,
                )
                .values(**values)
            ).rowcount
            if updated == 0:
                conn.execute(
                    applications.insert().values(application_id=a.application_id, **values)
                )

    def get(self, card_serial: str, application_id: str) -> Application | None:
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(applications).where(
                    applications.c.application_id == application_id,
                    applications.c.card_serial == card_serial,
                )
            ).first()
        return None if row is None else _application(row)

    def of_person(self, card_serial: str) -> list[Application]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(applications)
                .where(applications.c.card_serial == card_serial)
                .order_by(applications.c.created_at.desc(), applications.c.application_id)
            )
            return [_application(r) for r in rows]


def _application(row: sa.Row[tuple[object, ...]]) -> Application:
    m = row._mapping
    return Application(
        application_id=m["application_id"],
        card_serial=m["card_serial"],
        serial=int(m["serial"]),
        agency_id=m["agency_id"],
        state=m["state"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        sealed_details=bytes(m["sealed_details"]),
        request_serial=int(m["request_serial"]),
        deferred_until=m["deferred_until"],
        note=m["note"],
    )
