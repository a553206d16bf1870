"""The provider's legacy system stopped, slow past the answer timeout, answering garbage,
dropping the connection: the requester hears the provider's specific refusal, and the
provider's share has a row for each refused exchange under the hub's serial."""

from __future__ import annotations

import time

import pytest
from support.faults import ANSWER_TIMEOUT, PENSION, Load, World, check

LEGACY = f"legacy-{PENSION}"
FAULTS: dict[str, tuple[dict[str, int | bool], str]] = {
    "slow": ({"delay_ms": int(ANSWER_TIMEOUT * 1000) + 700}, "LEGACY_TIMEOUT"),
    "garbage": ({"garbage": True}, "LEGACY_GARBAGE"),
    "drop": ({"drop": True}, "LEGACY_UNAVAILABLE"),
}


def refused_rows_logged(world: World, load: Load, reason: str) -> None:
    """Each exchange refused for the legacy system has the provider's row with that reason."""
    refused = [a for a in load.answers if a.reason == reason]
    assert refused, f"no call was refused {reason}"
    assert all(a.serial for a in refused), "a provider's refusal carries the hub's serial"
    serials = {a.serial for a in refused if a.serial}
    logged = {r.serial for r in world.comm_rows(PENSION) if r.reason == reason}
    assert serials <= logged, f"no provider row for {sorted(serials - logged)}"


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_legacy_misbehaving_under_load(world: World, fault: str) -> None:
    faults, reason = FAULTS[fault]
    with Load(world) as load:
        load.wait_calls(20)
        world.legacy(PENSION, **faults)
        time.sleep(2.0)
        world.legacy(PENSION)
        world.wait_answering()
        load.wait_calls(20)
    check(world, load)
    refused_rows_logged(world, load, reason)


def test_legacy_stopped_under_load(world: World) -> None:
    with Load(world) as load:
        load.wait_calls(20)
        world.kill(LEGACY)
        time.sleep(1.0)
        world.start(LEGACY)
        world.wait_answering()
        load.wait_calls(20)
    check(world, load)
    refused_rows_logged(world, load, "LEGACY_UNAVAILABLE")
