"""``renkei.registry.v1.BindingService`` over gRPC: proto in, domain call, proto out.

``MatchRecords`` (``binding``), ``ListChanges`` (``subscriptions``),
``MatchWithConsent`` (``consent``) and ``BindCard`` (``cards``). The agency is the one named in the
caller's certificate: no field of a request can name another.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc

from registry_binding.binding import MAX_RECORDS, RegistryBinding
from registry_binding.cards import CardBinding
from registry_binding.consent import Consent, ConsentBinding, Giver
from registry_binding.records import AgencyRecord
from registry_binding.subscriptions import MAX_PAGE, Subscriptions
from renkei import validate
from renkei.errors import FailedPrecondition, InvalidArgument, PermissionDenied, invalid_field
from renkei.fourfacts.normalize import FourFacts
from renkei.grpcutil.caller import caller, label
from renkei.registry.v1 import registry_pb2, registry_pb2_grpc
from renkei.residents import Resident

Context = grpc.aio.ServicerContext[Any, Any]

_STATUS = {
    "unique": registry_pb2.MATCH_STATUS_UNIQUE,
    "ambiguous": registry_pb2.MATCH_STATUS_AMBIGUOUS,
    "none": registry_pb2.MATCH_STATUS_NONE,
    "invalid": registry_pb2.MATCH_STATUS_INVALID,
}


_KINDS = {
    "subscribed": registry_pb2.CHANGE_KIND_SUBSCRIBED,
    "move": registry_pb2.CHANGE_KIND_MOVED,
    "name_change": registry_pb2.CHANGE_KIND_NAME_CHANGED,
    "death": registry_pb2.CHANGE_KIND_DECEASED,
}
_GIVERS: dict[int, Giver] = {
    registry_pb2.CONSENT_GIVER_PERSON: "person",
    registry_pb2.CONSENT_GIVER_LEGAL_REPRESENTATIVE: "legal_representative",
}
DEFAULT_PAGE = 100


def _caller_name() -> tuple[str, str | None]:
    """(how the log names the caller, the agency id if an agency's certificate)."""
    identity = caller()
    if identity is None:
        return "no certificate", None
    return label(identity), identity.party_id if identity.kind == "agency" else None


def _facts(r: Resident) -> registry_pb2.ResidentFacts:
    return registry_pb2.ResidentFacts(
        name=r.name.kanji,
        kana=r.name.kana,
        birth_date=r.birth_date.isoformat(),
        sex=r.sex,
        address=r.address.text,
        municipality_code=r.address.municipality_code,
        municipality=r.address.municipality,
        deceased=r.status == "deceased",
        died_on="" if r.died_on is None else r.died_on.isoformat(),
    )


def _cursor(text: str) -> int:
    if not text:
        return 0
    # A cursor is a BIGINT row id: above int64 the database driver overflows.
    return validate.digits("cursor", text, problem="is not a cursor this registry gave")


def _consent(
    request: registry_pb2.MatchWithConsentRequest,
) -> tuple[Consent | None, InvalidArgument | None]:
    """The consent, and the refusal of its time if that is out of range.

    The refusal is handed to the domain rather than raised: the caller is
    checked first, and the attempt is logged like any other refusal.
    """
    if not request.HasField("consent"):
        return None, None
    c = request.consent
    at, invalid = None, None
    if c.HasField("consented_at"):
        try:
            at = validate.timestamp("consent.consented_at", c.consented_at)
        except InvalidArgument as err:
            invalid = err
    consent = Consent(
        consent_id=c.consent_id,
        giver=_GIVERS.get(c.giver),
        representative_name=c.representative_name,
        consented_at=at,
        purpose=c.purpose,
        document_sha256=bytes(c.document_sha256),
    )
    return consent, invalid


def _caller_agency() -> str:
    identity = caller()
    if identity is None or identity.kind != "agency":
        who = "no certificate" if identity is None else label(identity)
        raise PermissionDenied(
            "CALLER_NOT_AGENCY", f"only agencies bind records; the caller is {who}"
        )
    return identity.party_id


def _record(r: registry_pb2.Record) -> AgencyRecord:
    return AgencyRecord(
        r.local_person_id,
        FourFacts(
            name=r.name,
            kana=r.kana or None,
            address=r.address,
            birth_date=r.birth_date,
            sex=r.sex,
            municipality_hint=r.municipality_hint or None,
        ),
    )


class BindingServicer(registry_pb2_grpc.BindingServiceServicer):
    def __init__(
        self,
        binding: RegistryBinding,
        subscriptions: Subscriptions,
        consent: ConsentBinding,
        cards: CardBinding | None = None,
    ) -> None:
        self._binding = binding
        self._subscriptions = subscriptions
        self._consent = consent
        self._cards = cards

    async def MatchRecords(  # gRPC method names are PascalCase
        self, request: registry_pb2.MatchRecordsRequest, context: Context
    ) -> registry_pb2.MatchRecordsResponse:
        agency_id = _caller_agency()
        if self._consent.is_private_body(agency_id):
            raise PermissionDenied(
                "PRIVATE_BODY_NEEDS_CONSENT",
                f"{agency_id} is a private body: it binds only with consent (MatchWithConsent)",
            )
        if len(request.records) > MAX_RECORDS:
            raise InvalidArgument(
                "TOO_MANY_RECORDS", f"{len(request.records)} records; at most {MAX_RECORDS} a call"
            )
        records = [_record(r) for r in request.records]
        batch, covered = b"", []
        if request.seal_as_batch:
            answer = await self._binding.match_records_batch(agency_id, records)
            outcomes, batch, covered = (
                answer.outcomes,
                answer.sealed_batch,
                answer.sealed_batch_outcomes,
            )
        else:
            outcomes = await self._binding.match_records(agency_id, records)
        return registry_pb2.MatchRecordsResponse(
            outcomes=[
                registry_pb2.MatchOutcome(
                    local_person_id=o.local_person_id,
                    status=_STATUS[o.status],
                    reason=o.reason,
                    sealed_id_code=o.sealed_id_code,
                    subscription_handle=o.subscription_handle,
                )
                for o in outcomes
            ],
            sealed_batch=batch,
            sealed_batch_outcomes=covered,
        )

    async def ListChanges(  # gRPC method names are PascalCase
        self, request: registry_pb2.ListChangesRequest, context: Context
    ) -> registry_pb2.ListChangesResponse:
        agency_id = _caller_agency()
        after = _cursor(request.cursor)
        size = request.page_size or DEFAULT_PAGE
        if not 1 <= size <= MAX_PAGE:
            raise invalid_field("page_size", f"must be 0 (default {DEFAULT_PAGE}) to {MAX_PAGE}")
        entries, last, more = await asyncio.to_thread(
            self._subscriptions.list_changes, agency_id, after, size
        )
        return registry_pb2.ListChangesResponse(
            changes=[
                registry_pb2.PersonChange(
                    subscription_handle=e.handle,
                    kind=_KINDS[e.kind],
                    effective_date=e.effective_date.isoformat(),
                    facts=_facts(e.resident),
                )
                for e in entries
            ],
            next_cursor=str(last),
            more=more,
        )

    async def BindCard(  # gRPC method names are PascalCase
        self, request: registry_pb2.BindCardRequest, context: Context
    ) -> registry_pb2.BindCardResponse:
        if self._cards is None:
            raise FailedPrecondition(
                "CARD_CA_MISSING", "this registry has no card CA (registry.toml [cards] ca_dir)"
            )
        who, agency_id = _caller_name()
        sealed = await self._cards.bind(
            who,
            agency_id,
            bytes(request.card_certificate),
            bytes(request.challenge),
            bytes(request.signature),
        )
        return registry_pb2.BindCardResponse(sealed_id_code=sealed)

    async def MatchWithConsent(  # gRPC method names are PascalCase
        self, request: registry_pb2.MatchWithConsentRequest, context: Context
    ) -> registry_pb2.MatchWithConsentResponse:
        caller, agency_id = _caller_name()
        consent, invalid = _consent(request)
        outcome = await self._consent.match(
            caller, agency_id, _record(request.record), consent, invalid=invalid
        )
        return registry_pb2.MatchWithConsentResponse(
            status=registry_pb2.CONSENT_MATCH_STATUS_MATCHED
            if outcome.matched
            else registry_pb2.CONSENT_MATCH_STATUS_NO_EXACT_MATCH,
            sealed_id_code=outcome.sealed_id_code,
            attempt_id=outcome.attempt_id,
        )
