"""`renkei logs purge`: delete log rows past their retention period (R25), now.

The party is the config file's: a ``[hub]`` table (hub.toml), ``[comm]``
(an agency's comm.toml) or ``[registry]`` (registry.toml). Each server also
purges by itself every ``[retention] every_seconds``. At the hub, the purge
entry is appended by this command's own tree writer: run it with the hub
stopped, or leave the purging to the hub's scheduled job (a hub running at
the same time refuses its one batch of writes that collides, and goes on).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from renkei.config_util import ConfigError, load_toml
from renkei.retention import PurgeReport

COMMANDS: frozenset[str] = frozenset({"logs"})


def add_parser(sub: Any) -> None:
    """Adds this module's commands to the main parser's subcommands."""
    logs = sub.add_parser("logs", help="this party's log shares: retention (R25)")
    actions = logs.add_subparsers(dest="action", required=True)
    purge = actions.add_parser(
        "purge", help="delete rows older than [retention] days, legal holds kept"
    )
    purge.add_argument(
        "--config",
        type=Path,
        required=True,
        help="hub.toml, an agency's comm.toml or registry.toml",
    )
    purge.add_argument("--dry-run", action="store_true", help="count what would go; delete nothing")
    purge.add_argument(
        "--now", help="ISO 8601 time to count the period back from (default: now; no zone: UTC)"
    )


def run(args: argparse.Namespace) -> int:
    try:
        now = _now(args.now)
        reports = purge_party(args.config, now=now, dry_run=args.dry_run)
    except ConfigError as err:
        print(f"renkei logs purge: {err}", file=sys.stderr)
        return 2
    print(table(reports))
    for r in reports:
        if r.logged:
            print(f"{r.store}: logged {r.logged}")
    return 0


def _now(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--now: {text!r} is not an ISO 8601 time") from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def party_of(path: Path) -> str:
    """``hub``, ``comm`` or ``registry``: the config file's own table."""
    data = load_toml(path)
    found = [p for p in ("hub", "comm", "registry") if p in data]
    if len(found) != 1:
        raise ConfigError(
            f"{path}: not a hub.toml, comm.toml or registry.toml (no [hub], [comm] or [registry])"
        )
    return found[0]


def purge_party(path: Path, *, now: datetime, dry_run: bool = False) -> list[PurgeReport]:
    from renkei import db
    from renkei.retention import HoldStore

    party = party_of(path)
    if party == "hub":
        from hub_server.config import HubConfig
        from hub_server.log_store import SqlHubLog
        from hub_server.retention import purge_hub

        hub = HubConfig.load(path)
        engine = db.create_engine(hub.database_url, schema=hub.database_schema)
        log = SqlHubLog(engine)
        try:
            return [
                purge_hub(
                    log, HoldStore(engine, persons=True), hub.retention, now=now, dry_run=dry_run
                )
            ]
        finally:
            log.close()
            engine.dispose()
    if party == "comm":
        from comm_server.config import CommConfig
        from comm_server.retention import purge_comm
        from comm_server.store import CommStore

        comm = CommConfig.load(path)
        engine = db.create_engine(comm.database_url, schema=comm.database_schema)
        try:
            CommStore(engine)  # its tables and chain, if this store is new
            return purge_comm(engine, HoldStore(engine), comm.retention, now=now, dry_run=dry_run)
        finally:
            engine.dispose()
    from registry_binding.config import RegistryBindingConfig
    from registry_binding.retention import purge_consent_log
    from registry_binding.store import BindingStore

    registry = RegistryBindingConfig.load(path)
    engine = db.create_engine(registry.database_url, schema=registry.database_schema)
    try:
        BindingStore(engine)
        return purge_consent_log(
            engine, HoldStore(engine), registry.retention, now=now, dry_run=dry_run
        )
    finally:
        engine.dispose()


def table(reports: Sequence[PurgeReport]) -> str:
    """What went, one line per table (with --dry-run: what would go)."""
    head = (
        "store",
        "before",
        "deleted" if not any(r.dry_run for r in reports) else "would go",
        "held",
        "ranges",
    )
    rows = [head]
    for r in reports:
        also = "".join(f"; {n} {t}" for t, n in r.also.items())
        rows.append(
            (
                r.store,
                r.cutoff.strftime("%Y-%m-%dT%H:%M:%SZ"),
                str(r.deleted),
                str(r.held),
                r.ranges_text() + also,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths, strict=True)) + "  " + row[4]
        for row in rows
    )
