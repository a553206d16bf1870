"""kill -9 of the hub and of each communication server under load, then a restart.

Calls in flight when a party dies are refused (HUB_UNAVAILABLE, PROVIDER_UNAVAILABLE)
or, when the requester's own server dies, see the connection go (a bare
UNAVAILABLE from the caller's gRPC stack: nobody was left to answer). Whatever
was answered OK before is in every share; the hub closes the rows the dead
process left PENDING when it starts again.
"""

from __future__ import annotations

import time

from support.faults import CITY, PENSION, Answer, Load, World, check


def bare_unavailable(a: Answer) -> bool:
    return a.code == "UNAVAILABLE"


def test_hub_killed_under_load(world: World) -> None:
    with Load(world) as load:
        load.wait_calls(30)
        world.kill("hub")
        time.sleep(0.5)
        world.start("hub")
        world.wait_answering()
        load.wait_calls(30)
    check(world, load)


def test_requester_comm_killed_under_load(world: World) -> None:
    with Load(world) as load:
        load.wait_calls(30)
        world.kill(f"comm-{CITY}")
        time.sleep(0.5)
        world.start(f"comm-{CITY}")
        world.wait_answering()
        load.wait_calls(30)
    check(world, load, transport_ok=bare_unavailable, requester_rows_kept=False)


def test_provider_comm_killed_under_load(world: World) -> None:
    with Load(world) as load:
        load.wait_calls(30)
        world.kill(f"comm-{PENSION}")
        time.sleep(0.5)
        world.start(f"comm-{PENSION}")
        world.wait_answering()
        load.wait_calls(30)
    check(world, load)
