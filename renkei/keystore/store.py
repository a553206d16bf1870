"""The key store: versions of named keys, wrapped under the master key, in the party's database."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from renkei.db import UtcDateTime
from renkei.keystore.kek import MasterKey

metadata = sa.MetaData()

key_versions = sa.Table(
    "key_versions",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("wrapped", sa.LargeBinary, nullable=False),
    sa.Column("master_key_id", sa.String(64), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    # The version used for new material (one per name).
    sa.Column("current", sa.Boolean, nullable=False),
    # Older versions are still accepted until then (None: no limit set yet).
    sa.Column("accept_until", UtcDateTime(), nullable=True),
    # For a version made ahead of a rotation: how long the version it replaces
    # stays accepted once this one becomes current (the stated window, R11).
    sa.Column("window_seconds", sa.Integer, nullable=True),
)

# Bumped by every change, so a running server can notice one cheaply.
key_generation = sa.Table(
    "key_generation",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("generation", sa.BigInteger, nullable=False),
)


@dataclass(frozen=True)
class KeyVersion:
    name: str
    version: int
    material: bytes
    created_at: datetime
    current: bool
    accept_until: datetime | None
    window: timedelta | None

    def accepted_at(self, when: datetime) -> bool:
        return self.current or self.accept_until is None or when < self.accept_until


def _aad(name: str, version: int) -> bytes:
    return f"renkei/keystore/v1|{len(name)}|{name}|{version}".encode()


class KeyStore:
    def __init__(self, engine: Engine, master: MasterKey) -> None:
        self._engine = engine
        self._master = master
        metadata.create_all(engine)

    @property
    def engine(self) -> Engine:
        return self._engine

    def generation(self) -> int:
        with self._engine.connect() as conn:
            value = conn.execute(sa.select(key_generation.c.generation)).scalar()
            return int(value or 0)

    def _bump(self, conn: sa.Connection) -> None:
        updated = conn.execute(
            key_generation.update().values(generation=key_generation.c.generation + 1)
        ).rowcount
        if not updated:
            conn.execute(key_generation.insert().values(id=1, generation=1))

    def create(
        self,
        name: str,
        material: bytes | None = None,
        *,
        size: int = 32,
        current: bool = True,
        window: timedelta | None = None,
    ) -> int:
        """Add the next version of ``name`` (random ``size`` bytes unless given); its number.

        ``current=False`` prepares a rotation: the new version is accepted at
        once but used for new material only after ``make_current``, from when
        the version it replaces stays accepted for ``window``.
        """
        if not current and window is None:
            raise ValueError("a version made ahead of a rotation needs its window")
        material = os.urandom(size) if material is None else material
        with self._engine.begin() as conn:
            last = conn.execute(
                sa.select(sa.func.max(key_versions.c.version)).where(key_versions.c.name == name)
            ).scalar()
            version = int(last or 0) + 1
            if current:
                conn.execute(
                    key_versions.update().where(key_versions.c.name == name).values(current=False)
                )
            conn.execute(
                key_versions.insert().values(
                    name=name,
                    version=version,
                    wrapped=self._master.wrap(material, _aad(name, version)),
                    master_key_id=self._master.key_id,
                    created_at=datetime.now(UTC),
                    current=current or version == 1,
                    accept_until=None,
                    window_seconds=None if window is None else int(window.total_seconds()),
                )
            )
            self._bump(conn)
        return version

    def make_current(self, name: str, version: int, *, now: datetime) -> datetime | None:
        """Switch new material to ``version``; the version it replaces stays accepted
        for the window stated when ``version`` was made. Returns that limit (None if
        ``version`` already was current: then nothing changes)."""
        with self._engine.begin() as conn:
            row = conn.execute(
                sa.select(key_versions.c.current, key_versions.c.window_seconds).where(
                    key_versions.c.name == name, key_versions.c.version == version
                )
            ).first()
            if row is None:
                raise KeyError(f"no version {version} of key {name!r}")
            if row.current:
                return None
            previous_accept_until = now + timedelta(seconds=row.window_seconds or 0)
            conn.execute(
                key_versions.update()
                .where(
                    key_versions.c.name == name,
                    key_versions.c.current.is_(True),
                    key_versions.c.version != version,
                )
                .values(current=False, accept_until=previous_accept_until)
            )
            conn.execute(
                key_versions.update()
                .where(key_versions.c.name == name, key_versions.c.version == version)
                .values(current=True, accept_until=None)
            )
            self._bump(conn)
        return previous_accept_until

    def versions(self, name: str) -> list[KeyVersion]:
        return [v for v in self.all() if v.name == name]

    def all(self, prefix: str = "") -> list[KeyVersion]:
        query = sa.select(key_versions).order_by(key_versions.c.name, key_versions.c.version)
        if prefix:
            query = query.where(key_versions.c.name.startswith(prefix, autoescape=True))
        with self._engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            KeyVersion(
                r["name"],
                r["version"],
                self._master.unwrap(r["wrapped"], _aad(r["name"], r["version"])),
                r["created_at"],
                bool(r["current"]),
                r["accept_until"],
                None if r["window_seconds"] is None else timedelta(seconds=r["window_seconds"]),
            )
            for r in rows
        ]

    def current(self, name: str) -> KeyVersion:
        for version in self.versions(name):
            if version.current:
                return version
        raise KeyError(f"no key named {name!r}")
