"""The fault suite (issue 12): `make test-faults`; `make test` leaves this folder out.

Every test here carries the ``faults`` marker. One world per database for the
whole run: SQLite files, and PostgreSQL when it answers at 127.0.0.1:5432 (a
schema per party, dropped afterwards). Each scenario checks the rows written
since it began, and begins with every party running and no fault set.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest
from support.databases import POSTGRES_URL, drop_schemas, postgres_reachable
from support.faults import World, running_world

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test here is a fault test; one marked ``postgres_only`` (a fault SQLite cannot
    have, such as a lost network path) is not collected for SQLite at all."""
    kept, dropped = [], []
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.faults)
            callspec = getattr(item, "callspec", None)
            backend = callspec.params.get("backend_world") if callspec else None
            if item.get_closest_marker("postgres_only") and backend == "sqlite":
                dropped.append(item)
                continue
        kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def backend_world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    url = None
    if request.param == "postgres":
        if not postgres_reachable():
            pytest.skip("PostgreSQL does not answer at 127.0.0.1:5432")
        url = POSTGRES_URL
    with running_world(tmp_path_factory.mktemp(f"faults-{request.param}"), url) as w:
        try:
            yield w
        finally:
            if url is not None:
                w.group.stop_all()
                drop_schemas(w.schema_prefix)


@pytest.fixture
def world(backend_world: World) -> World:
    backend_world.heal()
    return backend_world


# Each scenario's own bound: a hang fails the test here instead of stalling CI.
SCENARIO_SECONDS = 90


@pytest.fixture(autouse=True)
def bounded() -> Iterator[None]:
    def expired(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError(f"fault scenario still running after {SCENARIO_SECONDS} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(SCENARIO_SECONDS)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
