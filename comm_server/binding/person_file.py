"""Reading an agency's person file through its legacy client and mapper, for ``renkei bind``.

The legacy system lists its persons page by page (``LegacyClient.list_persons``);
the agency's mapper turns each raw record into a ``PersonRecord`` (kind
``PERSONS``), which becomes the ``LocalRecord`` the binding job matches. A
record the mapper refuses is not bound and does not stop the job: it becomes a
``ReviewItem`` ("invalid") naming the field, where it sits and why.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from comm_server.binding.records import LocalRecord, ReviewItem
from comm_server.legacy import LegacyClient
from comm_server.legacy.common import MAX_PAGE
from comm_server.mapping.errors import MappingError
from comm_server.mapping.layout import PERSON_KIND
from comm_server.mapping.mapper import Mapper
from renkei.errors import FailedPrecondition
from renkei.layout.v1 import layout_pb2

PAGE_TIMEOUT_SECONDS = 60.0


def local_record(person: layout_pb2.PersonRecord) -> LocalRecord:
    return LocalRecord(
        local_person_id=person.local_person_id,
        name=person.name,
        address=person.address,
        birth_date=person.birth_date,
        sex=person.sex,
        kana=person.name_kana,
        municipality_hint=person.municipality_hint,
    )


def _local_id_of(mapper: Mapper, raw: bytes) -> str:
    """The record's local id if that field at least can be read (for naming it in review)."""
    explain = getattr(mapper, "explain", None)
    if explain is None:
        return ""
    try:
        views = explain(PERSON_KIND, raw)
    except MappingError:
        return ""
    for view in views:
        if getattr(view.field, "target", None) == "local_person_id" and view.value:
            return str(view.value)
    return ""


def read_one(mapper: Mapper, raw: bytes, position: int) -> LocalRecord | ReviewItem:
    """One raw person record -> a record to bind, or an "invalid" review item."""
    try:
        person = mapper.decode(PERSON_KIND, raw)
    except MappingError as err:
        local = _local_id_of(mapper, raw) or f"(record {position} of the person file)"
        where = f" {err.where}" if err.where else ""  # "at bytes 90-96 (offset 90, ...)"
        return ReviewItem(local, "invalid", f"{err.field or 'record'}{where}: {err.problem}")
    if not isinstance(person, layout_pb2.PersonRecord) or not person.local_person_id:
        return ReviewItem(
            f"(record {position} of the person file)", "invalid", "local_person_id: empty"
        )
    return local_record(person)


async def person_file(
    legacy: LegacyClient,
    mapper: Mapper,
    *,
    page: int = MAX_PAGE,
    timeout: float = PAGE_TIMEOUT_SECONDS,
) -> AsyncIterator[LocalRecord | ReviewItem]:
    """Every person of the legacy system's file, in its order, decoded by ``mapper``."""
    if PERSON_KIND not in mapper.kinds:
        raise FailedPrecondition(
            "MAPPER_NO_PERSON_FILE",
            f"mapper {mapper.format!r} has no {PERSON_KIND} record: it cannot read a person file",
            {"format": mapper.format},
        )
    after: str | None = None
    position = 0
    while True:
        raws = await legacy.list_persons(after, page, timeout=timeout)
        if not raws:
            return
        last = after
        for raw in raws:
            position += 1
            item = read_one(mapper, raw, position)
            last = (
                item.local_person_id
                if isinstance(item, LocalRecord)
                else (_local_id_of(mapper, raw) or last)
            )
            yield item
        if last is None or last == after:
            raise FailedPrecondition(
                "PERSON_FILE_UNREADABLE",
                f"no local id could be read on a page of {len(raws)} persons after {after!r};"
                " the person file cannot be paged past it",
                {"after": after or ""},
            )
        after = last
