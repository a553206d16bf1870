"""Data for `make bench-portal` (ops/bench/portal.py): a hub log of millions of entries.

:func:`sqlite_hub` and :func:`postgres_hub` write a hub database straight into
the hub's own tables, as its store (hub_server.log_store.SqlHubLog with the
tree, hub_server.log_tree.TreeWriter) would have written them over the years:

- ``hub_log``: one row per exchange, complete (OK or DENIED), serials in time order;
- ``hub_log_entries``: per exchange its ``exchange`` entry as it began (PENDING)
  and, a few leaves later, its ``outcome`` entry; an exchange refused at once
  has one complete entry. Each in its canonical encoding (renkei.tlog.entry),
  built here from a template (``Entry.decode`` accepts them: the tests check);
- ``hub_log_hashes``: every node hash of the Merkle tree, numbered as the hub
  numbers them (renkei.tlog.merkle.CompactRange and stored_hash_index);
- ``hub_log_tree`` and one signed checkpoint of the whole tree, cosigned by a
  witness key of the dataset's own, so that proofs can be served against it.

``entries`` counts leaves. Persons are many (about four exchanges each, by
their person key); one of them, :attr:`HubDataset.person_key`, has
``person_exchanges`` exchanges spread over the years. ``logged_at`` runs
evenly over ``years`` years ending at the generation time, so the oldest year
can be purged under a 7-year retention.

On SQLite the tables are written in big transactions with the journal off and
their indexes built afterwards, into a file cached under the state folder,
keyed by the sizes, this generator's version and the hub's schema; on
PostgreSQL by COPY into a schema of the dataset's own (dropped by the caller).

:func:`exchanges` generates what the oversight body's reconcile joins: hub
entries and, per exchange, the requester's and the provider's rows.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import shutil
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import ed25519

from hub_server import log_store, log_tree
from oversight.model import PROVIDER, REQUESTER, AgencyRow, HubEntry
from renkei import db
from renkei.tlog import checkpoint, merkle, note
from renkei.tlog.entry import EXCHANGE, OUTCOME, Entry

# Bump when what is generated changes: the cache key holds it.
GENERATOR = 1
ORIGIN = "bench.portal.renkei.internal"
WITNESS = "witness.bench.portal.renkei.internal"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_YEAR_US = 365 * 24 * 3600 * 1_000_000
LEAVES_PER_CHUNK = 200_000
# One in this many entries is decoded by the hub's own Entry.decode while generating.
_CHECK_EVERY = 50_000

_q = json.encoder.encode_basestring  # as renkei.tlog.entry quotes strings
_Say = Callable[[str], None]

MUNICIPALITIES = tuple(f"{131000 + 7 * k:06d}" for k in range(40))


def _routes() -> list[tuple[str, str, str, str]]:
    """(legal-basis item, requester, provider, info kind): the demo table's lawful routes."""
    routes: list[tuple[str, str, str, str]] = []
    for city in MUNICIPALITIES:
        routes.append(("二十七", city, "nenkin", "年金給付関係情報"))
        for kind in ("地方税関係情報", "住民票関係情報", "介護保険給付等関係情報"):
            routes.append(("一", "mhlw", city, kind))
        for kind in ("地方税関係情報", "住民票関係情報"):
            routes.append(("四十八", "mhlw", city, kind))
    routes.append(("一", "mhlw", "nenkin", "年金給付関係情報"))
    return routes


DENIALS = ("INFO_KIND_NOT_LISTED", "PROVIDER_NOT_IN_ITEM", "REQUESTER_NOT_IN_ITEM")


def person_key(i: int) -> str:
    """The person key of generated person ``i`` (64 hex, as the hub's HMAC)."""
    return hashlib.sha256(f"bench-person-{i}".encode()).hexdigest()


TARGET = hashlib.sha256(b"bench-person-target").hexdigest()


def keys(seed: int) -> tuple[note.Ed25519Signer, checkpoint.CosignatureSigner]:
    """The dataset's log signer and witness (Ed25519 from the seed; not secrets)."""
    log_key = ed25519.Ed25519PrivateKey.from_private_bytes(
        hashlib.sha256(f"bench-portal-log-{seed}".encode()).digest()
    )
    witness_key = ed25519.Ed25519PrivateKey.from_private_bytes(
        hashlib.sha256(f"bench-portal-witness-{seed}".encode()).digest()
    )
    return note.Ed25519Signer(ORIGIN, log_key), checkpoint.CosignatureSigner(
        WITNESS, witness_key, lambda: int(time.time())
    )


@dataclass(frozen=True)
class HubSpec:
    entries: int = 10_000_000
    person_exchanges: int = 500
    years: int = 8
    seed: int = 15
    # Share of exchanges refused at once (one complete entry, not two).
    refused_at_once: float = 0.05

    def key(self) -> str:
        return (
            f"e{self.entries}-p{self.person_exchanges}-y{self.years}-s{self.seed}"
            f"-r{self.refused_at_once}"
        )


@dataclass(frozen=True)
class HubDataset:
    """What was generated: enough for the benchmark to find and verify what it reads."""

    entries: int
    rows: int
    person_key: str
    person_exchanges: int
    person_leaves: int
    start: datetime
    end: datetime
    seed: int
    seconds: float  # how long generating it took (when it was generated)
    cached: bool = False

    def log_verifier(self) -> note.Ed25519Verifier:
        return keys(self.seed)[0].verifier()

    def witness_verifier(self) -> checkpoint.CosignatureVerifier:
        return keys(self.seed)[1].verifier()

    def to_json(self) -> str:
        doc = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "cached"}
        doc["start"], doc["end"] = self.start.isoformat(), self.end.isoformat()
        return json.dumps(doc, indent=1)

    @classmethod
    def from_json(cls, text: str) -> HubDataset:
        doc = json.loads(text)
        doc["start"] = datetime.fromisoformat(doc["start"])
        doc["end"] = datetime.fromisoformat(doc["end"])
        return cls(**doc, cached=True)


@dataclass
class Chunk:
    """Rows for each table, in the hub's column order (``COLUMNS``); times as text."""

    rows: list[tuple[object, ...]] = field(default_factory=list)
    leaves: list[tuple[object, ...]] = field(default_factory=list)
    hashes: list[tuple[int, bytes]] = field(default_factory=list)
    entries: list[bytes] = field(default_factory=list)  # the leaves' entries, in order


COLUMNS = {
    "hub_log": (
        "serial",
        "logged_at",
        "legal_basis_item",
        "requester_agency_id",
        "provider_agency_id",
        "info_kind",
        "policy_version",
        "person_key",
        "outcome",
        "reason",
        "completed_at",
    ),
    "hub_log_entries": (
        "leaf_index",
        "serial",
        "kind",
        "requester_agency_id",
        "provider_agency_id",
        "person_key",
        "entry",
    ),
    "hub_log_hashes": ("id", "hash"),
}


_DAY_US = 24 * 3600 * 1_000_000
_days: dict[int, str] = {}


def _time(us: int) -> str:
    """A naive UTC time as SQLAlchemy's SQLite DateTime stores it (microseconds always)."""
    day, rest = divmod(us, _DAY_US)
    date = _days.get(day)
    if date is None:
        date = _days[day] = (EPOCH + timedelta(days=day)).date().isoformat()
    seconds, micro = divmod(rest, 1_000_000)
    minutes, second = divmod(seconds, 60)
    return f"{date} {minutes // 60:02d}:{minutes % 60:02d}:{second:02d}.{micro:06d}"


def _exchange_entry(
    info_kind: str,
    item: str,
    at: str,
    outcome: str,
    person: str,
    policy: str,
    provider: str,
    reason: str,
    requester: str,
    salt: bytes,
    serial: int,
) -> bytes:
    """Entry(kind=exchange, ...).encode(), without building the Entry (a third of the time)."""
    return (
        f'{{"info_kind":{_q(info_kind)},"kind":"exchange","legal_basis_item":{_q(item)},'
        f'"logged_at":"{at[:10]}T{at[11:]}Z","outcome":{_q(outcome)},"person":"{person}",'
        f'"policy_version":{_q(policy)},"provider":{_q(provider)},"reason":{_q(reason)},'
        f'"requester":{_q(requester)},"salt":"{base64.b64encode(salt).decode()}",'
        f'"serial":{serial},"v":1}}'
    ).encode()


def _outcome_entry(
    at: str, outcome: str, provider: str, reason: str, requester: str, salt: bytes, serial: int
) -> bytes:
    return (
        f'{{"info_kind":"","kind":"outcome","legal_basis_item":"",'
        f'"logged_at":"{at[:10]}T{at[11:]}Z","outcome":{_q(outcome)},"person":"",'
        f'"policy_version":"","provider":{_q(provider)},"reason":{_q(reason)},'
        f'"requester":{_q(requester)},"salt":"{base64.b64encode(salt).decode()}",'
        f'"serial":{serial},"v":1}}'
    ).encode()


@dataclass
class _Pending:
    serial: int
    due: int  # the leaf index from which its outcome entry is written
    row: tuple[object, ...]  # its hub_log row without outcome and completion
    requester: str
    provider: str
    outcome: str
    reason: str


class HubGenerator:
    """The hub's tables for ``spec``, chunk by chunk; then ``root``, ``rows`` and times."""

    def __init__(self, spec: HubSpec, end: datetime) -> None:
        if spec.entries < 4 * spec.person_exchanges:
            raise ValueError("entries: at least four per exchange of the person")
        self.spec = spec
        self.end_us = int((end - EPOCH) / timedelta(microseconds=1))
        self.start_us = self.end_us - spec.years * _YEAR_US
        self.rows = 0
        self.person_leaves = 0
        self.range = merkle.CompactRange()
        self._rng = random.Random(spec.seed)
        persons = max(16, spec.entries // 8)
        self._persons = [person_key(i) for i in range(persons)]
        # Where the person's exchanges begin: evenly spread, each at a leaf of its own.
        step = spec.entries / spec.person_exchanges
        self._targets = deque(
            int(step * i + self._rng.random() * step / 2) for i in range(spec.person_exchanges)
        )

    def at(self, leaf: int) -> int:
        """The time (µs) of leaf ``leaf``: evenly over the years, the last leaf at the end."""
        return self.start_us + (leaf * (self.end_us - self.start_us)) // max(
            1, self.spec.entries - 1
        )

    def policy(self, us: int) -> str:
        """The policy version in force: a new one each year."""
        year = (us - self.start_us) // _YEAR_US
        return "sha256:" + hashlib.sha256(f"policy-{year}".encode()).hexdigest()[:16]

    def chunks(self) -> Iterator[Chunk]:
        spec, rng = self.spec, self._rng
        routes = _routes()
        persons = self._persons
        pending: deque[_Pending] = deque()
        targets = self._targets
        chunk = Chunk()
        serial = 0
        policies: dict[int, str] = {}
        draw = rng.random
        for leaf in range(spec.entries):
            us = self.at(leaf)
            at = _time(us)
            salt = rng.randbytes(16)
            left = spec.entries - leaf  # leaves still to write, this one included
            if pending and (pending[0].due <= leaf or left <= len(pending)):
                p = pending.popleft()
                data = _outcome_entry(
                    at, p.outcome, p.provider, p.reason, p.requester, salt, p.serial
                )
                chunk.leaves.append(
                    (leaf, p.serial, "outcome", p.requester, p.provider, None, data)
                )
                chunk.entries.append(data)
                chunk.rows.append((*p.row, p.outcome, p.reason, at))
                if p.row[7] == TARGET:
                    self.person_leaves += 1
            else:
                serial += 1
                mine = bool(targets) and targets[0] <= leaf and left - len(pending) >= 2
                if mine:
                    targets.popleft()
                key = TARGET if mine else persons[int(draw() * len(persons))]
                item, requester, provider, info_kind = routes[int(draw() * len(routes))]
                year = (us - self.start_us) // _YEAR_US
                policy = policies.get(year) or policies.setdefault(year, self.policy(us))
                row = (serial, at, item, requester, provider, info_kind, policy, key)
                once = not mine and (left - len(pending) < 2 or draw() < spec.refused_at_once)
                if once:
                    reason = DENIALS[rng.randrange(len(DENIALS))]
                    outcome, row_out = log_store.DENIED, (log_store.DENIED, reason, at)
                    chunk.rows.append((*row, *row_out))
                else:
                    outcome, reason = log_store.PENDING, ""
                    denied = draw() < 0.03
                    pending.append(
                        _Pending(
                            serial,
                            leaf + 1 + int(draw() * 6),
                            row,
                            requester,
                            provider,
                            log_store.DENIED if denied else log_store.OK,
                            "PROVIDER_REFUSED" if denied else "",
                        )
                    )
                data = _exchange_entry(
                    info_kind,
                    item,
                    at,
                    outcome,
                    key,
                    policy,
                    provider,
                    reason,
                    requester,
                    salt,
                    serial,
                )
                chunk.leaves.append((leaf, serial, "exchange", requester, provider, key, data))
                chunk.entries.append(data)
                if key == TARGET:
                    self.person_leaves += 1
            if leaf % _CHECK_EVERY == 0:
                Entry.decode(data)  # the hub's own decoder: canonical, or this raises
            if len(chunk.leaves) >= LEAVES_PER_CHUNK:
                yield self._hashed(chunk)
                chunk = Chunk()
        assert not pending, "every exchange complete"
        assert not targets, "every exchange of the person written"
        self.rows = serial
        if chunk.leaves:
            yield self._hashed(chunk)

    def _hashed(self, chunk: Chunk) -> Chunk:
        leaf_hash, index = merkle.leaf_hash, merkle.stored_hash_index
        nodes = self.range.append(leaf_hash(data) for data in chunk.entries)
        chunk.hashes = [(index(level, i), h) for level, i, h in nodes]
        return chunk

    def signed_checkpoint(self) -> str:
        """The checkpoint of the whole tree, signed by the log and cosigned by the witness."""
        signer, witness = keys(self.spec.seed)
        signed = checkpoint.CheckpointSigner(signer).sign(self.range.size, self.range.root())
        return checkpoint.cosign(signed, signer.verifier(), witness).decode()

    def dataset(self, seconds: float) -> HubDataset:
        return HubDataset(
            entries=self.spec.entries,
            rows=self.rows,
            person_key=TARGET,
            person_exchanges=self.spec.person_exchanges,
            person_leaves=self.person_leaves,
            start=EPOCH + timedelta(microseconds=self.start_us),
            end=EPOCH + timedelta(microseconds=self.end_us),
            seed=self.spec.seed,
            seconds=seconds,
        )


# --- the hub's schema ---------------------------------------------------------


# The tables generated; every other table and index of the hub's stores is made
# when the dataset is opened (ensure_schema), so a cached file outlives their changes.
FILLED = ("hub_log", "hub_log_entries", "hub_log_hashes", "hub_log_tree", "hub_log_checkpoints")


def _filled() -> list[sa.Table]:
    tables = {**log_store.metadata.tables, **log_tree.metadata.tables}
    return [tables[name] for name in FILLED]


def schema_fingerprint(dialect: sa.Dialect) -> str:
    """The filled tables' DDL, hashed: a cached file is used with its own schema only."""
    ddl = [str(sa.schema.CreateTable(t).compile(dialect=dialect)) for t in _filled()]
    return hashlib.sha256("\n".join(ddl).encode()).hexdigest()[:12]


def _create_tables(run: sa.Connection) -> None:
    for table in _filled():
        run.execute(sa.schema.CreateTable(table))


def ensure_schema(engine: sa.Engine, *extra: sa.MetaData) -> None:
    """Every table and index of the hub's log (and of ``extra``) that is not there yet."""
    everything = [log_store.metadata, log_tree.metadata, *extra]
    for meta in everything:
        meta.create_all(engine)
    inspector = sa.inspect(engine)
    with engine.begin() as conn:
        for meta in everything:
            for table in meta.sorted_tables:
                there = {i["name"] for i in inspector.get_indexes(table.name)}
                for index in table.indexes:
                    if index.name not in there:
                        index.create(conn)


# --- SQLite -------------------------------------------------------------------


def sqlite_hub(
    folder: Path, spec: HubSpec, *, end: datetime | None = None, say: _Say = print
) -> tuple[Path, HubDataset]:
    """The cached SQLite hub database for ``spec`` under ``folder``, generated if absent."""
    from sqlalchemy.dialects import sqlite as sqlite_dialect

    name = f"hub-{spec.key()}-g{GENERATOR}-{schema_fingerprint(sqlite_dialect.dialect())}"
    path, meta = folder / f"{name}.db", folder / f"{name}.json"
    if path.exists() and meta.exists():
        return path, HubDataset.from_json(meta.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob(f"hub-{spec.key()}-*"):  # made by another version or schema
        stale.unlink()
    started = time.perf_counter()
    gen = HubGenerator(spec, end or datetime.now(UTC))
    building = folder / f"{name}.building"
    building.unlink(missing_ok=True)
    engine = sa.create_engine(db.sqlite_url(str(building)))
    with engine.begin() as conn:
        _create_tables(conn)
    engine.dispose()
    raw = sqlite3.connect(building, isolation_level=None)
    for pragma in (
        "journal_mode=OFF",
        "synchronous=OFF",
        "cache_size=-1000000",
        "temp_store=MEMORY",
        "locking_mode=EXCLUSIVE",
    ):
        raw.execute(f"PRAGMA {pragma}")
    inserts = {
        table: f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
        for table, cols in COLUMNS.items()
    }
    done = 0
    for chunk in gen.chunks():
        raw.execute("BEGIN")
        raw.executemany(inserts["hub_log"], chunk.rows)
        raw.executemany(inserts["hub_log_entries"], chunk.leaves)
        raw.executemany(inserts["hub_log_hashes"], chunk.hashes)
        raw.execute("COMMIT")
        done += len(chunk.leaves)
        if done % 2_000_000 < LEAVES_PER_CHUNK:
            say(f"  sqlite: {done:,} entries, {time.perf_counter() - started:.0f} s")
    raw.close()
    engine = sa.create_engine(db.sqlite_url(str(building)))
    ensure_schema(engine)
    with engine.begin() as conn:
        _finish(conn, gen)
        conn.exec_driver_sql("ANALYZE")
    engine.dispose()
    raw = sqlite3.connect(building)
    raw.execute("PRAGMA journal_mode=WAL")  # as the hub's engine opens it
    raw.close()
    data = gen.dataset(time.perf_counter() - started)
    building.rename(path)
    meta.write_text(data.to_json())
    return path, data


def _finish(conn: sa.Connection, gen: HubGenerator) -> None:
    """The tree's size and its one witnessed checkpoint."""
    conn.execute(log_tree.tree.insert().values(id=1, size=gen.range.size))
    conn.execute(
        log_tree.checkpoints.insert().values(
            size=gen.range.size,
            note=gen.signed_checkpoint(),
            witnessed=True,
            signed_at=EPOCH + timedelta(microseconds=gen.end_us),
        )
    )


def copy_of(path: Path, into: Path) -> Path:
    """A copy of a cached database to change (the purge), leaving the cache as it was."""
    into.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("-wal", "-shm"):  # an earlier copy's journal must not meet this one
        Path(f"{into}{suffix}").unlink(missing_ok=True)
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything committed, in the file
    raw.close()
    shutil.copyfile(path, into)
    raw = sqlite3.connect(into)
    tables = {name for (name,) in raw.execute("SELECT name FROM sqlite_master")}
    raw.close()
    if not set(FILLED) <= tables:
        raise RuntimeError(f"{into}: the copy of {path} lacks {sorted(set(FILLED) - tables)}")
    return into


# --- PostgreSQL ---------------------------------------------------------------


def postgres_hub(
    url: str,
    schema: str,
    spec: HubSpec,
    *,
    end: datetime | None = None,
    source: tuple[Path, HubDataset] | None = None,
    say: _Say = print,
) -> HubDataset:
    """``spec`` in a fresh PostgreSQL ``schema`` (dropped first if there): generated, or
    with ``source`` (a SQLite dataset of the same spec) copied from it, which is faster."""
    import psycopg

    drop_schema(url, schema)
    started = time.perf_counter()
    gen = HubGenerator(spec, end or datetime.now(UTC))
    engine = db.create_engine(url, schema=schema)
    with engine.begin() as conn:
        _create_tables(conn)
    engine.dispose()
    tables = _sqlite_tables(source[0]) if source is not None else _generated_tables(gen)
    with psycopg.connect(_libpq(url), options=f"-csearch_path={schema}") as pg:
        pg.execute("SET synchronous_commit = off")
        done = 0
        for table, rows in tables:
            copy = f"COPY {table} ({', '.join(COLUMNS[table])}) FROM STDIN"
            with pg.cursor() as cur, cur.copy(copy) as cp:
                cp.write(_copy_text(table, rows))
            pg.commit()
            if table == "hub_log_entries":
                done += len(rows)
                if done % 2_000_000 < LEAVES_PER_CHUNK:
                    say(f"  postgres: {done:,} entries, {time.perf_counter() - started:.0f} s")
    engine = db.create_engine(url, schema=schema)
    sa.event.listen(engine, "connect", lambda c, _: c.execute("SET maintenance_work_mem = '512MB'"))
    ensure_schema(engine)
    with engine.begin() as conn:
        if source is None:
            _finish(conn, gen)
        else:
            _finish_from(conn, source[0])
        # Serials from here on follow the generated ones, as the hub's sequence would.
        for table, column in (("hub_log", "serial"), ("hub_log_checkpoints", "id")):
            conn.exec_driver_sql(
                f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'),"
                f" (SELECT max({column}) FROM {table}))"
            )
        conn.exec_driver_sql("ANALYZE")
    engine.dispose()
    seconds = time.perf_counter() - started
    if source is not None:
        return replace(source[1], seconds=seconds, cached=False)
    return gen.dataset(seconds)


def _generated_tables(gen: HubGenerator) -> Iterator[tuple[str, Sequence[tuple[object, ...]]]]:
    for chunk in gen.chunks():
        yield "hub_log", chunk.rows
        yield "hub_log_entries", chunk.leaves
        yield "hub_log_hashes", chunk.hashes


def _sqlite_tables(path: Path) -> Iterator[tuple[str, Sequence[tuple[object, ...]]]]:
    """The generated tables of a SQLite dataset, a chunk at a time, in key order."""
    raw = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        for table, columns in COLUMNS.items():
            cur = raw.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {columns[0]}")
            while rows := cur.fetchmany(LEAVES_PER_CHUNK):
                yield table, rows
    finally:
        raw.close()


def _finish_from(conn: sa.Connection, path: Path) -> None:
    """The tree's size and checkpoint as the SQLite dataset holds them."""
    source = sa.create_engine(db.sqlite_url(str(path)))
    with source.connect() as there:
        size = there.scalar(sa.select(log_tree.tree.c.size))
        kept = there.execute(sa.select(log_tree.checkpoints)).mappings().all()
    source.dispose()
    conn.execute(log_tree.tree.insert().values(id=1, size=size))
    for row in kept:
        conn.execute(log_tree.checkpoints.insert().values(**row))


def drop_schema(url: str, schema: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    engine.dispose()


def _libpq(url: str) -> str:
    """The libpq form of a SQLAlchemy URL (``postgresql+psycopg://`` -> ``postgresql://``)."""
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _copy_text(table: str, rows: Sequence[tuple[object, ...]]) -> bytes:
    """COPY text format: tabs between fields, ``\\N`` for NULL, bytea as hex, times in UTC.

    Nothing generated holds a tab, a newline or a backslash, so no value needs escaping.
    """
    null, hexa = "\\N", "\\\\x"  # what COPY reads as NULL and as bytea's \\x
    if table == "hub_log":
        line = "%d\t%s+00\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s+00\n"
        lines = [line % r for r in rows]
    elif table == "hub_log_entries":
        lines = [
            f"{i}\t{s}\t{k}\t{r}\t{p}\t{null if key is None else key}\t{hexa}{e.hex()}\n"  # type: ignore[attr-defined]
            for i, s, k, r, p, key, e in rows
        ]
    else:
        lines = [f"{i}\t{hexa}{h.hex()}\n" for i, h in rows]  # type: ignore[attr-defined]
    return "".join(lines).encode()


# --- what the oversight body reconciles ---------------------------------------------


@dataclass
class Shares:
    """The hub's entries and each agency's rows for ``exchanges`` exchanges, and what
    was broken on purpose: reconcile must report exactly ``seeded`` findings."""

    hub: list[HubEntry]
    shares: dict[str, list[AgencyRow]]
    exchanges: int
    seeded: dict[str, int]


def exchanges(count: int, *, seed: int = 15, broken: int = 10) -> Shares:
    """``count`` exchanges as the hub and both agencies logged them, in leaf order.

    Each relayed exchange is an ``exchange`` entry (PENDING) and an ``outcome``
    entry at the hub, a requester row and a provider row (the same content hash,
    times within a second of the hub's); one in twenty is refused at the hub at
    once (one entry DENIED, a requester row PERMISSION_DENIED, no provider row).
    Then ``broken`` requester rows are deleted, ``broken`` provider rows have their
    info kind edited, and ``broken`` rows name serials the hub never logged.
    """
    rng = random.Random(seed)
    draw = rng.random
    routes = _routes()
    start = datetime(2026, 4, 1, tzinfo=UTC)
    hub: list[HubEntry] = []
    shares: dict[str, list[AgencyRow]] = {}
    row_id = 0
    staff = [f"staff-{i:03d}" for i in range(200)]
    persons = [person_key(i) for i in range(max(16, count // 4))]
    early, late, later = (timedelta(milliseconds=ms) for ms in (-30, 40, 80))
    for serial in range(1, count + 1):
        item, requester, provider, info_kind = routes[int(draw() * len(routes))]
        at = start + timedelta(microseconds=serial * 20_000)
        person = persons[int(draw() * len(persons))]
        refused = draw() < 0.05
        hub.append(
            HubEntry(
                2 * serial,
                EXCHANGE,
                serial,
                at,
                requester,
                provider,
                item,
                info_kind,
                "sha256:0123456789abcdef",
                person,
                log_store.DENIED if refused else log_store.PENDING,
                DENIALS[0] if refused else "",
            )
        )
        who = staff[int(draw() * len(staff))]
        content = serial.to_bytes(32, "big")  # as a SHA-256 of (11): 32 bytes, one per exchange
        row_id += 1
        shares.setdefault(requester, []).append(
            AgencyRow(
                row_id,
                serial,
                REQUESTER,
                at + early,
                requester,
                provider,
                info_kind,
                item,
                person,
                who,
                f"terminal-{who}",
                b"" if refused else content,
                "",
                "PERMISSION_DENIED" if refused else log_store.OK,
                DENIALS[0] if refused else "",
            )
        )
        if refused:
            continue
        hub.append(
            HubEntry(
                2 * serial + 1,
                OUTCOME,
                serial,
                at + later,
                requester,
                provider,
                outcome=log_store.OK,
            )
        )
        row_id += 1
        shares.setdefault(provider, []).append(
            AgencyRow(
                row_id,
                serial,
                PROVIDER,
                at + late,
                provider,
                requester,
                info_kind,
                item,
                person,
                "auto",
                "server",
                content,
                "",
                log_store.OK,
            )
        )
    seeded = {"MISSING_REQUESTER_ROW": 0, "FIELD_MISMATCH": 0, "ROW_WITHOUT_HUB_ENTRY": 0}
    agencies = sorted(shares)
    pensions = shares["nenkin"]  # a provider only
    for n in range(broken):
        share = shares[agencies[n % len(agencies)]]
        gone = next(i for i in range(len(share) // 2, len(share)) if share[i].role == REQUESTER)
        del share[gone]
        seeded["MISSING_REQUESTER_ROW"] += 1
        edited = n * 7 + 3
        pensions[edited] = replace(pensions[edited], info_kind="住民票関係情報")
        seeded["FIELD_MISMATCH"] += 1
        row_id += 1
        other = agencies[-1 - n % len(agencies)]
        stray = replace(pensions[0], id=row_id, serial=count + 1000 + n, agency_id=other)
        shares[other].append(stray)
        seeded["ROW_WITHOUT_HUB_ENTRY"] += 1
    return Shares(hub, shares, count, seeded)
