"""Running a server process until SIGTERM/SIGINT, then shutting down gracefully."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

from renkei.files import atomic_write


def write_port_file(path: Path, port: int) -> None:
    """Atomically, so a watcher never reads half a number."""
    atomic_write(path, f"{port}\n".encode())


class Server(Protocol):
    @property
    def port(self) -> int: ...

    async def stop(self, grace: float | None = None) -> None: ...


async def serve_until_signalled(
    create: Callable[[], Awaitable[Server]], port_file: Path | None = None
) -> None:
    """Start a server, announce its port, wait for SIGTERM or SIGINT, stop it gracefully."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    server = await create()
    try:
        if port_file is not None:
            write_port_file(port_file, server.port)
        await stopping.wait()
    finally:
        await server.stop()
        if port_file is not None:
            port_file.unlink(missing_ok=True)  # noqa: ASYNC240  # once, at shutdown
