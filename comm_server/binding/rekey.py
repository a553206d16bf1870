"""The re-key job (R11): new link codes for an agency's whole correspondence table.

After the hub's operator prepares a new key version for the agency
(``renkei keys rotate-link``), this job walks the table in local-id order:
each batch of link codes goes to the hub, which answers the same persons'
codes under the newest version, and the batch is written in one transaction
beside the old codes (``next_link_code``). Both stay findable by the provider
side. When no row is left, the job tells the hub (``CompleteRekey``: the new
version becomes current, the old one accepted for the stated window) and
promotes the new codes in one transaction.

A crash at any point loses and duplicates nothing: a committed batch is not
asked again, an uncommitted one is asked again and gets the same answer (the
codes are deterministic), completing and promoting are idempotent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from comm_server.clients import hub_client
from comm_server.config import CommConfig
from comm_server.hub_client import HubClient
from comm_server.store import AsyncCommStore, open_store
from renkei.logs import event

_log = logging.getLogger("comm_server.rekey")


@dataclass
class RekeyReport:
    rows: int = 0
    rekeyed: int = 0
    promoted: int = 0
    target_version: int = 0
    refused: dict[str, str] = field(default_factory=dict)  # local id -> reason
    completed: bool = False
    waiting: bool = False  # re-keyed, but may not present the new codes yet


Progress = Callable[[int, int], None]  # (done, total)


async def rekey(
    store: AsyncCommStore,
    hub: HubClient,
    *,
    batch: int = 500,
    timeout: float = 30.0,
    progress: Progress | None = None,
) -> RekeyReport:
    status = await hub.rekey_link_codes([], timeout=timeout)
    target, id_target = status.newest_key_version, status.newest_id_key_version
    report = RekeyReport(target_version=target)
    total, todo = await store.run(store.store.rekey_counts, target, id_target)
    report.rows = total
    after = ""
    done = 0
    if progress:
        progress(done, todo)
    while True:
        rows, last = await store.run(store.store.rekey_pending, target, after, batch, id_target)
        if last is None:
            # Records bound while the job ran may sit behind ``after``: one more pass.
            _, left = await store.run(store.store.rekey_counts, target, id_target)
            if left <= len(report.refused):
                break
            after = ""
            continue
        after = last
        rows = [r for r in rows if r[0] not in report.refused]
        if not rows:
            continue
        answer = await hub.rekey_link_codes([code for _, code in rows], timeout=timeout)
        if (answer.newest_key_version, answer.newest_id_key_version) != (target, id_target):
            raise RuntimeError("the hub's newest key versions moved during the job; run it again")
        ok = []
        for (local_id, old), result in zip(rows, answer.results, strict=True):
            if result.error_reason:
                report.refused[local_id] = result.error_reason
            else:
                ok.append((local_id, old, result.link_code))
        report.rekeyed += await store.run(store.store.store_next, ok, target, id_target)
        done += len(rows)
        if progress:
            progress(done, todo)
    if report.refused:
        event(_log, "re-key stopped: some codes were refused", refused=len(report.refused))
        return report
    completion = await hub.complete_rekey(target, id_target, timeout=timeout)
    if not completion.may_promote:
        # An ID-key rotation: other agencies have still to re-key. Run the job again later.
        report.waiting = True
        event(_log, "re-keyed; waiting for other agencies before promoting", version=target)
        return report
    report.promoted = await store.run(store.store.promote)
    report.completed = True
    event(_log, "re-key complete", version=target, rows=total, promoted=report.promoted)
    return report


async def rekey_agency(config: CommConfig, *, batch: int, progress: Progress | None) -> RekeyReport:
    """``renkei comm rekey``: with this agency's own store and certificate."""
    store = open_store(config)
    hub = hub_client(config)
    try:
        return await rekey(store, hub, batch=batch, progress=progress)
    finally:
        await hub.close()
        store.close()
