"""Every mapper and legacy-client input `make fuzz` ever found breaking the contract,
replayed (tests/fuzz_corpus/); and the fuzzer's inputs are the same for the same seed."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from ops.fuzz import mapper_fuzz, messages
from ops.fuzz.replay import load
from ops.fuzz.report import Tally, pack, unpack
from renkei.comm.v1 import comm_pb2

CORPUS = Path(__file__).resolve().parents[1] / "fuzz_corpus"
CASES = sorted([*CORPUS.glob("mapper-*.json"), *CORPUS.glob("legacy-*.json")])


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.name)
def test_a_kept_input_keeps_the_contract(path: Path) -> None:
    assert mapper_fuzz.replay(load(path)) is None


def test_the_same_seed_makes_the_same_inputs() -> None:
    def inputs(seed: int) -> list[bytes]:
        rng = random.Random(seed)
        gen = messages.Generator(rng, ["141003", "S-1"])
        descriptor = comm_pb2.BulkQueryRequest.DESCRIPTOR
        made = [gen.hostile(descriptor).SerializeToString() for _ in range(20)]
        return made + [messages.mutate(rng, m, made) for m in made]

    assert inputs(12) == inputs(12)
    assert inputs(12) != inputs(13)


def test_a_mapper_run_is_bounded_and_clean() -> None:
    tally = Tally()
    mapper_fuzz.fuzz_mappers(1500, 12, tally)
    mapper_inputs = sum(n for t, n in tally.inputs.items() if not t.startswith("legacy "))
    assert mapper_inputs == 1500
    assert [f.problem for f in tally.failures] == []
    assert {t.split()[0] for t in tally.inputs} >= {
        "fixed_tax",
        "soap_pension",
        "csv_insurer",
        "json_http",
        "legacy",
    }


def test_corpus_bytes_round_trip() -> None:
    data = bytes(range(256)) * 1000
    assert unpack(pack(data)) == data
