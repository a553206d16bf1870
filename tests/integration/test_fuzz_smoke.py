"""`make fuzz` in small, inside the normal suite: a few hundred gRPC inputs spread over
every RPC of every server, and a few thousand mapper and legacy-client inputs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from ops.fuzz import grpc_fuzz
from ops.fuzz.__main__ import main
from ops.fuzz.report import Tally
from ops.fuzz.world import World, start_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    started = start_world(tmp_path_factory.mktemp("fuzz-world"))
    yield started
    started.stop()


def test_every_rpc_of_every_service_has_a_server() -> None:
    rpcs = {(t.server, m.full_name) for t in grpc_fuzz.targets() for m in t.methods()}
    served = {m.full_name for s in grpc_fuzz.services() for m in s.methods}
    assert {name for _, name in rpcs} == served
    assert len(rpcs) >= 40


def test_a_short_grpc_run_is_clean(world: World) -> None:
    tally = Tally()
    rpcs = sum(len(t.methods()) for t in grpc_fuzz.targets())
    grpc_fuzz.fuzz_grpc(world, rpcs * 6, 12, tally, batch=100)
    assert [f"{f.target}: {f.problem}" for f in tally.failures] == []
    assert tally.total == rpcs * 6
    assert len(tally.inputs) == rpcs  # every RPC got its share


def test_judge_fails_internal_unknown_bare_statuses_and_hangs() -> None:
    class Bare(grpc.RpcError):
        def __init__(self, code: grpc.StatusCode) -> None:
            self._code = code

        def code(self) -> grpc.StatusCode:
            return self._code

        def details(self) -> str:
            return "bare"

        def trailing_metadata(self) -> tuple[()]:
            return ()

    judge = grpc_fuzz.judge
    big = 5 * 1024 * 1024
    assert judge(None, 0.1, 5, 10, frozenset()).problem is None
    assert judge(None, 9.0, 5, 10, frozenset()).problem is not None  # a hang
    for code in (
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    ):
        assert judge(Bare(code), 0.1, 5, 10, frozenset()).problem is not None, code
    assert judge(Bare(grpc.StatusCode.RESOURCE_EXHAUSTED), 0.1, 5, big, frozenset()).problem is None
    assert judge(Bare(grpc.StatusCode.RESOURCE_EXHAUSTED), 0.1, 5, 10, frozenset()).problem


def test_the_cli_exits_zero_and_prints_its_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--grpc", "60", "--mappers", "500", "--seed", "5", "--corpus", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "no input broke a contract" in out
    assert "HubService/Relay" in out
    assert "soap_pension decode" in out
    assert not list(tmp_path.iterdir())
