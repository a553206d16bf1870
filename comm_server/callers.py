"""Who may call: the hub (provider side) or the agency's own systems (requester side).

The caller itself is read once per call by the server's interceptor
(``renkei.grpcutil.caller``); this says which callers each side accepts.
"""

from __future__ import annotations

from typing import Any

import grpc

from renkei.errors import PermissionDenied
from renkei.grpcutil.caller import require_caller

Context = grpc.aio.ServicerContext[Any, Any]


class CallerCheck:
    def __init__(self, agency_id: str) -> None:
        self._agency_id = agency_id

    def require_hub(self) -> None:
        if require_caller().kind != "hub":
            raise PermissionDenied("CALLER_NOT_HUB", "only the hub may ask this server to provide")

    def require_own_agency(self) -> None:
        identity = require_caller()
        if identity.kind != "agency" or identity.party_id != self._agency_id:
            raise PermissionDenied(
                "CALLER_NOT_OWN_AGENCY",
                f"only agency {self._agency_id}'s own systems may query through this server",
            )
