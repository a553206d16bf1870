"""The numbering agency's operations (R8, R10, R11), in plain Python.

Its ports are passed in: the store (``NumberingStore``), the resident
directory (which resident codes the registry knows), the source of random
Numbers and the clock. Tests inject a deterministic number source to force
collisions; production uses ``numbering.number.new_number`` (``secrets``).

Every input is checked here first, and each refusal names its field. What
depends on the tables (is a Number active, is a resident code taken) is
decided inside the store's transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import Protocol, runtime_checkable

from numbering import number as numbers
from numbering.directory import GrpcResidentDirectory, StaticResidentDirectory
from numbering.notice import render_notice
from numbering.store import Event, NumberingStore
from renkei import validate
from renkei.errors import NotFound, invalid_field

__all__ = [
    "BulkResidentDirectory",
    "Event",
    "GrpcResidentDirectory",
    "Issued",
    "NumberingService",
    "ResidentDirectory",
    "StaticResidentDirectory",
]

MAX_REASON_CHARS = 200
# Rows per bulk transaction. Each batch rewrites most pages of the two
# random-keyed B-trees (numbers, conversion.number) at commit, so fewer,
# larger batches write far less: over 1M residents on SQLite, 100k-row
# batches ran 2.4 times as fast as 10k-row ones. About 30 MB of rows in memory.
DEFAULT_BATCH = 100_000


class ResidentDirectory(Protocol):
    """Which resident codes the resident registry knows (implemented by the registry)."""

    def exists(self, resident_code: str) -> bool: ...


@runtime_checkable
class BulkResidentDirectory(ResidentDirectory, Protocol):
    """A directory that can answer for many codes at once (the initial numbering)."""

    def existing(self, resident_codes: Sequence[str]) -> set[str]: ...


@dataclass(frozen=True)
class Issued:
    number: str
    # False when the resident already had this Number (a repeated IssueNumber).
    newly_issued: bool
    issued_at: datetime
    # The printable notification (R10), UTF-8 HTML, for the caller to print and mail.
    notice: bytes


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _batches(items: Iterable[str], size: int) -> Iterator[list[str]]:
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


class NumberingService:
    def __init__(
        self,
        store: NumberingStore,
        directory: ResidentDirectory,
        *,
        number_source: Callable[[], str] = numbers.new_number,
        clock: Callable[[], datetime] = _utc_now,
        batch_size: int = DEFAULT_BATCH,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self._store = store
        self._directory = directory
        self._source = number_source
        self._clock = clock
        self._batch_size = batch_size

    @property
    def store(self) -> NumberingStore:
        return self._store

    def _draw(self) -> str:
        candidate = self._source()
        # A source that yields a malformed Number is a bug; never store its output.
        if not numbers.is_valid(candidate):
            raise ValueError(f"number source gave an invalid Number: {candidate!r}")
        return candidate

    def _require_known(self, resident_code: str, field: str) -> None:
        if not self._directory.exists(resident_code):
            raise NotFound(
                "RESIDENT_UNKNOWN",
                f"{field}: the resident registry has no such resident code",
                {"field": field},
            )

    # -- issuing -------------------------------------------------------------

    def issue(self, resident_code: str) -> Issued:
        """Issue the resident's Number, or return the one already issued, with its notice."""
        numbers.validate_resident_code(resident_code)
        self._require_known(resident_code, "resident_code")
        current, newly = self._store.issue(resident_code, self._draw, self._clock())
        return Issued(
            current.number,
            newly,
            current.issued_at,
            render_notice(current.number, current.issued_at),
        )

    def issue_many(self, resident_codes: Iterable[str]) -> int:
        """Initial numbering of many residents; returns how many Numbers were issued.

        One transaction per batch: a refused batch writes nothing, batches
        before it stay. Residents who already have a Number are skipped, so a
        stopped run can be repeated. Notices are not rendered here: each
        holder's notice comes from ``issue`` (which returns the existing
        Number) when the municipality prints the mailing.
        """
        issued = 0
        for batch in _batches(resident_codes, self._batch_size):
            for code in batch:
                numbers.validate_resident_code(code, "resident_codes")
            unknown = self._unknown(batch)
            if unknown:
                raise NotFound(
                    "RESIDENT_UNKNOWN",
                    f"resident_codes: {len(unknown)} resident codes are unknown to the "
                    f"registry, e.g. {min(unknown)}",
                    {"field": "resident_codes"},
                )
            issued += self._store.issue_many(batch, self._draw, self._clock())
        return issued

    def _unknown(self, batch: Sequence[str]) -> set[str]:
        if isinstance(self._directory, BulkResidentDirectory):
            return set(batch) - self._directory.existing(batch)
        return {c for c in batch if not self._directory.exists(c)}

    # -- changes -------------------------------------------------------------

    def change_number(self, number: str, reason: str) -> Issued:
        """Replace a Number at its holder's request (R11); returns the new one and its notice."""
        numbers.validate(number)
        validate.text("reason", reason, max_chars=MAX_REASON_CHARS)
        current = self._store.change_number(number, reason, self._draw, self._clock())
        return Issued(
            current.number,
            True,
            current.issued_at,
            render_notice(current.number, current.issued_at),
        )

    def change_resident_code(self, old_resident_code: str, new_resident_code: str) -> str:
        """The person's resident code changed; they keep their Number (R8). Returns it."""
        numbers.validate_resident_code(old_resident_code, "old_resident_code")
        numbers.validate_resident_code(new_resident_code, "new_resident_code")
        if old_resident_code == new_resident_code:
            raise invalid_field("new_resident_code", "is the same as old_resident_code")
        self._require_known(new_resident_code, "new_resident_code")
        return self._store.change_resident_code(old_resident_code, new_resident_code, self._clock())

    # -- reading -------------------------------------------------------------

    def lookup_number(self, resident_code: str) -> str:
        numbers.validate_resident_code(resident_code)
        return self._store.lookup_number(resident_code).number

    def lookup_resident_code(self, number: str) -> str:
        numbers.validate(number)
        return self._store.lookup_resident_code(number)

    def history(self, resident_code: str) -> list[Event]:
        numbers.validate_resident_code(resident_code)
        found = self._store.history(resident_code)
        if not found:
            raise NotFound(
                "RESIDENT_HAS_NO_NUMBER",
                "resident_code: no Number was ever issued for this resident code",
                {"field": "resident_code"},
            )
        return found
