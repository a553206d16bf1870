"""SIGTERM of the hub and of each communication server under load: a graceful stop.

The server turns its health to NOT_SERVING and stops with a grace period: calls
in flight are answered, new ones refused (or, at the requester's own server, not
accepted: a bare status from the caller's gRPC stack). It exits 0 and, the
hub, leaves no row for its next start to close as INTERRUPTED/HUB_RESTARTED.
"""

from __future__ import annotations

import signal

import pytest
from support.faults import CITY, PENSION, Answer, Load, World, check


def not_accepted(a: Answer) -> bool:
    """A call the stopping server's gRPC core did not take: refused (UNAVAILABLE) or,
    when it arrived just as the stop began and no handler had picked it up yet, reset
    (a bare CANCELLED: gRPC's own behaviour; no handler ran, so no share has a row)."""
    return a.code in ("UNAVAILABLE", "CANCELLED")


@pytest.mark.parametrize("party", ["hub", f"comm-{CITY}", f"comm-{PENSION}"])
def test_sigterm_under_load(world: World, party: str) -> None:
    with Load(world) as load:
        load.wait_calls(30)
        assert world.kill(party, signal.SIGTERM) == 0, f"{party} did not exit 0 on SIGTERM"
        load.wait_calls(10, timeout=1.0)
        world.start(party)
        world.wait_answering()
        load.wait_calls(30)
    check(world, load, transport_ok=not_accepted if party == f"comm-{CITY}" else None)
    restarted = [
        r.serial
        for r in world.hub_rows()
        if r.serial > load.since.hub_serial and r.reason == "HUB_RESTARTED"
    ]
    assert not restarted, f"a graceful stop left rows for the next start to close: {restarted}"
