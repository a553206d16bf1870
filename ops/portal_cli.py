"""``renkei portal serve`` and ``renkei cards issue|revoke`` (issue 15)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

COMMANDS: frozenset[str] = frozenset({"portal", "cards"})


def add_parser(sub: Any) -> None:
    """Adds this module's commands to the main parser's subcommands."""
    portal = sub.add_parser("portal", help="the portal (マイポータル): a web application")
    portal_sub = portal.add_subparsers(dest="action", required=True)
    serve = portal_sub.add_parser("serve", help="serve the portal over HTTPS")
    serve.add_argument("--config", type=Path, required=True, help="portal.toml")
    serve.add_argument("--port-file", type=Path, help="write the bound port here")
    rekey = portal_sub.add_parser(
        "rekey", help="after a key rotation at the hub: forget kept link codes, complete it"
    )
    rekey.add_argument("--config", type=Path, required=True, help="portal.toml")

    cards = sub.add_parser("cards", help="the residents' cards (the registry side's card CA)")
    cards_sub = cards.add_subparsers(dest="action", required=True)
    issue = cards_sub.add_parser("issue", help="issue a card key and certificate per resident")
    issue.add_argument("--registry-config", type=Path, required=True, help="registry.toml")
    issue.add_argument("--resident", nargs="+", required=True, metavar="CODE")
    issue.add_argument("--out", type=Path, required=True, help="where the card files go")
    revoke = cards_sub.add_parser("revoke", help="revoke a card and rewrite the CRL")
    revoke.add_argument("--registry-config", type=Path, required=True, help="registry.toml")
    revoke.add_argument("--serial", type=int, required=True, help="the card's serial (decimal)")


def _issue(args: argparse.Namespace) -> int:
    from ops.cards import issue_for_registry

    try:
        issued = issue_for_registry(args.registry_config, args.resident, args.out)
    except ValueError as err:
        print(f"renkei cards issue: {err}", file=sys.stderr)
        return 1
    for c in issued:
        print(f"{c.resident_code}\t{c.serial}\t{c.cert_file}\t{c.key_file}")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    from ops.cards import revoke_for_registry

    try:
        crl = revoke_for_registry(args.registry_config, args.serial)
    except (KeyError, ValueError) as err:
        print(f"renkei cards revoke: {err.args[0]}", file=sys.stderr)
        return 1
    print(f"revoked {args.serial}; {crl}")
    return 0


def _rekey(args: argparse.Namespace) -> int:
    from portal.config import PortalConfig
    from portal.rekey import rekey
    from renkei.errors import RenkeiError

    try:
        done = asyncio.run(rekey(PortalConfig.load(args.config)))
    except RenkeiError as err:
        print(f"renkei portal rekey: {err.code.name} {err.reason}: {err}", file=sys.stderr)
        return 1
    waiting = "" if done.may_promote else "; the ID-key rotation waits for other agencies"
    print(
        f"forgot {done.forgotten} kept link codes (each person's next sign-in binds again);"
        f" the portal's link-code key version {done.key_version} is current{waiting}"
    )
    return 0


def run(args: argparse.Namespace) -> int:
    if args.command == "portal" and args.action == "rekey":
        return _rekey(args)
    if args.command == "portal":
        from portal.bootstrap import serve
        from portal.config import PortalConfig
        from renkei import logs

        logs.configure("portal", PortalConfig.load(args.config).log_level)
        asyncio.run(serve(args.config, args.port_file))
        return 0
    if args.action == "issue":
        return _issue(args)
    return _revoke(args)
