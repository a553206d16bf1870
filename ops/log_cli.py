"""`renkei log verify`: check a proof bundle offline, one line per problem.

Exit status: 0 when the bundle verifies, 1 when anything in it does not, 2 when
it cannot be checked at all (a file that cannot be read, a key that is no key,
a bundle that is not one).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

KEY_HELP = "a verifier key (name+hex id+base64), or @FILE holding one"


def add_parser(sub: Any) -> None:
    """`renkei log ...` on the main parser's subcommands (``sub``, argparse's subparsers)."""
    group = sub.add_parser("log", help="the hub's verifiable log").add_subparsers(
        dest="action", required=True
    )
    p = group.add_parser(
        "verify",
        help="verify a proof bundle offline: checkpoint, witnesses, consistency, inclusion",
    )
    p.add_argument("bundle", metavar="BUNDLE", help="the bundle's JSON file, or - for stdin")
    p.add_argument("--log-key", required=True, metavar="KEY", help=f"the log's key: {KEY_HELP}")
    p.add_argument(
        "--witness-key",
        action="append",
        default=[],
        metavar="KEY",
        help=f"a trusted witness's key (repeatable): {KEY_HELP}",
    )
    p.add_argument(
        "--no-witness",
        action="store_true",
        help="accept a checkpoint no trusted witness cosigned (it then proves less)",
    )


class _Unusable(Exception):
    """Input that cannot be checked: exit status 2."""


def _key_text(value: str, option: str) -> str:
    if not value.startswith("@"):
        return value
    try:
        return Path(value[1:]).read_text("utf-8").strip()
    except (OSError, UnicodeDecodeError) as err:
        raise _Unusable(f"{option} {value}: cannot read the key file ({err})") from None


def run(args: argparse.Namespace) -> int:
    from renkei.tlog import checkpoint, note
    from renkei.tlog.bundle import Bundle, BundleError, verify_bundle

    try:
        try:
            log_key = note.parse_verifier_key(_key_text(args.log_key, "--log-key"))
        except note.NoteError as err:
            raise _Unusable(f"--log-key: {err}") from None
        witnesses = []
        for value in args.witness_key:
            try:
                text = _key_text(value, "--witness-key")
                witnesses.append(checkpoint.parse_cosignature_verifier_key(text))
            except note.NoteError as err:
                raise _Unusable(f"--witness-key {value}: {err}") from None
        if not witnesses and not args.no_witness:
            raise _Unusable("give the witness's key (--witness-key KEY), or --no-witness")
        try:
            raw = sys.stdin.buffer.read() if args.bundle == "-" else Path(args.bundle).read_bytes()
            bundle = Bundle.from_json(raw.decode("utf-8"))
        except OSError as err:
            raise _Unusable(f"{args.bundle}: cannot read ({err.strerror or err})") from None
        except UnicodeDecodeError as err:
            raise _Unusable(f"{args.bundle}: not UTF-8 (byte {err.start})") from None
        except BundleError as err:
            raise _Unusable(f"{args.bundle}: not a proof bundle: {err}") from None
    except _Unusable as err:
        print(f"renkei log verify: {err}", file=sys.stderr)
        return 2
    report = verify_bundle(bundle, log_key, witnesses, require_witness=not args.no_witness)
    for problem in report.problems:
        print(problem)
    if report.ok:
        print(report.summary())
        return 0
    return 1
