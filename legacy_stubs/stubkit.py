"""What the four format stubs share: faults, data-file options, and running as a process.

Each stub is ``python -m legacy_stubs.<name>`` with the options ``add_common``
adds; its data comes from ``--data FILE`` (a JSON file the stub wrote with
``--write-data FILE``) or is generated from ``--seed`` and ``--generated``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar

from renkei import logs
from renkei.files import atomic_write

MAX_DELAY_MS: Final = 10 * 60 * 1000
T = TypeVar("T")


@dataclass
class Faults:
    """Faults injected into every data request from now on (never into fault control)."""

    delay_ms: int = 0
    drop: bool = False
    garbage: bool = False

    def update(self, body: Mapping[str, Any]) -> None:
        """Set the fields present in ``body`` (a JSON object); ValueError names a bad one."""
        unknown = set(body) - {"delay_ms", "drop", "garbage"}
        if unknown:
            raise ValueError(f"unknown fault field {sorted(unknown)[0]!r}")
        delay = body.get("delay_ms", self.delay_ms)
        if isinstance(delay, bool) or not isinstance(delay, int) or not 0 <= delay <= MAX_DELAY_MS:
            raise ValueError(f"delay_ms: must be an integer from 0 to {MAX_DELAY_MS}")
        drop = body.get("drop", self.drop)
        garbage = body.get("garbage", self.garbage)
        if not isinstance(drop, bool):
            raise ValueError("drop: must be true or false")
        if not isinstance(garbage, bool):
            raise ValueError("garbage: must be true or false")
        self.delay_ms, self.drop, self.garbage = delay, drop, garbage

    def as_json(self) -> dict[str, Any]:
        return {"delay_ms": self.delay_ms, "drop": self.drop, "garbage": self.garbage}


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def _delay_ms(text: str) -> int:
    value = _non_negative(text)
    if value > MAX_DELAY_MS:
        raise argparse.ArgumentTypeError(f"must be from 0 to {MAX_DELAY_MS}")
    return value


def _port(text: str) -> int:
    value = _non_negative(text)
    if value > 65535:
        raise argparse.ArgumentTypeError("must be from 0 to 65535")
    return value


def add_common(parser: argparse.ArgumentParser, *, network: bool = True) -> None:
    if network:
        parser.add_argument("--host", default="127.0.0.1", help="address to bind")
        parser.add_argument("--port", type=_port, default=0, help="port; 0 picks a free one")
        parser.add_argument("--port-file", type=Path, help="write the bound port here")
    parser.add_argument("--data", type=Path, help="JSON data file (see --write-data)")
    parser.add_argument("--seed", type=int, default=2026, help="seed of generated data")
    parser.add_argument(
        "--generated", type=_non_negative, default=20, help="generated people besides the named"
    )
    parser.add_argument("--write-data", type=Path, help="write the data as JSON here and exit")
    parser.add_argument("--delay-ms", type=_delay_ms, default=0, help="slow fault")
    parser.add_argument("--drop", action="store_true", help="drop fault")
    parser.add_argument("--garbage", action="store_true", help="garbage fault")
    parser.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
    )


def faults_from_args(args: argparse.Namespace) -> Faults:
    return Faults(delay_ms=args.delay_ms, drop=args.drop, garbage=args.garbage)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a UTF-8 JSON file: {exc}") from None


def write_json(path: Path, data: Any) -> None:
    text = json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True) + "\n"
    atomic_write(path, text.encode("utf-8"))


async def run_until_signalled(
    start: Callable[[], Awaitable[int | None]],
    stop: Callable[[], Awaitable[None]],
    logger: logging.Logger,
    port_file: Path | None = None,
) -> None:
    """Start, write the port file, wait for SIGTERM/SIGINT (or cancellation), stop."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    handled: list[signal.Signals] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stopping.set)
            handled.append(sig)
    if port_file is not None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(port_file)
    try:
        port = await start()
        if port_file is not None and port is not None:
            atomic_write(port_file, f"{port}\n".encode("ascii"))
        logs.event(logger, "ready", port=port, port_file=str(port_file or ""))
        await stopping.wait()
    finally:
        await stop()
        for sig in handled:
            loop.remove_signal_handler(sig)
    logs.event(logger, "exiting")


def dumps_compact(body: Any) -> str:
    """JSON as the modern system writes it: UTF-8 text, no ASCII escapes, no spaces."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


class StubServer(Protocol):
    async def start(self) -> int | None: ...
    async def stop(self) -> None: ...


def main(
    args: argparse.Namespace,
    *,
    log_name: str,
    logger: logging.Logger,
    load: Callable[[Any], T],
    generate: Callable[[int, int], T],
    dump: Callable[[T], Any],
    make_server: Callable[[T, Faults, argparse.Namespace], StubServer],
) -> int:
    """Load or generate the data, maybe write it out, then serve until signalled.

    Exit codes: 0 after a clean stop, 1 when the server cannot start (a port in
    use, say), 2 when the data cannot be loaded.
    """
    logs.configure(log_name, args.log_level)
    try:
        data = load(read_json(args.data)) if args.data else generate(args.seed, args.generated)
    except (OSError, ValueError) as exc:
        print(f"error: cannot load data: {exc}", file=sys.stderr)
        return 2
    if args.write_data:
        write_json(args.write_data, dump(data))
        return 0
    server = make_server(data, faults_from_args(args), args)
    try:
        asyncio.run(
            run_until_signalled(server.start, server.stop, logger, getattr(args, "port_file", None))
        )
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
