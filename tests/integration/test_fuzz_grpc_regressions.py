"""Every gRPC input `make fuzz` ever found breaking the contract (tests/fuzz_corpus/),
sent again to the real servers: each must now answer within the contract."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ops.fuzz import grpc_fuzz
from ops.fuzz.replay import load
from ops.fuzz.world import World, start_world

CORPUS = Path(__file__).resolve().parents[1] / "fuzz_corpus"
CASES = sorted(CORPUS.glob("grpc-*.json"))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    started = start_world(tmp_path_factory.mktemp("fuzz-replay"))
    yield started
    started.stop()


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.name)
def test_a_kept_grpc_input_keeps_the_contract(world: World, path: Path) -> None:
    assert grpc_fuzz.replay(world, load(path)) is None
