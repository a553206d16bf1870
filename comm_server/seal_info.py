"""What a single exchange's seals are bound to (HPKE ``info``), on both sides.

A single query is sealed to the provider, and its answer to the requester,
each as its own HPKE message bound to the parties, the kind and item (and
the answer to the hub's serial). A bulk request's one message each way is
bound by ``renkei.bulk.query_info``/``answer_info``, shared with the hub.
"""

from __future__ import annotations

from renkei import sealing


def query_info(requester: str, provider: str, info_kind: str, item: str) -> bytes:
    return sealing.exchange_info("query", requester, provider, info_kind, item)


def answer_info(serial: int, requester: str, provider: str, info_kind: str, item: str) -> bytes:
    return sealing.exchange_info("answer", serial, requester, provider, info_kind, item)
