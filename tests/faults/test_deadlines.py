"""Short deadlines (5 to 50 ms) under load, mixed with ordinary ones.

A call whose deadline leaves a hop no time is refused DEADLINE_TOO_SHORT; one
that runs out on the way is refused by the hop that noticed (QUERY_TIMEOUT,
HUB_DEADLINE_EXCEEDED, PROVIDER_DEADLINE_EXCEEDED, LEGACY_TIMEOUT), or, at the
very last moment, by the caller's own gRPC deadline (bare DEADLINE_EXCEEDED).
Every answer comes within its deadline plus 50 ms.
"""

from __future__ import annotations

from support.faults import Load, World, check, outcomes

SHORT = (0.005, 0.01, 0.02, 0.03, 0.04, 0.05)


def deadline(n: int) -> float:
    return 1.5 if n % 7 == 0 else SHORT[n % len(SHORT)]


def test_short_deadlines_under_load(world: World) -> None:
    with Load(world, deadline=deadline, max_calls=600) as load:
        load.wait_calls(600, timeout=40)
    print(outcomes(load.answers))
    check(world, load)
