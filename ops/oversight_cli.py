"""`renkei oversight ...`: the oversight body's commands (oversight/, docs/oversight.md).

    renkei oversight fetch     --config C --out DIR [--from T] [--to T]
    renkei oversight reconcile --config C [--from T] [--to T] [--json F] [--from-dir DIR]
    renkei oversight report    --config C --out F.html [--from T] [--to T] [--from-dir DIR]
    renkei oversight hold set|release|list --config C [--party P] ...

reconcile exits 0 when the shares agree, 1 with findings, 2 when it cannot run
(a config it cannot use, a party it cannot read, a checkpoint that does not
verify); the others exit 0 or 2. Times are ISO 8601; without a zone they are
Japan time, a date alone its midnight; --to is exclusive.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

COMMANDS: frozenset[str] = frozenset({"oversight"})
JST = timezone(timedelta(hours=9), "JST")


def add_parser(sub: Any) -> None:
    """Adds `renkei oversight` to the main parser's subcommands."""
    group = sub.add_parser(
        "oversight", help="the oversight body (第三者機関): read, reconcile and report every log"
    ).add_subparsers(dest="action", required=True)
    _add_actions(group)


def _add_actions(group: Any) -> None:
    def common(p: argparse.ArgumentParser, *, offline: bool = True) -> None:
        p.add_argument("--config", required=True, type=Path, help="oversight.toml")
        p.add_argument("--from", dest="start", metavar="TIME", help="from this time (ISO 8601)")
        p.add_argument("--to", dest="end", metavar="TIME", help="up to this time, exclusive")
        if offline:
            p.add_argument(
                "--from-dir",
                type=Path,
                metavar="DIR",
                help="read the shares `renkei oversight fetch` saved, not the parties",
            )

    p = group.add_parser("fetch", help="read every share and save it (JSONL) for offline runs")
    common(p, offline=False)
    p.add_argument("--out", required=True, type=Path, metavar="DIR")
    p = group.add_parser("reconcile", help="join the shares by serial and list what disagrees")
    common(p)
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the findings as JSON")
    p = group.add_parser("report", help="an HTML report: plots, findings and anomalies")
    common(p)
    p.add_argument("--out", required=True, type=Path, metavar="FILE")
    p = group.add_parser("hold", help="legal holds: what they name is not purged")
    p.add_argument("hold_action", choices=("set", "release", "list"))
    p.add_argument("--config", required=True, type=Path, help="oversight.toml")
    p.add_argument("--hold-id", metavar="ID")
    p.add_argument("--serial", type=int, nargs="+", default=[], metavar="N")
    p.add_argument("--person", default="", metavar="KEY", help="the hub's person key (hub only)")
    p.add_argument("--reason", metavar="TEXT")
    p.add_argument(
        "--party",
        default="hub",
        metavar="PARTY",
        help="hub (default), agency:ID, registry or portal",
    )


class _Unusable(Exception):
    """Cannot run: exit status 2."""


def _time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise _Unusable(f"{option} {value!r}: not an ISO 8601 date or time") from None
    return at if at.tzinfo is not None else at.replace(tzinfo=JST)


def main(argv: Sequence[str]) -> int:
    """`renkei oversight` with ``argv`` after it (tests call this)."""
    parser = argparse.ArgumentParser(prog="renkei oversight")
    _add_actions(parser.add_subparsers(dest="action", required=True))
    args = parser.parse_args(list(argv))
    args.command = "oversight"
    return run(args)


def run(args: argparse.Namespace) -> int:
    from oversight.config import OversightConfig
    from renkei.config_util import ConfigError
    from renkei.errors import RenkeiError

    try:
        config = OversightConfig.load(args.config)
        if args.action == "hold":
            return asyncio.run(_hold(config, args))
        start = _time(args.start, "--from")
        end = _time(args.end, "--to")
        if args.action == "fetch":
            return _fetch(config, args.out, start, end)
        return _analyse(config, args, start, end)
    except (_Unusable, ConfigError) as err:
        print(f"renkei oversight {args.action}: {err}", file=sys.stderr)
        return 2
    except RenkeiError as err:
        print(
            f"renkei oversight {args.action}: {err.code.name} {err.reason}: {err.message}",
            file=sys.stderr,
        )
        return 2


def _fetch(config: Any, out: Path, start: datetime | None, end: datetime | None) -> int:
    from oversight import collect

    got = asyncio.run(collect.collect(config, start=start, end=end, keep_raw=True))
    collect.save(got, out)
    print(
        f"saved {len(got.hub.raw)} hub entries (checkpoint {got.hub.checkpoint.size}),"
        f" {sum(len(r) for r in got.shares.values())} agency rows of {len(got.shares)} agencies,"
        f" {len(got.consent)} consent attempts to {out}"
    )
    if not got.hub.verified:
        print(f"{len(got.hub.unverified)} hub entries do not verify", file=sys.stderr)
    return 0


def _analyse(
    config: Any, args: argparse.Namespace, start: datetime | None, end: datetime | None
) -> int:
    from oversight import collect

    if args.from_dir is not None:
        got = collect.load(config, args.from_dir)
    else:
        got = asyncio.run(collect.collect(config, start=start, end=end))
    reconciled = collect.reconcile_collected(got, config, start=start, end=end)
    if args.action == "reconcile":
        counts = reconciled.counts()
        print(
            f"{reconciled.exchanges} exchanges, {reconciled.rows} agency rows of"
            f" {len(reconciled.agencies)} agencies: "
            + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "no findings")
        )
        for f in reconciled.findings[:50]:
            print(f"  {f.kind} serial {f.serial} {f.agency} {f.field} {f.ours!r} {f.theirs!r}")
        if len(reconciled.findings) > 50:
            print(f"  ... {len(reconciled.findings) - 50} more")
        if args.json is not None:
            doc = reconciled.to_json()
            doc["checkpoint"] = got.hub.note.decode("utf-8", "replace")
            args.json.write_text(json.dumps(doc, ensure_ascii=False, indent=1), "utf-8")
        return 0 if reconciled.clean else 1
    from oversight import report
    from oversight.anomalies import find_anomalies

    hub = got.hub.entries
    if start is not None or end is not None:
        hub = [
            e
            for e in hub
            if (start is None or e.logged_at >= start) and (end is None or e.logged_at < end)
        ]
    shares = got.shares
    if start is not None or end is not None:  # rows were read with a margin either side
        shares = {
            agency: [
                r
                for r in rows
                if (start is None or r.logged_at >= start) and (end is None or r.logged_at < end)
            ]
            for agency, rows in shares.items()
        }
    anomalies = find_anomalies(
        shares, hub, thresholds=config.thresholds, hours=config.working_hours
    )
    page = report.render(got.hub, reconciled, anomalies, got.consent, start=start, end=end)
    args.out.write_text(page, "utf-8")
    print(f"wrote {args.out}: {len(reconciled.findings)} findings, {len(anomalies)} anomalies")
    return 0


async def _hold(config: Any, args: argparse.Namespace) -> int:
    from oversight.holds import HoldClient
    from renkei.grpcutil.client import channel

    party = args.party
    if party == "hub":
        endpoint, peer = config.hub.endpoint, "hub"
    elif party == "registry":
        if config.registry is None:
            raise _Unusable("--party registry: the config has no [registry]")
        endpoint, peer = config.registry.endpoint, config.registry.party
    elif party == "portal":
        if config.portal is None:
            raise _Unusable("--party portal: the config has no [portal]")
        endpoint, peer = config.portal.endpoint, config.portal.party
    elif party.startswith("agency:"):
        agency = config.agency(party.removeprefix("agency:"))
        endpoint, peer = agency.endpoint, agency.party
    else:
        raise _Unusable(f"--party {party!r}: hub, agency:ID, registry or portal")
    async with channel(endpoint, config.tls, peer=peer) as ch:
        client = HoldClient(ch)
        if args.hold_action == "list":
            for h in await client.list():
                at = h.set_at.isoformat() if h.set_at else "-"
                serials = " ".join(str(s) for s in h.serials)
                print(f"{h.hold_id}\t{at}\t{serials or '-'}\t{h.person or '-'}\t{h.reason}")
            return 0
        if not args.hold_id:
            raise _Unusable(f"hold {args.hold_action}: --hold-id is required")
        if args.hold_action == "set":
            if not args.reason:
                raise _Unusable("hold set: --reason is required")
            await client.set(args.hold_id, args.reason, serials=args.serial, person=args.person)
            print(f"hold {args.hold_id} set at {party}")
        else:
            await client.release(args.hold_id)
            print(f"hold {args.hold_id} released at {party}")
    return 0
