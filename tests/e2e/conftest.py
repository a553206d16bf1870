from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.aio import LoopThread
from support.topology import Topology, start_topology


@pytest.fixture(scope="module")
def topo(loop: LoopThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    topology = loop.run(start_topology(Path(tmp_path_factory.mktemp("e2e"))))
    yield topology
    loop.run(topology.stop())
