"""The share-chain benchmark runs (tiny sizes; its figures are not checked)."""

from __future__ import annotations

from ops.bench import share_chain


def test_the_benchmark_reports_every_way_of_writing_with_and_without_the_chain() -> None:
    figures = share_chain.run(rows=20, batch=10, singles=3, repeat=1)
    assert set(figures) == {
        "bulk (10 rows a transaction), chain",
        "bulk (10 rows a transaction), no chain",
        "one row a transaction, chain",
        "one row a transaction, no chain",
        "encode and hash alone",
    }
    assert all(v > 0 for v in figures.values())
