"""``MatchRecords``' domain (R13-R15): match an agency's records, seal the unique ones.

For each record the facts are normalized (``records.record_keys``) and
matched (``matching.Matcher``). For the records that match exactly one
resident the ID issuer seals those residents' ID codes to the hub for the
calling agency in ONE call per batch (``sealer.Sealer``), and each sealed one
gets the agency's subscription handle (``subscriptions.Subscriptions``).

What leaves: the agency's own record ids, a status, a reason and, for a unique
match, the sealed ID code and the handle. Never a resident code (not even the
candidates of an ambiguous match) and never a fact of the register; a reason
only says which rule failed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from registry_binding.matching import Matcher, MatchResult
from registry_binding.records import AgencyRecord, record_keys
from registry_binding.sealer import Sealer
from registry_binding.subscriptions import Subscriptions
from renkei import limits, validate
from renkei.errors import InvalidArgument, RenkeiError
from renkei.fourfacts.normalize import SexEncoding

OutcomeStatus = Literal["unique", "ambiguous", "none", "invalid"]

MAX_RECORDS = 1000


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one record fared. ``sealed_id_code`` is set only for ``"unique"``."""

    local_person_id: str
    status: OutcomeStatus
    reason: str
    sealed_id_code: bytes = b""
    subscription_handle: str = ""


class RegistryBinding:
    """Match an agency's records and seal the unique ones' ID codes for that agency."""

    def __init__(
        self,
        matcher: Matcher,
        sealer: Sealer,
        *,
        sex_encoding: SexEncoding = "iso5218",
        subscriptions: Subscriptions | None = None,
    ) -> None:
        self._matcher = matcher
        self._sealer = sealer
        self._sex_encoding: SexEncoding = sex_encoding
        self._subscriptions = subscriptions

    def _match(self, records: Sequence[AgencyRecord]) -> list[MatchResult | str]:
        """A match per record, or the reason it is invalid (a string)."""
        if self._matcher.is_stale():
            self._matcher.refresh()
        out: list[MatchResult | str] = []
        for record in records:
            try:
                keys = record_keys(record.facts, self._sex_encoding)
            except ValueError as exc:
                out.append(f"invalid record: {exc}")
                continue
            out.append(self._matcher.match_normalized(keys))
        return out

    async def _unique(
        self, records: Sequence[AgencyRecord]
    ) -> tuple[list[MatchResult | str], list[tuple[int, str, str]]]:
        """(a match or invalid reason per record, and for the unique ones (index, current
        resident code, the code their ID code is made from))."""
        if len(records) > MAX_RECORDS:
            raise InvalidArgument(
                "TOO_MANY_RECORDS", f"{len(records)} records; at most {MAX_RECORDS} a call"
            )
        for i, record in enumerate(records):
            validate.text(
                f"records[{i}].local_person_id", record.local_person_id, max_chars=limits.MAX_ID
            )
        results = await asyncio.to_thread(self._match, records)
        unique = [
            (i, r.resident_code, r.id_basis or r.resident_code)
            for i, r in enumerate(results)
            if isinstance(r, MatchResult) and r.status == "unique" and r.resident_code
        ]
        return results, unique

    async def _handles(
        self, agency_id: str, unique: list[tuple[int, str, str]], ok: set[int]
    ) -> dict[int, str]:
        if self._subscriptions is None:
            return {}
        pairs = [(i, code) for i, code, _ in unique if i in ok]
        minted = await asyncio.to_thread(
            self._subscriptions.subscribe, agency_id, [code for _, code in pairs]
        )
        return {i: h for (i, _), h in zip(pairs, minted, strict=True)}

    @staticmethod
    def _outcomes(
        records: Sequence[AgencyRecord],
        results: list[MatchResult | str],
        sealed: dict[int, tuple[bytes, str]],
        handles: dict[int, str],
    ) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for i, (record, result) in enumerate(zip(records, results, strict=True)):
            local = record.local_person_id
            if isinstance(result, str):
                outcomes.append(Outcome(local, "invalid", result))
            elif result.status == "unique":
                value, error = sealed[i]
                if not error:
                    outcomes.append(
                        Outcome(local, "unique", result.reason, value, handles.get(i, ""))
                    )
                else:
                    outcomes.append(Outcome(local, "none", f"the ID issuer did not seal: {error}"))
            else:
                # Candidates (resident codes) stay here: only the reason leaves.
                outcomes.append(Outcome(local, result.status, result.reason))
        return outcomes

    async def match_records(self, agency_id: str, records: Sequence[AgencyRecord]) -> list[Outcome]:
        """One outcome per record; a unique one carries its own sealed ID code."""
        results, unique = await self._unique(records)
        sealed: dict[int, tuple[bytes, str]] = {}
        if unique:
            # The ID code is made from the person's first code (MatchResult.id_basis).
            answers = await self._sealer.seal(agency_id, [basis for _, _, basis in unique])
            if len(answers) != len(unique):
                raise RenkeiError(
                    "ID_ISSUER_BAD_ANSWER",
                    f"the ID issuer answered {len(answers)} sealed codes for {len(unique)}",
                )
            # A sealed code without a reason is the only success.
            sealed = {
                i: (value, error or ("" if value else "NO_SEALED_CODE"))
                for (i, _, _), (value, error) in zip(unique, answers, strict=True)
            }
        ok = {i for i, (_, error) in sealed.items() if not error}
        handles = await self._handles(agency_id, unique, ok)
        return self._outcomes(records, results, sealed, handles)

    async def match_records_batch(
        self, agency_id: str, records: Sequence[AgencyRecord]
    ) -> SealedBatchAnswer:
        """The outcomes, and the unique matches' ID codes sealed together for the agency."""
        results, unique = await self._unique(records)
        batch, reasons = b"", list[str]()
        if unique:
            batch, reasons = await self._sealer.seal_batch(
                agency_id, [basis for _, _, basis in unique]
            )
            if len(reasons) != len(unique) or (batch == b"") != all(reasons):
                raise RenkeiError(
                    "ID_ISSUER_BAD_ANSWER",
                    f"the ID issuer answered {len(reasons)} reasons for {len(unique)} codes"
                    f" and {'no' if not batch else 'a'} batch",
                )
        sealed = {i: (b"", reason) for (i, _, _), reason in zip(unique, reasons, strict=True)}
        covered = [i for i, _, _ in unique if not sealed[i][1]]
        handles = await self._handles(agency_id, unique, set(covered))
        return SealedBatchAnswer(self._outcomes(records, results, sealed, handles), batch, covered)


@dataclass(frozen=True, slots=True)
class SealedBatchAnswer:
    """``match_records_batch``: outcomes, the sealed batch, the outcome indexes it holds."""

    outcomes: list[Outcome]
    sealed_batch: bytes
    sealed_batch_outcomes: list[int]
