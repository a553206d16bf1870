"""CPU per linkage at both communication servers and the hub, as deployed.

The fault suite's world (five processes on loopback over mutual TLS, from the
tree on PYTHONPATH), Query calls through the city's comm server to the pension
service, and each process's CPU read from /proc before and after. Side by side
(docs/benchmarks.md, "Before and after issue 13"), alternating trees:

    PYTHONPATH=$TREE:$TREE/tests .venv/bin/python tests/support/side_by_side_cpu.py \
        3000 16 out.json

Arguments: calls, calls in flight, the JSON to write. Bounded: it stops after
that many calls (and 300 unmeasured first); loopback only.
"""

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import grpc

from ops.bench.linkage import cpu_seconds
from support.faults import requester_stub, running_world

N, C, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
with tempfile.TemporaryDirectory() as d, running_world(Path(d), None) as w:
    pids = {n: w.pid(n) for n in w.running}

    async def run(n: int) -> int:
        async with w.channel() as ch:
            stub = requester_stub(ch)
            issued = errors = 0

            async def worker() -> None:
                nonlocal issued, errors
                while issued < n:
                    issued += 1
                    try:
                        await stub.Query(w.request(0), timeout=5)
                    except grpc.aio.AioRpcError:
                        errors += 1

            await asyncio.gather(*(worker() for _ in range(C)))
            return errors

    asyncio.run(run(300))
    before = {k: cpu_seconds(p) for k, p in pids.items()}
    t = time.perf_counter()
    errs = asyncio.run(run(N))
    el = time.perf_counter() - t
    after = {k: cpu_seconds(p) for k, p in pids.items()}
    res = {k: round((after[k] - before[k]) * 1000 / N, 4) for k in pids}
    Path(out).write_text(json.dumps({"cpu_ms": res, "errors": errs, "rate": N / el}))
    print(res, errs, N / el)
