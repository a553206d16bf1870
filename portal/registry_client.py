"""The registry's ``BindingService.BindCard`` as the portal calls it (its agency certificate)."""

from __future__ import annotations

import grpc

from renkei.errors import from_rpc_error
from renkei.grpcutil.client import channel, outgoing_metadata
from renkei.pki import TlsFiles
from renkei.registry.v1 import registry_pb2, registry_pb2_grpc


class RegistryClient:
    def __init__(
        self,
        endpoint: str,
        tls: TlsFiles | None,
        *,
        insecure_development: bool = False,
        timeout: float = 15.0,
    ) -> None:
        self._channel = channel(
            endpoint, tls, peer="service:registry", insecure_development=insecure_development
        )
        self._stub = registry_pb2_grpc.BindingServiceStub(self._channel)
        self._timeout = timeout

    async def bind_card(self, certificate_der: bytes, challenge: bytes, signature: bytes) -> bytes:
        """The card's person's ID code sealed to the hub for the portal (``signature``: DER)."""
        try:
            response = await self._stub.BindCard(
                registry_pb2.BindCardRequest(
                    card_certificate=certificate_der, challenge=challenge, signature=signature
                ),
                timeout=self._timeout,
                metadata=outgoing_metadata(),
            )
        except grpc.aio.AioRpcError as err:
            raise from_rpc_error(err, fallback_reason="REGISTRY_UNAVAILABLE") from None
        return bytes(response.sealed_id_code)

    async def close(self) -> None:
        await self._channel.close(None)
