"""`make bench-portal` in small (no timing assertions): its data is the hub's own, and it runs.

The generated hub database must be one the hub's own code reads as its own:
every entry decodes (renkei.tlog.entry.Entry.decode, canonical encoding), the
hub's TreeReader serves inclusion proofs that verify against the dataset's
witnessed checkpoint, the hub's store finds the person's rows, and the hub's
writer carries on appending to the generated tree.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from support.databases import drop_schemas, postgres_reachable

from hub_server import log_tree
from hub_server.log_store import OK, PENDING, LogEntry, SqlHubLog, hub_log
from hub_server.log_tree import TreeReader
from ops.bench import portal as bench
from ops.bench import portal_data
from renkei import db
from renkei.tlog import checkpoint, merkle
from renkei.tlog.entry import Entry

SPEC = portal_data.HubSpec(entries=5000, person_exchanges=40)


@pytest.fixture(scope="module")
def generated(
    database: tuple[str | None, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Engine, portal_data.HubDataset]]:
    url, prefix = database
    if url is None:
        path, data = portal_data.sqlite_hub(tmp_path_factory.mktemp("portal"), SPEC)
        engine = db.create_engine(db.sqlite_url(str(path)))
    else:
        schema = f"{prefix}_hub"
        data = portal_data.postgres_hub(url, schema, SPEC)
        engine = db.create_engine(url, schema=schema)
    yield engine, data
    engine.dispose()


def test_every_entry_is_canonical_and_proved(
    generated: tuple[Engine, portal_data.HubDataset],
) -> None:
    engine, data = generated
    reader = TreeReader(engine)
    assert reader.size() == data.entries == SPEC.entries
    latest = reader.latest_checkpoint(witnessed=True)
    assert latest is not None
    size, text = latest
    signed = checkpoint.verify_checkpoint(
        text.encode(), data.log_verifier(), [data.witness_verifier()]
    )
    assert signed.size == size == data.entries
    assert reader.root(size) == signed.root_hash
    stored = reader.entries(range(size))
    assert sorted(stored) == list(range(size))
    kinds = {"exchange": 0, "outcome": 0}
    for got in stored.values():
        entry = Entry.decode(got.entry)
        kinds[entry.kind] += 1
        assert (entry.serial, entry.requester, entry.provider) == (
            got.serial,
            got.requester,
            got.provider,
        )
    assert kinds["exchange"] == data.rows
    for index in (0, 1, 2, size // 3, size - 2, size - 1):
        leaf = merkle.leaf_hash(stored[index].entry)
        proof = reader.inclusion_proof(index, size)
        merkle.verify_inclusion(leaf, index, size, proof, signed.root_hash)


def test_the_hub_reads_the_rows_and_carries_on_writing(
    generated: tuple[Engine, portal_data.HubDataset],
) -> None:
    engine, data = generated
    repo = SqlHubLog(engine)
    try:
        mine = repo.rows_for_person(data.person_key)
        assert len(mine) == data.person_exchanges
        assert {row.outcome for row in mine} <= {OK, "DENIED"}
        times = [row.entry.logged_at for row in mine]
        assert times == sorted(times)
        assert times[-1] - times[0] > timedelta(days=365 * (SPEC.years - 1))
        with engine.connect() as conn:
            leaves = conn.scalar(
                sa.select(sa.func.count()).where(
                    log_tree.entries.c.serial.in_([row.serial for row in mine])
                )
            )
            oldest = conn.scalar(sa.select(sa.func.min(hub_log.c.logged_at)))
        assert leaves == data.person_leaves == 2 * data.person_exchanges
        assert oldest is not None
        assert oldest >= data.start
        old_size = TreeReader(engine).size()
        old_root = TreeReader(engine).root(old_size)
        entry = LogEntry(
            datetime.now(UTC), "二十七", "131000", "nenkin", "年金給付関係情報", "v", "ab" * 32
        )
        receipts = repo.begin_many([(entry, PENDING, "")] * 3)
        assert [r.serial for r in receipts] == list(range(data.rows + 1, data.rows + 4))
        assert [r.leaf_index for r in receipts] == [old_size, old_size + 1, old_size + 2]
        reader = TreeReader(engine)
        new_size = reader.size()
        proof = reader.consistency_proof(old_size, new_size)
        merkle.verify_consistency(old_size, new_size, old_root, reader.root(new_size), proof)
    finally:
        repo.close()


def test_a_cached_dataset_is_used_again(tmp_path: Path) -> None:
    spec = portal_data.HubSpec(entries=400, person_exchanges=10)
    path, made = portal_data.sqlite_hub(tmp_path, spec)
    again, cached = portal_data.sqlite_hub(tmp_path, spec)
    assert again == path
    assert not made.cached
    assert cached.cached
    assert cached.person_key == made.person_key
    assert cached.rows == made.rows


def test_bench_portal_runs_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    schema = f"t{uuid.uuid4().hex[:10]}_bench"
    argv = ["--entries", "5000", "--person-exchanges", "40", "--exchanges", "5000"]
    argv += ["--page-rounds", "1", "--phase-seconds", "0.3", "--purge-batch", "100"]
    argv += ["--writers", "8", "--state-dir", str(tmp_path), "--postgres-schema", schema]
    if not postgres_reachable():
        argv.append("--no-postgres")
    try:
        assert bench.main(argv) == 0
    finally:
        drop_schemas(schema)
    out = capsys.readouterr().out
    for figure in (
        "history page p99 ms: every page of 100",
        "the whole history, one page of 1,000",
        "hub entries / s",
        "findings",
        "ratio during / without",
        "the held person's rows kept",
    ):
        assert figure in out
    assert "MISMATCH" not in out
