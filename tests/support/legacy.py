"""Starting the four legacy stubs as real processes, and checking legacy errors."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from renkei.errors import RenkeiError
from support.polling import wait_for

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class StubProcess:
    proc: subprocess.Popen[bytes]
    log: Path
    port: int = 0
    folder: Path | None = None

    def stop(self) -> None:
        """SIGTERM, then require a clean exit (SIGKILL only if it hangs)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        assert self.proc.returncode == 0, self.log.read_text(errors="replace")


def start_stub(module: str, tmp: Path, *args: str, folder: Path | None = None) -> StubProcess:
    """``python -m legacy_stubs.<module> ...``; returns once it listens (or watches ``folder``)."""
    log = tmp / f"{module}.log"
    port_file = tmp / f"{module}.port"
    extra = ["--folder", str(folder)] if folder else ["--port", "0", "--port-file", str(port_file)]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", f"legacy_stubs.{module}", *extra, *args],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    stub = StubProcess(proc, log, folder=folder)

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"the {module} stub exited with {proc.returncode}")
        return b'"msg": "ready"' in log.read_bytes()

    try:
        wait_for(ready, timeout=15, every=0.02, what=f"the {module} stub to log ready")
    except AssertionError as err:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        raise AssertionError(f"{err}: {log.read_text(errors='replace')}") from None
    if folder is None:
        stub.port = int(port_file.read_text())
    return stub


def run(scenario: Callable[[], Awaitable[T]], limit: float = 15.0) -> T:
    """Run one async scenario on a fresh loop, bounded in time."""

    async def bounded() -> T:
        async with asyncio.timeout(limit):
            return await scenario()

    return asyncio.run(bounded())


async def refused(call: Awaitable[Any], error: type[RenkeiError], reason: str) -> RenkeiError:
    """Await ``call``; it must fail with exactly this error class and reason."""
    with pytest.raises(RenkeiError) as caught:
        await call
    assert isinstance(caught.value, error), repr(caught.value)
    assert caught.value.reason == reason, repr(caught.value)
    return caught.value


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
