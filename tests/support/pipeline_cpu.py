"""CPU per linkage of the requester's and provider's pipelines, in one process, on fakes.

A real ``Requester`` asks a real ``Provider`` through the fake hub of
``support.exchange_fakes`` (no socket, no database): what the comm servers'
own Python code costs per single query, both sides together, free of the
machine's noise. Side by side (docs/benchmarks.md, "Before and after issue 13"):

    PYTHONPATH=$TREE:$TREE/tests .venv/bin/python tests/support/pipeline_cpu.py LABEL
"""

from __future__ import annotations

import asyncio
import sys
import time

from comm_server.requester.types import LocalQuery, Person
from support.exchange_fakes import ITEM, PENSION_INFO, STAFF, TERMINAL, Agencies


def ask() -> LocalQuery:
    return LocalQuery(
        provider_agency_id="pension",
        info_kind=PENSION_INFO,
        legal_basis_item=ITEM,
        purpose="benefit review",
        staff_id=STAFF,
        terminal_id=TERMINAL,
        persons=[Person("P-1", b"y=2025")],
        bulk=False,
    )


w = Agencies()


async def main(n: int) -> None:
    for _ in range(n):
        await w.requester.query(ask(), 3.0)


asyncio.run(main(300))
best = []
for _ in range(5):
    t = time.process_time()
    asyncio.run(main(3000))
    best.append((time.process_time() - t) / 3000 * 1e6)
print(sys.argv[1], " ".join(f"{b:.0f}" for b in best), "min", f"{min(best):.0f}")
