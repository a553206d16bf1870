"""Forwarding to providers' communication servers over mutual TLS."""

from __future__ import annotations

from datetime import UTC

import grpc
from google.protobuf import timestamp_pb2

from hub_server.details import ANSWERED, DEFERRED, PENDING_STATE, REFUSED, DiscloseCall, Disclosed
from hub_server.directory import Agency
from hub_server.exchange import CollectCall, ItemError, ProvideCall, Provided
from hub_server.provider_stream import ProviderStream, StreamUnsupported
from renkei.comm.v1 import comm_pb2, comm_pb2_grpc, disclosure_pb2, disclosure_pb2_grpc
from renkei.errors import RenkeiError, Unavailable, from_rpc_error
from renkei.grpcutil.client import channel, outgoing_metadata
from renkei.pki import TlsFiles
from renkei.tlog import receipt_proto

# A provider restarted (a deployment, a crash) is asked again within a quarter of a second
# of listening, not after grpc's default backoff (1 s, growing 1.6 times to 120 s), while
# each call in the meantime still fails fast as PROVIDER_UNAVAILABLE. A provider that stays
# down costs the hub a connection attempt every 250 ms. grpc.min_reconnect_backoff_ms is
# left alone: it is the time a connection attempt (TCP and TLS) is given, 20 s.
PROVIDER_CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 250),
)

_DISCLOSURE_STATES = {
    disclosure_pb2.DISCLOSURE_STATE_PENDING: PENDING_STATE,
    disclosure_pb2.DISCLOSURE_STATE_ANSWERED: ANSWERED,
    disclosure_pb2.DISCLOSURE_STATE_DEFERRED: DEFERRED,
    disclosure_pb2.DISCLOSURE_STATE_REFUSED: REFUSED,
}


def _provider_error(err: grpc.aio.AioRpcError) -> RenkeiError:
    fallback = (
        "PROVIDER_DEADLINE_EXCEEDED"
        if err.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        else "PROVIDER_UNAVAILABLE"
    )
    return from_rpc_error(err, fallback_reason=fallback)


def _provided(serial: int, response: comm_pb2.ProvideResponse) -> Provided:
    return Provided(
        {serial: None},
        bytes(response.sealed_answer),
        response.ticket,
        bytes(response.answer_signature),
    )


class GrpcProviderGateway:
    """One channel per provider endpoint; Provide over a ProvideStream unless ``streams`` is off.

    A provider that answers ProvideStream with UNIMPLEMENTED gets unary calls from then on.
    """

    def __init__(
        self, tls: TlsFiles | None, *, insecure_development: bool = False, streams: bool = True
    ) -> None:
        self._tls = tls
        self._insecure = insecure_development
        self._streams_on = streams
        self._stubs: dict[str, comm_pb2_grpc.ProviderServiceAsyncStub] = {}
        self._by_key: dict[str, grpc.aio.Channel] = {}
        self._disclosure: dict[str, disclosure_pb2_grpc.DisclosureServiceAsyncStub] = {}
        self._streams: dict[str, ProviderStream] = {}
        self._unary_only: set[str] = set()
        self._channels: list[grpc.aio.Channel] = []

    def _channel(self, provider: Agency) -> tuple[str, grpc.aio.Channel]:
        # Keyed by endpoint and agency: the channel checks the server is that agency.
        key = f"{provider.agency_id}@{provider.endpoint}"
        ch = self._by_key.get(key)
        if ch is None:
            ch = self._by_key[key] = channel(
                provider.endpoint,
                self._tls,
                peer=f"agency:{provider.agency_id}",
                insecure_development=self._insecure,
                options=PROVIDER_CHANNEL_OPTIONS,
            )
            self._channels.append(ch)
        return key, ch

    def _stub(self, provider: Agency) -> comm_pb2_grpc.ProviderServiceAsyncStub:
        key, ch = self._channel(provider)
        stub = self._stubs.get(key)
        if stub is None:
            stub = self._stubs[key] = comm_pb2_grpc.ProviderServiceStub(ch)
        return stub

    async def provide(self, provider: Agency, call: ProvideCall, timeout: float) -> Provided:
        """A single call as Provide (over the stream), its refusal raised; a bulk one as
        BulkProvide, its refusals per item."""
        if not call.single:
            return await self._bulk_provide(provider, call, timeout)
        (item,) = call.items
        when = timestamp_pb2.Timestamp()
        when.FromDatetime(call.time)
        request = comm_pb2.ProvideRequest(
            serial=item.serial,
            time=when,
            requester_agency_id=call.requester_agency_id,
            info_kind=call.info_kind,
            legal_basis_item=call.legal_basis_item,
            link_code=item.link_code,
            sealed_query=call.sealed_queries,
            requester_sealing_public_key=call.requester_sealing_public_key,
            requester_exchange_certificate=call.requester_exchange_certificate,
            query_signature=call.query_signature,
        )
        if item.receipt is not None and item.receipt.leaf_index is not None:
            request.log_receipt.CopyFrom(receipt_proto.to_proto(item.receipt))
        endpoint = provider.endpoint
        if self._streams_on and endpoint not in self._unary_only:
            stream = self._streams.get(endpoint)
            if stream is None:
                stream = self._streams[endpoint] = ProviderStream(self._stub(provider))
            try:
                response = await stream.provide(request, timeout)
            except StreamUnsupported:
                # The provider never saw the call: asking it unary is safe.
                self._unary_only.add(endpoint)
            else:
                return _provided(item.serial, response)
        try:
            response = await self._stub(provider).Provide(
                request, timeout=timeout, metadata=outgoing_metadata()
            )
        except grpc.aio.AioRpcError as err:
            raise _provider_error(err) from None
        return _provided(item.serial, response)

    async def collect(
        self, provider: Agency, call: CollectCall, timeout: float
    ) -> tuple[bytes, bytes]:
        """(the sealed answer, the provider's signature over it)."""
        request = comm_pb2.CollectRequest(
            serial=call.serial,
            ticket=call.ticket,
            requester_agency_id=call.requester_agency_id,
            info_kind=call.info_kind,
            legal_basis_item=call.legal_basis_item,
            requester_sealing_public_key=call.requester_sealing_public_key,
            requester_exchange_certificate=call.requester_exchange_certificate,
        )
        try:
            response = await self._stub(provider).Collect(
                request, timeout=timeout, metadata=outgoing_metadata()
            )
        except grpc.aio.AioRpcError as err:
            raise _provider_error(err) from None
        return bytes(response.sealed_answer), bytes(response.answer_signature)

    async def _bulk_provide(self, provider: Agency, call: ProvideCall, timeout: float) -> Provided:
        when = timestamp_pb2.Timestamp()
        when.FromDatetime(call.time)
        request = comm_pb2.BulkProvideRequest(
            time=when,
            requester_agency_id=call.requester_agency_id,
            info_kind=call.info_kind,
            legal_basis_item=call.legal_basis_item,
            item_count=call.item_count,
            items=[
                comm_pb2.BulkProvideItem(
                    serial=i.serial,
                    index=i.index,
                    link_code=i.link_code,
                    log_receipt=receipt_proto.to_proto(i.receipt)
                    if i.receipt is not None and i.receipt.leaf_index is not None
                    else None,
                )
                for i in call.items
            ],
            sealed_queries=call.sealed_queries,
            requester_sealing_public_key=call.requester_sealing_public_key,
            requester_exchange_certificate=call.requester_exchange_certificate,
            query_signature=call.query_signature,
        )
        try:
            response = await self._stub(provider).BulkProvide(
                request, timeout=timeout, metadata=outgoing_metadata()
            )
        except grpc.aio.AioRpcError as err:
            raise _provider_error(err) from None
        errors: dict[int, ItemError | None] = {
            r.serial: ItemError(r.error.code, r.error.reason, r.error.message)
            if r.HasField("error")
            else None
            for r in response.results
        }
        return Provided(
            errors,
            bytes(response.sealed_answers),
            answer_signature=bytes(response.answer_signature),
        )

    async def disclose(self, agency: Agency, call: DiscloseCall, timeout: float) -> Disclosed:
        """The agency's DisclosureService.Disclose, on the channel the hub provides over."""
        if not agency.endpoint:
            raise Unavailable(
                "PROVIDER_UNAVAILABLE", f"agency {agency.agency_id} has no communication server"
            )
        key, ch = self._channel(agency)
        stub = self._disclosure.get(key)
        if stub is None:
            stub = self._disclosure[key] = disclosure_pb2_grpc.DisclosureServiceStub(ch)
        request = disclosure_pb2.DiscloseRequest(
            serial=call.serial,
            link_code=call.link_code,
            application_id=call.application_id,
            recipient_agency_id=call.recipient_agency_id,
            request_serial=call.request_serial,
        )
        try:
            response = await stub.Disclose(request, timeout=timeout, metadata=outgoing_metadata())
        except grpc.aio.AioRpcError as err:
            raise _provider_error(err) from None
        state = _DISCLOSURE_STATES.get(response.state)
        if state is None:
            raise Unavailable(
                "PROVIDER_BAD_ANSWER",
                f"agency {agency.agency_id} answered with no state of the application",
            )
        return Disclosed(
            state,
            bytes(response.sealed_details),
            response.deferred_until.ToDatetime(UTC)
            if response.HasField("deferred_until")
            else None,
            response.deferral_reason,
            response.refusal_reason,
        )

    async def close(self) -> None:
        for stream in self._streams.values():
            await stream.close()
        self._streams.clear()
        for ch in self._channels:
            await ch.close(None)
        self._channels.clear()
        self._stubs.clear()
        self._by_key.clear()
        self._disclosure.clear()
