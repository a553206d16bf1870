"""Everything the oversight body reads in one run, from the parties or from a saved folder.

``collect`` reads the hub (verified against its checkpoint), every agency in
the config and the registry, at once; ``save`` writes what was read as JSONL
(``hub.jsonl`` the entries' exact bytes, ``checkpoint.txt`` the signed note,
``agency-<id>.jsonl``, ``consent.jsonl``) so ``load`` can run reconcile and
report offline, verifying the hub's entries against the checkpoint again.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import grpc

from oversight.config import OversightConfig
from oversight.model import AgencyRow, ConsentRow, decode_entry, encode_entry
from oversight.readers import (
    HubRead,
    HubReader,
    TilesReader,
    read_agency,
    read_consent,
    verify_entries,
    verify_note,
)
from oversight.reconcile import HUB_ENTRY_UNVERIFIED, Finding, ReconcileReport, reconcile
from renkei.errors import FailedPrecondition
from renkei.grpcutil.client import channel

HUB_FILE = "hub.jsonl"
CHECKPOINT_FILE = "checkpoint.txt"
CONSENT_FILE = "consent.jsonl"
AGENCY_PREFIX = "agency-"


@dataclass
class Collected:
    hub: HubRead
    shares: dict[str, list[AgencyRow]] = field(default_factory=dict)
    consent: list[ConsentRow] = field(default_factory=list)


async def collect(
    config: OversightConfig,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    keep_raw: bool = False,
) -> Collected:
    """The hub's entries (all of them: the tree is verified whole) and the shares in range.

    Agency rows are read ``max_skew`` either side of the range, so an exchange
    near its edge still finds its rows (reconcile bounds by the hub's time).
    """
    margin = config.max_skew
    lo = None if start is None else start - margin
    hi = None if end is None else end + margin

    def open_channel(endpoint: str, party: str) -> grpc.aio.Channel:
        return channel(endpoint, config.tls, peer=party)

    async def hub() -> HubRead:
        if config.hub.tiles_url is not None:  # entry bundles over HTTPS
            tiles = TilesReader(
                config.hub.tiles_url,
                config.tls,
                config.hub,
                server_name=config.hub.tiles_server_name,
                timeout=config.timeout_seconds,
            )
            return await tiles.read(keep_raw=keep_raw)
        async with open_channel(config.hub.endpoint, "hub") as ch:
            return await HubReader(ch, config.hub).read(keep_raw=keep_raw)

    async def agency(endpoint: str, party: str) -> list[AgencyRow]:
        async with open_channel(endpoint, party) as ch:
            return await read_agency(
                ch, start=lo, end=hi, batch_size=config.batch_size, timeout=config.timeout_seconds
            )

    async def consent() -> list[ConsentRow]:
        if config.registry is None:
            return []
        async with open_channel(config.registry.endpoint, config.registry.party) as ch:
            return await read_consent(
                ch,
                start=start,
                end=end,
                batch_size=config.batch_size,
                timeout=config.timeout_seconds,
            )

    try:
        async with asyncio.TaskGroup() as group:
            hub_task = group.create_task(hub())
            consent_task = group.create_task(consent())
            agency_tasks = {
                a.id: group.create_task(agency(a.endpoint, a.party)) for a in config.agencies
            }
    except ExceptionGroup as failed:  # the first party that failed, as itself
        raise failed.exceptions[0] from None
    return Collected(
        hub_task.result(),
        {agency_id: task.result() for agency_id, task in agency_tasks.items()},
        consent_task.result(),
    )


def save(collected: Collected, folder: Path) -> None:
    """``collected`` as files in ``folder`` (created); the hub's entries must have been kept."""
    folder.mkdir(parents=True, exist_ok=True)
    hub = collected.hub
    if len(hub.raw) != hub.checkpoint.size:
        raise ValueError("save needs the hub's entries as served: collect with keep_raw=True")
    _write(folder / CHECKPOINT_FILE, [hub.note.decode("utf-8")], raw=True)
    _write(folder / HUB_FILE, (json.dumps(encode_entry(i, e)) for i, e in enumerate(hub.raw)))
    for agency, rows in collected.shares.items():
        _write(
            folder / f"{AGENCY_PREFIX}{agency}.jsonl",
            (json.dumps(r.to_json(), ensure_ascii=False) for r in rows),
        )
    _write(
        folder / CONSENT_FILE,
        (json.dumps(r.to_json(), ensure_ascii=False) for r in collected.consent),
    )


def _write(path: Path, lines: Iterable[str], *, raw: bool = False) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for line in lines:
            f.write(line if raw else line + "\n")
    os.replace(tmp, path)


def load(config: OversightConfig, folder: Path) -> Collected:
    """What ``save`` wrote, the hub's entries verified again against the saved checkpoint.

    Offline there are no proofs: when the entries do not rebuild the checkpoint's
    root, every one is unverified (read them again from the hub to locate the forgery).
    """
    try:
        signed = (folder / CHECKPOINT_FILE).read_bytes()
        cp = verify_note(signed, config.hub)
        served = [b""] * cp.size
        for line in _lines(folder / HUB_FILE):
            index, data = decode_entry(json.loads(line))
            if not 0 <= index < cp.size:
                raise ValueError(f"leaf index {index} is beyond the checkpoint's size {cp.size}")
            served[index] = data
        hub = verify_entries(served, cp, signed)
        shares = {}
        for path in sorted(folder.glob(f"{AGENCY_PREFIX}*.jsonl")):
            agency = path.stem.removeprefix(AGENCY_PREFIX)
            shares[agency] = [AgencyRow.from_json(json.loads(line)) for line in _lines(path)]
        consent_path = folder / CONSENT_FILE
        consent = (
            [ConsentRow.from_json(json.loads(line)) for line in _lines(consent_path)]
            if consent_path.exists()
            else []
        )
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise FailedPrecondition(
            "SAVED_SHARES_UNREADABLE",
            f"{folder}: not a folder `renkei oversight fetch` wrote: {err}",
        ) from None
    return Collected(hub, shares, consent)


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text("utf-8").splitlines() if line]


def reconcile_collected(
    collected: Collected,
    config: OversightConfig,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
) -> ReconcileReport:
    """reconcile() of what was read, with each hub entry that did not verify as a finding."""
    report = reconcile(
        collected.hub.entries, collected.shares, max_skew=config.max_skew, start=start, end=end
    )
    report.findings[:0] = [
        Finding(HUB_ENTRY_UNVERIFIED, 0, "hub", "leaf_index", str(u.leaf_index), u.problem)
        for u in collected.hub.unverified
    ]
    return report
