"""The oversight body's admission: its read-only services answer its certificate alone.

Every party serving the oversight body (R27: agency log shares, the registry's
consent log, legal holds) calls ``require_oversight`` first. The caller is the
one the server's interceptor read from the verified certificate, checked
against the CA of its kind (``renkei.pki.Trust``: only the oversight body's CA
can make ``urn:renkei:oversight``); the call's own certificate must say so too,
so a plaintext development port, where a header could name a party, never
admits anyone.
"""

from __future__ import annotations

from typing import Any

import grpc

from renkei.errors import PermissionDenied
from renkei.grpcutil.caller import caller
from renkei.pki import OVERSIGHT_ID, SAN_OVERSIGHT, PeerIdentity, peer_identity

OVERSIGHT = PeerIdentity("oversight", OVERSIGHT_ID)


def require_oversight(
    context: grpc.ServicerContext | grpc.aio.ServicerContext[Any, Any],
) -> None:
    """Nothing, if the verified peer is the oversight body; else PERMISSION_DENIED
    CALLER_NOT_OVERSIGHT (also for a call without a client certificate)."""
    if caller() != OVERSIGHT or peer_identity(context) != OVERSIGHT:
        raise PermissionDenied(
            "CALLER_NOT_OVERSIGHT", f"only the oversight body ({SAN_OVERSIGHT}) may read this"
        )
