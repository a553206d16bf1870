"""The hub's log receipts, kept by both sides' pipelines with their log rows (in-memory fakes).

The fake hub writes an exchange entry before it calls the provider (who is told
of it) and an outcome entry after, and tells the requester of both; each side's
store keeps what it was told, in the same write as its rows, and the verify job
then finds them all in the hub's tree.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
from support.exchange_fakes import ITEM, PENSION_INFO, STAFF, TERMINAL, Agencies, FakeBatchLegacy
from support.log_fakes import FakeHubLog, MemoryVerifyStore
from support.virtual_time import run_virtual

from comm_server.hub_client import RelayAnswer
from comm_server.log_receipts import PROVIDER, REQUESTER, LogReceipt
from comm_server.log_verify import ShareVerifier
from comm_server.requester.types import LocalQuery, Person
from renkei.errors import NotFound, RenkeiError
from renkei.tlog.entry import EXCHANGE, OUTCOME, Entry

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return run_virtual(coro, start=1000.0)


def ask(persons: list[str], *, bulk: bool = False) -> LocalQuery:
    return LocalQuery(
        provider_agency_id="pension",
        info_kind=PENSION_INFO,
        legal_basis_item=ITEM,
        purpose="benefit review",
        staff_id=STAFF,
        terminal_id=TERMINAL,
        persons=[Person(p, b"y=2025") for p in persons],
        bulk=bulk,
    )


def logged(world: Agencies | None = None, **kwargs: Any) -> tuple[Agencies, FakeHubLog]:
    world = world or Agencies(**kwargs)
    world.hub.log = log = FakeHubLog()
    return world, log


def kept(receipts: list[Any]) -> list[tuple[int, int, str, str]]:
    return [(r.serial, r.leaf_index, r.role, Entry.decode(r.entry).kind) for r in receipts]


def test_a_single_query_keeps_both_entries_at_the_requester_and_one_at_the_provider() -> None:
    world, log = logged()
    run(world.requester.query(ask(["P-1"]), 3.0))
    assert kept(world.city_store.receipts) == [
        (101, 0, REQUESTER, EXCHANGE),
        (101, 1, REQUESTER, OUTCOME),
    ]
    assert kept(world.pension_store.receipts) == [(101, 0, PROVIDER, EXCHANGE)]
    assert world.city_store.receipts[0].entry == log.leaves[0]


def test_a_bulk_query_keeps_each_persons_entries() -> None:
    world, _ = logged()
    run(world.requester.query(ask(["P-0", "P-1", "P-2"], bulk=True), 30.0))
    assert sorted(kept(world.city_store.receipts)) == sorted(
        [(101 + n, n, REQUESTER, EXCHANGE) for n in range(3)]
        + [(101 + n, 3 + n, REQUESTER, OUTCOME) for n in range(3)]
    )
    assert kept(world.pension_store.receipts) == [
        (101 + n, n, PROVIDER, EXCHANGE) for n in range(3)
    ]


def test_a_hub_without_its_tree_leaves_no_receipts() -> None:
    world = Agencies()
    run(world.requester.query(ask(["P-0", "P-1"], bulk=True), 30.0))
    run(world.requester.query(ask(["P-2"]), 3.0))
    assert world.city_store.receipts == world.pension_store.receipts == []
    assert len(world.city_store.logs) == 3


def test_a_call_the_provider_refuses_keeps_the_exchange_entry_on_both_sides() -> None:
    world, _ = logged()
    world.unbind_at_provider(1)

    async def refused() -> RenkeiError:
        with pytest.raises(RenkeiError) as caught:
            await world.requester.query(ask(["P-1"]), 3.0)
        return caught.value

    assert isinstance(run(refused()), NotFound)
    assert kept(world.pension_store.receipts) == [(101, 0, PROVIDER, EXCHANGE)]
    # The refusal's status names the exchange's entry in its metadata.
    assert kept(world.city_store.receipts) == [(101, 0, REQUESTER, EXCHANGE)]
    assert world.city_store.logs[0].outcome == "NOT_FOUND"


def test_a_refusal_naming_an_unreadable_entry_keeps_none(
    caplog: pytest.LogCaptureFixture,
) -> None:
    world, _ = logged()
    world.unbind_at_provider(1)
    relay = world.hub.relay

    async def garbling(**kwargs: Any) -> RelayAnswer:
        try:
            return await relay(**kwargs)
        except RenkeiError as err:
            err.metadata["log_entry"] = "not base64!"
            raise

    world.hub.relay = garbling  # type: ignore[method-assign]  # a hub whose metadata is broken

    async def refused() -> None:
        with pytest.raises(NotFound):
            await world.requester.query(ask(["P-1"]), 3.0)

    with caplog.at_level(logging.WARNING, logger="comm_server.log_receipts"):
        run(refused())
    assert world.city_store.receipts == []
    assert len(world.city_store.logs) == 1
    assert any("cannot be read" in r.getMessage() for r in caplog.records)


def test_an_answer_later_keeps_the_first_halfs_receipts() -> None:
    world, _ = logged(legacy=FakeBatchLegacy({}))
    answered = run(world.requester.query(ask(["P-0"]), 3.0))
    assert answered.ticket
    assert [r.serial for r in world.city_store.receipts] == [101, 101]
    assert [r.serial for r in world.pension_store.receipts] == [101]


def test_a_bad_receipt_is_warned_about_and_the_exchange_answered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    world, log = logged()
    relay = world.hub.relay

    async def lying(**kwargs: Any) -> RelayAnswer:
        answer = await relay(**kwargs)
        wrong = log.exchange_entry(555, "city", "pension")
        return RelayAnswer(
            answer.serial,
            answer.legal_basis_item,
            answer.policy_version,
            answer.sealed_answer,
            answer.ticket,
            answer.answer_signature,
            (*answer.log_receipts, LogReceipt(answer.serial, wrong.leaf_index, wrong.entry)),
        )

    world.hub.relay = lying  # type: ignore[method-assign]  # a hub that hands out another serial's entry
    with caplog.at_level(logging.WARNING, logger="comm_server.log_receipts"):
        answered = run(world.requester.query(ask(["P-1"]), 3.0))
    assert answered.persons[0].error is None
    assert [r.leaf_index for r in world.city_store.receipts] == [0, 1]
    assert any("not kept" in r.getMessage() for r in caplog.records)


def test_the_receipts_kept_verify_against_the_hubs_tree() -> None:
    world, log = logged()
    run(world.requester.query(ask(["P-0", "P-1"], bulk=True), 30.0))
    run(world.requester.query(ask(["P-2"]), 3.0))
    for store in (world.city_store, world.pension_store):
        share = MemoryVerifyStore(store.receipts)
        report = asyncio.run(ShareVerifier(log, share, log.keys()).run())
        assert report.clean, report.problems
        assert len(report.entries) == len(store.receipts) > 0
