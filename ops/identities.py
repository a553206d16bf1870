"""Setting up the parties that issue identities, for the demo, the benchmark and the tests.

The registry gets the demo's residents and a synthetic population; the
numbering agency then issues their Numbers when asked by the registry (over
mutual TLS, as the registry's own service certificate); each notice goes to
a folder standing for the post to the holder (R10).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from legacy_stubs.registry.population import generate
from legacy_stubs.registry.store import RegistryStore
from ops.demo_data import Resident
from ops.deploy import NUMBERING, REGISTRY, Layout, registry_engine
from renkei.files import atomic_write
from renkei.grpcutil.client import channel as channel_to
from renkei.numbering.v1 import numbering_pb2, numbering_pb2_grpc


def seed_registry(layout: Layout, people: Sequence[Resident], extra: int, seed: int) -> int:
    """The demo's residents and ``extra`` synthetic ones; how many in all."""
    store = RegistryStore(registry_engine(layout))
    taken = {p.resident_code for p in people}
    synthetic = [r for r in generate(seed, extra + len(people)) if r.resident_code not in taken]
    count = store.add_many([p.registry_entry(n) for n, p in enumerate(people)] + synthetic[:extra])
    store.engine.dispose()
    return count


async def issue_numbers(
    layout: Layout, numbering_port: int, resident_codes: Sequence[str], notices: Path
) -> dict[str, str]:
    """Resident code -> Number, asked of the numbering agency as the registry; notices filed."""
    files = layout.pki.service(REGISTRY)
    target = f"127.0.0.1:{numbering_port}"
    numbers: dict[str, str] = {}
    async with channel_to(target, files, peer=f"service:{NUMBERING}") as channel:
        stub = numbering_pb2_grpc.NumberingServiceStub(channel)
        for code in resident_codes:
            response = await stub.IssueNumber(
                numbering_pb2.IssueNumberRequest(resident_code=code), timeout=10
            )
            numbers[code] = response.number
            atomic_write(notices / f"{code}.html", bytes(response.notice_html))
    return numbers
