"""Run the mocked JSON-lines legacy records system as its own process.

    python -m legacy_stubs.jsonl_records --records FILE [--host 127.0.0.1] [--port 0]
        [--port-file PATH] [--delay-ms N] [--drop] [--garbage]

With ``--port-file`` the bound port is written there (atomically, as decimal
text and a newline) once the server listens; a stale file is removed first.
SIGTERM or SIGINT stops it cleanly with exit code 0. Exit code 2 means bad
arguments or an unreadable records file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from renkei import logs
from renkei.files import atomic_write

from .protocol import MAX_DELAY_MS
from .server import Faults, serve
from .store import RecordStore

logger = logging.getLogger("legacy_stubs.jsonl_records")


def _delay_ms(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not 0 <= value <= MAX_DELAY_MS:
        raise argparse.ArgumentTypeError(f"must be from 0 to {MAX_DELAY_MS}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("must be from 0 to 65535")
    return value


def build_parser(
    prog: str | None = "python -m legacy_stubs.jsonl_records",
) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Mocked legacy agency records system speaking JSON lines over TCP.",
    )
    parser.add_argument("--records", required=True, type=Path, help="records JSON file")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=_port, default=0, help="port to bind; 0 picks a free one")
    parser.add_argument("--port-file", type=Path, help="write the bound port here once listening")
    parser.add_argument("--delay-ms", type=_delay_ms, default=0, help="delay every lookup")
    parser.add_argument("--drop", action="store_true", help="drop the connection on lookups")
    parser.add_argument("--garbage", action="store_true", help="answer lookups with non-JSON")
    parser.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging level (default INFO)",
    )
    parser.add_argument("--party", default="legacy-jsonl", help="party name in the logs")
    return parser


async def run(
    host: str,
    port: int,
    store: RecordStore,
    faults: Faults,
    port_file: Path | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT (or cancellation)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    handled: list[signal.Signals] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        # Only possible in the main thread; elsewhere the caller stops us by cancelling.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)

    def ready(bound: int) -> None:
        if port_file is not None:
            atomic_write(port_file, f"{bound}\n".encode("ascii"))
        logs.event(logger, "ready", host=host, port=bound, port_file=str(port_file or ""))

    server = asyncio.create_task(serve(host, port, store, faults, ready))
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({server, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (server, stopping):
            task.cancel()
        await asyncio.gather(server, stopping, return_exceptions=True)
        for sig in handled:
            loop.remove_signal_handler(sig)
    if server.done() and not server.cancelled():
        failure = server.exception()
        if failure is not None:
            raise failure
    logs.event(logger, "exiting", signal_received=stop.is_set())


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.configure(args.party, args.log_level)
    try:
        store = RecordStore.from_file(args.records)
    except (OSError, ValueError) as exc:
        print(f"error: cannot load records: {exc}", file=sys.stderr)
        return 2
    if args.port_file is not None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(args.port_file)
    faults = Faults(delay_ms=args.delay_ms, drop=args.drop, garbage=args.garbage)
    try:
        asyncio.run(run(args.host, args.port, store, faults, args.port_file))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
