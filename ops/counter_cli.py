"""`renkei counter report`: the municipal counter prints a person's history (ops/counter.py)."""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path
from typing import Any

COMMANDS: frozenset[str] = frozenset({"counter"})


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def add_parser(sub: Any) -> None:
    """Adds this module's commands to the main parser's subcommands."""
    counter = sub.add_parser("counter", help="the municipal counter (窓口): print a history")
    actions = counter.add_subparsers(dest="action", required=True)
    r = actions.add_parser(
        "report", help="sign in with the person's card, verify their history, write the PDF"
    )
    r.add_argument("--portal", required=True, help="the portal's base URL (https://...)")
    r.add_argument("--card-key", type=Path, required=True, help="the card's private key (PEM)")
    r.add_argument("--card-cert", type=Path, required=True, help="the card's certificate (PEM)")
    r.add_argument("--staff", required=True, help="the operator's staff id (staff register)")
    r.add_argument("--terminal", required=True, help="the counter terminal's id")
    r.add_argument(
        "--comm-config",
        type=Path,
        required=True,
        help="the municipality's comm.toml (its [log] keys, store and staff register)",
    )
    r.add_argument("--out", type=Path, required=True, help="where to write the PDF")
    r.add_argument("--web-ca", type=Path, help="the CA of the portal's server certificate")
    r.add_argument("--from", dest="start", type=_day, help="first day (JST), YYYY-MM-DD")
    r.add_argument("--to", dest="end", type=_day, help="last day (JST), inclusive")


def run(args: argparse.Namespace) -> int:
    from ops.counter import CounterReportRequest, counter_report
    from renkei.config_util import ConfigError
    from renkei.errors import RenkeiError

    request = CounterReportRequest(
        portal=args.portal,
        card_key=args.card_key,
        card_cert=args.card_cert,
        staff_id=args.staff,
        terminal_id=args.terminal,
        comm_config=args.comm_config,
        out=args.out,
        web_ca=args.web_ca,
        start=args.start,
        end=args.end,
    )
    try:
        report = counter_report(request)
    except RenkeiError as err:
        print(
            f"renkei counter report: {err.code.name} {err.reason}: {err.message}", file=sys.stderr
        )
        return 1
    except ImportError as err:  # renkei.card, which signs with the card, is not installed
        print(f"renkei counter report: cannot sign with the card: {err}", file=sys.stderr)
        return 2
    except (ConfigError, OSError, ValueError) as err:
        print(f"renkei counter report: {err}", file=sys.stderr)
        return 2
    page = report.page
    print(f"report: {report.out} ({len(page.rows)} exchanges, card serial {report.card_serial})")
    for cp in page.checkpoints:
        witnesses = ", ".join(cp.witnesses) or "none"
        print(
            f"checkpoint: {cp.origin} size {cp.size} root {cp.root_hash_hex} witnesses {witnesses}"
        )
    if not page.verified:
        print(f"NOT VERIFIED: {page.checkpoint_error or 'some entries did not verify'}")
        return 3
    return 0
