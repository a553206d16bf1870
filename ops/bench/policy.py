"""Approval decisions per second and their p99, in process (``make bench-policy``).

The full Annex Table 2 as compiled by the hub and the full agency registry:
requests drawn from the table's own rules (lawful) and as many unlawful ones
(a reversed direction, a provider outside the class, an unlisted kind).
"""

from __future__ import annotations

import argparse
import random
import time

from hdrh.histogram import HdrHistogram
from rich.console import Console
from rich.table import Table

from hub_server.agencies import AgencyRegistry
from hub_server.annex import compile_annex
from hub_server.directory import Agency


def requests(count: int, seed: int = 3) -> list[tuple[Agency, Agency, str, str]]:
    compiled = compile_annex()
    registry = AgencyRegistry.load()
    agencies = [a.to_agency() for a in registry]
    by_class: dict[str, list[Agency]] = {}
    for agency in agencies:
        for name in agency.classes:
            by_class.setdefault(name, []).append(agency)
    rng = random.Random(seed)
    out = []
    for i in range(count):
        item = rng.choice(compiled.items)
        provision = rng.choice(item.provisions)
        requester = rng.choice(by_class[rng.choice(sorted(item.requester_classes))])
        provider = rng.choice(by_class[rng.choice(sorted(provision.provider_classes))])
        kind = rng.choice(sorted(provision.info_kinds))
        if i % 2:  # an unlawful variant
            match i % 6:
                case 1:
                    requester, provider = provider, requester
                case 3:
                    provider = rng.choice(agencies)
                case _:
                    kind = "存在しない関係情報"
        out.append((requester, provider, kind, item.item))
    return out


def run(count: int = 200_000) -> dict[str, float]:
    policy = compile_annex().policy()
    work = requests(count)
    histogram = HdrHistogram(1, 10_000_000, 3)  # nanoseconds
    approved = 0
    clock = time.perf_counter_ns
    started = clock()
    for requester, provider, kind, item in work:
        t0 = clock()
        approved += policy.decide(requester, provider, kind, item).approved
        histogram.record_value(clock() - t0)
    elapsed = (clock() - started) / 1e9
    return {
        "decisions": count,
        "approved": approved,
        "per_second": count / elapsed,
        "p50_us": histogram.get_value_at_percentile(50) / 1000,
        "p99_us": histogram.get_value_at_percentile(99) / 1000,
        "max_us": histogram.get_max_value() / 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=200_000)
    result = run(parser.parse_args().count)
    table = Table(
        "decisions",
        "approved",
        "per second",
        "p50 µs",
        "p99 µs",
        "max µs",
        title="approval decisions, full Annex Table 2 and registry, in process",
    )
    table.add_row(
        f"{result['decisions']:,.0f}",
        f"{result['approved']:,.0f}",
        f"{result['per_second']:,.0f}",
        f"{result['p50_us']:.2f}",
        f"{result['p99_us']:.2f}",
        f"{result['max_us']:.1f}",
    )
    Console(width=120).print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
