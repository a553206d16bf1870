"""``python -m ops.fuzz --grpc N --mappers M --seed S [--time-limit SECONDS]``.

Prints a table per part; exits 1 when any input broke a contract, each such
input written to ``--corpus`` (replay: ``python -m ops.fuzz --replay FILE``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

from ops.fuzz.report import Failure, Tally, render, write_corpus


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.fuzz", description=__doc__)
    parser.add_argument("--grpc", type=int, default=2000, help="gRPC inputs in all (0: none)")
    parser.add_argument("--mappers", type=int, default=20000, help="mapper inputs (0: none)")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--time-limit", type=float, default=None, help="stop after SECONDS")
    parser.add_argument("--deadline", type=float, default=5.0, help="per gRPC call, seconds")
    parser.add_argument("--only", default=None, help="just the RPCs whose name holds this")
    parser.add_argument("--corpus", type=Path, default=Path("fuzz-state/corpus"))
    parser.add_argument("--replay", type=Path, nargs="*", default=None, help="corpus files")
    args = parser.parse_args(argv)
    # grpc core's INFO lines (a GOAWAY as each server stops) are noise under the table.
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    console = Console(width=160)
    if args.replay is not None:
        return replay_files(args.replay, console)
    began = time.monotonic()
    stop_at = None if args.time_limit is None else began + args.time_limit
    # With both parts under one limit the mappers (the faster part) get a quarter of it.
    mappers_stop = stop_at
    if stop_at is not None and args.grpc:
        mappers_stop = began + args.time_limit / 4
    failures = 0
    if args.mappers:
        from ops.fuzz.mapper_fuzz import fuzz_mappers

        tally = Tally()
        started = time.monotonic()
        fuzz_mappers(args.mappers, args.seed, tally, stop_at=mappers_stop)
        render("mappers and legacy clients", tally, console, seconds=time.monotonic() - started)
        failures += _keep(tally, args.corpus, console)
    if args.grpc:
        from ops.fuzz.grpc_fuzz import fuzz_grpc
        from ops.fuzz.world import start_world

        tally = Tally()
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="renkei-fuzz-") as root:
            world = start_world(Path(root))
            try:
                fuzz_grpc(
                    world,
                    args.grpc,
                    args.seed,
                    tally,
                    deadline=args.deadline,
                    stop_at=stop_at,
                    only=args.only,
                )
            finally:
                world.stop()
        render("gRPC", tally, console, seconds=time.monotonic() - started)
        failures += _keep(tally, args.corpus, console)
    if failures:
        console.print(f"[red]{failures} failing inputs[/red], kept in {args.corpus}/")
        return 1
    console.print("no input broke a contract")
    return 0


def _keep(tally: Tally, corpus: Path, console: Console) -> int:
    if tally.slow:
        slow = [Failure(c["method"], "slow", c) for c in tally.slow[:50]]
        write_corpus(slow, corpus / "slow")
        console.print(f"  {len(tally.slow)} slow inputs (within the contract) in {corpus}/slow/")
    if tally.failures:
        for path in write_corpus(tally.failures, corpus):
            console.print(f"  kept {path}")
    return len(tally.failures)


def replay_files(paths: list[Path], console: Console) -> int:
    from ops.fuzz.replay import replay_paths

    problems = replay_paths(paths)
    for path, problem in problems.items():
        console.print(f"{path}: {problem or 'keeps the contract'}")
    return 1 if any(problems.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
