"""The communication server's calls to the hub, and a cache of the hub's directory."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import grpc

from comm_server.log_receipts import LogReceipt, from_protos
from renkei.bulk import ItemError
from renkei.errors import RenkeiError, from_rpc_error
from renkei.grpcutil.client import channel, outgoing_metadata
from renkei.grpcutil.metadata import ANNOUNCED_KEYS, announced
from renkei.hub.v1 import hub_pb2, hub_pb2_grpc
from renkei.pki import HUB_ID, TlsFiles

# A hub restarted is reached again within a second of listening, not after grpc's
# default backoff (1 s, growing 1.6 times to 120 s); calls meanwhile fail fast as
# HUB_UNAVAILABLE. 1,800 agencies waiting on a hub that stays down cost it about
# 1,800 connection attempts a second, which a listening socket's backlog takes.
HUB_CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
)


@dataclass(frozen=True)
class RelayAnswer:
    serial: int
    legal_basis_item: str
    policy_version: str
    sealed_answer: bytes
    ticket: str = ""
    # The provider's signature over sealed_answer (renkei.exchange_cert.answer_context).
    answer_signature: bytes = b""
    # Where the hub's log holds the exchange (exchange entry, outcome entry); none from
    # a hub without its tree.
    log_receipts: tuple[LogReceipt, ...] = ()


@dataclass(frozen=True)
class BulkRelayAnswer:
    legal_basis_item: str
    policy_version: str
    # (serial, error or None), one per link code in order.
    results: list[tuple[int, ItemError | None]]
    sealed_answers: bytes
    answer_signature: bytes = b""
    # Per result, in order, that person's receipts (as RelayAnswer's); [] from an old hub.
    log_receipts: list[tuple[LogReceipt, ...]] = field(default_factory=list)


async def _relay_error(call: Any, err: grpc.aio.AioRpcError) -> RenkeiError:
    """A relay's refusal, with the serials the hub announced when its own status has none
    (the call's deadline fired, or the connection dropped, after the rows were logged)."""
    error = _hub_error(err)
    if not any(key in error.metadata for key in ANNOUNCED_KEYS):
        with contextlib.suppress(grpc.RpcError):  # a call that ended before any header
            error.metadata.update(announced(await call.initial_metadata()))
    return error


def _hub_error(err: grpc.aio.AioRpcError) -> RenkeiError:
    fallback = (
        "HUB_DEADLINE_EXCEEDED"
        if err.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        else "HUB_UNAVAILABLE"
    )
    return from_rpc_error(err, fallback_reason=fallback)


class HubClient:
    def __init__(
        self, endpoint: str, tls: TlsFiles | None, *, insecure_development: bool = False
    ) -> None:
        self._channel = channel(
            endpoint,
            tls,
            peer=HUB_ID,
            insecure_development=insecure_development,
            options=HUB_CHANNEL_OPTIONS,
        )
        self._stub = hub_pb2_grpc.HubServiceStub(self._channel)
        self._certificates: dict[str, bytes] = {}

    @property
    def channel(self) -> grpc.aio.Channel:
        """The hub's channel, for its other services (comm_server.log_client)."""
        return self._channel

    async def relay(
        self,
        *,
        provider_agency_id: str,
        info_kind: str,
        legal_basis_item: str,
        link_code: str,
        sealed_query: bytes,
        query_signature: bytes,
        timeout: float,
    ) -> RelayAnswer:
        call = self._stub.Relay(
            hub_pb2.RelayRequest(
                provider_agency_id=provider_agency_id,
                info_kind=info_kind,
                legal_basis_item=legal_basis_item,
                link_code=link_code,
                sealed_query=sealed_query,
                query_signature=query_signature,
            ),
            timeout=timeout,
            metadata=outgoing_metadata(),
        )
        try:
            response = await call
        except grpc.aio.AioRpcError as err:
            raise await _relay_error(call, err) from None
        return RelayAnswer(
            response.serial,
            response.citation.item,
            response.citation.policy_version,
            bytes(response.sealed_answer),
            response.ticket,
            bytes(response.answer_signature),
            from_protos(response.log_receipts),
        )

    async def bulk_relay(
        self,
        *,
        provider_agency_id: str,
        info_kind: str,
        legal_basis_item: str,
        link_codes: list[str],
        sealed_queries: bytes,
        query_signature: bytes,
        timeout: float,
    ) -> BulkRelayAnswer:
        call = self._stub.BulkRelay(
            hub_pb2.BulkRelayRequest(
                provider_agency_id=provider_agency_id,
                info_kind=info_kind,
                legal_basis_item=legal_basis_item,
                link_codes=link_codes,
                sealed_queries=sealed_queries,
                query_signature=query_signature,
            ),
            timeout=timeout,
            metadata=outgoing_metadata(),
        )
        try:
            response = await call
        except grpc.aio.AioRpcError as err:
            raise await _relay_error(call, err) from None
        return BulkRelayAnswer(
            response.citation.item,
            response.citation.policy_version,
            [
                (
                    r.serial,
                    ItemError(r.error.code, r.error.reason, r.error.message)
                    if r.HasField("error")
                    else None,
                )
                for r in response.results
            ],
            bytes(response.sealed_answers),
            bytes(response.answer_signature),
            [from_protos(r.log_receipts) for r in response.results],
        )

    async def fetch_answer(self, serial: int, ticket: str, *, timeout: float) -> RelayAnswer:
        """The sealed answer to a pending exchange (answer-later)."""
        try:
            response = await self._stub.FetchAnswer(
                hub_pb2.FetchAnswerRequest(serial=serial, ticket=ticket),
                timeout=timeout,
                metadata=outgoing_metadata(),
            )
        except grpc.aio.AioRpcError as err:
            raise _hub_error(err) from None
        return RelayAnswer(
            response.serial,
            response.citation.item,
            response.citation.policy_version,
            bytes(response.sealed_answer),
            answer_signature=bytes(response.answer_signature),
            log_receipts=from_protos([response.log_receipt]),
        )

    async def exchange_certificate(self, agency_id: str, *, timeout: float) -> bytes:
        """An agency's exchange certificate (DER) as the hub's directory hands it out
        (cached); only as good as its check against the agencies' CA."""
        cert = self._certificates.get(agency_id)
        if cert is None:
            try:
                response = await self._stub.GetAgency(
                    hub_pb2.GetAgencyRequest(agency_id=agency_id),
                    timeout=timeout,
                    metadata=outgoing_metadata(),
                )
            except grpc.aio.AioRpcError as err:
                raise _hub_error(err) from None
            cert = self._certificates[agency_id] = bytes(response.agency.exchange_certificate)
        return cert

    def forget_certificate(self, agency_id: str) -> None:
        """Ask the hub again next time (the one held did not verify)."""
        self._certificates.pop(agency_id, None)

    async def issue_link_code(
        self, sealed_id_code: bytes, *, timeout: float
    ) -> tuple[str, int, int]:
        try:
            response = await self._stub.IssueLinkCode(
                hub_pb2.IssueLinkCodeRequest(sealed_id_code=sealed_id_code),
                timeout=timeout,
                metadata=outgoing_metadata(),
            )
        except grpc.aio.AioRpcError as err:
            raise _hub_error(err) from None
        return response.link_code, response.key_version, response.id_key_version

    async def issue_link_codes(
        self, sealed_batch: bytes, *, timeout: float
    ) -> tuple[list[tuple[str, int]], int]:
        """(link code and ID key version per ID code of the batch, in order; key version)."""
        try:
            response = await self._stub.IssueLinkCodes(
                hub_pb2.IssueLinkCodesRequest(sealed_batch=sealed_batch),
                timeout=timeout,
                metadata=outgoing_metadata(),
            )
        except grpc.aio.AioRpcError as err:
            raise _hub_error(err) from None
        return [(c.link_code, c.id_key_version) for c in response.link_codes], response.key_version

    async def rekey_link_codes(
        self, link_codes: list[str], *, timeout: float
    ) -> hub_pb2.RekeyLinkCodesResponse:
        try:
            return await self._stub.RekeyLinkCodes(
                hub_pb2.RekeyLinkCodesRequest(link_codes=link_codes),
                timeout=timeout,
                metadata=outgoing_metadata(),
            )
        except grpc.aio.AioRpcError as err:
            raise _hub_error(err) from None

    async def complete_rekey(
        self, version: int, id_version: int, *, timeout: float
    ) -> hub_pb2.CompleteRekeyResponse:
        try:
            return await self._stub.CompleteRekey(
                hub_pb2.CompleteRekeyRequest(key_version=version, id_key_version=id_version),
                timeout=timeout,
                metadata=outgoing_metadata(),
            )
        except grpc.aio.AioRpcError as err:
            raise _hub_error(err) from None

    async def close(self) -> None:
        await self._channel.close(None)
