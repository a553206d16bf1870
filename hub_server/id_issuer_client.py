"""The hub's calls to the ID issuer, used only while agencies re-key after an ID-key rotation."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import grpc

from renkei import validate
from renkei.errors import RenkeiError, Unavailable, from_rpc_error
from renkei.grpcutil.client import channel, outgoing_metadata
from renkei.idissuer.v1 import id_issuer_pb2, id_issuer_pb2_grpc
from renkei.pki import TlsFiles

ID_ISSUER_PARTY = "service:id-issuer"


@dataclass(frozen=True)
class IdKeyState:
    """What the hub knows of the ID key: versions, and until when old ones are accepted."""

    current: int = 1
    newest: int = 1
    accept_until: dict[int, datetime] = field(default_factory=dict)

    def accepted(self, version: int, now: datetime) -> bool:
        until = self.accept_until.get(version)
        return version == self.current or until is None or now < until


class GrpcIdIssuer:
    def __init__(
        self, endpoint: str, tls: TlsFiles | None, *, insecure_development: bool = False
    ) -> None:
        self._channel = channel(
            endpoint, tls, peer=ID_ISSUER_PARTY, insecure_development=insecure_development
        )
        self._stub = id_issuer_pb2_grpc.IdIssuerServiceStub(self._channel)

    async def status(self, timeout: float = 5.0) -> IdKeyState:
        try:
            r = await self._stub.GetIdKeyStatus(
                id_issuer_pb2.GetIdKeyStatusRequest(), timeout=timeout, metadata=outgoing_metadata()
            )
        except grpc.aio.AioRpcError as err:
            raise from_rpc_error(err, fallback_reason="ID_ISSUER_UNAVAILABLE") from None
        try:
            accept_until = {
                v.version: validate.timestamp("versions.accept_until", v.accept_until)
                for v in r.versions
                if v.HasField("accept_until")
            }
        except RenkeiError as err:  # the issuer's fault, not the calling agency's
            raise Unavailable(
                "ID_ISSUER_ANSWER_INVALID", f"the ID issuer's key status is unusable: {err}"
            ) from None
        return IdKeyState(r.current_version, r.newest_version, accept_until)

    async def reissue(
        self, id_codes: list[bytes], timeout: float = 30.0
    ) -> tuple[list[tuple[bytes, str]], int]:
        try:
            r = await self._stub.ReissueIdCodes(
                id_issuer_pb2.ReissueIdCodesRequest(id_codes=id_codes),
                timeout=timeout,
                metadata=outgoing_metadata(),
            )
        except grpc.aio.AioRpcError as err:
            raise from_rpc_error(err, fallback_reason="ID_ISSUER_UNAVAILABLE") from None
        return [(bytes(i.id_code), i.error_reason) for i in r.results], r.newest_version

    async def complete(self, version: int, timeout: float = 10.0) -> None:
        try:
            await self._stub.CompleteIdRotation(
                id_issuer_pb2.CompleteIdRotationRequest(version=version),
                timeout=timeout,
                metadata=outgoing_metadata(),
            )
        except grpc.aio.AioRpcError as err:
            raise from_rpc_error(err, fallback_reason="ID_ISSUER_UNAVAILABLE") from None

    async def close(self) -> None:
        await self._channel.close(None)
