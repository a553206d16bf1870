"""``renkei registry``: fill, inspect and change the mocked resident register.

    generate --database-url URL --count N --seed S
    show RESIDENT_CODE --database-url URL
    changes --database-url URL [--since SEQ] [--limit N]
    simulate --database-url URL --seed S --count N

``--database-url`` is any SQLAlchemy URL (``sqlite:///registry.db``,
``postgresql+psycopg://...``). Exit codes: 0 done, 1 failed (unknown resident,
database error, register not empty), 2 bad arguments.

To mount it under another parser: ``configure_parser(sub.add_parser("registry"))``
and then ``run(args)``; or call ``main(argv)`` with the remaining arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from renkei import db
from renkei.errors import InvalidArgument, NotFound

from . import resident_code
from .population import load
from .simulate import simulate_changes
from .store import RegistryStore


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def _positive(text: str) -> int:
    value = _non_negative(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def configure_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the registry subcommands to ``parser`` (its own or one the caller mounted)."""
    sub = parser.add_subparsers(dest="registry_command", required=True, metavar="COMMAND")

    def url(p: argparse.ArgumentParser) -> None:
        p.add_argument("--database-url", required=True, help="SQLAlchemy URL of the register")

    p = sub.add_parser("generate", help="fill an empty register with a synthetic population")
    url(p)
    p.add_argument("--count", type=_positive, required=True, help="how many residents")
    p.add_argument("--seed", type=int, required=True, help="same seed, same population")

    p = sub.add_parser("show", help="a resident's current facts and history, as JSON")
    p.add_argument("resident_code", metavar="RESIDENT_CODE")
    url(p)

    p = sub.add_parser("changes", help="the change feed after a seq, as JSON lines")
    url(p)
    p.add_argument("--since", type=_non_negative, default=0, help="last seq already read")
    p.add_argument("--limit", type=_positive, default=1000, help="at most this many entries")

    p = sub.add_parser("simulate", help="record random moves, marriages, deaths, births")
    url(p)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--count", type=_non_negative, required=True, help="how many changes")
    return parser


def build_parser(prog: str = "renkei registry") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="The mocked resident register (Juki-net)."
    )
    return configure_parser(parser)


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Carry out parsed arguments; the exit code."""
    try:
        if args.registry_command == "show":
            # Refuse a malformed code before touching (or creating) a database.
            resident_code.validate(args.resident_code)
        engine = db.create_engine(args.database_url)
        try:
            return _COMMANDS[args.registry_command](RegistryStore(engine), args)
        finally:
            engine.dispose()
    except InvalidArgument as err:
        print(f"error: {err.message}", file=sys.stderr)
        return 2
    except NotFound as err:
        print(f"error: {err.message}", file=sys.stderr)
        return 1
    except sa.exc.ArgumentError as err:
        print(f"error: bad --database-url: {err}", file=sys.stderr)
        return 2
    except sa.exc.SQLAlchemyError as err:
        print(f"error: database: {err}", file=sys.stderr)
        return 1


def _generate(store: RegistryStore, args: argparse.Namespace) -> int:
    existing = store.count()
    if existing:
        # A second population would collide with the first on codes at random.
        print(f"error: the register already holds {existing} residents", file=sys.stderr)
        return 1
    console = Console(stderr=True)
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    started = time.perf_counter()
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("residents", total=args.count)
        stored = load(store, args.seed, args.count, on_batch=lambda n: progress.advance(task, n))
    elapsed = time.perf_counter() - started
    print(f"generated {stored} residents in {elapsed:.1f} s (seed {args.seed})")
    return 0


def _show(store: RegistryStore, args: argparse.Namespace) -> int:
    code = args.resident_code
    resident = store.get(code)
    versions = store.history(code)  # NotFound for a code nobody ever had
    out: dict[str, Any] = {
        "resident": None if resident is None else resident.to_dict(),
        "history": [v.to_dict() for v in versions],
    }
    if resident is None:
        out["current_code"] = versions[-1].resident_code
    print(json.dumps(out, ensure_ascii=False, indent=2))
    return 0


def _changes(store: RegistryStore, args: argparse.Namespace) -> int:
    for change in store.changes_since(args.since, args.limit):
        print(json.dumps(change.to_dict(), ensure_ascii=False))
    return 0


def _simulate(store: RegistryStore, args: argparse.Namespace) -> int:
    made = simulate_changes(store, args.seed, args.count)
    kinds: dict[str, int] = {}
    for change in made:
        kinds[change.kind] = kinds.get(change.kind, 0) + 1
    span = f" (seq {made[0].seq}-{made[-1].seq})" if made else ""
    summary = ", ".join(f"{kind} {n}" for kind, n in sorted(kinds.items()))
    print(f"recorded {len(made)} changes{span}" + (f": {summary}" if summary else ""))
    return 0


_COMMANDS = {
    "generate": _generate,
    "show": _show,
    "changes": _changes,
    "simulate": _simulate,
}
