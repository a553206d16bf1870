"""The agencies' verify job (comm_server.log_verify) against an in-memory hub log that lies.

A city's share holds the receipts of its exchanges with the pension service; the
hub's log holds those and other agencies' entries. Every lie of the hub (an
entry edited, withheld, the tree rewritten, forked, rolled back, a checkpoint
not witnessed or not signed) is found and named; an honest log raises nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime

import pytest
from support.log_fakes import FakeHubLog, MemoryVerifyStore
from support.virtual_time import run_virtual

from comm_server.log_receipts import REQUESTER, LogReceipt, ShareReceipt, accept
from comm_server.log_verify import (
    CHANGED,
    FORK,
    MISSING,
    NOT_IN_TREE,
    RECEIPT,
    ROLLBACK,
    SIGNATURE,
    WITNESS,
    CannotVerify,
    ShareVerifier,
    VerifyReport,
    describe_status,
    run_every,
)

CITY, PENSION, TAX = "city", "pension", "tax"
NOW = datetime(2026, 4, 1, 4, 0, tzinfo=UTC)


class World:
    """The hub's log with ``exchanges`` of the city among others', the city's share of it."""

    def __init__(self, exchanges: int = 4) -> None:
        self.log = FakeHubLog()
        self.store = MemoryVerifyStore()
        self.serial = 100
        for _ in range(exchanges):
            self.other()
            self.ours()

    def ours(self, outcome: str = "OK") -> list[ShareReceipt]:
        self.serial += 1
        given = self.log.exchange(self.serial, CITY, PENSION, outcome)
        kept = accept(given, serial=self.serial, agency_id=CITY, role=REQUESTER, received_at=NOW)
        self.store.add(kept)
        return kept

    def other(self) -> None:
        self.serial += 1
        self.log.exchange(self.serial, TAX, PENSION)

    def verifier(self) -> ShareVerifier:
        return ShareVerifier(
            self.log, self.store, self.log.keys(), agency_id=CITY, clock=lambda: NOW
        )

    def run(self) -> VerifyReport:
        return asyncio.run(self.verifier().run())


def kinds(report: VerifyReport) -> list[str]:
    return [p.kind for p in report.problems]


def test_an_honest_log_passes_and_is_trusted_from_then_on() -> None:
    world = World()
    report = world.run()
    assert report.clean, report.problems
    assert report.size == 16
    assert len(report.entries) == 8
    assert all(r.verified_at == NOW for r in world.store.receipts.values())
    assert world.store.trust is not None
    assert world.store.trust.size == 16
    assert world.store.state is not None
    assert world.store.state.problems_found == 0
    # What a proof bundle needs: our entry, its inclusion proof, what the hub served.
    first = report.entries[0]
    assert first.served == first.entry
    assert first.inclusion
    # More exchanges: checked from the trusted checkpoint, by a consistency proof.
    first_note = world.store.trust.note
    assert first_note == report.checkpoint
    world.other()
    world.ours()
    again = world.run()
    assert again.clean, again.problems
    assert (again.previous_size, again.size, len(again.entries)) == (16, 20, 2)
    assert again.consistency
    assert again.previous == first_note
    assert world.store.trust.size == 20


def test_a_receipt_beyond_the_checkpoint_waits_for_a_later_one() -> None:
    world = World(2)
    world.log.publish(6)  # the last exchange (leaves 6, 7) not yet in a checkpoint
    report = world.run()
    assert report.clean
    assert [e.leaf_index for e in report.entries] == [2, 3]
    assert world.store.receipts[6].verified_at is None
    world.log.publish(None)
    assert [e.leaf_index for e in world.run().entries] == [6, 7]


def test_a_changed_field_in_the_hubs_copy_is_named_with_both_values() -> None:
    world = World()
    world.log.edit(7, outcome="DENIED")  # serial 104's outcome entry
    report = world.run()
    assert kinds(report) == [CHANGED]
    assert report.problems[0].text == (
        "serial 104 (leaf 7): the hub's entry differs in outcome ('OK' ours, 'DENIED' the hub's)"
    )
    assert (report.problems[0].serial, report.problems[0].leaf_index) == (104, 7)
    # Nothing is trusted or marked from a run with a problem; it is found again next time.
    assert world.store.trust is None
    assert all(r.verified_at is None for r in world.store.receipts.values())
    assert kinds(world.run()) == [CHANGED]
    status = world.store.state
    assert status is not None
    assert status.problems_found == 2
    assert status.last_problem == report.problems[0].text


def test_an_entry_the_hub_cannot_give_is_missing_and_the_others_still_checked() -> None:
    world = World()
    world.log.withhold(10)
    report = world.run()
    assert kinds(report) == [MISSING]
    assert [p.text for p in report.problems] == ["serial 106 (leaf 10): missing from the hub's log"]
    # The batch refused was asked again in halves, down to the leaf it lacks.
    assert world.log.asked_entries[0] == [2, 3, 6, 7, 10, 11, 14, 15]
    assert [10] in world.log.asked_entries
    assert len(world.log.asked_entries) < 8


def test_an_entry_rewritten_in_the_tree_is_not_in_the_tree() -> None:
    world = World()
    world.log.rewrite(3, outcome="DENIED")  # the tree, its root and its signature all agree
    report = world.run()
    assert kinds(report) == [NOT_IN_TREE, CHANGED]
    assert report.problems[0].text.startswith("serial 102 (leaf 3): not in the tree of size 16")


def test_an_inclusion_proof_the_hub_refuses_is_not_in_the_tree() -> None:
    world = World()
    world.log.no_proof.add(11)
    report = world.run()
    assert [p.text for p in report.problems] == [
        "serial 106 (leaf 11): not in the tree of size 16 (the hub refused its inclusion"
        " proof: LEAF_NOT_FOUND: no leaf 11)"
    ]
    assert next(e for e in report.entries if e.leaf_index == 11).inclusion == ()


def test_a_fork_at_the_same_size_names_both_roots() -> None:
    world = World()
    assert world.run().clean
    world.log.rewrite(0, requester="somebody")  # another agency's entry: only the root shows it
    report = world.run()
    assert kinds(report) == [FORK]
    text = report.problems[0].text
    assert text.startswith("fork: the hub's checkpoint of size 16 has root")
    assert "trusted at size 16" in text
    assert world.store.trust is not None
    assert world.store.trust.root_hash != world.log.root()


def test_a_fork_of_a_larger_tree_fails_its_consistency_proof() -> None:
    world = World()
    assert world.run().clean
    world.log.rewrite(4, person="someone else")  # history rewritten, then grown
    world.ours()
    report = world.run()
    assert FORK in kinds(report)
    fork = next(p for p in report.problems if p.kind == FORK)
    assert "size 18 is not consistent with the one of size 16" in fork.text


def test_a_rollback_names_both_sizes() -> None:
    world = World()
    assert world.run().clean
    world.log.publish(12)
    report = world.run()
    assert kinds(report) == [ROLLBACK]
    assert report.problems[0].text == (
        "rollback: the hub's checkpoint has size 12, smaller than the size 16 this server trusted"
    )
    assert world.store.trust is not None
    assert world.store.trust.size == 16


def test_a_checkpoint_without_the_witness_is_not_trusted() -> None:
    world = World()
    world.log.cosigned = False
    report = world.run()
    assert kinds(report) == [WITNESS]
    assert "no cosignature by a trusted witness" in report.problems[0].text
    assert report.entries == ()
    assert world.store.trust is None


def test_a_bad_hub_signature_is_refused() -> None:
    world = World()
    world.log.bad_signature = True
    report = world.run()
    assert kinds(report) == [SIGNATURE]
    assert "invalid signature for key renkei.test/hub-log" in report.problems[0].text


def test_a_receipt_edited_here_to_name_another_serial_is_reported() -> None:
    world = World(1)
    kept = world.store.receipts[2]
    world.store.receipts[2] = ShareReceipt(2, 999, kept.role, kept.entry, kept.received_at)
    report = world.run()
    assert kinds(report) == [RECEIPT]
    assert report.problems[0].text == (
        "serial 999 (leaf 2): the receipt kept here names serial 102"
    )


def test_a_receipt_not_in_the_canonical_encoding_or_not_ours_is_reported() -> None:
    world = World(1)
    # What the exchange's quick check lets by: the same JSON spaced out, another's entry.
    spaced = json.dumps(json.loads(world.log.leaves[2]), indent=1).encode()
    kept = accept(
        [LogReceipt(102, 2, spaced)], serial=102, agency_id=CITY, role=REQUESTER, received_at=NOW
    )
    assert len(kept) == 1
    world.store.receipts[2] = kept[0]
    world.store.add([ShareReceipt(0, 101, REQUESTER, world.log.leaves[0], NOW)])  # tax's
    report = world.run()
    texts = [p.text for p in report.problems if p.kind == RECEIPT]
    assert texts == [
        "serial 101 (leaf 0): the receipt kept here is an entry between 'tax' and 'pension',"
        " not this agency's",
        "serial 102 (leaf 2): the receipt kept here is not an entry (not in its canonical"
        " encoding)",
    ]


def test_an_unreachable_hub_cannot_run_and_changes_nothing() -> None:
    world = World()
    world.log.unreachable = True
    with pytest.raises(CannotVerify, match="HUB_UNAVAILABLE"):
        world.run()
    assert world.store.state is None


def test_every_problem_is_an_error_log_line(caplog: pytest.LogCaptureFixture) -> None:
    world = World()
    world.log.edit(2, outcome="X")
    world.log.withhold(6)
    with caplog.at_level(logging.ERROR, logger="comm_server.log_verify"):
        report = world.run()
    lines = [
        r
        for r in caplog.records
        if r.levelno == logging.ERROR and r.getMessage().startswith("the hub's log failed")
    ]
    assert len(lines) == len(report.problems) == 2


def test_the_status_says_when_what_and_how_many() -> None:
    world = World()
    assert describe_status(None) == "the hub's log has never been checked here"
    world.log.edit(7, outcome="DENIED")
    world.run()
    shown = describe_status(world.store.state)
    assert "trusted tree size: 0" in shown
    assert "problems found in all: 1" in shown
    assert "serial 104 (leaf 7)" in shown


# --- receipts as the pipelines keep them -------------------------------------------


def test_a_bad_receipt_is_dropped_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    log = FakeHubLog()
    begun, done = log.exchange(101, CITY, PENSION)
    theirs = log.exchange_entry(102, TAX, PENSION)
    given = [
        begun,
        LogReceipt(101, done.leaf_index, b"not json"),
        LogReceipt(101, theirs.leaf_index, theirs.entry),  # another exchange's entry
        LogReceipt(102, done.leaf_index, done.entry),  # another serial
    ]
    with caplog.at_level(logging.WARNING, logger="comm_server.log_receipts"):
        kept = accept(given, serial=101, agency_id=CITY, role=REQUESTER, received_at=NOW)
    assert [r.leaf_index for r in kept] == [begun.leaf_index]
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 3
    # A tax office's entry is not the city's to keep, even under the right serial.
    mine = log.exchange_entry(103, TAX, PENSION)
    assert accept([mine], serial=103, agency_id=CITY, role=REQUESTER, received_at=NOW) == []


# --- scheduled ----------------------------------------------------------------------


def test_the_scheduled_job_runs_until_cancelled_and_outlives_its_failures(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs: list[float] = []

    async def job() -> VerifyReport:
        runs.append(asyncio.get_running_loop().time())
        if len(runs) == 2:
            raise CannotVerify("the hub's checkpoint: HUB_UNAVAILABLE: down")
        if len(runs) == 3:
            raise RuntimeError("a bug")
        return await World(1).verifier().run()

    async def scenario() -> None:
        task = asyncio.create_task(run_every(job, 60.0))
        await asyncio.sleep(60.0 * 4 + 1)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        count = len(runs)
        await asyncio.sleep(600)
        assert len(runs) == count  # stopped

    with caplog.at_level(logging.WARNING):
        run_virtual(scenario())
    assert runs == [60.0, 120.0, 180.0, 240.0]
    assert any("could not run" in r.getMessage() for r in caplog.records)
    assert any("failed" in r.getMessage() and r.exc_info for r in caplog.records)
