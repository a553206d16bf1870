"""Records decoded and encoded per second for every built-in mapper and kind
(``make bench-mappers``).

Each mapper encodes a realistic record once, then decodes those bytes and
encodes the decoded record in loops of ``seconds`` each (bounded time, one
process, no I/O). The baseline row is protobuf's own parse and serialize of the
same standard record: the floor for any mapper, since each decode builds one.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

from rich.console import Console
from rich.table import Table

from comm_server.mapping import layout
from comm_server.mapping.registry import load_mapper
from renkei.layout.v1 import layout_pb2

BUILTIN = ("fixed_tax", "soap_pension", "csv_insurer", "json_http")


def _std(kind: str, pid: str, **info: object) -> layout_pb2.StandardRecord:
    record = layout.new_record(kind)
    assert isinstance(record, layout_pb2.StandardRecord)
    record.local_person_id = pid
    sub = getattr(record, layout.INFO_KINDS[kind])
    for key, value in info.items():
        setattr(sub, key, value)
    return record


def sample_records(fmt: str) -> dict[str, layout.Record]:
    """One realistic record per kind the format carries (ids as that system writes them)."""
    pid = {"fixed_tax": "0000012345", "soap_pension": "1234-567890"}.get(fmt, "12345678")
    pid = "" if fmt == "json_http" else pid
    person = layout_pb2.PersonRecord(
        local_person_id=pid or "P-000001",
        name="山田\u3000太郎",
        name_kana="ヤマダ\u3000タロウ",
        birth_date="3330514" if fmt == "fixed_tax" else "1958-05-14",
        sex="1",
        address="神奈川県横浜市中区本町一丁目１番地",
        municipality_hint="141003" if fmt == "fixed_tax" else "",
    )
    return {
        layout.PERSON_KIND: person,
        "地方税関係情報": _std(
            "地方税関係情報",
            pid,
            fiscal_year=2026,
            total_income=-1250000,
            income_levy=231000,
            per_capita_levy=5000,
            tax_exempt=False,
            dependents=2,
        ),
        "住民票関係情報": _std(
            "住民票関係情報",
            pid,
            name="佐藤\u3000花子",
            name_kana="サトウ\u3000ハナコ",
            birth_date="1989-01-08",
            sex=layout_pb2.SEX_FEMALE,
            municipality_code="141003",
            address="神奈川県横浜市西区みなとみらい二丁目３番１号",
            household_head=True,
            moved_in_date="2019-05-01",
        ),
        "年金給付関係情報": _std(
            "年金給付関係情報",
            pid,
            pension_kind=layout_pb2.PENSION_KIND_OLD_AGE_BASIC,
            annual_amount_yen=795000,
            first_payment_month="2024-04",
            suspended=False,
        ),
        "医療保険給付関係情報": _std(
            "医療保険給付関係情報",
            pid,
            insurer_number="01130012",
            benefit_kind=layout_pb2.BENEFIT_KIND_HIGH_COST_MEDICAL,
            copayment_percent=30,
            benefit_amount_yen=84000,
            service_month="2026-04",
        ),
    }


def per_second(work: Callable[[], object], seconds: float) -> float:
    """Calls of ``work`` per second over about ``seconds`` (checked every 64 calls)."""
    calls = 0
    started = time.perf_counter()
    deadline = started + seconds
    while True:
        for _ in range(64):
            work()
        calls += 64
        now = time.perf_counter()
        if now >= deadline:
            return calls / (now - started)


def run(seconds: float = 0.5, formats: tuple[str, ...] = BUILTIN) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    baseline = sample_records("fixed_tax")["住民票関係情報"]
    wire = baseline.SerializeToString()
    rows.append(
        {
            "mapper": "(baseline) protobuf",
            "kind": "住民票関係情報",
            "bytes": len(wire),
            "decode_per_s": per_second(lambda: layout_pb2.StandardRecord.FromString(wire), seconds),
            "encode_per_s": per_second(baseline.SerializeToString, seconds),
        }
    )
    for fmt in formats:
        mapper = load_mapper(fmt)
        samples = sample_records(fmt)
        for kind in mapper.kinds:
            record = samples[kind]
            raw = mapper.encode(kind, record)
            decoded = mapper.decode(kind, raw)
            rows.append(
                {
                    "mapper": fmt,
                    "kind": kind,
                    "bytes": len(raw),
                    "decode_per_s": per_second(lambda: mapper.decode(kind, raw), seconds),  # noqa: B023  # called before the loop moves on
                    "encode_per_s": per_second(lambda: mapper.encode(kind, decoded), seconds),  # noqa: B023  # likewise
                }
            )
    return rows


def render(rows: list[dict[str, object]]) -> Table:
    table = Table(
        "mapper",
        "kind",
        "record bytes",
        "decoded / s",
        "encoded / s",
        "decode vs protobuf",
        title=f"mapper throughput, one process ({os.cpu_count()} cores)",
    )
    base = float(rows[0]["decode_per_s"])  # type: ignore[arg-type]  # a float by construction
    for row in rows:
        decode = float(row["decode_per_s"])  # type: ignore[arg-type]  # likewise
        encode = float(row["encode_per_s"])  # type: ignore[arg-type]  # likewise
        table.add_row(
            str(row["mapper"]),
            str(row["kind"]),
            str(row["bytes"]),
            f"{decode:,.0f}",
            f"{encode:,.0f}",
            f"{decode / base:.3f}",
        )
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=1.0, help="per measurement")
    args = parser.parse_args(argv)
    if args.seconds <= 0:
        parser.error("--seconds must be positive")
    Console(width=140).print(render(run(args.seconds)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
