"""Receipts (renkei.tlog.entry.Receipt) to and from renkei.log.v1.LogReceipt."""

from __future__ import annotations

from collections.abc import Iterable

from renkei.log.v1 import log_pb2
from renkei.tlog.entry import Receipt


def to_proto(receipt: Receipt) -> log_pb2.LogReceipt:
    assert receipt.leaf_index is not None, "only a receipt with an entry is told"
    return log_pb2.LogReceipt(
        serial=receipt.serial, leaf_index=receipt.leaf_index, entry=receipt.entry
    )


def to_protos(receipts: Iterable[Receipt]) -> list[log_pb2.LogReceipt]:
    return [to_proto(r) for r in receipts if r.leaf_index is not None]


def from_proto(message: log_pb2.LogReceipt) -> Receipt | None:
    """None for an unset message (an old hub, or the tree off)."""
    if not message.entry:
        return None
    return Receipt(message.serial, message.leaf_index, message.entry)
