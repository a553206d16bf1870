"""Running a server process until SIGTERM/SIGINT, then shutting down gracefully."""

from __future__ import annotations

import asyncio
import os
import signal
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path


def write_port_file(path: Path, port: int) -> None:
    """Atomically, so a watcher never reads half a number."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        fh.write(f"{port}\n")
    os.replace(tmp, path)


async def run_until_signalled(
    start: Callable[[], Awaitable[int]],
    stop: Callable[[], Awaitable[None]],
    port_file: Path | None = None,
) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    port = await start()
    try:
        if port_file is not None:
            write_port_file(port_file, port)
        await stopping.wait()
    finally:
        await stop()
        if port_file is not None:
            port_file.unlink(missing_ok=True)  # noqa: ASYNC240  # once, at shutdown
