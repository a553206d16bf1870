"""Starting the parties as separate processes on loopback, and stopping every one of them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType


class StartupError(RuntimeError):
    pass


@dataclass
class Started:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    port_file: Path


@dataclass
class ProcessGroup:
    """Children started here are stopped here: SIGTERM, a grace period, then SIGKILL."""

    log_dir: Path
    children: list[Started] = field(default_factory=list)

    def start(self, name: str, argv: Sequence[str], *, port_file_arg: bool = True) -> Started:
        """Start ``argv`` plus ``--port-file PATH`` (unless ``port_file_arg`` is False:
        a program of elsewhere, such as nginx, whose readiness the caller checks)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        port_file = self.log_dir / f"{name}.port"
        port_file.unlink(missing_ok=True)
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [*argv, "--port-file", str(port_file)] if port_file_arg else list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        child = Started(name, process, log_path, port_file)
        self.children.append(child)
        return child

    def wait_ready(self, child: Started, timeout: float = 20.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if child.process.poll() is not None:
                raise StartupError(
                    f"{child.name} exited with {child.process.returncode}; "
                    f"last log lines:\n{tail(child.log_path)}"
                )
            try:
                text = child.port_file.read_text().strip()
            except FileNotFoundError:
                text = ""
            if text:
                return int(text)
            time.sleep(0.02)
        raise StartupError(f"{child.name} not ready after {timeout:.0f} s:\n{tail(child.log_path)}")

    def stop_all(self, grace: float = 10.0) -> dict[str, int]:
        """Exit codes by name, after every child has exited."""
        for child in self.children:
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        codes: dict[str, int] = {}
        for child in self.children:
            try:
                codes[child.name] = child.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
                codes[child.name] = child.process.wait()
        self.children.clear()
        return codes

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]
