from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.aio import LoopThread
from support.topology import Topology, start_topology

from ops.deploy import Settings


@pytest.fixture(scope="module")
def topo(
    loop: LoopThread,
    database: tuple[str | None, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Topology]:
    url, prefix = database
    settings = Settings(
        answer_timeout_seconds=0.5,
        query_timeout_seconds=3.0,
        database_url=url,
        schema_prefix=prefix,
    )
    topology = loop.run(start_topology(tmp_path_factory.mktemp("topology"), settings))
    yield topology
    loop.run(topology.stop())
