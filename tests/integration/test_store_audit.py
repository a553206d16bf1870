"""The audit of every store against the separation table (R2, R9; docs/separation.md)."""

from __future__ import annotations

import re
from pathlib import Path

from support.aio import LoopThread
from support.topology import CITY, MINISTER, PENSION, Topology, query

from ops import audit

DOC = Path(__file__).resolve().parents[2] / "docs" / "separation.md"


def test_every_store_holds_only_what_the_separation_table_allows(
    loop: LoopThread, topo: Topology
) -> None:
    async def exchange() -> None:
        request = query(CITY, topo.people[0], PENSION, "年金給付関係情報", "二十七")
        async with topo.channel(CITY, CITY) as ch:
            await topo.requester_stub(ch).Query(request, timeout=10)

    loop.run(exchange())
    report = audit.audit_deployment(topo.layout.root)
    assert audit.breaches(report) == {}
    # The audit finds what is there, so an empty row means something.
    assert set(report["numbering"]) == {audit.NUMBER, audit.RESIDENT_CODE}
    assert set(report["registry"]) == {audit.RESIDENT_CODE, audit.FOUR_FACTS}
    assert report["registry-binding"] == {}  # nobody bound through it in this topology
    assert report["hub"] == {}
    assert report["id-issuer"] == {}
    assert set(report[f"agency:{CITY}"]) == {f"{audit.LINK_CODE} ({CITY})", audit.PAYLOAD}
    assert set(report[f"agency:{PENSION}"]) == {f"{audit.LINK_CODE} ({PENSION})", audit.PAYLOAD}
    assert f"{audit.LINK_CODE} ({MINISTER})" in report[f"agency:{MINISTER}"]
    assert len(topo.numbers) == 3


def test_the_audit_reports_a_planted_breach(topo: Topology) -> None:
    """A Number and another agency's link code written into the hub's store are found."""
    import sqlalchemy as sa

    engine = topo.hub_log().engine
    number = next(iter(topo.numbers.values()))
    with engine.begin() as conn:
        conn.execute(sa.text("create table planted (v text)"))
        conn.execute(
            sa.text("insert into planted values (:a), (:b)"),
            {"a": number, "b": topo.link_code(PENSION, 0)},
        )
    try:
        found = audit.breaches(audit.audit_deployment(topo.layout.root))
        assert found == {"hub": {audit.NUMBER, f"{audit.LINK_CODE} ({PENSION})"}}
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("drop table planted"))


def test_the_separation_doc_states_the_same_table() -> None:
    rows = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0].startswith("`"):
            kinds = frozenset(k.strip() for k in re.split(r",\s*", cells[1]) if k.strip() != "—")
            rows[cells[0].strip("`")] = kinds
    assert rows == dict(audit.SEPARATION)
