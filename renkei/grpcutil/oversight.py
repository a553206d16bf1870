"""The oversight body's admission: its services answer its certificate alone (R27).

Every party serving the oversight body (agency log shares, the registry's
consent log, legal holds) calls ``require_oversight`` first. The call's
verified client certificate must name ``urn:renkei:oversight`` and no other
party; and on a renkei server, whose interceptor has read the caller against
the CA of its kind (``renkei.pki.Trust``), that caller must be the oversight
body too: a certificate with the oversight body's URI from another domain's
CA (the agencies' CA may put any URI beside one of its own DNS names) names no
one there, so it is refused. Outside a server (a servicer called directly, as
in tests) the certificate alone decides. A plaintext development port, where a
header could claim a party, never admits anyone: there is no certificate.
"""

from __future__ import annotations

from typing import Any

import grpc

from renkei.errors import PermissionDenied
from renkei.grpcutil.caller import caller, caller_was_read
from renkei.pki import OVERSIGHT_ID, SAN_OVERSIGHT, PeerIdentity, peer_identity

Context = grpc.aio.ServicerContext[Any, Any]
OVERSIGHT = PeerIdentity("oversight", OVERSIGHT_ID)


def is_oversight(context: grpc.ServicerContext | Context) -> bool:
    """Did this call come with the oversight body's verified client certificate?"""
    if peer_identity(context) != OVERSIGHT:
        return False
    return not caller_was_read() or caller() == OVERSIGHT


def require_oversight(context: grpc.ServicerContext | Context) -> None:
    """Nothing for the oversight body; PERMISSION_DENIED (CALLER_NOT_OVERSIGHT) for
    anyone else, a call without a client certificate included."""
    if not is_oversight(context):
        raise PermissionDenied(
            "CALLER_NOT_OVERSIGHT",
            f"only the oversight body's certificate ({SAN_OVERSIGHT}) may call this",
        )
