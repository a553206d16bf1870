"""`make bench-portal`: the portal's history, the oversight body's reconcile, retention's purge.

On a hub log of ``--entries`` entries (10 million by default; ops/bench/portal_data.py
writes it straight into the hub's tables, cached on SQLite under ``--state-dir``):

- **History page**: one person's 1,000 entries (500 exchanges over 8 years,
  each its exchange and outcome entry) read through the hub's own
  ``PersonalLog.list_entries`` (hub_server/personal.py, what PersonalLogService
  serves): the person's keys, the page from ``hub_log`` and
  ``hub_log_entries``, the inclusion proofs against the witnessed checkpoint,
  the statute's text. Every page of 100 in turn, the whole history in one page
  of 1,000, one year, one agency: p50 and p99 per page. Every proof of the
  first pass is verified against the checkpoint.
- **Reconcile** (oversight/reconcile.py) of ``--exchanges`` exchanges (a
  million): the hub's entries and both agencies' rows in memory, a few broken
  on purpose; entries per second, and the findings must be exactly those.
- **Purge under traffic**: the hub's own log writes (AsyncHubLog, single
  exchanges begun and finished by ``--writers`` callers, group commit) at full
  speed, in phases of ``--phase-seconds`` alone and with the purge of the oldest
  year (hub_server/retention.py ``purge_hub``, a 7-year period, a legal hold on
  the person) running beside it, alternating; the throughput ratio. The purge
  runs on a copy of the SQLite file (the cache stays as it was).

SQLite always, PostgreSQL (127.0.0.1:5432) when it answers (``--postgres-entries``,
copied from the SQLite dataset of that size into a schema of its own, dropped
at the end). Bounded in count and time; everything on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import statistics
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from hdrh.histogram import HdrHistogram
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import Engine

import hub_server
from hub_server import log_tree
from hub_server import retention as hub_retention
from hub_server.directory import Agency, Directory
from hub_server.linkage import Hub
from hub_server.log_store import (
    OK,
    PENDING,
    AsyncHubLog,
    LogEntry,
    SqlHubLog,
    hub_log,
    person_key_aliases,
)
from hub_server.log_tree import TreeReader
from hub_server.personal import ListQuery, PersonalEntry, PersonalLog
from hub_server.personal_store import SqlPersonalStore, SqlProofs
from hub_server.policy_versions import load_policy
from hub_server.ports import ProviderGateway
from ops.bench import portal_data
from oversight.reconcile import reconcile
from renkei import codes, db, retention
from renkei.errors import RenkeiError
from renkei.tlog import checkpoint, merkle, note

POSTGRES_URL = os.environ.get(
    "RENKEI_TEST_POSTGRES_URL", "postgresql+psycopg://root@127.0.0.1:5432/test"
)
PORTAL = "portal"
RETENTION_DAYS = retention.DEFAULT_DAYS  # 7 years: the oldest of the 8 years goes


# --- the history page ------------------------------------------------------------


class _NoProviders:
    """The provider side of the hub: a history page never calls it."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"a history page called the provider gateway ({name})")


@dataclass
class PageFigures:
    histograms: dict[str, HdrHistogram]
    entries: int  # the person's entries, every page of one pass together
    verified: int  # of them, with an inclusion proof that verified
    expected: int  # what the dataset holds for the person


def _histogram() -> HdrHistogram:
    return HdrHistogram(1, 60_000_000, 3)  # microseconds


def _personal_log(engine: Engine, data: portal_data.HubDataset) -> tuple[PersonalLog, str]:
    """The hub's PersonalLog on ``engine``, and the portal's link code for the dataset's person.

    The person's entries were logged under the person key of an earlier ID code:
    the hub's alias (as after an ID-key rotation) links it to the key of the
    ID code behind the link code, so a page reads both keys, as it would then.
    """
    policy = load_policy(Path(hub_server.__file__).parent / "data" / "legal_basis_demo.toml")
    sealing = x25519.X25519PrivateKey.generate().public_key().public_bytes_raw()
    agencies = sorted({a for _, r, p, _ in portal_data._routes() for a in (r, p)})
    directory = Directory(
        [Agency(PORTAL, "マイポータル", frozenset(), "", sealing)]
        + [Agency(a, f"機関 {a}", frozenset(), "", sealing) for a in agencies]
    )
    codec = codes.LinkCodec({PORTAL: codes.AgencyKeys(1, {1: codes.new_key()})})
    repo = SqlHubLog(engine)
    hub = Hub(
        directory=directory,
        policy=policy,
        codec=codec,
        log=AsyncHubLog(repo),
        gateway=cast(ProviderGateway, _NoProviders()),
        # Fixed, so that every run's alias is the same pair (an alias is never replaced).
        log_index_key=_bench_key("log-index", 32, data.seed),
        sealing_key=x25519.X25519PrivateKey.generate(),
        id_issuer_key=ed25519.Ed25519PrivateKey.generate().public_key(),
    )
    id_key = _bench_key("id-code", codes.SIV_KEY_BYTES, data.seed)
    id_code = codes.IdCodeIssuer({1: id_key}, 1).issue("00000000001")
    with engine.begin() as conn:  # an alias an earlier version of this benchmark left
        conn.execute(
            person_key_aliases.delete().where(person_key_aliases.c.old_key == data.person_key)
        )
    repo.add_aliases([(data.person_key, hub.person_key(id_code))])
    personal = PersonalLog(
        hub,
        SqlPersonalStore(engine),
        SqlProofs(TreeReader(engine)),
        portal_id=PORTAL,
        clock=lambda: datetime.now(UTC),
    )
    return personal, codec.encode(PORTAL, id_code)


def _bench_key(what: str, size: int, seed: int) -> bytes:
    """A key of the benchmark's own, the same every run (not a secret)."""
    return hashlib.shake_256(f"bench-portal-{what}-{seed}".encode()).digest(size)


async def pages(engine: Engine, data: portal_data.HubDataset, rounds: int) -> PageFigures:
    personal, link_code = _personal_log(engine, data)
    caller = personal.portal(PORTAL)
    log_verifier, witness = data.log_verifier(), data.witness_verifier()
    figures = PageFigures({}, 0, 0, data.person_leaves)
    recording = False

    async def timed(what: str, query: ListQuery) -> tuple[list[PersonalEntry], str, bytes]:
        started = time.perf_counter()
        page = await personal.list_entries(caller, query)
        spent = time.perf_counter() - started
        if recording:
            histogram = figures.histograms.setdefault(what, _histogram())
            histogram.record_value(max(1, int(spent * 1e6)))
        return list(page.entries), page.next_page_token, page.checkpoint

    year_end = data.end - timedelta(days=365 * 3)
    some_agency = "nenkin"
    # Pass 0 verifies every proof and is not timed (the first pages also warm the caches).
    for n in range(rounds + 1):
        recording = n > 0
        token, first = "", True
        while first or token:
            first = False
            got, token, note = await timed(
                "every page of 100 in turn", ListQuery(link_code, page_size=100, page_token=token)
            )
            if n == 0:
                figures.entries += len(got)
                figures.verified += _verify(got, note, log_verifier, witness)
        await timed("the whole history, one page of 1,000", ListQuery(link_code, page_size=1000))
        await timed(
            "one year (start, end), first page of 100",
            ListQuery(link_code, start=year_end - timedelta(days=365), end=year_end, page_size=100),
        )
        await timed(
            "one agency (nenkin), first page of 100",
            ListQuery(link_code, agency_id=some_agency, page_size=100),
        )
    return figures


def _verify(
    entries: list[PersonalEntry],
    note: bytes,
    log_verifier: note.Verifier,
    witness: checkpoint.CosignatureVerifier,
) -> int:
    """How many of a page's entries the witnessed checkpoint proves (as the portal checks)."""
    signed = checkpoint.verify_checkpoint(note, log_verifier, [witness])
    for e in entries:
        merkle.verify_inclusion(
            e.leaf_hash, e.leaf_index, signed.size, e.inclusion_proof, signed.root_hash
        )
        if merkle.leaf_hash(e.entry) != e.leaf_hash:
            raise AssertionError(f"leaf {e.leaf_index}: its entry is not its leaf hash")
    return len(entries)


# --- reconcile ---------------------------------------------------------------------


@dataclass
class ReconcileFigures:
    exchanges: int
    hub_entries: int
    rows: int
    seconds: float
    found: dict[str, int]
    seeded: dict[str, int]


def reconciling(count: int) -> ReconcileFigures:
    made = portal_data.exchanges(count)
    started = time.perf_counter()
    report = reconcile(made.hub, made.shares, max_skew=timedelta(seconds=2))
    spent = time.perf_counter() - started
    return ReconcileFigures(
        report.exchanges, report.hub_entries, report.rows, spent, report.counts(), made.seeded
    )


# --- purge under traffic -----------------------------------------------------------


class _Stopped(Exception):
    """The purge was let go at the benchmark's time bound."""


@dataclass
class PurgeFigures:
    alone: list[float] = field(default_factory=list)  # entries/s of each phase without it
    beside: list[float] = field(default_factory=list)  # ... and with the purge running
    year_rows: int = 0  # hub_log rows of the oldest year, before
    deleted: int = 0
    held: int = 0
    entries_purged: int = 0
    purge_seconds: float = 0.0  # the purge's own running time (its phases)
    finished: bool = False
    held_kept: bool = False  # the held person's oldest-year rows are all still there
    logged: str = ""
    # Exchanges the log refused (HUB_LOG_UNAVAILABLE, over its 2 s ceiling): alone, beside.
    refused: list[int] = field(default_factory=lambda: [0, 0])

    @property
    def ratio(self) -> float:
        return statistics.mean(self.beside) / statistics.mean(self.alone)


class _Gate:
    """Between two of its batches the purge waits here while the benchmark runs traffic alone."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.stop = False

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)  # the policy's rest between two batches (its pause, its busy share)
        while not self.open.wait(0.05):
            if self.stop:
                raise _Stopped
        if self.stop:
            raise _Stopped


def _traffic_entry() -> LogEntry:
    return LogEntry(
        logged_at=datetime.now(UTC),
        legal_basis_item="二十七",
        requester_agency_id="131000",
        provider_agency_id="nenkin",
        info_kind="年金給付関係情報",
        policy_version="sha256:0123456789abcdef",
        person_key=os.urandom(32).hex(),
    )


async def purge_under_traffic(
    engine: Engine,
    data: portal_data.HubDataset,
    *,
    writers: int,
    phase_seconds: float,
    max_seconds: float,
    batch_size: int,
    pause: float = 0.0,
    busy_share: float = retention.DEFAULT_BUSY_SHARE,
) -> PurgeFigures:
    figures = PurgeFigures()
    # A pause of its own makes purge_hub call the gate between two batches.
    policy = retention.RetentionPolicy(
        days=RETENTION_DAYS,
        batch_size=batch_size,
        pause_seconds=pause or 1e-6,
        busy_share=busy_share,
    )
    cutoff = policy.cutoff(data.end)
    with engine.connect() as conn:
        figures.year_rows = int(
            conn.scalar(sa.select(sa.func.count()).where(hub_log.c.logged_at < cutoff)) or 0
        )
        held_before = _held_rows(conn, data.person_key, cutoff)
    holds = retention.HoldStore(engine, persons=True)
    holds.set(
        retention.LegalHold("bench-hold", person=data.person_key, reason="benchmark"),
        datetime.now(UTC),
    )
    repo = SqlHubLog(engine)
    log = AsyncHubLog(repo)
    loop = asyncio.get_running_loop()
    written = 0
    running = True

    async def write() -> None:
        nonlocal written
        while running:
            try:
                (receipt,) = await log.begin_many([(_traffic_entry(), PENDING, "")])
                await log.finish_many([(receipt.serial, OK, "")])
            except RenkeiError:  # HUB_LOG_UNAVAILABLE: not durable within the log's ceiling
                failed[1 if gate.open.is_set() else 0] += 1
                continue
            written += 2  # two rows' writes, two entries

    gate = _Gate()
    failed = figures.refused
    report: list[retention.PurgeReport] = []
    failure: list[BaseException] = []

    ended = asyncio.Event()

    def purge() -> None:
        try:
            report.append(
                hub_retention.purge_hub(
                    repo,
                    holds,
                    policy,
                    now=data.end,
                    append=lambda leaf: log.on_writer(repo.append_purge, leaf).result(),
                    sleep=gate.sleep,
                )
            )
        except _Stopped:
            pass
        except BaseException as err:  # reported by the benchmark, not lost in the thread
            failure.append(err)
        finally:
            loop.call_soon_threadsafe(ended.set)

    tasks = [asyncio.create_task(write()) for _ in range(writers)]
    purging = threading.Thread(target=purge, name="bench-purge")
    await asyncio.sleep(1.0)  # warm: the writer's connection, the tree's edge
    purging.start()
    started = time.monotonic()
    beside = False
    while True:
        if beside:
            gate.open.set()
        phase_started, before = time.monotonic(), written
        if beside:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ended.wait(), phase_seconds)
        else:
            await asyncio.sleep(phase_seconds)
        spent = time.monotonic() - phase_started
        (figures.beside if beside else figures.alone).append((written - before) / spent)
        if beside:
            gate.open.clear()
            figures.purge_seconds += spent
        if not purging.is_alive():
            break
        if time.monotonic() - started > max_seconds and not beside:
            gate.stop = True
            gate.open.set()
            break
        beside = not beside
    if purging.is_alive():  # let go at the bound: it ends after its batch
        await loop.run_in_executor(None, purging.join)
    if not figures.alone or len(figures.alone) < len(figures.beside):
        phase_started, before = time.monotonic(), written  # one more phase alone, to compare
        await asyncio.sleep(phase_seconds)
        figures.alone.append((written - before) / (time.monotonic() - phase_started))
    running = False
    await asyncio.gather(*tasks)
    await log.flush()
    log.close()
    if failure:
        raise failure[0]
    if report:
        figures.finished = True
        figures.deleted, figures.held = report[0].deleted, report[0].held
        figures.entries_purged = report[0].also.get("hub_log_entries", 0)
        figures.logged = report[0].logged
    else:
        with engine.connect() as conn:
            left = int(
                conn.scalar(sa.select(sa.func.count()).where(hub_log.c.logged_at < cutoff)) or 0
            )
        figures.deleted = figures.year_rows - left
        p = log_tree.purged_leaves.c
        with engine.connect() as conn:
            spans = conn.scalar(sa.select(sa.func.sum(p.last_leaf - p.first_leaf + 1)))
        figures.entries_purged = int(spans or 0)
        figures.held = -1  # not reported by a purge let go
    with engine.connect() as conn:
        figures.held_kept = _held_rows(conn, data.person_key, cutoff) == held_before
    return figures


def _held_rows(conn: sa.Connection, person_key: str, cutoff: datetime) -> int:
    c = hub_log.c
    return int(
        conn.scalar(
            sa.select(sa.func.count()).where(c.person_key == person_key, c.logged_at < cutoff)
        )
        or 0
    )


# --- running it all ----------------------------------------------------------------


@dataclass
class Backend:
    name: str
    entries: int
    generated: str = ""
    page: PageFigures | None = None
    purge: PurgeFigures | None = None
    skipped: str = ""


@contextlib.contextmanager
def _engine(url: str, schema: str | None = None) -> Iterator[Engine]:
    engine = db.create_engine(url, schema=schema)
    try:
        yield engine
    finally:
        engine.dispose()


def _generated(data: portal_data.HubDataset) -> str:
    how = "cached; generated" if data.cached else "generated"
    return f"{data.entries:,} entries, {data.rows:,} exchanges ({how} in {data.seconds:.0f} s)"


def run_sqlite(args: argparse.Namespace, say: Callable[[str], None]) -> Backend:
    spec = portal_data.HubSpec(entries=args.entries, person_exchanges=args.person_exchanges)
    say(f"SQLite: the hub's log of {spec.entries:,} entries under {args.state_dir}")
    path, data = portal_data.sqlite_hub(args.state_dir, spec, say=say)
    out = Backend("SQLite", spec.entries, _generated(data))
    with _engine(db.sqlite_url(str(path))) as engine:
        portal_data.ensure_schema(engine)
        say("SQLite: history pages")
        out.page = asyncio.run(pages(engine, data, args.page_rounds))
    if args.no_purge:
        return out
    copy = args.state_dir / "purge-copy.db"
    say("SQLite: copying the database for the purge")
    portal_data.copy_of(path, copy)
    try:
        with _engine(db.sqlite_url(str(copy))) as engine:
            say("SQLite: purge under traffic")
            out.purge = asyncio.run(_purge(engine, data, args))
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{copy}{suffix}").unlink(missing_ok=True)
    return out


def _purge(
    engine: Engine, data: portal_data.HubDataset, args: argparse.Namespace
) -> Coroutine[object, object, PurgeFigures]:
    return purge_under_traffic(
        engine,
        data,
        writers=args.writers,
        phase_seconds=args.phase_seconds,
        max_seconds=args.purge_seconds,
        batch_size=args.purge_batch,
        pause=args.purge_pause,
        busy_share=args.purge_busy_share,
    )


def run_postgres(args: argparse.Namespace, say: Callable[[str], None]) -> Backend:
    entries = args.postgres_entries or args.entries
    out = Backend("PostgreSQL", entries)
    if args.no_postgres:
        out.skipped = "not run (--no-postgres)"
        return out
    if not _postgres_answers(args.postgres_url):
        out.skipped = f"not run: PostgreSQL does not answer at {args.postgres_url}"
        return out
    spec = portal_data.HubSpec(entries=entries, person_exchanges=args.person_exchanges)
    source = portal_data.sqlite_hub(args.state_dir, spec, say=say)
    schema = args.postgres_schema or f"bench_portal_{entries}"
    try:
        data = _reused(args.postgres_url, schema)
        if data is None:
            say(f"PostgreSQL: copying {entries:,} entries into schema {schema}")
            data = portal_data.postgres_hub(args.postgres_url, schema, spec, source=source, say=say)
            _mark(args.postgres_url, schema, data)
            how = f"COPY in {data.seconds:.0f} s"
        else:
            say(f"PostgreSQL: schema {schema} as an earlier run left it (--keep-postgres)")
            how = "kept from an earlier run"
        out.generated = f"{data.entries:,} entries, {data.rows:,} exchanges ({how})"
        with _engine(args.postgres_url, schema) as engine:
            say("PostgreSQL: history pages")
            out.page = asyncio.run(pages(engine, data, args.page_rounds))
            if not args.no_purge:
                _mark(args.postgres_url, schema, None)  # purged: not to be used again
                say("PostgreSQL: purge under traffic")
                out.purge = asyncio.run(_purge(engine, data, args))
    finally:
        if not args.keep_postgres:
            portal_data.drop_schema(args.postgres_url, schema)
    return out


_MARK = "bench_portal_dataset"  # in a kept schema: the dataset it holds, as generated


def _mark(url: str, schema: str, data: portal_data.HubDataset | None) -> None:
    with _engine(url, schema) as engine, engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {_MARK}")
        if data is not None:
            conn.exec_driver_sql(f"CREATE TABLE {_MARK} (dataset text NOT NULL)")
            conn.exec_driver_sql(f"INSERT INTO {_MARK} VALUES (%(d)s)", {"d": data.to_json()})


def _reused(url: str, schema: str) -> portal_data.HubDataset | None:
    """The dataset a kept schema holds untouched, if it is there."""
    with _engine(url) as engine, engine.connect() as conn:
        found = conn.exec_driver_sql(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = %(s)s"
            " AND table_name = %(t)s",
            {"s": schema, "t": _MARK},
        ).first()
        if found is None:
            return None
        text = conn.exec_driver_sql(f'SELECT dataset FROM "{schema}".{_MARK}').scalar()
    return None if text is None else portal_data.HubDataset.from_json(str(text))


def _postgres_answers(url: str) -> bool:
    try:
        engine = sa.create_engine(url, connect_args={"connect_timeout": 2})
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
    except Exception:
        return False
    return True


def _ms(h: HdrHistogram, percentile: float) -> str:
    return f"{h.get_value_at_percentile(percentile) / 1000:.1f}"


def reconcile_table(rec: ReconcileFigures) -> Table:
    out = Table(title="the oversight body's reconcile (oversight/reconcile.py, in memory)")
    out.add_column("what", min_width=60)
    out.add_column("figure", justify="right")
    out.add_column("target", justify="right")
    out.add_row(
        f"{rec.exchanges:,} exchanges: {rec.hub_entries:,} hub entries, {rec.rows:,} agency rows",
        f"{rec.seconds:.1f} s",
        "",
    )
    out.add_row("hub entries / s", f"{rec.hub_entries / rec.seconds:,.0f}", "≥ 100,000")
    out.add_row(
        "hub entries and agency rows / s", f"{(rec.hub_entries + rec.rows) / rec.seconds:,.0f}", ""
    )
    out.add_row("exchanges / s", f"{rec.exchanges / rec.seconds:,.0f}", "")
    out.add_row(
        "findings (seeded: deleted, edited and extra rows)",
        f"{sum(rec.found.values())} ({sum(rec.seeded.values())})"
        + ("" if rec.found == rec.seeded else " MISMATCH"),
        "",
    )
    return out


def table(backends: list[Backend], args: argparse.Namespace) -> Table:
    out = Table(title="the portal's history and retention's purge (issue 15)")
    out.add_column("what", min_width=60)
    for b in backends:
        out.add_column(b.name, justify="right")
    out.add_column("target", justify="right")

    def row(what: str, cell: Callable[[Backend], str], target: str = "") -> None:
        out.add_row(what, *[b.skipped or cell(b) for b in backends], target)

    row("hub log", lambda b: b.generated)
    names: list[str] = []
    for b in backends:
        if b.page is not None:
            names += [n for n in b.page.histograms if n not in names]
    row(
        "history: the person's entries read (proofs verified)",
        lambda b: (
            ""
            if b.page is None
            else f"{b.page.entries:,} of {b.page.expected:,} ({b.page.verified:,})"
        ),
    )

    def percentile(name: str, pct: float) -> Callable[[Backend], str]:
        def cell(b: Backend) -> str:
            if b.page is None or name not in b.page.histograms:
                return ""
            return _ms(b.page.histograms[name], pct)

        return cell

    for name in names:
        for pct in (50, 99):
            row(
                f"history page p{pct} ms: {name}",
                percentile(name, pct),
                "≤ 100" if pct == 99 else "",
            )

    def purge(cell: Callable[[PurgeFigures], str]) -> Callable[[Backend], str]:
        return lambda b: "not run (--no-purge)" if b.purge is None else cell(b.purge)

    row(
        f"purge: the oldest year ({RETENTION_DAYS}-day period, batches of {args.purge_batch},"
        f" pause {args.purge_pause} s, busy share {args.purge_busy_share}),"
        " rows deleted of the year's",
        purge(lambda p: f"{p.deleted:,} of {p.year_rows:,}" + ("" if p.finished else " (let go)")),
    )
    row(
        "purge: entries purged, rows held",
        purge(lambda p: f"{p.entries_purged:,}, " + (f"{p.held:,}" if p.held >= 0 else "-")),
    )
    row(
        "purge: rows deleted / s (while traffic runs)",
        purge(lambda p: f"{p.deleted / p.purge_seconds:,.0f}" if p.purge_seconds else "-"),
    )
    row(
        f"traffic alone: log entries / s ({args.writers} writers, mean of phases)",
        purge(lambda p: f"{statistics.mean(p.alone):,.0f}"),
    )
    row(
        "traffic during the purge: log entries / s",
        purge(lambda p: f"{statistics.mean(p.beside):,.0f}" if p.beside else "-"),
    )
    row(
        "ratio during / without",
        purge(lambda p: f"{p.ratio:.2f}" if p.beside else "-"),
        "≥ 0.8",
    )
    row(
        "exchanges the log refused (not durable within 2 s): alone, during",
        purge(lambda p: f"{p.refused[0]:,}, {p.refused[1]:,}"),
        "0, 0",
    )
    row(
        "purge: the held person's rows kept",
        purge(lambda p: "yes" if p.held_kept else "NO"),
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.bench.portal", description=__doc__)
    parser.add_argument("--entries", type=int, default=10_000_000, help="hub log entries")
    parser.add_argument("--person-exchanges", type=int, default=500, help="2 entries each")
    parser.add_argument("--exchanges", type=int, default=1_000_000, help="to reconcile")
    parser.add_argument("--page-rounds", type=int, default=20)
    parser.add_argument("--writers", type=int, default=64, help="traffic's concurrent callers")
    parser.add_argument("--phase-seconds", type=float, default=10.0)
    parser.add_argument("--purge-seconds", type=float, default=600.0, help="bound on the purge")
    parser.add_argument("--purge-batch", type=int, default=retention.DEFAULT_BATCH_SIZE)
    parser.add_argument(
        "--purge-pause", type=float, default=0.0, help="[retention] pause_seconds (0: none)"
    )
    parser.add_argument(
        "--purge-busy-share",
        type=float,
        default=retention.DEFAULT_BUSY_SHARE,
        help="[retention] busy_share (1: flat out)",
    )
    parser.add_argument("--state-dir", type=Path, default=Path("bench-state/portal"))
    parser.add_argument("--postgres-url", default=POSTGRES_URL)
    parser.add_argument("--postgres-entries", type=int, default=0, help="default: --entries")
    parser.add_argument("--postgres-schema", default="", help="default: bench_portal_<entries>")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument(
        "--keep-postgres",
        action="store_true",
        help="keep the schema (an unpurged one is used again by the next run)",
    )
    parser.add_argument("--no-purge", action="store_true")
    args = parser.parse_args(argv)
    console = Console(width=190, highlight=False)

    def say(text: str) -> None:
        console.print(f"[dim]{text}[/dim]")

    if args.no_sqlite:
        backends = [Backend("SQLite", args.entries, skipped="not run (--no-sqlite)")]
    else:
        backends = [run_sqlite(args, say)]
    rec = None
    if args.exchanges:
        say(f"reconcile of {args.exchanges:,} exchanges")
        rec = reconciling(args.exchanges)
    backends.append(run_postgres(args, say))
    console.print(table(backends, args))
    if rec is not None:
        console.print(reconcile_table(rec))
    else:
        console.print("reconcile: not run (--exchanges 0)")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    console.print(f"{os.cpu_count()} cores, load average {load} (1, 5, 15 min) at the end")
    bad = rec is not None and rec.found != rec.seeded
    for b in backends:
        if b.page is not None and not b.page.entries == b.page.verified == b.page.expected:
            bad = True
        if b.purge is not None and not b.purge.held_kept:
            bad = True
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
