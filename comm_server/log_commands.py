"""``renkei comm log verify`` and ``renkei comm log status``.

Exit codes of ``verify``: 0 the share checked with no problem, 1 problems found
(each printed, logged at ERROR and counted), 2 the check could not run (no
``[log]`` table, the hub unreachable), saying why.
"""

from __future__ import annotations

import asyncio
import sys

from comm_server.clients import hub_client
from comm_server.config import CommConfig
from comm_server.log_client import LogClient, LogReader
from comm_server.log_trust import SqlVerifyStore
from comm_server.log_verify import CannotVerify, Keys, ShareVerifier, VerifyReport, describe_status
from renkei import db
from renkei.tlog.bundle import Bundle, BundleEntry

CLEAN, PROBLEMS, CANNOT_RUN = 0, 1, 2


def _store(config: CommConfig) -> SqlVerifyStore:
    return SqlVerifyStore(db.create_engine(config.database_url, schema=config.database_schema))


async def verify_once(
    config: CommConfig, reader: LogReader | None = None, *, whole: bool = False
) -> VerifyReport | CannotVerify:
    """One run with this server's keys and store; ``reader`` replaces the hub (tests)."""
    assert config.log is not None
    store = _store(config)
    hub = None
    if reader is None:
        hub = hub_client(config)
        reader = LogClient(hub.channel)
    try:
        keys = Keys.from_config(config.log)
        verifier = ShareVerifier(reader, store, keys, agency_id=config.agency_id)
        return await verifier.run(whole=whole)
    except CannotVerify as err:
        return err
    finally:
        if hub is not None:
            await hub.close()


def verify(
    config: CommConfig, reader: LogReader | None = None, *, whole: bool = False
) -> tuple[int, VerifyReport | None]:
    """The exit code and the report (None when the check could not run)."""
    if config.log is None:
        print(
            f"renkei comm log verify: agency {config.agency_id}'s config has no [log] table;"
            " the check of the hub's log is not configured",
            file=sys.stderr,
        )
        return CANNOT_RUN, None
    outcome = asyncio.run(verify_once(config, reader, whole=whole))
    if isinstance(outcome, CannotVerify):
        print(f"renkei comm log verify: cannot run: {outcome}", file=sys.stderr)
        return CANNOT_RUN, None
    for p in outcome.problems:
        print(f"PROBLEM {p.kind}: {p.text}")
    print(outcome.summary())
    return (CLEAN if outcome.clean else PROBLEMS), outcome


def status(config: CommConfig) -> int:
    print(describe_status(asyncio.run(_store(config).status())))
    return 0


def bundle_of(report: VerifyReport) -> Bundle:
    """What a run checked, as a proof bundle anybody can check offline (renkei log verify)."""
    return Bundle(
        report.checkpoint,
        [
            BundleEntry(
                e.leaf_index,
                e.entry,
                list(e.inclusion),
                e.served,
                missing=e.served is None and not e.purged,
                purged=e.purged,
            )
            for e in report.entries  # one the hub gave no proof for fails there too
        ],
        report.previous if report.consistency else None,
        list(report.consistency),
    )
