"""The numbering agency's operations (numbering/service.py) on SQLite and PostgreSQL.

Numbers come from an injected, scripted source where a test needs to force a
collision; otherwise from the real CSPRNG source.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from numbering import number
from numbering.service import Issued, NumberingService, StaticResidentDirectory
from numbering.store import (
    ACTIVE,
    CHANGE,
    ISSUE,
    RESIDENT_CODE_CHANGE,
    RETIRED,
    NumberingStore,
    NumberSpaceExhausted,
    conversion,
    events,
    numbers,
)
from renkei.errors import FailedPrecondition, InvalidArgument, NotFound, RenkeiError

T0 = datetime(2025, 3, 31, 15, 30, tzinfo=UTC)  # 2025-04-01 00:30 in Japan
ALICE, BOB, CAROL, ALICE_NEW = "10000000001", "10000000002", "10000000003", "20000000001"
KNOWN = (ALICE, BOB, CAROL, ALICE_NEW)
X, Y, Z = "123456789018", "621498320257", "111111111118"


def wide(ascii_digits: str) -> str:
    """The same digits in full width (U+FF10-U+FF19), as typed with a Japanese IME."""
    return ascii_digits.translate({ord("0") + i: 0xFF10 + i for i in range(10)})


class Script:
    """A number source that yields the given Numbers in order, then fails the test."""

    def __init__(self, *values: str) -> None:
        self.values = deque(values)
        self.drawn: list[str] = []

    def __call__(self) -> str:
        if not self.values:
            raise AssertionError("the number source ran dry")
        value = self.values.popleft()
        self.drawn.append(value)
        return value

    def then(self, *values: str) -> None:
        self.values.extend(values)


def make(
    engine: Engine,
    source: Script | None = None,
    known: Iterable[str] = KNOWN,
    batch_size: int = 10_000,
) -> NumberingService:
    return NumberingService(
        NumberingStore(engine),
        StaticResidentDirectory(known),
        number_source=source or number.new_number,
        clock=lambda: T0,
        batch_size=batch_size,
    )


def counts(engine: Engine) -> tuple[int, int, int]:
    with engine.connect() as conn:
        return tuple(  # type: ignore[return-value]
            int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one())
            for t in (numbers, conversion, events)
        )


def refusal(err: pytest.ExceptionInfo[RenkeiError]) -> tuple[str, str, dict[str, str]]:
    return err.value.code.name, err.value.reason, err.value.metadata


# ------------------------------------------------------------------ issue


def test_issue_gives_a_valid_number_and_a_notice(engine: Engine) -> None:
    issued = make(engine).issue(ALICE)
    assert isinstance(issued, Issued)
    assert number.is_valid(issued.number)
    assert issued.newly_issued
    assert issued.issued_at == T0
    assert number.format_number(issued.number).encode() in issued.notice
    assert counts(engine) == (1, 1, 1)


def test_issue_is_idempotent_per_resident(engine: Engine) -> None:
    service = make(engine)
    first = service.issue(ALICE)
    again = service.issue(ALICE)
    assert again.number == first.number
    assert not again.newly_issued
    assert again.notice == first.notice  # same Number, same issue date: same document
    assert counts(engine) == (1, 1, 1)


def test_unknown_resident_is_not_found(engine: Engine) -> None:
    with pytest.raises(NotFound) as exc:
        make(engine).issue("99999999999")
    assert refusal(exc) == ("NOT_FOUND", "RESIDENT_UNKNOWN", {"field": "resident_code"})
    assert counts(engine) == (0, 0, 0)


MALFORMED_CODES = (
    "",
    "1000000000",
    "100000000011",
    "1000000000a",
    wide("10000000000"),
    "1 000000001",
)


def test_malformed_resident_code_is_invalid_argument(engine: Engine) -> None:
    service = make(engine, known=[*KNOWN, *MALFORMED_CODES])  # even if the directory said yes
    for bad in MALFORMED_CODES:
        for call in (service.issue, service.lookup_number, service.history):
            with pytest.raises(InvalidArgument) as exc:
                call(bad)
            assert refusal(exc) == (
                "INVALID_ARGUMENT",
                "INVALID_FIELD",
                {"field": "resident_code"},
            )
            assert exc.value.message.startswith("resident_code: ")
    assert counts(engine) == (0, 0, 0)


def test_many_residents_never_share_a_number(engine: Engine) -> None:
    codes = [f"{30_000_000_000 + i:011d}" for i in range(1000)]
    service = make(engine, known=codes, batch_size=300)
    assert service.issue_many(codes) == 1000
    with engine.connect() as conn:
        issued = list(conn.execute(sa.select(conversion.c.number)).scalars())
    assert len(issued) == len(set(issued)) == 1000
    assert all(number.is_valid(n) for n in issued)
    again = service.issue(codes[0])  # the bulk row reads back like any other
    assert (again.newly_issued, again.issued_at) == (False, T0)
    assert [(e.kind, e.at) for e in service.history(codes[-1])] == [(ISSUE, T0)]
    # Stored exactly as a single issue stores the same instant (bulk rows bypass
    # SQLAlchemy's per-row processing; the driver must still get its format).
    single = make(engine, known=[ALICE]).issue(ALICE).number
    with engine.connect() as conn:
        raw: dict[str, str] = dict(
            conn.execute(
                sa.select(numbers.c.number, sa.cast(numbers.c.issued_at, sa.String)).where(
                    numbers.c.number.in_([single, again.number])
                )
            ).all()
        )
    assert raw[single] == raw[again.number]
    assert service.issue_many(codes) == 0  # a repeated run skips everyone
    assert counts(engine) == (1001, 1001, 1001)


def test_a_collision_with_an_active_number_draws_again(engine: Engine) -> None:
    source = Script(X)
    service = make(engine, source)
    service.issue(ALICE)
    source.then(X, Y)
    assert service.issue(BOB).number == Y
    assert source.drawn == [X, X, Y]


def test_a_retired_number_is_never_issued_again(engine: Engine) -> None:
    source = Script(X, Y)
    service = make(engine, source)
    service.issue(ALICE)
    assert service.change_number(X, "漏えいのおそれ").number == Y
    source.then(X, X, Z)  # the source offers the retired Number, twice
    assert service.issue(BOB).number == Z
    row = service.store.number_row(X)
    assert row is not None
    assert row.status == RETIRED
    with pytest.raises(FailedPrecondition) as exc:
        service.lookup_resident_code(X)
    assert refusal(exc) == ("FAILED_PRECONDITION", "NUMBER_RETIRED", {"field": "number"})


def test_bulk_issue_skips_retired_and_active_numbers(engine: Engine) -> None:
    source = Script(X, Y)
    service = make(engine, source)
    service.issue(ALICE)
    service.change_number(X, "request")  # X retired, Alice has Y
    source.then(X, Y, Z, X, "595748906820")
    assert service.issue_many([BOB, CAROL]) == 2
    assert {service.lookup_number(BOB), service.lookup_number(CAROL)} == {Z, "595748906820"}


def test_a_broken_source_fails_and_writes_nothing(engine: Engine) -> None:
    source = Script(X)
    service = make(engine, source)
    service.issue(ALICE)
    source.then(*[X] * 32)
    with pytest.raises(NumberSpaceExhausted):
        service.issue(BOB)
    source.then("123456789010")  # wrong check digit
    with pytest.raises(ValueError, match="invalid Number"):
        service.issue(BOB)
    source.then(*[Y] * 64)  # stuck on one value: bulk rounds end, they do not spin
    with pytest.raises(NumberSpaceExhausted):
        service.issue_many([BOB, CAROL])
    assert counts(engine) == (1, 1, 1)


def test_bulk_refusal_writes_nothing_of_its_batch(engine: Engine) -> None:
    codes = [f"{30_000_000_000 + i:011d}" for i in range(9)]
    service = make(engine, known=codes[:7], batch_size=3)
    with pytest.raises(NotFound) as exc:
        service.issue_many(codes)
    assert refusal(exc) == ("NOT_FOUND", "RESIDENT_UNKNOWN", {"field": "resident_codes"})
    # Batches [0-2] and [3-5] were committed; [6-8] holds the unknown ones.
    assert counts(engine) == (6, 6, 6)
    with pytest.raises(InvalidArgument) as bad:
        service.issue_many([wide("12345678901")])
    assert refusal(bad) == ("INVALID_ARGUMENT", "INVALID_FIELD", {"field": "resident_codes"})


# ------------------------------------------------------------------ change number


def test_change_number_retires_the_old_and_keeps_history(engine: Engine) -> None:
    service = make(engine, Script(X, Y))
    service.issue(ALICE)
    changed = service.change_number(X, "漏えいのおそれ")
    assert (changed.number, changed.newly_issued) == (Y, True)
    assert number.format_number(Y).encode() in changed.notice
    assert service.lookup_number(ALICE) == Y
    assert service.lookup_resident_code(Y) == ALICE
    old = service.store.number_row(X)
    assert old is not None
    assert (old.status, old.retired_at, old.retire_reason) == (RETIRED, T0, "漏えいのおそれ")
    new = service.store.number_row(Y)
    assert new is not None
    assert new.status == ACTIVE
    history = service.history(ALICE)
    assert [(e.kind, e.old_number, e.new_number) for e in history] == [
        (ISSUE, None, X),
        (CHANGE, X, Y),
    ]
    assert [e.seq for e in history] == sorted(e.seq for e in history)
    assert service.issue(ALICE).number == Y  # issue now answers the new Number


def test_change_number_refusals(engine: Engine) -> None:
    service = make(engine, Script(X, Y))
    service.issue(ALICE)
    service.change_number(X, "request")
    with pytest.raises(FailedPrecondition) as retired:
        service.change_number(X, "again")
    assert refusal(retired) == ("FAILED_PRECONDITION", "NUMBER_RETIRED", {"field": "number"})
    with pytest.raises(NotFound) as unknown:
        service.change_number(Z, "never issued")
    assert refusal(unknown) == ("NOT_FOUND", "NUMBER_UNKNOWN", {"field": "number"})
    for bad in ("621498320258", "62149832025", wide("621498320257"), "62149832025x"):
        with pytest.raises(InvalidArgument) as malformed:
            service.change_number(bad, "typo")
        assert refusal(malformed) == ("INVALID_ARGUMENT", "INVALID_FIELD", {"field": "number"})
    with pytest.raises(InvalidArgument) as no_reason:
        service.change_number(Y, "")
    assert refusal(no_reason) == ("INVALID_ARGUMENT", "INVALID_FIELD", {"field": "reason"})
    assert counts(engine) == (2, 1, 2)


# ------------------------------------------------------------------ resident-code change


def test_resident_code_change_keeps_the_number(engine: Engine) -> None:
    service = make(engine, Script(X))
    service.issue(ALICE)
    assert service.change_resident_code(ALICE, ALICE_NEW) == X
    assert service.lookup_number(ALICE_NEW) == X
    assert service.lookup_resident_code(X) == ALICE_NEW
    issued = service.issue(ALICE_NEW)
    assert (issued.number, issued.newly_issued) == (X, False)
    expected = [(ISSUE, ALICE, None, X), (RESIDENT_CODE_CHANGE, ALICE_NEW, ALICE, X)]
    for code in (ALICE_NEW, ALICE):  # found from either code
        assert [
            (e.kind, e.resident_code, e.old_resident_code, e.new_number)
            for e in service.history(code)
        ] == expected
    # Repeating the same change (a retry after a lost answer) is harmless.
    assert service.change_resident_code(ALICE, ALICE_NEW) == X
    assert counts(engine) == (1, 1, 2)


def test_a_replaced_resident_code_is_not_used_again(engine: Engine) -> None:
    service = make(engine, Script(X, Y))
    service.issue(ALICE)
    service.change_resident_code(ALICE, ALICE_NEW)
    for attempt in (
        lambda: service.issue(ALICE),  # the directory still knows it
        lambda: service.lookup_number(ALICE),
        lambda: service.issue_many([ALICE]),
    ):
        with pytest.raises(FailedPrecondition) as exc:
            attempt()
        assert exc.value.reason == "RESIDENT_CODE_RETIRED"
    service.issue(BOB)
    with pytest.raises(FailedPrecondition) as back:
        service.change_resident_code(BOB, ALICE)
    assert refusal(back) == (
        "FAILED_PRECONDITION",
        "RESIDENT_CODE_RETIRED",
        {"field": "new_resident_code"},
    )
    assert counts(engine) == (2, 2, 3)


def test_resident_code_change_refusals(engine: Engine) -> None:
    service = make(engine, Script(X, Y))
    service.issue(ALICE)
    service.issue(BOB)
    with pytest.raises(FailedPrecondition) as in_use:
        service.change_resident_code(ALICE, BOB)
    assert refusal(in_use) == (
        "FAILED_PRECONDITION",
        "RESIDENT_CODE_IN_USE",
        {"field": "new_resident_code"},
    )
    with pytest.raises(NotFound) as unknown_new:
        service.change_resident_code(ALICE, "99999999999")
    assert refusal(unknown_new) == (
        "NOT_FOUND",
        "RESIDENT_UNKNOWN",
        {"field": "new_resident_code"},
    )
    with pytest.raises(NotFound) as no_number:
        service.change_resident_code(CAROL, ALICE_NEW)
    assert refusal(no_number) == (
        "NOT_FOUND",
        "RESIDENT_HAS_NO_NUMBER",
        {"field": "old_resident_code"},
    )
    with pytest.raises(InvalidArgument) as same:
        service.change_resident_code(ALICE, ALICE)
    assert refusal(same) == ("INVALID_ARGUMENT", "INVALID_FIELD", {"field": "new_resident_code"})
    with pytest.raises(InvalidArgument) as malformed:
        service.change_resident_code(wide("10000000000"), ALICE_NEW)
    assert refusal(malformed) == (
        "INVALID_ARGUMENT",
        "INVALID_FIELD",
        {"field": "old_resident_code"},
    )
    assert service.lookup_number(ALICE) == X
    assert counts(engine) == (2, 2, 2)


# ------------------------------------------------------------------ lookups


def test_lookups_refuse_what_was_never_issued(engine: Engine) -> None:
    service = make(engine)
    with pytest.raises(NotFound) as no_number:
        service.lookup_number(ALICE)
    assert refusal(no_number) == ("NOT_FOUND", "RESIDENT_HAS_NO_NUMBER", {"field": "resident_code"})
    with pytest.raises(NotFound) as unknown:
        service.lookup_resident_code(X)
    assert refusal(unknown) == ("NOT_FOUND", "NUMBER_UNKNOWN", {"field": "number"})
    with pytest.raises(NotFound) as no_history:
        service.history(ALICE)
    assert no_history.value.reason == "RESIDENT_HAS_NO_NUMBER"
    with pytest.raises(InvalidArgument) as malformed:
        service.lookup_resident_code("123456789019")
    assert refusal(malformed) == ("INVALID_ARGUMENT", "INVALID_FIELD", {"field": "number"})
