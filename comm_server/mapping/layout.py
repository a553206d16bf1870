"""The standard layout (``renkei.layout.v1``) as the mappers see it: kinds and versions.

A kind of information is named by its Japanese name, as in the legal-basis
table (``地方税関係情報``); each is one case of ``StandardRecord.info``. The
person file (four facts for binding) is the pseudo-kind ``PERSONS`` and maps to
``PersonRecord``.
"""

from __future__ import annotations

from typing import TypeAlias

from renkei.layout.v1 import layout_pb2

LAYOUT_VERSION = "1.0"
"""The version of protos/renkei/layout/v1/layout.proto every record carries."""

PERSON_KIND = "PERSONS"
"""The person file: ``PersonRecord`` rather than a ``StandardRecord``."""

INFO_KINDS: dict[str, str] = {
    "地方税関係情報": "local_tax",
    "住民票関係情報": "resident_record",
    "年金給付関係情報": "pension_benefit",
    "医療保険給付関係情報": "medical_insurance_benefit",
}
"""Kind of information -> the ``StandardRecord.info`` oneof case that carries it."""

KIND_OF_CASE: dict[str, str] = {case: kind for kind, case in INFO_KINDS.items()}

Record: TypeAlias = layout_pb2.StandardRecord | layout_pb2.PersonRecord


def new_record(kind: str) -> Record:
    """An empty record of ``kind`` (its oneof case set), stamped with the layout version."""
    if kind == PERSON_KIND:
        return layout_pb2.PersonRecord()
    record = layout_pb2.StandardRecord(layout_version=LAYOUT_VERSION)
    getattr(record, INFO_KINDS[kind]).SetInParent()
    return record


def kind_of(record: Record) -> str:
    """The kind a record carries: a key of ``INFO_KINDS``, or ``PERSON_KIND``."""
    if isinstance(record, layout_pb2.PersonRecord):
        return PERSON_KIND
    case = record.WhichOneof("info")
    if case is None:
        raise ValueError("StandardRecord carries no information (info is not set)")
    return KIND_OF_CASE[case]


def message_type(kind: str) -> type[Record]:
    return layout_pb2.PersonRecord if kind == PERSON_KIND else layout_pb2.StandardRecord
