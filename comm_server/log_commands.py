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

CLEAN, PROBLEMS, CANNOT_RUN = 0, 1, 2


def _store(config: CommConfig) -> SqlVerifyStore:
    return SqlVerifyStore(db.create_engine(config.database_url, schema=config.database_schema))


async def verify_once(
    config: CommConfig, reader: LogReader | None = None
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
        return await ShareVerifier(reader, store, keys, agency_id=config.agency_id).run()
    except CannotVerify as err:
        return err
    finally:
        if hub is not None:
            await hub.close()


def verify(config: CommConfig, reader: LogReader | None = None) -> tuple[int, VerifyReport | None]:
    """The exit code and the report (None when the check could not run)."""
    if config.log is None:
        print(
            f"renkei comm log verify: agency {config.agency_id}'s config has no [log] table;"
            " the check of the hub's log is not configured",
            file=sys.stderr,
        )
        return CANNOT_RUN, None
    outcome = asyncio.run(verify_once(config, reader))
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
