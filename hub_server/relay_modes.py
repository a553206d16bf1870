"""What differs between a single relay and a bulk one; linkage.Hub.relay is one path for both.

A single relay (HubService.Relay) answers every refusal as its gRPC status,
under the serial of its one row; a bulk relay (BulkRelay) refuses a person in
that person's result and only the whole request as a status, under the
serials of all its rows. The rest (approval, translation, log rows, the
deadline budget, outcomes) is shared.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Sequence

from hub_server.exchange import RelayRequest
from renkei import bulk, limits, validate
from renkei.logs import event
from renkei.tlog import receipt_proto
from renkei.tlog.entry import Receipt

_log = logging.getLogger("hub_server.linkage")


class SingleRelay:
    # Every refusal is the RPC's status. A bad link code is refused before the
    # exchange is judged, so its error, not a denial, is the status and the row's.
    refuses_as_status = True

    def __init__(self, ceiling: float) -> None:
        self.ceiling = ceiling

    def check(self, req: RelayRequest) -> None:
        (link_code,) = req.link_codes
        validate.required("link_code", link_code)
        validate.blob("sealed_query", req.sealed_queries, max_bytes=limits.MAX_SEALED_QUERY_BYTES)
        validate.blob("query_signature", req.query_signature, max_bytes=limits.MAX_SIGNATURE_BYTES)

    def tags(self, serials: Sequence[int], receipts: Sequence[Receipt] = ()) -> dict[str, str]:
        """A refusal's metadata naming the exchange's row and, once known, its log entry."""
        tags = {"serial": str(serials[0])}
        if receipts and receipts[0].leaf_index is not None:
            tags[receipt_proto.REFUSAL_LEAF_KEY] = str(receipts[0].leaf_index)
            tags[receipt_proto.REFUSAL_ENTRY_KEY] = base64.b64encode(receipts[0].entry).decode()
        return tags

    def denied(self, serials: Sequence[int], reason: str) -> None:
        event(_log, "relay denied", serial=serials[0], reason=reason)

    def relayed(self, serials: Sequence[int], relayed: int) -> None:
        pass  # the hot path: its rows say it all


class BulkRelay:
    refuses_as_status = False

    def __init__(self, ceiling: float) -> None:
        self.ceiling = ceiling

    def check(self, req: RelayRequest) -> None:
        bulk.check_count("link_codes", len(req.link_codes))
        validate.blob(
            "sealed_queries",
            req.sealed_queries,
            max_bytes=limits.MAX_BULK_SEALED_QUERIES,
            required=True,
        )
        validate.blob("query_signature", req.query_signature, max_bytes=limits.MAX_SIGNATURE_BYTES)

    def tags(self, serials: Sequence[int], receipts: Sequence[Receipt] = ()) -> dict[str, str]:
        """A refusal's metadata naming every person's row, in order, as ranges.

        A bulk refusal names no log entries: there may be thousands (noted in
        docs/verifiable-log.md); the requester finds them by serial.
        """
        return {"serials": bulk.format_serials(serials)}

    def denied(self, serials: Sequence[int], reason: str) -> None:
        event(_log, "bulk relay denied", persons=len(serials), reason=reason)

    def relayed(self, serials: Sequence[int], relayed: int) -> None:
        event(_log, "bulk relayed", persons=len(serials), relayed=relayed)


RelayMode = SingleRelay | BulkRelay
