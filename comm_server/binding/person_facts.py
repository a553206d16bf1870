"""What the agency knows of its bound persons from the registry's feed (R14, R20).

``registry_handles``  local person id <-> this agency's subscription handle at
                      the registry (from ``MatchRecords``; random, per agency
                      and person: not a resident code, not an ID code).
``person_facts``      the latest facts the feed gave for a handle: four facts,
                      municipality code, deceased or not, the last change's
                      kind and effective date.
``feed_cursor``       one row: where to resume the feed.

Facts are keyed by handle, not by local person id, so a feed entry that
arrives before the binding that asked for it is stored now and found as soon
as the binding is. A page of entries and the cursor after it are written in
one transaction: a follower stopped at any point resumes without losing or
double-applying anything. Entries come in the registry's order and each
carries the facts as they were when read, so the last one applied wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from renkei import db
from renkei.errors import FailedPrecondition

metadata = sa.MetaData()

registry_handles = sa.Table(
    "registry_handles",
    metadata,
    sa.Column("local_person_id", sa.String(64), primary_key=True),
    sa.Column("handle", sa.String(32), nullable=False, unique=True),
    sa.Column("subscribed_at", db.UtcDateTime(), nullable=False),
)

person_facts = sa.Table(
    "person_facts",
    metadata,
    sa.Column("handle", sa.String(32), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("effective_date", sa.String(10), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("kana", sa.String(200), nullable=False),
    sa.Column("birth_date", sa.String(10), nullable=False),
    sa.Column("sex", sa.String(1), nullable=False),
    sa.Column("address", sa.String(300), nullable=False),
    sa.Column("municipality_code", sa.String(6), nullable=False),
    sa.Column("municipality", sa.String(50), nullable=False),
    sa.Column("deceased", sa.Boolean, nullable=False),
    sa.Column("died_on", sa.String(10), nullable=True),
    sa.Column("updated_at", db.UtcDateTime(), nullable=False),
)

feed_cursor = sa.Table(
    "feed_cursor",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("cursor", sa.String(32), nullable=False),
    sa.Column("updated_at", db.UtcDateTime(), nullable=False),
)

_FACTS = (
    "kind",
    "effective_date",
    "name",
    "kana",
    "birth_date",
    "sex",
    "address",
    "municipality_code",
    "municipality",
    "deceased",
    "died_on",
)


@dataclass(frozen=True, slots=True)
class PersonFacts:
    """A person's latest facts from the feed. ``kind`` is the last change's."""

    kind: str
    """"subscribed", "moved", "name_changed" or "deceased"."""
    effective_date: str
    name: str
    kana: str
    birth_date: str
    sex: str
    address: str
    municipality_code: str
    municipality: str
    deceased: bool
    died_on: str | None


@dataclass(frozen=True, slots=True)
class FeedItem:
    """One feed entry to apply: its handle and the facts it carries."""

    handle: str
    facts: PersonFacts


class PersonFactsStore:
    """The three tables above on the agency's engine (made if missing)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        metadata.create_all(engine)

    @property
    def engine(self) -> Engine:
        return self._engine

    def remember_handle(self, local_person_id: str, handle: str) -> None:
        """Keep the handle of a bound person; the same pair again is a no-op."""
        with self._engine.begin() as conn:
            row = conn.execute(
                sa.select(registry_handles.c.local_person_id, registry_handles.c.handle).where(
                    sa.or_(
                        registry_handles.c.local_person_id == local_person_id,
                        registry_handles.c.handle == handle,
                    )
                )
            ).first()
            if row is not None:
                if tuple(row) == (local_person_id, handle):
                    return
                raise FailedPrecondition(
                    "REGISTRY_HANDLE_CONFLICT",
                    f"local person {local_person_id!r} or that handle already has another pair",
                    {"local_person_id": local_person_id},
                )
            conn.execute(
                registry_handles.insert().values(
                    local_person_id=local_person_id,
                    handle=handle,
                    subscribed_at=datetime.now(UTC),
                )
            )

    @staticmethod
    def remember_handles(
        conn: Connection, pairs: Sequence[tuple[str, str]]
    ) -> dict[str, FailedPrecondition]:
        """``remember_handle`` for many (local id, handle) pairs on the caller's
        transaction (``CommStore.bind_many``); the conflicting ones by local id."""
        if not pairs:
            return {}
        h = registry_handles.c
        rows = conn.execute(
            sa.select(h.local_person_id, h.handle).where(
                sa.or_(
                    h.local_person_id.in_({local for local, _ in pairs}),
                    h.handle.in_({handle for _, handle in pairs}),
                )
            )
        ).all()
        by_local = {r.local_person_id: r.handle for r in rows}
        by_handle = {r.handle: r.local_person_id for r in rows}
        now = datetime.now(UTC)
        conflicts: dict[str, FailedPrecondition] = {}
        inserts: list[dict[str, object]] = []
        for local, handle in pairs:
            if by_local.get(local) == handle:
                continue
            if local in by_local or handle in by_handle:
                conflicts[local] = FailedPrecondition(
                    "REGISTRY_HANDLE_CONFLICT",
                    f"local person {local!r} or that handle already has another pair",
                    {"local_person_id": local},
                )
                continue
            by_local[local], by_handle[handle] = handle, local
            inserts.append({"local_person_id": local, "handle": handle, "subscribed_at": now})
        if inserts:
            conn.execute(registry_handles.insert(), inserts)
        return conflicts

    def handle_for(self, local_person_id: str) -> str | None:
        with self._engine.connect() as conn:
            value = conn.execute(
                sa.select(registry_handles.c.handle).where(
                    registry_handles.c.local_person_id == local_person_id
                )
            ).scalar()
        return None if value is None else str(value)

    def cursor(self) -> str:
        """Where to resume the feed ("" to start)."""
        with self._engine.connect() as conn:
            value = conn.execute(sa.select(feed_cursor.c.cursor).where(feed_cursor.c.id == 1))
            return str(value.scalar() or "")

    def apply(self, items: Sequence[FeedItem], cursor: str) -> int:
        """Apply one page and move the cursor, in one transaction; entries applied."""
        now = datetime.now(UTC)
        applied = 0
        with self._engine.begin() as conn:
            for item in items:
                values = {name: getattr(item.facts, name) for name in _FACTS}
                updated = conn.execute(
                    person_facts.update()
                    .where(person_facts.c.handle == item.handle)
                    .values(updated_at=now, **values)
                ).rowcount
                if updated == 0:
                    conn.execute(
                        person_facts.insert().values(handle=item.handle, updated_at=now, **values)
                    )
                applied += 1
            moved = conn.execute(
                feed_cursor.update()
                .where(feed_cursor.c.id == 1)
                .values(cursor=cursor, updated_at=now)
            ).rowcount
            if moved == 0:
                conn.execute(feed_cursor.insert().values(id=1, cursor=cursor, updated_at=now))
        return applied

    def facts_for(self, local_person_id: str) -> PersonFacts | None:
        """The person's latest facts, or None if unbound by the feed or not yet heard of."""
        query = (
            sa.select(*(person_facts.c[n] for n in _FACTS))
            .join(registry_handles, registry_handles.c.handle == person_facts.c.handle)
            .where(registry_handles.c.local_person_id == local_person_id)
        )
        with self._engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            return None
        return PersonFacts(**{n: row[n] for n in _FACTS})

    def current_municipality(self, local_person_id: str) -> str | None:
        """The municipality code the person lives in now, as far as the feed told."""
        facts = self.facts_for(local_person_id)
        return None if facts is None else facts.municipality_code

    def all_handles(self) -> list[str]:
        with self._engine.connect() as conn:
            return [str(h) for h in conn.execute(sa.select(registry_handles.c.handle)).scalars()]
