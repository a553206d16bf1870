"""The binding party's own store on SQLite and PostgreSQL: its tables and the consent log."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from support.fake_residents import FakeResidentSource

from legacy_stubs.registry.population import generate
from registry_binding.consent import (
    Consent,
    ConsentAttempt,
    ConsentBinding,
    ConsentLog,
    attempt_row,
)
from registry_binding.matching import Matcher
from registry_binding.records import AgencyRecord
from registry_binding.store import BindingStore, consent_log
from renkei.fourfacts.normalize import FourFacts

BANK = "example-bank"
CONSENT = Consent(
    consent_id="C-1" * 30,  # longer than the column (a refused attempt's): cut in the log
    giver="legal_representative",
    representative_name="山田 花子",
    consented_at=datetime(2026, 11, 1, tzinfo=UTC),
    purpose="口座開設時の本人確認",
    document_sha256=bytes(range(32)),
)


def _attempt(n: int, caller: str = f"agency:{BANK}") -> ConsentAttempt:
    return ConsentAttempt(
        attempt_id=f"{n:032x}",
        caller=caller,
        attempted_at=datetime(2026, 11, 2, 9, n, tzinfo=UTC),
        local_person_id=f"L-{n}",
        consent=CONSENT if n % 2 else None,
        outcome="matched" if n % 2 else "refused",
        answered="MATCHED" if n % 2 else "INVALID_FIELD",
        reason="x" * 500,
        resident_code="12345678903" if n % 2 else None,
    )


def test_the_store_makes_its_tables_once_and_starts_at_the_feed_start(engine: Engine) -> None:
    store = BindingStore(engine)
    BindingStore(engine)  # a second process opening the same store
    assert set(sa.inspect(engine).get_table_names()) == {
        "subscriptions",
        "deliveries",
        "feed_state",
        "consent_log",
        "cards",
        "card_bindings",
    }
    assert store.applied_seq() == 0
    assert store.handles() == {}


def test_the_consent_log_keeps_every_attempt_oldest_first(engine: Engine) -> None:
    log = ConsentLog(engine)
    for n in range(1, 6):
        log.append(_attempt(n, caller=f"agency:{BANK}" if n != 3 else "service:hub"))
    rows = log.rows()
    assert [r["local_person_id"] for r in rows] == ["L-1", "L-2", "L-3", "L-4", "L-5"]
    assert [r["local_person_id"] for r in log.rows(limit=2)] == ["L-4", "L-5"]
    assert [r["local_person_id"] for r in log.rows("service:hub")] == ["L-3"]
    first = rows[0]
    # As written, and as the in-memory log of the unit tests renders it.
    assert {k: v for k, v in first.items() if k not in ("id", "attempted_at", "consented_at")} == {
        k: v
        for k, v in attempt_row(_attempt(1)).items()
        if k not in ("attempted_at", "consented_at")
    }
    assert first["attempted_at"] == datetime(2026, 11, 2, 9, 1, tzinfo=UTC)
    assert (first["giver"], first["representative_name"]) == ("legal_representative", "山田 花子")
    assert first["document_sha256"] == bytes(range(32)).hex()
    assert len(first["consent_id"]) == 64
    assert len(first["reason"]) == 400
    assert rows[1]["consent_id"] is None


def test_the_consent_flow_logs_into_the_binding_store(engine: Engine) -> None:
    people = [p for p in generate(seed=21, count=10) if p.status == "alive"]
    source = FakeResidentSource(people)

    class Sealer:
        async def seal(self, agency_id: str, codes: list[str]) -> list[tuple[bytes, str]]:
            return [(b"sealed", "") for _ in codes]

        async def seal_batch(self, agency_id: str, codes: list[str]) -> tuple[bytes, list[str]]:
            raise AssertionError("the consent flow seals one code")

    log = ConsentLog(engine)
    binding = ConsentBinding(Matcher(source), source, Sealer(), log, [BANK])
    p = people[0]
    facts = FourFacts(
        name=p.name.kanji, address=p.address.text, birth_date=p.birth_date.isoformat(), sex=p.sex
    )
    record = AgencyRecord("B-1", facts)
    valid = replace(CONSENT, consent_id="C-1")
    outcome = asyncio.run(binding.match(f"agency:{BANK}", BANK, record, valid))
    assert outcome.matched
    [row] = log.rows()
    assert (row["attempt_id"], row["resident_code"]) == (outcome.attempt_id, p.resident_code)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(consent_log)).scalar() == 1
