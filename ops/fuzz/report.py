"""What a fuzz run saw: inputs and outcomes per target, failures kept as replayable cases."""

from __future__ import annotations

import base64
import hashlib
import json
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def pack(data: bytes) -> str:
    """Bytes for a corpus file: zlib, then base64 (a 100k-entry request stays small)."""
    return base64.b64encode(zlib.compress(data, 9)).decode("ascii")


def unpack(text: str) -> bytes:
    return zlib.decompress(base64.b64decode(text))


@dataclass
class Failure:
    target: str
    problem: str
    case: dict[str, Any]


@dataclass
class Tally:
    """Inputs sent and outcomes seen per target (an RPC, a mapper and direction...)."""

    inputs: Counter[str] = field(default_factory=Counter)
    outcomes: dict[str, Counter[str]] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    # The slowest inputs that kept the contract: (seconds, target, how made), a hint, no failure.
    slowest: list[tuple[float, str, str]] = field(default_factory=list)
    # Inputs within the contract but slow, as corpus cases (written to <corpus>/slow/).
    slow: list[dict[str, Any]] = field(default_factory=list)

    def saw(self, target: str, outcome: str) -> None:
        self.inputs[target] += 1
        self.outcomes.setdefault(target, Counter())[outcome] += 1

    def fail(self, target: str, problem: str, case: dict[str, Any]) -> None:
        self.failures.append(Failure(target, problem, {**case, "problem": problem}))

    def took(self, seconds: float, target: str, how: str) -> None:
        if len(self.slowest) < 5 or seconds > self.slowest[-1][0]:
            self.slowest = sorted([*self.slowest, (seconds, target, how)], reverse=True)[:5]

    @property
    def total(self) -> int:
        return sum(self.inputs.values())


def write_corpus(failures: list[Failure], folder: Path) -> list[Path]:
    """Each failing input as ``<folder>/<kind>-<hash>.json``, replayable by ``ops.fuzz.replay``."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for failure in failures:
        text = json.dumps(failure.case, ensure_ascii=False, sort_keys=True, indent=1)
        name = hashlib.sha256(text.encode()).hexdigest()[:16]
        path = folder / f"{failure.case['kind']}-{name}.json"
        path.write_text(text + "\n", encoding="utf-8")
        written.append(path)
    return written


def render(title: str, tally: Tally, console: Console, *, seconds: float) -> None:
    table = Table(title=f"{title}: {tally.total:,} inputs in {seconds:.1f} s")
    table.add_column("target")
    table.add_column("inputs", justify="right")
    table.add_column("outcomes (most common first)")
    table.add_column("failures", justify="right")
    failed = Counter(f.target for f in tally.failures)
    for target in sorted(tally.inputs):
        seen = tally.outcomes.get(target, Counter()).most_common()
        shown = ", ".join(f"{name} {count}" for name, count in seen[:6])
        if len(seen) > 6:
            shown += f", +{len(seen) - 6} more"
        table.add_row(target, f"{tally.inputs[target]:,}", shown, str(failed.get(target, 0)))
    console.print(table)
    if tally.slowest:
        shown = "; ".join(f"{t} {s:.2f} s ({how})" for s, t, how in tally.slowest)
        console.print(f"slowest inputs: {shown}", markup=False)
    for failure in tally.failures[:20]:
        console.print(f"[red]FAIL[/red] {failure.target}: {failure.problem}", markup=True)
    if len(tally.failures) > 20:
        console.print(f"... and {len(tally.failures) - 20} more failures")
