"""Readers of the hub's log after a purge (R25), and ``[retention]``.

A leaf purged at the hub keeps its hash: an agency's verify job still proves
its own copy, and the hub's answer ENTRY_PURGED is no problem (while an entry
withheld without a purge still is); a bundle says "purged", not "missing".
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
import test_log_verify
from support.log_fakes import FakeHubLog
from test_log_verify import MISSING, World

from comm_server.log_commands import bundle_of
from comm_server.log_receipts import LogReceipt
from renkei.config_util import ConfigError
from renkei.errors import FailedPrecondition
from renkei.retention import RetentionPolicy, retention_policy
from renkei.tlog.bundle import Bundle, verify_bundle

NOW = datetime(2033, 4, 1, 4, 0, tzinfo=UTC)


class PurgingHubLog(FakeHubLog):
    """The hub after a purge: the leaves' hashes kept, their entries refused as purged."""

    def __init__(self) -> None:
        super().__init__()
        self.purged: set[int] = set()

    async def entries(self, indices: Sequence[int]) -> list[LogReceipt]:
        gone = [i for i in indices if i in self.purged]
        if gone:
            raise FailedPrecondition("ENTRY_PURGED", f"leaf {gone[0]}: purged")
        return await super().entries(indices)


def test_a_purged_entry_is_no_problem_and_a_withheld_one_still_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(test_log_verify, "FakeHubLog", PurgingHubLog)
    world = World()
    log = world.log
    assert isinstance(log, PurgingHubLog)
    ours = sorted(r.leaf_index for r in asyncio.run(world.store.unverified(log.size)))
    log.purged = {ours[0], ours[1]}
    log.withhold(ours[2])
    report = world.run()
    assert [p.kind for p in report.problems] == [MISSING]
    assert str(ours[2]) in report.problems[0].text
    proven = {e.leaf_index: e for e in report.entries}
    assert proven[ours[0]].purged
    assert proven[ours[0]].inclusion  # still proven: the hash is the tree's
    assert not proven[ours[2]].purged
    bundle = Bundle.from_json(bundle_of(report).to_json())
    assert [e.purged for e in bundle.entries if e.leaf_index in log.purged] == [True, True]
    checked = verify_bundle(bundle, log.signer.verifier(), [log.witness.verifier()])
    assert [p for p in checked.problems if "serves no copy" in p] == [
        p for p in checked.problems if f"leaf {ours[2]})" in p
    ]


def test_the_retention_table_is_read_strictly() -> None:
    where = Path("hub.toml")
    assert retention_policy({}, where) == RetentionPolicy()
    assert RetentionPolicy().days == 2557
    got = retention_policy(
        {"retention": {"days": 30, "batch_size": 500, "pause_seconds": 0.1, "every_seconds": 3600}},
        where,
    )
    assert got == RetentionPolicy(30, 500, 0.1, 3600.0)
    for bad, says in (
        ({"days": "2557"}, "days: must be an integer"),
        ({"days": 0}, "days: must be an integer from 1"),
        ({"batch_size": 50_000}, "batch_size: must be an integer from 1 to 5000"),
        ({"every_seconds": -1}, "every_seconds: must be a number >= 0"),
        ({"dayz": 1}, "unknown keys ['dayz']"),
        ({"busy_share": 0}, "busy_share: must be a number > 0"),
        ({"busy_share": 1.5}, "busy_share: 1.5 is not in (0, 1]"),
    ):
        with pytest.raises(ConfigError, match=r"hub\.toml: \[retention\]") as err:
            retention_policy({"retention": bad}, where)
        assert says in str(err.value)


def test_a_purge_rests_so_that_it_is_busy_at_most_its_share_of_the_time() -> None:
    # A fifth by default: a batch of 0.1 s is followed by 0.4 s of rest.
    policy = RetentionPolicy()
    assert policy.busy_share == 0.2
    assert policy.rest_after(0.1) == pytest.approx(0.4)
    assert RetentionPolicy(pause_seconds=1.0).rest_after(0.1) == 1.0  # the pause, when longer
    assert RetentionPolicy(busy_share=1.0).rest_after(0.1) == 0.0  # flat out
