"""A private body binding the people who consented (R20): ``renkei comm bind-consent``.

Each line of the input is a person the body knows, with the four facts they
gave and their consent::

    {"local_person_id": "C-0001", "name": "山田 太郎", "kana": "ヤマダ タロウ",
     "address": "神奈川県横浜市鶴見区豊岡町3-12-5", "birth_date": "1980-04-01", "sex": "1",
     "consent": {"consent_id": "CONSENT-0001", "giver": "person",
                 "consented_at": "2026-11-20T10:00:00+09:00",
                 "purpose": "口座開設時の本人確認", "document_sha256": "<64 hex digits>"}}

(``giver`` is "person" or "legal_representative", the latter with
``representative_name``; ``kana``, ``municipality_hint`` and
``document_sha256`` may be left out.) The registry answers MATCHED with the
person's ID code sealed to the hub for this body, or NO_EXACT_MATCH and no
more; the sealed code goes to the hub for the body's link code, which the
correspondence table keeps, as in ``comm_server.binding.bulk_bind``. The registry's
attempt id is reported for every line, so the body's own consent records can
cite the registry's log.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from comm_server.binding.bind import bind
from comm_server.binding.bulk_bind import RECORD_FIELDS, registry_record
from comm_server.binding.records import LocalRecord
from comm_server.clients import hub_client, registry_channel
from comm_server.config import CommConfig
from comm_server.hub_client import HubClient
from comm_server.store import AsyncCommStore, open_store
from renkei.errors import RenkeiError, from_rpc_error
from renkei.grpcutil.client import outgoing_metadata
from renkei.registry.v1 import registry_pb2, registry_pb2_grpc

Result = Literal["bound", "already_bound", "no_exact_match", "refused", "failed"]
_GIVERS = {
    "person": registry_pb2.CONSENT_GIVER_PERSON,
    "legal_representative": registry_pb2.CONSENT_GIVER_LEGAL_REPRESENTATIVE,
}
_CONSENT_FIELDS = {
    "consent_id",
    "giver",
    "representative_name",
    "consented_at",
    "purpose",
    "document_sha256",
}


@dataclass(frozen=True, slots=True)
class ConsentItem:
    record: LocalRecord
    consent: registry_pb2.Consent


@dataclass(frozen=True, slots=True)
class ConsentLine:
    local_person_id: str
    result: Result
    detail: str
    attempt_id: str = ""


@dataclass
class ConsentReport:
    lines: list[ConsentLine] = field(default_factory=list)

    def count(self, result: Result) -> int:
        return sum(1 for line in self.lines if line.result == result)


def parse_line(text: str, where: str) -> ConsentItem:
    """One input line; ValueError naming ``where`` and the field if it is not usable."""
    try:
        row = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{where}: not JSON: {err}") from None
    if not isinstance(row, dict):
        raise ValueError(f"{where}: not a JSON object")
    consent = row.pop("consent", None)
    unknown = set(row) - set(RECORD_FIELDS)
    if unknown:
        raise ValueError(f"{where}: unknown fields {sorted(unknown)}")
    if "local_person_id" not in row:
        raise ValueError(f"{where}: local_person_id is missing")
    record = LocalRecord(**{k: str(v) for k, v in row.items()})
    return ConsentItem(record, _consent(consent, where))


def _consent(data: Any, where: str) -> registry_pb2.Consent:
    """The consent as the registry takes it; what is missing the registry names (it checks)."""
    if data is None:
        return registry_pb2.Consent()
    if not isinstance(data, dict):
        raise ValueError(f"{where}: consent: not a JSON object")
    unknown = set(data) - _CONSENT_FIELDS
    if unknown:
        raise ValueError(f"{where}: consent: unknown fields {sorted(unknown)}")
    out = registry_pb2.Consent(
        consent_id=str(data.get("consent_id", "")),
        representative_name=str(data.get("representative_name", "")),
        purpose=str(data.get("purpose", "")),
    )
    giver = data.get("giver")
    if giver is not None:
        if giver not in _GIVERS:
            raise ValueError(f"{where}: consent.giver: one of {sorted(_GIVERS)}")
        out.giver = _GIVERS[giver]
    at = data.get("consented_at")
    if at is not None:
        try:
            moment = datetime.fromisoformat(str(at))
        except ValueError:
            raise ValueError(f"{where}: consent.consented_at: not an ISO 8601 time") from None
        if moment.tzinfo is None:
            raise ValueError(f"{where}: consent.consented_at: give the time zone")
        stamp = Timestamp()
        stamp.FromDatetime(moment)
        out.consented_at.CopyFrom(stamp)
    digest = data.get("document_sha256")
    if digest:
        try:
            out.document_sha256 = bytes.fromhex(str(digest))
        except ValueError:
            raise ValueError(f"{where}: consent.document_sha256: not hex") from None
    return out


def has_consent(item: ConsentItem) -> bool:
    return item.consent.ByteSize() > 0


async def bind_with_consent(
    store: AsyncCommStore,
    hub: HubClient,
    registry: registry_pb2_grpc.BindingServiceAsyncStub,
    items: Iterable[ConsentItem],
    *,
    timeout: float = 30.0,
) -> ConsentReport:
    """Ask the registry for each person, bind the matched ones; see the module docstring."""
    report = ConsentReport()
    for item in items:
        r = item.record
        request = registry_pb2.MatchWithConsentRequest(
            record=registry_record(r),
        )
        if has_consent(item):
            request.consent.CopyFrom(item.consent)
        try:
            answer = await registry.MatchWithConsent(
                request, timeout=timeout, metadata=outgoing_metadata()
            )
        except grpc.aio.AioRpcError as err:
            error = from_rpc_error(err, fallback_reason="REGISTRY_UNAVAILABLE")
            if err.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.PERMISSION_DENIED):
                field_name = error.metadata.get("field", "")
                detail = f"{error.reason}: {error.message}" + (
                    f" (field {field_name})" if field_name else ""
                )
                report.lines.append(ConsentLine(r.local_person_id, "refused", detail))
                continue
            raise error from None
        if answer.status != registry_pb2.CONSENT_MATCH_STATUS_MATCHED:
            report.lines.append(
                ConsentLine(
                    r.local_person_id, "no_exact_match", "NO_EXACT_MATCH", answer.attempt_id
                )
            )
            continue
        try:
            done = await bind(store, hub, r.local_person_id, bytes(answer.sealed_id_code))
        except RenkeiError as err:
            report.lines.append(
                ConsentLine(
                    r.local_person_id, "failed", f"{err.reason}: {err.message}", answer.attempt_id
                )
            )
            continue
        result: Result = "bound" if done.newly_bound else "already_bound"
        report.lines.append(ConsentLine(r.local_person_id, result, "MATCHED", answer.attempt_id))
    return report


async def bind_consents(config: CommConfig, items: list[ConsentItem]) -> ConsentReport:
    """``renkei comm bind-consent``: with this body's own store, certificate, hub, registry."""
    if not config.registry_endpoint:
        raise ValueError("the comm config sets no registry_endpoint")
    store = open_store(config)
    hub = hub_client(config)
    ch = registry_channel(config)
    try:
        return await bind_with_consent(
            store,
            hub,
            registry_pb2_grpc.BindingServiceStub(ch),
            items,
        )
    finally:
        await ch.close(None)
        await hub.close()
        store.close()
