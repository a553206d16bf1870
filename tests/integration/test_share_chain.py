"""An agency's log share is hash-chained: every edit of its rows is caught (SQLite, PostgreSQL)."""

from __future__ import annotations

import asyncio
import os
import random
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from comm_server import share_chain
from comm_server.share_heads import HeadStore, signed_heads, signer
from comm_server.share_verify import Report, verify_share
from comm_server.store import AsyncCommStore, CommStore, LogRecord, agency_log, metadata
from renkei.keystore import KeyStore
from renkei.keystore.master import AesGcmMasterKey
from renkei.tlog import note

AGENCY = "mhlw"
NOW = datetime(2026, 4, 1, 9, 30, tzinfo=UTC)


def record(n: int, **overrides: object) -> LogRecord:
    fields: dict[str, object] = {
        "serial": 1000 + n,
        "role": "requester" if n % 2 else "provider",
        "logged_at": NOW + timedelta(seconds=n, microseconds=n),
        "counterpart_agency_id": "nenkin",
        "info_kind": "年金給付関係情報",
        "legal_basis_item": "二十七",
        "local_person_id": f"A{n}",
        "staff_id": "Y-1",
        "terminal_id": "T-1",
        "content": f'{{"年金額":{n}}}',
        "purpose": "賦課" if n % 2 else None,
        "outcome": "OK",
        "reason": "",
        "detail": None if n % 3 else "answer fetched with its ticket",
    }
    fields.update(overrides)
    return LogRecord(**fields)  # type: ignore[arg-type]


class Share:
    """A store, its key, and the checks a test makes on it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.store = CommStore(engine)
        self.keys = KeyStore(engine, AesGcmMasterKey(os.urandom(32), "test"))
        self.signer = signer(self.keys, AGENCY)
        self.heads = HeadStore(engine)

    def fill(self, rows: int = 60) -> None:
        """Rows 1..``rows`` (at least 9): single rows, a bulk batch, an answer-later
        exchange's two halves, another batch."""
        batch = (rows - 5) // 2
        for n in range(1, 6):
            self.store.append_log(record(n))
        self.store.append_logs([record(n) for n in range(6, 6 + batch)])
        n = 6 + batch
        self.store.append_log(record(n, serial=999, outcome="ANSWER_PENDING", content=""))
        self.store.append_log(record(n + 1, serial=999, detail="answer fetched with its ticket"))
        self.store.append_logs([record(n) for n in range(n + 2, rows + 1)])

    def sign(self, at: datetime = NOW) -> bytes:
        data = self.heads.sign(self.signer, AGENCY, at)
        assert data is not None
        return data

    def verify(self, collected: list[tuple[str, bytes]] | None = None) -> Report:
        return verify_share(self.engine, AGENCY, [self.signer.verifier()], collected or [])

    def problems(self, collected: list[tuple[str, bytes]] | None = None) -> list[str]:
        return [f.message for f in self.verify(collected).problems]

    def log_id(self, position: int) -> int:
        c = share_chain.chain_links.c
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(c.log_id).where(c.position == position)).scalar_one())

    def execute(self, statement: sa.Executable, params: object = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(statement, params)  # type: ignore[arg-type]


@pytest.fixture
def share(engine: Engine) -> Share:
    return Share(engine)


def test_a_clean_share_verifies_with_its_signed_heads(share: Share) -> None:
    share.fill(30)
    share.sign()
    share.store.append_log(record(31))
    share.sign(NOW + timedelta(minutes=1))
    report = share.verify()
    assert (report.rows, report.predating, report.heads_checked) == (31, 0, 2)
    assert report.findings == []


def test_an_empty_share_verifies(share: Share) -> None:
    share.sign()
    assert share.verify().findings == []


def test_concurrent_writers_chain_in_one_order(engine: Engine) -> None:
    share = Share(engine)
    workers = 1 if engine.dialect.name == "sqlite" else 4
    store = AsyncCommStore(share.store, workers=workers, max_batch=8)

    async def write() -> None:
        singles = [store.append_log(record(n)) for n in range(1, 81)]
        bulks = [store.append_logs([record(100 * b + i) for i in range(20)]) for b in range(1, 6)]
        await asyncio.gather(*singles, *bulks)

    try:
        asyncio.run(write())
    finally:
        store.close()
    report = share.verify()
    assert report.rows == 180
    assert report.findings == []


def test_an_edited_field_is_named_by_row_and_serial(share: Share) -> None:
    share.fill()
    log_id = share.log_id(17)
    share.execute(agency_log.update().where(agency_log.c.id == log_id).values(staff_id="Y-2"))
    assert share.problems() == ["row 17 (serial 1017): changed since it was logged"]


def test_a_deleted_row_is_missing(share: Share) -> None:
    share.fill()
    share.execute(agency_log.delete().where(agency_log.c.id == share.log_id(18)))
    assert share.problems() == ["row 18: missing"]


def test_two_swapped_rows_are_out_of_order(share: Share) -> None:
    share.fill()
    a, b = share.log_id(20), share.log_id(21)
    names = list(share_chain.COLUMNS)
    with share.engine.begin() as conn:
        rows = {
            r[0]: dict(zip(names, r[1:], strict=True))
            for r in conn.execute(
                sa.select(agency_log.c.id, *[agency_log.c[n] for n in names]).where(
                    agency_log.c.id.in_([a, b])
                )
            )
        }
        conn.execute(agency_log.update().where(agency_log.c.id == a).values(rows[b]))
        conn.execute(agency_log.update().where(agency_log.c.id == b).values(rows[a]))
    assert share.problems() == ["rows 20 and 21: out of order (each holds the other's row)"]


def test_a_row_inserted_by_hand_is_not_in_the_chain(share: Share) -> None:
    share.fill()
    share.execute(agency_log.insert().values(**record(61, serial=4242).__dict__))
    [problem] = share.problems()
    assert problem.endswith("(serial 4242), after row 60: not in the chain")


def test_a_truncated_tail_is_caught_by_a_signed_head(share: Share) -> None:
    share.fill()
    collected = share.sign()
    # The rows, their links and the chain's head, all set back to row 55.
    keep = share.log_id(55)
    c = share_chain.chain_links.c
    with share.engine.begin() as conn:
        digest = conn.execute(sa.select(c.digest).where(c.position == 55)).scalar_one()
        conn.execute(agency_log.delete().where(agency_log.c.id > keep))
        conn.execute(share_chain.chain_links.delete().where(c.position > 55))
        conn.execute(
            share_chain.chain_head.update().values(count=55, digest=digest, last_log_id=keep)
        )
    assert share.problems() == [
        "the share was truncated after row 55 (a signed head of 60 rows exists:"
        " signed head #1, 60 rows, signed 2026-04-01T09:30:00Z)"
    ]
    # The heads kept in the store gone too: the head the oversight body collected still says so.
    share.execute(sa.delete(signed_heads))
    assert share.problems() == []
    assert share.problems([("head collected.note", collected)]) == [
        "the share was truncated after row 55 (a signed head of 60 rows exists:"
        " head collected.note, 60 rows, signed 2026-04-01T09:30:00Z)"
    ]


def test_a_tail_deleted_without_its_links_is_missing(share: Share) -> None:
    share.fill()
    share.execute(agency_log.delete().where(agency_log.c.id > share.log_id(57)))
    assert share.problems() == ["rows 58-60: missing"]


def test_a_deleted_tail_stays_missing_after_more_rows_are_logged(share: Share) -> None:
    # SQLite hands the deleted ids out again; the new rows must chain, the old stay missing.
    share.fill()
    share.execute(agency_log.delete().where(agency_log.c.id > share.log_id(57)))
    share.store.append_logs([record(61), record(62)])
    assert share.problems() == ["rows 58-60: missing"]


def test_a_row_deleted_with_its_link_is_named(share: Share) -> None:
    share.fill()
    c = share_chain.chain_links.c
    share.execute(agency_log.delete().where(agency_log.c.id == share.log_id(25)))
    share.execute(share_chain.chain_links.delete().where(c.position == 25))
    assert share.problems() == ["row 25: no link in the chain (deleted from it)"]


def test_a_rewritten_link_is_named(share: Share) -> None:
    share.fill()
    c = share_chain.chain_links.c
    share.execute(
        share_chain.chain_links.update().where(c.position == 30).values(digest=os.urandom(32))
    )
    assert share.problems() == [
        "row 30: its link in the chain was rewritten (the row is as logged)"
    ]


def test_a_whole_chain_rewritten_and_resigned_is_caught_only_by_a_collected_head(
    share: Share,
) -> None:
    """The operator holds the key: only a head collected before the rewrite shows it."""
    share.fill(40)
    collected = share.sign()
    share.store.append_logs([record(n) for n in range(41, 61)])
    later = share.sign(NOW + timedelta(minutes=5))
    # Row 17 edited, every link from it recomputed, the heads replaced by a new one.
    log_id = share.log_id(17)
    share.execute(agency_log.update().where(agency_log.c.id == log_id).values(content="{}"))
    _rechain(share)
    share.execute(sa.delete(signed_heads))
    share.sign(NOW + timedelta(minutes=10))
    assert share.problems() == []
    assert share.problems([("head early.note", collected), ("head later.note", later)]) == [
        "head early.note (40 rows, signed 2026-04-01T09:30:00Z) does not match the chain at"
        " row 40: rows up to 40 were rewritten",
        "head later.note (60 rows, signed 2026-04-01T09:35:00Z) does not match the chain at"
        " row 60: rows up to 60 were rewritten",
    ]


def test_a_head_signed_by_another_key_is_refused(share: Share) -> None:
    for n in range(1, 6):
        share.store.append_log(record(n))
    other = note.Ed25519Signer.generate(share.signer.name)
    forged = HeadStore(share.engine).sign(other, AGENCY, NOW)
    assert forged is not None
    [problem] = share.problems()
    assert problem.startswith("signed head #1: not a head signed by this agency's log key")


def test_rows_that_predate_the_chain_are_reported_once_and_the_chain_starts_after_them(
    engine: Engine,
) -> None:
    metadata.create_all(engine)  # a store as it was before the chain
    with engine.begin() as conn:
        conn.execute(agency_log.insert(), [record(n).__dict__ for n in range(1, 8)])
    share = Share(engine)
    share.fill(20)
    share.sign()
    report = share.verify()
    assert (report.rows, report.predating) == (27, 7)
    assert [(f.message, f.problem) for f in report.findings] == [
        ("rows 1-7 predate the chain (logged before it started): not covered", False)
    ]
    share.execute(agency_log.update().where(agency_log.c.id == 2).values(content="x"))
    assert share.problems() == []  # before the chain: nothing can tell
    share.execute(agency_log.update().where(agency_log.c.id == share.log_id(9)).values(content="x"))
    assert share.problems() == ["row 9 (serial 1002): changed since it was logged"]


def test_two_hundred_random_single_field_edits_are_all_caught(share: Share) -> None:
    share.fill(40)
    rng = random.Random(20261207)
    names = list(share_chain.COLUMNS)
    caught = 0
    for _ in range(200):
        position = rng.randint(1, 40)
        log_id = share.log_id(position)
        column = rng.choice(names)
        with share.engine.connect() as conn:
            old = conn.execute(
                sa.select(agency_log.c[column]).where(agency_log.c.id == log_id)
            ).scalar_one()
        new = _other_value(rng, old)
        share.execute(agency_log.update().where(agency_log.c.id == log_id).values({column: new}))
        problems = share.problems()
        assert len(problems) == 1, (column, new, problems)
        assert problems[0].startswith(f"row {position} "), (column, new, problems)
        caught += 1
        share.execute(agency_log.update().where(agency_log.c.id == log_id).values({column: old}))
    assert caught == 200
    assert share.problems() == []


def _other_value(rng: random.Random, old: object) -> object:
    if isinstance(old, datetime):
        return old + timedelta(microseconds=rng.choice([1, -1, 1_000_000]))
    if isinstance(old, int):
        return old + rng.choice([1, -1, 1000])
    if old is None:
        return rng.choice(["", "x"])
    text = str(old)
    i = rng.randint(0, len(text))
    return text[:i] + rng.choice(["x", " ", "年"]) + text[i:]


def _rechain(share: Share) -> None:
    """What an operator holding the database could do: recompute every link and the head."""
    c = share_chain.chain_links.c
    names = list(share_chain.COLUMNS)
    with share.engine.begin() as conn:
        head = share_chain.read_head(conn)
        links = conn.execute(sa.select(c.position, c.log_id).order_by(c.position)).all()
        rows = {
            r[0]: tuple(r[1:])
            for r in conn.execute(sa.select(agency_log.c.id, *[agency_log.c[n] for n in names]))
        }
        digest = share_chain.genesis(head.predating, head.predating_last_id)
        for position, log_id in links:
            digest = share_chain.link(digest, share_chain.encode_row(log_id, rows[log_id]))
            conn.execute(
                share_chain.chain_links.update().where(c.position == position).values(digest=digest)
            )
        conn.execute(share_chain.chain_head.update().values(digest=digest))
