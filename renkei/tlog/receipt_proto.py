"""Receipts (renkei.tlog.entry.Receipt) as the hub tells them: proto messages, refusal keys."""

from __future__ import annotations

from collections.abc import Iterable

from renkei.log.v1 import log_pb2
from renkei.tlog.entry import Receipt

# A single exchange's refusal names its exchange entry in its ErrorInfo metadata.
REFUSAL_LEAF_KEY = "log_leaf_index"
REFUSAL_ENTRY_KEY = "log_entry"


def to_proto(receipt: Receipt) -> log_pb2.LogReceipt:
    assert receipt.leaf_index is not None, "only a receipt with an entry is told"
    return log_pb2.LogReceipt(
        serial=receipt.serial, leaf_index=receipt.leaf_index, entry=receipt.entry
    )


def to_protos(receipts: Iterable[Receipt]) -> list[log_pb2.LogReceipt]:
    return [to_proto(r) for r in receipts if r.leaf_index is not None]
