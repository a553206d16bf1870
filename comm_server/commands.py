"""``renkei comm follow``, ``renkei comm facts`` and ``renkei comm bind-consent``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import sys
from pathlib import Path

from comm_server.config import CommConfig


def run(args: argparse.Namespace) -> int:
    config = CommConfig.load(args.config)
    if args.action == "facts":
        return _facts(config, args.local_person_id)
    if not config.registry_endpoint:
        print(
            f"renkei comm {args.action}: {args.config} sets no registry_endpoint", file=sys.stderr
        )
        return 2
    if args.action == "follow":
        return _follow(config, args.every)
    return _bind_consent(config, args.input, args.report)


def _follow(config: CommConfig, every: float | None) -> int:
    from comm_server.binding.feed import FollowReport, follow_agency

    def show(r: FollowReport) -> None:
        print(f"{r.entries} entries in {r.pages} pages applied; cursor {r.cursor or '-'}")

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends a --every loop: not an error
        asyncio.run(follow_agency(config, every=every, on_report=show))
    return 0


def _facts(config: CommConfig, local_ids: list[str]) -> int:
    from comm_server.binding.person_facts import PersonFactsStore
    from renkei import db

    engine = db.create_engine(config.database_url, schema=config.database_schema)
    store = PersonFactsStore(engine)
    missing = 0
    try:
        for local in local_ids:
            facts = store.facts_for(local)
            if facts is None:
                print(
                    f"{local}: no facts from the registry (not bound by the four facts, or"
                    " not followed yet)"
                )
                missing += 1
                continue
            state = f"deceased {facts.died_on}" if facts.deceased else "alive"
            print(
                f"{local}: municipality {facts.municipality_code} {facts.municipality};"
                f" {facts.name} ({facts.kana}), born {facts.birth_date}, sex {facts.sex};"
                f" {facts.address}; {state}; last change {facts.kind} {facts.effective_date}"
            )
    finally:
        engine.dispose()
    return 1 if missing else 0


def _bind_consent(config: CommConfig, input_path: Path, report_path: Path | None) -> int:
    from comm_server.binding.consent import bind_consents, parse_line

    items = []
    for n, line in enumerate(input_path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append(parse_line(line, f"{input_path}:{n}"))
        except ValueError as err:
            print(f"renkei comm bind-consent: {err}", file=sys.stderr)
            return 2
    report = asyncio.run(bind_consents(config, items))
    for out in report.lines:
        print(
            f"{out.local_person_id}: {out.result}: {out.detail} (attempt {out.attempt_id or '-'})"
        )
    counts = {
        k: report.count(k)
        for k in ("bound", "already_bound", "no_exact_match", "refused", "failed")
    }
    print(", ".join(f"{k.replace('_', ' ')} {v}" for k, v in counts.items()))
    if report_path is not None:
        report_path.write_text(
            json.dumps([dataclasses.asdict(x) for x in report.lines], ensure_ascii=False, indent=2),
            encoding="utf-8",
        )
    return 0
