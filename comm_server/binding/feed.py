"""Following the registry's change feed for this agency's bound persons (R14, R20).

``follow_once`` reads ``BindingService.ListChanges`` (with this agency's
certificate, so only its own subscriptions) page by page from the stored
cursor until nothing more waits, and applies each page with the cursor after
it in one transaction (``PersonFactsStore.apply``). ``renkei comm follow``
runs it once, or every ``--every`` seconds until stopped. The requester's side
then reads a person's current municipality with ``renkei comm facts`` (or
``PersonFactsStore.current_municipality``) before choosing a provider.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from comm_server.binding.person_facts import FeedItem, PersonFacts, PersonFactsStore
from comm_server.clients import registry_channel
from comm_server.config import CommConfig
from renkei import db
from renkei.errors import RenkeiError, from_rpc_error
from renkei.grpcutil.client import outgoing_metadata
from renkei.registry.v1 import registry_pb2, registry_pb2_grpc

KINDS = {
    registry_pb2.CHANGE_KIND_SUBSCRIBED: "subscribed",
    registry_pb2.CHANGE_KIND_MOVED: "moved",
    registry_pb2.CHANGE_KIND_NAME_CHANGED: "name_changed",
    registry_pb2.CHANGE_KIND_DECEASED: "deceased",
}


@dataclass
class FollowReport:
    pages: int = 0
    entries: int = 0
    applied: int = 0
    cursor: str = ""


def _item(change: registry_pb2.PersonChange) -> FeedItem:
    kind = KINDS.get(change.kind)
    if kind is None or not change.subscription_handle:
        raise RenkeiError(
            "REGISTRY_BAD_ANSWER", f"a feed entry of kind {change.kind} or without a handle"
        )
    f = change.facts
    return FeedItem(
        change.subscription_handle,
        PersonFacts(
            kind=kind,
            effective_date=change.effective_date,
            name=f.name,
            kana=f.kana,
            birth_date=f.birth_date,
            sex=f.sex,
            address=f.address,
            municipality_code=f.municipality_code,
            municipality=f.municipality,
            deceased=f.deceased,
            died_on=f.died_on or None,
        ),
    )


async def follow_once(
    facts: PersonFactsStore,
    stub: registry_pb2_grpc.BindingServiceAsyncStub,
    *,
    page_size: int = 500,
    timeout: float = 30.0,
) -> FollowReport:
    """Read and apply every waiting entry; see the module docstring."""
    report = FollowReport(cursor=await asyncio.to_thread(facts.cursor))
    while True:
        try:
            page = await stub.ListChanges(
                registry_pb2.ListChangesRequest(cursor=report.cursor, page_size=page_size),
                timeout=timeout,
                metadata=outgoing_metadata(),
            )
        except grpc.aio.AioRpcError as err:
            raise from_rpc_error(err, fallback_reason="REGISTRY_UNAVAILABLE") from None
        items = [_item(c) for c in page.changes]
        report.applied += await asyncio.to_thread(facts.apply, items, page.next_cursor)
        report.pages += 1
        report.entries += len(items)
        report.cursor = page.next_cursor
        if not page.more:
            return report


async def follow_agency(
    config: CommConfig,
    *,
    every: float | None = None,
    page_size: int = 500,
    on_report: Callable[[FollowReport], None] | None = None,
) -> FollowReport:
    """``renkei comm follow``: once, or every ``every`` seconds until cancelled."""
    if not config.registry_endpoint:
        raise ValueError("the comm config sets no registry_endpoint")
    engine = db.create_engine(config.database_url, schema=config.database_schema)
    facts = PersonFactsStore(engine)
    ch = registry_channel(config)
    stub = registry_pb2_grpc.BindingServiceStub(ch)
    try:
        while True:
            report = await follow_once(facts, stub, page_size=page_size)
            if on_report is not None:
                on_report(report)
            if every is None:
                return report
            await asyncio.sleep(every)
    finally:
        await ch.close(None)
        engine.dispose()
