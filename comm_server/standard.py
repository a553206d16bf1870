"""Legacy records <-> the standard layout inside one communication server (R29).

Provider side: the legacy system's raw record is decoded by the agency's
mapper into a ``renkei.layout.v1.StandardRecord``; the provider's own local id
is cleared (another agency never learns it) and the record is sealed to the
requester as ``ANSWER_TAG`` + the serialized record. A record the mapper
refuses is the provider's own legacy system's fault: its detail (field,
offset, raw bytes) stays in the provider's log, the requester gets only
``LEGACY_RECORD_INVALID`` with no byte or value of the record.

Requester side: a tagged answer is parsed back into a ``StandardRecord``,
stamped with the requester's own local id, and encoded in the requester's
own legacy format when its mapper carries that kind. An answer without the
tag comes from a provider without a mapper (the JSON-lines system) and is
passed on as it came.
"""

from __future__ import annotations

import json
import logging
from typing import Final

from google.protobuf import json_format
from google.protobuf.message import DecodeError

from comm_server.mapping.errors import MappingError
from comm_server.mapping.layout import INFO_KINDS
from comm_server.mapping.mapper import Mapper
from renkei.errors import Unavailable
from renkei.layout.v1 import layout_pb2
from renkei.logs import event

_log = logging.getLogger("comm_server.standard")

ANSWER_TAG: Final = b"renkei.layout.v1.StandardRecord\n"
"""Starts every sealed answer that carries a standard-layout record."""

RECORD_INVALID: Final = "LEGACY_RECORD_INVALID"
ANSWER_INVALID: Final = "ANSWER_INVALID"
DETAIL_CHARS: Final = 400
"""The log's detail column holds this much."""


class BadLegacyRecord(Unavailable):
    """A record the provider's mapper refused; ``log_detail`` is for the provider's log only."""

    def __init__(self, info_kind: str, log_detail: str) -> None:
        super().__init__(
            RECORD_INVALID,
            "the provider's legacy system gave a record that does not follow its format;"
            " the provider has logged it",
            {"info_kind": info_kind},
        )
        self.log_detail = log_detail[:DETAIL_CHARS]


def to_standard(mapper: Mapper, info_kind: str, raw: bytes) -> layout_pb2.StandardRecord:
    """Decode one legacy record; ``BadLegacyRecord`` (never ``MappingError``) if it is bad."""
    try:
        record = mapper.decode(info_kind, raw)
    except MappingError as err:
        event(
            _log,
            "legacy record refused by the mapper",
            info_kind=info_kind,
            field=err.field,
            where=err.where,
            level=logging.WARNING,
        )
        raise BadLegacyRecord(info_kind, str(err)) from None
    except Exception as err:  # a mapper's bug is still a bad record, never a crash or a leak
        _log.exception("mapper failed on a legacy record")
        raise BadLegacyRecord(info_kind, f"mapper failed: {type(err).__name__}: {err}") from None
    if not isinstance(record, layout_pb2.StandardRecord):
        raise BadLegacyRecord(info_kind, f"mapper gave a {type(record).__name__} for {info_kind}")
    record.ClearField("local_person_id")  # the provider's own number stays with the provider
    return record


def sealed_payload(record: layout_pb2.StandardRecord) -> bytes:
    return ANSWER_TAG + record.SerializeToString(deterministic=True)


def open_payload(plaintext: bytes, info_kind: str) -> layout_pb2.StandardRecord | None:
    """The record an opened answer carries; ``None`` for an untagged (mapper-less) answer."""
    if not plaintext.startswith(ANSWER_TAG):
        return None
    record = layout_pb2.StandardRecord()
    try:
        record.ParseFromString(plaintext[len(ANSWER_TAG) :])
    except DecodeError:
        raise Unavailable(
            ANSWER_INVALID, "the provider's answer is not a valid standard-layout record"
        ) from None
    case = record.WhichOneof("info")
    if case != INFO_KINDS.get(info_kind):
        raise Unavailable(
            ANSWER_INVALID,
            f"the provider answered with {case or 'no information'} for {info_kind}",
            {"info_kind": info_kind},
        )
    return record


def render(record: layout_pb2.StandardRecord | layout_pb2.PersonRecord) -> str:
    """A readable rendering for the agency log: protobuf JSON, compact, non-ASCII kept."""
    as_dict = json_format.MessageToDict(record, preserving_proto_field_name=True)
    return json.dumps(as_dict, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def carries(mapper: Mapper | None, info_kind: str) -> bool:
    return mapper is not None and info_kind in INFO_KINDS and info_kind in mapper.kinds


def to_own_format(
    mapper: Mapper | None, info_kind: str, record: layout_pb2.StandardRecord
) -> tuple[bytes, str]:
    """(the record in this agency's own legacy format, a problem to log) — empty if it has none."""
    if mapper is None or not carries(mapper, info_kind):
        return b"", ""
    try:
        return mapper.encode(info_kind, record), ""
    except MappingError as err:
        event(_log, "answer not encodable in the own format", field=err.field, level=logging.INFO)
        return b"", f"not encoded in {mapper.format}: {err}"[:DETAIL_CHARS]
