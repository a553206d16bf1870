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

    cards = sub.add_parser("cards", help="the residents' cards (the registry side's card CA)")
    cards_sub = cards.add_subparsers(dest="action", required=True)
    issue = cards_sub.add_parser("issue", help="issue a card key and certificate per resident")
    issue.add_argument("--registry-config", type=Path, required=True, help="registry.toml")
    issue.add_argument("--resident", nargs="+", required=True, metavar="CODE")
    issue.add_argument("--out", type=Path, required=True, help="where the card files go")
    revoke = cards_sub.add_parser("revoke", help="revoke a card and rewrite the CRL")
    revoke.add_argument("--registry-config", type=Path, required=True, help="registry.toml")
    revoke.add_argument("--serial", type=int, required=True, help="the card's serial (decimal)")


def _binding_store(config_path: Path) -> tuple[Any, Any]:
    from registry_binding.config import RegistryBindingConfig
    from registry_binding.store import BindingStore
    from renkei import db

    config = RegistryBindingConfig.load(config_path)
    if config.card_ca_dir is None:
        raise SystemExit(f"{config_path}: no card CA folder")
    store = BindingStore(db.create_engine(config.database_url, schema=config.database_schema))
    return config, store


def _issue(args: argparse.Namespace) -> int:
    from registry_binding.cards import CardCa, id_bases, issue_cards
    from registry_binding.sources import open_source

    config, store = _binding_store(args.registry_config)
    try:
        ca = CardCa.load(config.card_ca_dir)
        source = open_source(config.resident_source, config.resident_source_options)
        try:
            bases = id_bases(source, args.resident)
        finally:
            source.close()
        unknown = [code for code in args.resident if code not in bases]
        if unknown:
            print(f"renkei cards issue: not current residents: {unknown}", file=sys.stderr)
            return 1
        for issued in issue_cards(store, ca, args.resident, args.out, id_basis=bases):
            print(f"{issued.resident_code}\t{issued.serial}\t{issued.cert_file}\t{issued.key_file}")
    finally:
        store.engine.dispose()
    return 0


def _revoke(args: argparse.Namespace) -> int:
    from registry_binding.cards import CardCa, revoke_card

    config, store = _binding_store(args.registry_config)
    try:
        ca = CardCa.load(config.card_ca_dir)
        try:
            crl = revoke_card(store, ca, args.serial)
        except KeyError as err:
            print(f"renkei cards revoke: {err.args[0]}", file=sys.stderr)
            return 1
        print(f"revoked {args.serial}; {crl}")
    finally:
        store.engine.dispose()
    return 0


def run(args: argparse.Namespace) -> int:
    if args.command == "portal":
        from portal.bootstrap import serve

        asyncio.run(serve(args.config, args.port_file))
        return 0
    if args.action == "issue":
        return _issue(args)
    return _revoke(args)
