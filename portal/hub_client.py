"""The hub as the portal calls it, over grpc.aio with the portal's agency certificate.

``PersonalLogService`` (the ``app_keys.PersonalLog`` the pages read) and
``HubService.IssueLinkCode`` (the first sign-in's link code).
"""

from __future__ import annotations

import grpc

from renkei.errors import from_rpc_error
from renkei.grpcutil.client import channel, outgoing_metadata
from renkei.hub.v1 import hub_pb2, hub_pb2_grpc, personal_pb2, personal_pb2_grpc
from renkei.pki import TlsFiles


class HubClient:
    """``app_keys.PersonalLog`` and ``issue_link_code`` over one channel to the hub."""

    def __init__(
        self,
        endpoint: str,
        tls: TlsFiles | None,
        *,
        insecure_development: bool = False,
        timeout: float = 15.0,
    ) -> None:
        self._channel = channel(
            endpoint, tls, peer="hub", insecure_development=insecure_development
        )
        self._personal = personal_pb2_grpc.PersonalLogServiceStub(self._channel)
        self._hub = hub_pb2_grpc.HubServiceStub(self._channel)
        self._timeout = timeout

    async def list_entries(
        self, request: personal_pb2.ListPersonalEntriesRequest
    ) -> personal_pb2.ListPersonalEntriesResponse:
        try:
            response: personal_pb2.ListPersonalEntriesResponse = (
                await self._personal.ListPersonalEntries(
                    request, timeout=self._timeout, metadata=outgoing_metadata()
                )
            )
        except grpc.aio.AioRpcError as err:
            raise from_rpc_error(err, fallback_reason="HUB_UNAVAILABLE") from None
        return response

    async def request_details(
        self, request: personal_pb2.RequestDetailsRequest
    ) -> personal_pb2.RequestDetailsResponse:
        try:
            response: personal_pb2.RequestDetailsResponse = await self._personal.RequestDetails(
                request, timeout=self._timeout, metadata=outgoing_metadata()
            )
        except grpc.aio.AioRpcError as err:
            raise from_rpc_error(err, fallback_reason="HUB_UNAVAILABLE") from None
        return response

    async def issue_link_code(self, sealed_id_code: bytes) -> str:
        """The portal's link code for the person whose ID code the registry sealed."""
        try:
            response = await self._hub.IssueLinkCode(
                hub_pb2.IssueLinkCodeRequest(sealed_id_code=sealed_id_code),
                timeout=self._timeout,
                metadata=outgoing_metadata(),
            )
        except grpc.aio.AioRpcError as err:
            raise from_rpc_error(err, fallback_reason="HUB_UNAVAILABLE") from None
        return str(response.link_code)

    async def complete_rekey(self) -> hub_pb2.CompleteRekeyResponse:
        """Tells the hub the portal holds no code under an old key (``portal.rekey``)."""
        try:
            # An empty batch answers the versions the portal's codes would be made under.
            versions = await self._hub.RekeyLinkCodes(
                hub_pb2.RekeyLinkCodesRequest(link_codes=[]),
                timeout=self._timeout,
                metadata=outgoing_metadata(),
            )
            response: hub_pb2.CompleteRekeyResponse = await self._hub.CompleteRekey(
                hub_pb2.CompleteRekeyRequest(
                    key_version=versions.newest_key_version,
                    id_key_version=versions.newest_id_key_version,
                ),
                timeout=self._timeout,
                metadata=outgoing_metadata(),
            )
        except grpc.aio.AioRpcError as err:
            raise from_rpc_error(err, fallback_reason="HUB_UNAVAILABLE") from None
        return response

    async def close(self) -> None:
        await self._channel.close(None)
