"""`renkei comm disclosure list|approve|refuse|defer`: staff decide on applications for details.

Each command reads the agency's comm.toml and works on its database directly
(the server need not be stopped); ``defer`` also tells the hub, with this
agency's client certificate. Plain output; exit 0 done, 1 refused (the reason
and a sentence on one line), 2 a usage or config problem.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

# The staff register's days, and a deferral's --until, are days in Japan.
JST = timezone(timedelta(hours=9), "JST")
HUB_TIMEOUT_SECONDS = 10.0
STATES = ("pending", "answered", "refused")


def add_comm_parser(group: Any) -> None:
    """Adds `disclosure` to the `renkei comm` group."""
    sub = group.add_parser(
        "disclosure", help="applications for details (R26): list, approve, refuse, defer"
    ).add_subparsers(dest="disclosure_action", required=True)
    p = sub.add_parser("list", help="applications for details, oldest first")
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--state", choices=STATES, help="only those in this state")
    p = sub.add_parser("approve", help="answer a pending application (its details are sealed)")
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--application", required=True, metavar="ID")
    p.add_argument("--staff", required=True, metavar="STAFF_ID")
    p = sub.add_parser("refuse", help="refuse a pending application, with the reason")
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--application", required=True, metavar="ID")
    p.add_argument("--staff", required=True, metavar="STAFF_ID")
    p.add_argument("--reason", required=True, metavar="TEXT")
    p = sub.add_parser(
        "defer", help="hold an exchange's details back until a day (here and at the hub)"
    )
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--serial", type=int, required=True, metavar="N")
    p.add_argument(
        "--until",
        type=_day,
        required=True,
        metavar="YYYY-MM-DD",
        help="shown from 00:00 JST that day; a past day lifts the deferral",
    )
    p.add_argument("--reason", required=True, metavar="TEXT", help="the legal provision")
    p.add_argument("--staff", required=True, metavar="STAFF_ID")


def _day(text: str) -> datetime:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day YYYY-MM-DD") from None
    return datetime.combine(day, time(0), JST)


def _fail(args: argparse.Namespace, problem: str, status: int) -> int:
    print(f"renkei comm disclosure {args.disclosure_action}: {problem}", file=sys.stderr)
    return status


def run(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from comm_server.config import CommConfig
    from comm_server.disclosure.service import StaffDesk
    from comm_server.disclosure.store import DisclosureStore
    from comm_server.staff_register import RegisterError, RegisterFile
    from comm_server.store import CommStore
    from renkei import db
    from renkei.errors import RenkeiError

    config = CommConfig.load(args.config)
    try:
        register = RegisterFile(config.staff_register).register if config.staff_register else None
    except RegisterError as err:
        return _fail(args, str(err), 2)
    engine = db.create_engine(config.database_url, schema=config.database_schema)
    try:
        desk = StaffDesk(DisclosureStore(CommStore(engine)), register, day_zone=JST)
        try:
            return _act(args, config, desk)
        except RenkeiError as err:
            return _fail(args, f"{err.reason}: {err.message}", 1)
        except SQLAlchemyError as err:  # unreachable, refused: the operator's to see, in a line
            cause = type(getattr(err, "orig", None) or err).__name__
            return _fail(args, f"the agency's database refused ({cause}): {err}".splitlines()[0], 1)
    finally:
        engine.dispose()


def _act(args: argparse.Namespace, config: Any, desk: Any) -> int:
    from comm_server.disclosure.types import State

    action = args.disclosure_action
    if action == "list":
        state = State(args.state.upper()) if args.state else None
        apps = desk.applications(state)
        for a in apps:
            decided = (
                f"; decided by {a.decided_by} at {a.decided_at:%Y-%m-%dT%H:%M:%SZ}"
                if a.decided_at
                else ""
            )
            refused = f"; reason: {a.refusal_reason}" if a.refusal_reason else ""
            print(
                f"{a.application_id}: exchange {a.serial} for {a.recipient_agency_id},"
                f" {a.state.value}, applied {a.created_at:%Y-%m-%dT%H:%M:%SZ}{decided}{refused}"
            )
        print(f"{len(apps)} application(s)")
        for d in desk.deferrals_in_force():
            print(
                f"exchange {d.serial}: deferred until {d.until.astimezone(JST):%Y-%m-%d}"
                f" by {d.set_by}: {d.legal_reason}"
            )
        return 0
    if action == "approve":
        a = desk.approve(args.application, args.staff)
        print(f"{a.application_id}: ANSWERED (approved by {a.decided_by})")
        return 0
    if action == "refuse":
        a = desk.refuse(args.application, args.staff, args.reason)
        print(f"{a.application_id}: REFUSED by {a.decided_by}: {a.refusal_reason}")
        return 0
    return _defer(args, config, desk)


def _defer(args: argparse.Namespace, config: Any, desk: Any) -> int:
    from comm_server.clients import hub_client
    from comm_server.disclosure.hub_deferral import defer_at_hub
    from renkei.errors import RenkeiError

    d = desk.defer(args.serial, args.until, args.reason, args.staff)
    until = d.until.astimezone(JST).date().isoformat()
    print(f"exchange {d.serial}: deferred here until {until} by {d.set_by}")

    async def tell_hub() -> None:
        hub = hub_client(config)
        try:
            await defer_at_hub(hub, d.serial, d.until, d.legal_reason, timeout=HUB_TIMEOUT_SECONDS)
        finally:
            await hub.close()

    try:
        asyncio.run(tell_hub())
    except RenkeiError as err:
        return _fail(
            args,
            f"recorded here, but the hub did not take it ({err.reason}: {err.message});"
            " run the same command again",
            1,
        )
    print(f"exchange {d.serial}: the hub shows it deferred until {until}")
    return 0
