"""Who is calling: the hub (provider side) or the agency's own systems (requester side)."""

from __future__ import annotations

from typing import Any

import grpc

from renkei.errors import PermissionDenied, Unauthenticated
from renkei.grpcutil.handlers import metadata_value
from renkei.pki import PeerIdentity, peer_identity

Context = grpc.aio.ServicerContext[Any, Any]
DEV_PARTY_HEADER = "x-renkei-dev-party"  # "hub" or "agency:<id>"; development ports only


class CallerCheck:
    def __init__(self, agency_id: str, *, insecure_development: bool) -> None:
        self._agency_id = agency_id
        self._insecure = insecure_development

    def identity(self, context: Context) -> PeerIdentity:
        identity = peer_identity(context)
        if identity is None and self._insecure:
            claimed = metadata_value(context, DEV_PARTY_HEADER) or ""
            if claimed == "hub":
                identity = PeerIdentity("hub", "hub")
            elif claimed.startswith("agency:"):
                identity = PeerIdentity("agency", claimed.removeprefix("agency:"))
        if identity is None:
            raise Unauthenticated(
                "CLIENT_CERT_REQUIRED", "this server knows callers only by client certificate"
            )
        return identity

    def require_hub(self, context: Context) -> None:
        if self.identity(context).kind != "hub":
            raise PermissionDenied("CALLER_NOT_HUB", "only the hub may ask this server to provide")

    def require_own_agency(self, context: Context) -> None:
        identity = self.identity(context)
        if identity.kind != "agency" or identity.party_id != self._agency_id:
            raise PermissionDenied(
                "CALLER_NOT_OWN_AGENCY",
                f"only agency {self._agency_id}'s own systems may query through this server",
            )
