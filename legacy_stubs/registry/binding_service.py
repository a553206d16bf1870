"""The registry's side of binding (R13-R15): four facts in, sealed ID codes out.

An agency sends its records' four facts (``MatchRecords``). For each record the
registry normalizes the facts (``renkei.fourfacts``) and matches them against
the register (``legacy_stubs.registry.matching.Matcher``). For the records that
match exactly one resident it asks the ID issuer, in ONE ``SealIdCodes`` call
per batch, to seal those residents' ID codes to the hub for the calling agency,
and answers the sealed bytes. The agency's communication server then takes
them to the hub (``comm_server.binding.bind``) for its link codes.

What the answer holds: the agency's own record ids, a status, a reason and,
for a unique match, the sealed ID code and the agency's subscription handle
for the resident (``subscriptions``). Never a resident code (not even the
candidates of an ambiguous match) and never a fact of the register; a reason
only says which rule failed. The agency is the one named in the caller's
certificate: no field of the request can name another.

``ListChanges`` gives an agency the changes to the residents it bound, by its
handles, with their current facts (``subscriptions``). ``MatchWithConsent`` is
the consent flow for designated private bodies (``consent``), which may not
use ``MatchRecords``.

Served by ``create_server(config)``, configured in ``registry/registry.toml``::

    [registry]
    database_url = "sqlite:///{config_dir}/registry.db"   # written by the deployment
    listen = "127.0.0.1:0"                                 # optional
    id_issuer_endpoint = "127.0.0.1:50061"                 # optional here, needed to serve
    private_bodies = ["example-bank"]                      # optional: agencies designated
                                                           # as private bodies (R20)
    [tls]                                                  # the registry's service certificate
    ca_cert = "..."; cert = "..."; key = "..."
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any, Literal, Protocol

import grpc

from renkei import db, validate
from renkei.config_util import ConfigError, load_toml, required, table, tls_files
from renkei.errors import (
    InvalidArgument,
    PermissionDenied,
    RenkeiError,
    from_rpc_error,
    invalid_field,
)
from renkei.fourfacts.normalize import (
    FourFacts,
    NormalizedFacts,
    SexEncoding,
    normalize_address,
    normalize_date,
    normalize_kana,
    normalize_name,
    normalize_sex,
)
from renkei.grpcutil.client import channel
from renkei.grpcutil.handlers import outgoing_metadata, rpc
from renkei.grpcutil.server import ServerHandle, start_server
from renkei.idissuer.v1 import id_issuer_pb2, id_issuer_pb2_grpc
from renkei.pki import TlsFiles, peer_identity, validate_agency_id
from renkei.registry.v1 import registry_pb2, registry_pb2_grpc
from renkei.runner import serve_until_signalled

from .consent import Consent, ConsentBinding, ConsentLog, Giver
from .matching import Matcher, MatchResult
from .model import Resident
from .store import RegistryStore
from .subscriptions import MAX_PAGE, Subscriptions

OutcomeStatus = Literal["unique", "ambiguous", "none", "invalid"]
Context = grpc.aio.ServicerContext[Any, Any]

MAX_RECORDS = 1000
MAX_FIELD_CHARS = 256
SERVICE_NAME = registry_pb2.DESCRIPTOR.services_by_name["BindingService"].full_name


# -- domain -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgencyRecord:
    """One agency record: its own id and its four facts as it writes them."""

    local_person_id: str
    facts: FourFacts


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one record fared. ``sealed_id_code`` is set only for ``"unique"``."""

    local_person_id: str
    status: OutcomeStatus
    reason: str
    sealed_id_code: bytes = b""
    subscription_handle: str = ""


class Sealer(Protocol):
    """The ID issuer, as the registry's side sees it (``SealIdCodes``)."""

    async def seal(self, agency_id: str, resident_codes: list[str]) -> list[tuple[bytes, str]]:
        """One (sealed ID code, error reason) per resident code, in order."""
        ...

    async def seal_batch(
        self, agency_id: str, resident_codes: list[str]
    ) -> tuple[bytes, list[str]]:
        """The ID codes sealed together (b"" if none) and an error reason per code ("": in)."""
        ...


def record_keys(facts: FourFacts, sex_encoding: SexEncoding) -> NormalizedFacts:
    """``renkei.fourfacts.normalize``, field by field: a ValueError names its field."""

    def field(name: str, value: object) -> None:
        if isinstance(value, str):
            if len(value) > MAX_FIELD_CHARS:
                raise ValueError(f"{name}: is {len(value)} characters; at most {MAX_FIELD_CHARS}")
            try:
                validate.text(name, value, max_chars=MAX_FIELD_CHARS, required=False)
            except RenkeiError as err:
                raise ValueError(err.message) from None
            if "\ufffd" in value:  # left by a decoder that met bytes it could not read
                at = value.index("\ufffd")
                raise ValueError(f"{name}: has U+FFFD at character {at} (undecodable bytes)")

    field("name", facts.name)
    field("kana", facts.kana)
    field("address", facts.address)
    field("birth_date", facts.birth_date)
    field("sex", facts.sex)
    field("municipality_hint", facts.municipality_hint)
    name = normalize_name(facts.name)
    if not name:
        raise ValueError("name: is empty")
    kana = None if facts.kana is None else (normalize_kana(facts.kana) or None)
    if isinstance(facts.birth_date, str) and not facts.birth_date.strip():
        raise ValueError("birth_date: is empty")
    try:
        birth = normalize_date(facts.birth_date)
    except ValueError as exc:
        raise ValueError(f"birth_date: {exc}") from None
    if not facts.address.strip():
        raise ValueError("address: is empty")
    try:
        address = normalize_address(facts.address, municipality_hint=facts.municipality_hint)
    except ValueError as exc:
        where = "municipality_hint" if facts.municipality_hint else "address"
        raise ValueError(f"{where}: {exc}") from None
    return NormalizedFacts(
        name, kana, address, birth, normalize_sex(facts.sex, encoding=sex_encoding)
    )


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
    ) -> tuple[list[MatchResult | str], list[tuple[int, str]]]:
        """(a match or invalid reason per record, (index, resident code) of the unique ones)."""
        if len(records) > MAX_RECORDS:
            raise InvalidArgument(
                "TOO_MANY_RECORDS", f"{len(records)} records; at most {MAX_RECORDS} a call"
            )
        for i, record in enumerate(records):
            validate.text(f"records[{i}].local_person_id", record.local_person_id, max_chars=64)
        results = await asyncio.to_thread(self._match, records)
        unique = [
            (i, r.resident_code)
            for i, r in enumerate(results)
            if isinstance(r, MatchResult) and r.status == "unique" and r.resident_code
        ]
        return results, unique

    async def _handles(
        self, agency_id: str, unique: list[tuple[int, str]], ok: set[int]
    ) -> dict[int, str]:
        if self._subscriptions is None:
            return {}
        pairs = [(i, code) for i, code in unique if i in ok]
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
            answers = await self._sealer.seal(agency_id, [code for _, code in unique])
            if len(answers) != len(unique):
                raise RenkeiError(
                    "ID_ISSUER_BAD_ANSWER",
                    f"the ID issuer answered {len(answers)} sealed codes for {len(unique)}",
                )
            # A sealed code without a reason is the only success.
            sealed = {
                i: (value, error or ("" if value else "NO_SEALED_CODE"))
                for (i, _), (value, error) in zip(unique, answers, strict=True)
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
            batch, reasons = await self._sealer.seal_batch(agency_id, [c for _, c in unique])
            if len(reasons) != len(unique) or (batch == b"") != all(reasons):
                raise RenkeiError(
                    "ID_ISSUER_BAD_ANSWER",
                    f"the ID issuer answered {len(reasons)} reasons for {len(unique)} codes"
                    f" and {'no' if not batch else 'a'} batch",
                )
        sealed = {i: (b"", reason) for (i, _), reason in zip(unique, reasons, strict=True)}
        covered = [i for i, _ in unique if not sealed[i][1]]
        handles = await self._handles(agency_id, unique, set(covered))
        return SealedBatchAnswer(self._outcomes(records, results, sealed, handles), batch, covered)


@dataclass(frozen=True, slots=True)
class SealedBatchAnswer:
    """``match_records_batch``: outcomes, the sealed batch, the outcome indexes it holds."""

    outcomes: list[Outcome]
    sealed_batch: bytes
    sealed_batch_outcomes: list[int]


class GrpcSealer:
    """``Sealer`` over the ID issuer's ``SealIdCodes``, with the registry's certificate."""

    def __init__(
        self,
        endpoint: str,
        tls: TlsFiles | None,
        *,
        insecure_development: bool = False,
        timeout: float = 30.0,
    ) -> None:
        self._channel = channel(endpoint, tls, insecure_development=insecure_development)
        self._stub = id_issuer_pb2_grpc.IdIssuerServiceStub(self._channel)
        self._timeout = timeout

    async def seal(self, agency_id: str, resident_codes: list[str]) -> list[tuple[bytes, str]]:
        try:
            response = await self._stub.SealIdCodes(
                id_issuer_pb2.SealIdCodesRequest(
                    agency_id=agency_id, resident_codes=resident_codes
                ),
                timeout=self._timeout,
                metadata=outgoing_metadata(),
            )
        except grpc.aio.AioRpcError as err:
            raise from_rpc_error(err, fallback_reason="ID_ISSUER_UNAVAILABLE") from None
        return [(bytes(r.sealed_id_code), r.error_reason) for r in response.results]

    async def seal_batch(
        self, agency_id: str, resident_codes: list[str]
    ) -> tuple[bytes, list[str]]:
        try:
            response = await self._stub.SealIdCodeBatch(
                id_issuer_pb2.SealIdCodeBatchRequest(
                    agency_id=agency_id, resident_codes=resident_codes
                ),
                timeout=self._timeout,
                metadata=outgoing_metadata(),
            )
        except grpc.aio.AioRpcError as err:
            raise from_rpc_error(err, fallback_reason="ID_ISSUER_UNAVAILABLE") from None
        return bytes(response.sealed_batch), list(response.error_reasons)

    async def close(self) -> None:
        await self._channel.close(None)


# -- gRPC ---------------------------------------------------------------------------------

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


def _caller_name(context: Context) -> tuple[str, str | None]:
    """(how the log names the caller, the agency id if an agency's certificate)."""
    identity = peer_identity(context)
    if identity is None:
        return "no certificate", None
    name = f"{identity.kind}:{identity.party_id}"
    return name, identity.party_id if identity.kind == "agency" else None


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
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        raise invalid_field("cursor", "is not a cursor this registry gave")
    return int(text)


def _consent(request: registry_pb2.MatchWithConsentRequest) -> Consent | None:
    if not request.HasField("consent"):
        return None
    c = request.consent
    return Consent(
        consent_id=c.consent_id,
        giver=_GIVERS.get(c.giver),
        representative_name=c.representative_name,
        consented_at=c.consented_at.ToDatetime(UTC) if c.HasField("consented_at") else None,
        purpose=c.purpose,
        document_sha256=bytes(c.document_sha256),
    )


def _caller_agency(context: Context) -> str:
    identity = peer_identity(context)
    if identity is None or identity.kind != "agency":
        who = "no certificate" if identity is None else f"{identity.kind}:{identity.party_id}"
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
    ) -> None:
        self._binding = binding
        self._subscriptions = subscriptions
        self._consent = consent

    @rpc("MatchRecords")
    async def MatchRecords(  # gRPC method names are PascalCase
        self, request: registry_pb2.MatchRecordsRequest, context: Context
    ) -> registry_pb2.MatchRecordsResponse:
        agency_id = _caller_agency(context)
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

    @rpc("ListChanges")
    async def ListChanges(  # gRPC method names are PascalCase
        self, request: registry_pb2.ListChangesRequest, context: Context
    ) -> registry_pb2.ListChangesResponse:
        agency_id = _caller_agency(context)
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

    @rpc("MatchWithConsent")
    async def MatchWithConsent(  # gRPC method names are PascalCase
        self, request: registry_pb2.MatchWithConsentRequest, context: Context
    ) -> registry_pb2.MatchWithConsentResponse:
        caller, agency_id = _caller_name(context)
        outcome = await self._consent.match(
            caller, agency_id, _record(request.record), _consent(request)
        )
        return registry_pb2.MatchWithConsentResponse(
            status=registry_pb2.CONSENT_MATCH_STATUS_MATCHED
            if outcome.matched
            else registry_pb2.CONSENT_MATCH_STATUS_NO_EXACT_MATCH,
            sealed_id_code=outcome.sealed_id_code,
            attempt_id=outcome.attempt_id,
        )


# -- wiring -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegistryBindingConfig:
    database_url: str
    id_issuer_endpoint: str | None = None
    listen: str = "127.0.0.1:0"
    tls: TlsFiles | None = None
    database_schema: str | None = None
    insecure_development: bool = False
    shutdown_grace_seconds: float = 5.0
    # Agencies designated as private bodies: they bind only with consent (R20).
    private_bodies: tuple[str, ...] = ()

    @classmethod
    def load(cls, path: Path) -> RegistryBindingConfig:
        data = load_toml(path)
        section = table(data, "registry", path)
        where = f"{path}: [registry]"
        endpoint = section.get("id_issuer_endpoint")
        schema = section.get("database_schema")
        return cls(
            database_url=str(required(section, "database_url", where)).replace(
                "{config_dir}", str(path.parent)
            ),
            id_issuer_endpoint=None if endpoint is None else str(endpoint),
            listen=str(section.get("listen", "127.0.0.1:0")),
            tls=tls_files(data, path),
            database_schema=None if schema is None else str(schema),
            insecure_development=bool(section.get("insecure_development", False)),
            shutdown_grace_seconds=float(section.get("shutdown_grace_seconds", 5.0)),
            private_bodies=_private_bodies(section.get("private_bodies", []), where),
        )


def _private_bodies(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: private_bodies must be a list of agency ids")
    for agency_id in value:
        try:
            validate_agency_id(agency_id)
        except ValueError as err:
            raise ConfigError(f"{where}: private_bodies: {err}") from None
    return tuple(value)


@dataclass
class RegistryBindingServer:
    config: RegistryBindingConfig
    binding: RegistryBinding
    sealer: GrpcSealer
    handle: ServerHandle

    @property
    def port(self) -> int:
        return self.handle.port

    async def stop(self, grace: float | None = None) -> None:
        await self.handle.stop(self.config.shutdown_grace_seconds if grace is None else grace)
        await self.sealer.close()


async def create_server(config: RegistryBindingConfig) -> RegistryBindingServer:
    if not config.id_issuer_endpoint:
        raise ConfigError("[registry] id_issuer_endpoint is needed to serve binding")
    engine = db.create_engine(config.database_url, schema=config.database_schema)
    store = RegistryStore(engine)
    matcher = await asyncio.to_thread(Matcher, store)
    log = await asyncio.to_thread(ConsentLog, engine)
    sealer = GrpcSealer(
        config.id_issuer_endpoint, config.tls, insecure_development=config.insecure_development
    )
    subscriptions = Subscriptions(store)
    binding = RegistryBinding(matcher, sealer, subscriptions=subscriptions)
    consent = ConsentBinding(matcher, store, sealer, log, config.private_bodies)
    servicer = BindingServicer(binding, subscriptions, consent)
    try:
        handle = await start_server(
            name="registry-binding",
            bind=config.listen,
            tls=config.tls,
            register=lambda server: registry_pb2_grpc.add_BindingServiceServicer_to_server(
                servicer, server
            ),
            services=[SERVICE_NAME],
            insecure_development=config.insecure_development,
        )
    except BaseException:
        await sealer.close()
        raise
    return RegistryBindingServer(config, binding, sealer, handle)


async def serve(config_path: Path, port_file: Path | None = None) -> None:
    config = RegistryBindingConfig.load(config_path)
    await serve_until_signalled(lambda: create_server(config), port_file)
