"""The registry's side of binding (R13-R15): four facts in, sealed ID codes out.

An agency sends its records' four facts (``MatchRecords``). For each record the
registry normalizes the facts (``renkei.fourfacts``) and matches them against
the register (``legacy_stubs.registry.matching.Matcher``). For the records that
match exactly one resident it asks the ID issuer, in ONE ``SealIdCodes`` call
per batch, to seal those residents' ID codes to the hub for the calling agency,
and answers the sealed bytes. The agency's communication server then takes
them to the hub (``comm_server.binding.bind``) for its link codes.

What the answer holds: the agency's own record ids, a status, a reason and,
for a unique match, the sealed ID code. Never a resident code (not even the
candidates of an ambiguous match) and never a fact of the register; a reason
only says which rule failed. The agency is the one named in the caller's
certificate: no field of the request can name another.

Served by ``create_server(config)``, configured in ``registry/registry.toml``::

    [registry]
    database_url = "sqlite:///{config_dir}/registry.db"   # written by the deployment
    listen = "127.0.0.1:0"                                 # optional
    id_issuer_endpoint = "127.0.0.1:50061"                 # optional here, needed to serve
    [tls]                                                  # the registry's service certificate
    ca_cert = "..."; cert = "..."; key = "..."
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import grpc

from renkei import db, validate
from renkei.config_util import ConfigError, load_toml, required, table, tls_files
from renkei.errors import InvalidArgument, PermissionDenied, RenkeiError, from_rpc_error
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
from renkei.pki import TlsFiles, peer_identity
from renkei.registry.v1 import registry_pb2, registry_pb2_grpc
from renkei.runner import serve_until_signalled

from .matching import Matcher, MatchResult
from .store import RegistryStore

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


class Sealer(Protocol):
    """The ID issuer, as the registry's side sees it (``SealIdCodes``)."""

    async def seal(self, agency_id: str, resident_codes: list[str]) -> list[tuple[bytes, str]]:
        """One (sealed ID code, error reason) per resident code, in order."""
        ...


def _keys(facts: FourFacts, sex_encoding: SexEncoding) -> NormalizedFacts:
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
        self, matcher: Matcher, sealer: Sealer, *, sex_encoding: SexEncoding = "iso5218"
    ) -> None:
        self._matcher = matcher
        self._sealer = sealer
        self._sex_encoding: SexEncoding = sex_encoding

    def _match(self, records: Sequence[AgencyRecord]) -> list[MatchResult | str]:
        """A match per record, or the reason it is invalid (a string)."""
        if self._matcher.is_stale():
            self._matcher.refresh()
        out: list[MatchResult | str] = []
        for record in records:
            try:
                keys = _keys(record.facts, self._sex_encoding)
            except ValueError as exc:
                out.append(f"invalid record: {exc}")
                continue
            out.append(self._matcher.match_normalized(keys))
        return out

    async def match_records(self, agency_id: str, records: Sequence[AgencyRecord]) -> list[Outcome]:
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
        sealed: dict[int, tuple[bytes, str]] = {}
        if unique:
            answers = await self._sealer.seal(agency_id, [code for _, code in unique])
            if len(answers) != len(unique):
                raise RenkeiError(
                    "ID_ISSUER_BAD_ANSWER",
                    f"the ID issuer answered {len(answers)} sealed codes for {len(unique)}",
                )
            sealed = {i: answer for (i, _), answer in zip(unique, answers, strict=True)}
        outcomes: list[Outcome] = []
        for i, (record, result) in enumerate(zip(records, results, strict=True)):
            local = record.local_person_id
            if isinstance(result, str):
                outcomes.append(Outcome(local, "invalid", result))
            elif result.status == "unique":
                value, error = sealed[i]
                if value and not error:
                    outcomes.append(Outcome(local, "unique", result.reason, value))
                else:
                    outcomes.append(Outcome(local, "none", f"the ID issuer did not seal: {error}"))
            else:
                # Candidates (resident codes) stay here: only the reason leaves.
                outcomes.append(Outcome(local, result.status, result.reason))
        return outcomes


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

    async def close(self) -> None:
        await self._channel.close(None)


# -- gRPC ---------------------------------------------------------------------------------

_STATUS = {
    "unique": registry_pb2.MATCH_STATUS_UNIQUE,
    "ambiguous": registry_pb2.MATCH_STATUS_AMBIGUOUS,
    "none": registry_pb2.MATCH_STATUS_NONE,
    "invalid": registry_pb2.MATCH_STATUS_INVALID,
}


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
    def __init__(self, binding: RegistryBinding) -> None:
        self._binding = binding

    @rpc("MatchRecords")
    async def MatchRecords(  # gRPC method names are PascalCase
        self, request: registry_pb2.MatchRecordsRequest, context: Context
    ) -> registry_pb2.MatchRecordsResponse:
        agency_id = _caller_agency(context)
        if len(request.records) > MAX_RECORDS:
            raise InvalidArgument(
                "TOO_MANY_RECORDS", f"{len(request.records)} records; at most {MAX_RECORDS} a call"
            )
        outcomes = await self._binding.match_records(
            agency_id, [_record(r) for r in request.records]
        )
        return registry_pb2.MatchRecordsResponse(
            outcomes=[
                registry_pb2.MatchOutcome(
                    local_person_id=o.local_person_id,
                    status=_STATUS[o.status],
                    reason=o.reason,
                    sealed_id_code=o.sealed_id_code,
                )
                for o in outcomes
            ]
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
        )


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
    matcher = await asyncio.to_thread(Matcher, RegistryStore(engine))
    sealer = GrpcSealer(
        config.id_issuer_endpoint, config.tls, insecure_development=config.insecure_development
    )
    binding = RegistryBinding(matcher, sealer)
    servicer = BindingServicer(binding)
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
