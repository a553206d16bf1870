"""The ID issuer as the binding party sees it: ``Sealer``, and ``GrpcSealer`` over gRPC."""

from __future__ import annotations

from typing import Protocol

import grpc

from renkei.errors import from_rpc_error
from renkei.grpcutil.client import channel, outgoing_metadata
from renkei.idissuer.v1 import id_issuer_pb2, id_issuer_pb2_grpc
from renkei.pki import TlsFiles


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


class GrpcSealer:
    """``Sealer`` over the ID issuer's ``SealIdCodes``, with the binding party's certificate."""

    def __init__(
        self,
        endpoint: str,
        tls: TlsFiles | None,
        *,
        insecure_development: bool = False,
        timeout: float = 30.0,
    ) -> None:
        self._channel = channel(
            endpoint, tls, peer="service:id-issuer", insecure_development=insecure_development
        )
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
