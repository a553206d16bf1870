"""A private body's binding with the person's consent (R20), and the log of every attempt.

A private body is an agency the registry's operator designates
(``[registry] private_bodies`` in registry.toml, ``config``), as the Minister designates
the private verifiers of the public key infrastructure: Annex Table 2 names
no private body, so the hub's agency registry has no class for one. A
designated body may bind ONLY this way (``MatchRecords`` refuses it), and no
other agency may use this way.

The rule (stricter than ``matching``): the four facts the person gave, after
``renkei.fourfacts`` normalisation of form only (widths, old character forms,
spacing, era dates, address spellings), must equal ONE living resident's
CURRENT name, date of birth, sex and address (municipality, town, 丁目, 番,
号). No previous name or address, however well the history proves it; no
partial match; no tie broken by the reading; a reading (kana), if given, must
equal the current one too. The candidate comes from the matcher (which must
find exactly one person over all versions, kana aside) and is then checked
against the register's current record (``ResidentSource.lookup``).

The caller learns MATCHED or NO_EXACT_MATCH and nothing else, so the flow
cannot be used to probe the register. ``consent_log`` keeps every attempt,
refusals included, with the detailed reason and, on a match, the resident
code, for the oversight body (R27). ``ConsentBinding`` writes through the
``AttemptLog`` port; ``ConsentLog`` is it on the binding store's table.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from registry_binding.matching import Matcher
from registry_binding.records import AgencyRecord, record_keys
from registry_binding.sealer import Sealer
from registry_binding.store import consent_log, metadata
from renkei import limits, validate
from renkei.errors import PermissionDenied, RenkeiError, invalid_field
from renkei.fourfacts.normalize import (
    NormalizedFacts,
    SexEncoding,
    normalize_kana,
    normalize_name,
    normalize_town,
)
from renkei.residents import Resident, ResidentSource

Giver = Literal["person", "legal_representative"]
Outcome = Literal["matched", "no_exact_match", "refused"]
GIVERS: tuple[Giver, ...] = ("person", "legal_representative")
# Clocks differ a little between a private body and the registry.
CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Consent:
    """A person's consent as the private body recorded it."""

    consent_id: str
    giver: Giver | None
    representative_name: str
    consented_at: datetime | None
    purpose: str
    document_sha256: bytes = b""


@dataclass(frozen=True, slots=True)
class ConsentAttempt:
    """One row of the consent log."""

    attempt_id: str
    caller: str
    attempted_at: datetime
    local_person_id: str | None
    consent: Consent | None
    outcome: Outcome
    answered: str
    reason: str
    resident_code: str | None


@dataclass(frozen=True, slots=True)
class ConsentOutcome:
    """What the caller gets: matched or not, the sealed ID code, the log's reference."""

    matched: bool
    sealed_id_code: bytes
    attempt_id: str


def check_consent(consent: Consent | None, now: datetime) -> Consent:
    """The consent, or INVALID_ARGUMENT naming the first bad field (``consent.*``)."""
    if consent is None:
        raise invalid_field("consent", "is required")
    validate.text("consent.consent_id", consent.consent_id, max_chars=limits.MAX_ID)
    if consent.giver not in GIVERS:
        raise invalid_field("consent.giver", "is required: the person or a legal representative")
    if consent.giver == "legal_representative":
        validate.text("consent.representative_name", consent.representative_name, max_chars=100)
    elif consent.representative_name:
        raise invalid_field("consent.representative_name", "is only for a legal representative")
    if consent.consented_at is None:
        raise invalid_field("consent.consented_at", "is required")
    if consent.consented_at > now + CLOCK_SKEW:
        raise invalid_field("consent.consented_at", "is in the future")
    validate.text("consent.purpose", consent.purpose, max_chars=400)
    if consent.document_sha256 and len(consent.document_sha256) != 32:
        raise invalid_field(
            "consent.document_sha256", f"is {len(consent.document_sha256)} bytes; a SHA-256 is 32"
        )
    return consent


def attempt_row(attempt: ConsentAttempt) -> dict[str, Any]:
    """The attempt as a ``consent_log`` row (free text cut to the columns' sizes)."""
    c = attempt.consent
    return {
        "attempt_id": attempt.attempt_id,
        "caller": attempt.caller,
        "attempted_at": attempt.attempted_at,
        "local_person_id": attempt.local_person_id,
        "consent_id": None if c is None else c.consent_id[:64],
        "giver": None if c is None else c.giver,
        "representative_name": None if c is None else c.representative_name[:100],
        "consented_at": None if c is None else c.consented_at,
        "purpose": None if c is None else c.purpose[:400],
        "document_sha256": None if c is None else c.document_sha256.hex()[:64],
        "outcome": attempt.outcome,
        "answered": attempt.answered,
        "reason": attempt.reason[:400],
        "resident_code": attempt.resident_code,
    }


class AttemptLog(Protocol):
    """Where ``ConsentBinding`` writes every attempt."""

    def append(self, attempt: ConsentAttempt) -> None: ...


class ConsentLog:
    """``consent_log`` on the binding store's engine (table made if missing)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        metadata.create_all(engine)

    def append(self, attempt: ConsentAttempt) -> None:
        with self._engine.begin() as conn:
            conn.execute(consent_log.insert().values(**attempt_row(attempt)))

    def rows(self, caller: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """The newest ``limit`` attempts, oldest first (for the oversight body)."""
        query = sa.select(consent_log).order_by(consent_log.c.id.desc()).limit(limit)
        if caller is not None:
            query = query.where(consent_log.c.caller == caller)
        with self._engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
        return rows[::-1]


def differs_from_current(keys: NormalizedFacts, current: Resident) -> str | None:
    """Why ``keys`` are not exactly the register's current facts, or None if they are."""
    if current.status != "alive":
        return "deceased"
    if keys.name != normalize_name(current.name.kanji):
        return "name is not the current name"
    if keys.birth_date != current.birth_date:
        return "birth date differs"
    if keys.sex != current.sex:
        return "sex differs"
    a, here = keys.address, current.address
    if (
        here.municipality_code not in a.municipality_codes
        or a.town != normalize_town(here.town)
        or (a.chome, a.banchi, a.go) != (here.chome, here.banchi, here.go)
    ):
        return "address is not the current address"
    if keys.kana is not None and keys.kana != normalize_kana(current.name.kana):
        return "kana differs from the current reading"
    return None


class ConsentBinding:
    """``MatchWithConsent``'s domain: check, match exactly, seal, log (module docstring)."""

    def __init__(
        self,
        matcher: Matcher,
        source: ResidentSource,
        sealer: Sealer,
        log: AttemptLog,
        private_bodies: Collection[str],
        *,
        sex_encoding: SexEncoding = "iso5218",
    ) -> None:
        self._matcher = matcher
        self._source = source
        self._sealer = sealer
        self._log = log
        self._private = frozenset(private_bodies)
        self._sex_encoding: SexEncoding = sex_encoding

    def is_private_body(self, agency_id: str) -> bool:
        return agency_id in self._private

    async def match(
        self,
        caller: str,
        agency_id: str | None,
        record: AgencyRecord,
        consent: Consent | None,
        *,
        invalid: RenkeiError | None = None,
    ) -> ConsentOutcome:
        """Every call writes one log row, refusals too.

        ``caller`` names the certificate ("agency:x", "service:y") for the log;
        ``agency_id`` is set only when it is an agency's. ``invalid``: what the
        servicer could not read of the consent (an out-of-range time), raised
        only once the caller may bind at all.
        """
        now = datetime.now(UTC)
        attempt_id = secrets.token_hex(16)
        local = record.local_person_id[:64] or None

        async def log(outcome: Outcome, answered: str, reason: str, code: str | None) -> None:
            attempt = ConsentAttempt(
                attempt_id, caller, now, local, consent, outcome, answered, reason, code
            )
            await asyncio.to_thread(self._log.append, attempt)

        try:
            if agency_id is None or agency_id not in self._private:
                raise PermissionDenied(
                    "CALLER_NOT_PRIVATE_BODY",
                    f"only designated private bodies bind with consent; the caller is {caller}",
                )
            if invalid is not None:
                raise invalid
            check_consent(consent, now)
            validate.text("record.local_person_id", record.local_person_id, max_chars=limits.MAX_ID)
            try:
                keys = record_keys(record.facts, self._sex_encoding)
            except ValueError as exc:
                field, _, problem = str(exc).partition(": ")
                raise invalid_field(f"record.{field}", problem or str(exc)) from None
        except RenkeiError as err:
            await log("refused", err.reason, f"{err.reason}: {err.message}", None)
            raise
        code, basis, why = await asyncio.to_thread(self._decide, keys)
        if code is None:
            await log("no_exact_match", "NO_EXACT_MATCH", why, None)
            return ConsentOutcome(False, b"", attempt_id)
        assert agency_id is not None
        try:
            [(sealed, error)] = await self._sealer.seal(agency_id, [basis])
        except RenkeiError as err:
            await log("refused", err.reason, f"the ID issuer failed: {err.message}", code)
            raise
        if not sealed or error:
            why = f"the ID issuer did not seal: {error}"
            await log("no_exact_match", "NO_EXACT_MATCH", why, code)
            return ConsentOutcome(False, b"", attempt_id)
        await log("matched", "MATCHED", "current facts equal", code)
        return ConsentOutcome(True, sealed, attempt_id)

    def _decide(self, keys: NormalizedFacts) -> tuple[str | None, str, str]:
        """(the exact match's current resident code or None, the code its ID code is made
        from (its first, MatchResult.id_basis), the detailed reason)."""
        if self._matcher.is_stale():
            self._matcher.refresh()
        # Kana aside: it must never break a tie here, only confirm below.
        found = self._matcher.match_normalized(replace(keys, kana=None))
        if found.status != "unique" or found.resident_code is None:
            return None, "", f"{found.status}: {found.reason}"
        current = self._source.lookup([found.resident_code]).get(found.resident_code)
        if current is None:
            return None, "", "the matched resident is no longer in the register"
        why = differs_from_current(keys, current)
        if why is not None:
            return None, "", why
        return current.resident_code, found.id_basis or current.resident_code, ""
