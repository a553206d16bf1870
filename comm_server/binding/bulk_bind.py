"""Binding an agency's whole file by the four facts (R13-R15), resumable.

For each batch of records not yet in the correspondence table, the registry's
side (``renkei.registry.v1.BindingService.MatchRecords``, called with this
agency's certificate and ``seal_as_batch``) matches the four facts and
answers an outcome per record plus, for the unique matches, ONE message: the
residents' ID codes sealed together to the hub for this agency, and which
outcomes it covers. That batch goes to the hub in one call
(``HubService.IssueLinkCodes``) for this agency's link codes, in order, and
the correspondence table keeps them in one transaction together with the
registry's subscription handles (``registry_handles``; ``comm_server.binding.feed``
follows the persons' changes by them). Ambiguous, unmatched and invalid
records go to a review list with the registry's reason; nothing about them is
guessed. While one batch is at the hub and the store, the next ``ahead``
batches are matched (a bounded queue), so the registry's work overlaps ours.

The agency never sees a resident code or an ID code, and it sends the hub no
four facts. A crash loses nothing: a batch's bindings are written in one
transaction or not at all, a rerun skips records already bound (the table is
the progress), and binding the same person again gives the same link code.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeAlias

import grpc
from sqlalchemy.engine import Connection

from comm_server.binding.person_facts import PersonFactsStore
from comm_server.binding.person_file import person_file
from comm_server.binding.records import LocalRecord, ReviewItem, ReviewStatus
from comm_server.clients import hub_client, registry_channel
from comm_server.config import CommConfig
from comm_server.hub_client import HubClient
from comm_server.store import AsyncCommStore, CommStore, NewBinding, open_store
from renkei import limits, validate
from renkei.config_util import ConfigError
from renkei.errors import FailedPrecondition, RenkeiError, from_rpc_error
from renkei.grpcutil.client import outgoing_metadata
from renkei.registry.v1 import registry_pb2, registry_pb2_grpc

MAX_BATCH = 1000
AHEAD = 3
"""MatchRecords calls in flight beyond the batch at the hub and the store (overlapping)."""
SAMPLES = 20


@dataclass
class BindReport:
    bound: int = 0
    already_bound: int = 0
    ambiguous: int = 0
    none: int = 0
    invalid: int = 0
    failed: int = 0
    """A unique match the hub or the store refused (the reason says which)."""
    review: list[ReviewItem] = field(default_factory=list)
    samples: dict[str, list[str]] = field(default_factory=dict)
    """Up to 20 local person ids per outcome ("bound", "already_bound", "none", ...)."""

    def _count(self, kind: str, local_person_id: str) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        sample = self.samples.setdefault(kind, [])
        if len(sample) < SAMPLES:
            sample.append(local_person_id)

    def _review(self, local_person_id: str, status: ReviewStatus, reason: str) -> None:
        self._count(status, local_person_id)
        self.review.append(ReviewItem(local_person_id, status, reason))


_REVIEW: dict[int, ReviewStatus] = {
    registry_pb2.MATCH_STATUS_AMBIGUOUS: "ambiguous",
    registry_pb2.MATCH_STATUS_NONE: "none",
    registry_pb2.MATCH_STATUS_INVALID: "invalid",
}


Source: TypeAlias = Iterable[LocalRecord | ReviewItem] | AsyncIterable[LocalRecord | ReviewItem]
"""Records to bind; a ``ReviewItem`` is a record the reader could not read (it goes to review)."""


async def _batches(records: Source, size: int) -> AsyncIterator[list[LocalRecord | ReviewItem]]:
    chunk: list[LocalRecord | ReviewItem] = []
    if isinstance(records, AsyncIterable):
        async for item in records:
            chunk.append(item)
            if len(chunk) == size:
                yield chunk
                chunk = []
    else:
        for item in records:
            chunk.append(item)
            if len(chunk) == size:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


RECORD_FIELDS = (
    "local_person_id",
    "name",
    "kana",
    "address",
    "birth_date",
    "sex",
    "municipality_hint",
)
MAX_LOCAL_ID_CHARS = limits.MAX_ID
"""As the registry's ``MatchRecords`` checks it (a bad id fails the whole call there)."""


def record_problem(r: LocalRecord) -> str | None:
    """Why this record cannot be sent to the registry, naming the field; None if it can.

    Checked here because these would fail the whole ``MatchRecords`` batch (or
    its encoding) rather than the one record: text that is not Unicode (bytes
    read with ``surrogateescape``: the byte offset in the field is given) and
    a missing, over-long or control-character local id. Everything else about
    the facts the registry judges per record.
    """
    for name in RECORD_FIELDS:
        value = getattr(r, name)
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as err:
            offset = len(value[: err.start].encode("utf-8", "surrogateescape"))
            return f"{name}: is not UTF-8 text (undecodable byte at byte offset {offset})"
    local = r.local_person_id
    if not local:
        return "local_person_id: is required"
    if len(local) > MAX_LOCAL_ID_CHARS:
        return f"local_person_id: is {len(local)} characters; at most {MAX_LOCAL_ID_CHARS}"
    if validate.CONTROL.search(local):
        return "local_person_id: contains control characters"
    return None


def _shown(local_person_id: str) -> str:
    """A local id fit for the report (undecodable bytes as \\x escapes)."""
    return local_person_id.encode("utf-8", "backslashreplace").decode("utf-8")


def registry_record(r: LocalRecord) -> registry_pb2.Record:
    """A record as the registry's binding service takes it."""
    return registry_pb2.Record(
        local_person_id=r.local_person_id,
        name=r.name,
        kana=r.kana,
        address=r.address,
        birth_date=r.birth_date,
        sex=r.sex,
        municipality_hint=r.municipality_hint,
    )


@dataclass
class _Matched:
    """One batch, matched: what the report learns of it before the hub and the store."""

    invalid: list[tuple[str, str]]
    already_bound: list[str]
    todo: list[LocalRecord]
    response: registry_pb2.MatchRecordsResponse | None
    # Records the reader could not read (a mapper's refusal), for review as they are.
    unread: list[ReviewItem] = field(default_factory=list)


async def bulk_bind(
    store: AsyncCommStore,
    hub_client: HubClient,
    registry_stub: registry_pb2_grpc.BindingServiceAsyncStub,
    records: Source,
    *,
    batch: int = 200,
    progress: Callable[[BindReport], None] | None = None,
    timeout: float = 30.0,
    ahead: int = AHEAD,
) -> BindReport:
    """Bind every record not yet bound; see the module docstring."""
    if not 1 <= batch <= MAX_BATCH:
        raise ValueError(f"batch must be 1..{MAX_BATCH}, not {batch}")
    if ahead < 0:
        raise ValueError(f"ahead must be 0 or more, not {ahead}")
    facts = await store.run(PersonFactsStore, store.store.engine)
    report = BindReport()

    async def match(chunk: list[LocalRecord | ReviewItem]) -> _Matched:
        unread = [r for r in chunk if isinstance(r, ReviewItem)]
        matched = await _match(
            store, registry_stub, [r for r in chunk if isinstance(r, LocalRecord)], timeout
        )
        matched.unread.extend(unread)
        return matched

    async def write(matched: _Matched) -> None:
        for item in matched.unread:
            report._review(item.local_person_id, item.status, item.reason)
        for local, reason in matched.invalid:
            report._review(local, "invalid", reason)
        for local in matched.already_bound:
            report._count("already_bound", local)
        if matched.response is not None:
            await _bind_matched(store, facts, hub_client, matched.response, report, timeout)
        if progress is not None:
            progress(report)

    if ahead == 0:
        async for chunk in _batches(records, batch):
            await write(await match(chunk))
        return report
    # The next batches are matched while this one is at the hub and the store,
    # up to ``ahead`` of them at once (their MatchRecords calls overlap: the
    # registry's waits for the ID issuer and its disk are not the job's). The
    # queue keeps file order and bounds how far ahead (and how much memory).
    queue: asyncio.Queue[asyncio.Task[_Matched] | Exception | None] = asyncio.Queue(maxsize=ahead)
    running: set[asyncio.Task[_Matched]] = set()

    async def produce() -> None:
        try:
            async for chunk in _batches(records, batch):
                task = asyncio.create_task(match(chunk))
                running.add(task)
                task.add_done_callback(running.discard)
                await queue.put(task)
        except Exception as err:  # handed to the writer, which raises it in order
            await queue.put(err)
        else:
            await queue.put(None)

    producer = asyncio.create_task(produce())
    try:
        while (item := await queue.get()) is not None:
            if isinstance(item, Exception):
                raise item
            await write(await item)
    finally:
        producer.cancel()
        left = list(running)
        for task in left:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await producer
        await asyncio.gather(*left, return_exceptions=True)
    return report


async def _match(
    store: AsyncCommStore,
    registry_stub: registry_pb2_grpc.BindingServiceAsyncStub,
    chunk: list[LocalRecord],
    timeout: float,
) -> _Matched:
    invalid: list[tuple[str, str]] = []
    sendable: list[LocalRecord] = []
    for record in chunk:
        problem = record_problem(record)
        if problem is not None:
            invalid.append((_shown(record.local_person_id), f"invalid record: {problem}"))
        else:
            sendable.append(record)
    # One query for the whole chunk, not one per record.
    bound = await store.run(store.store.bound_among, [r.local_person_id for r in sendable])
    todo = [r for r in sendable if r.local_person_id not in bound]
    already = [r.local_person_id for r in sendable if r.local_person_id in bound]
    if not todo:
        return _Matched(invalid, already, todo, None)
    try:
        response = await registry_stub.MatchRecords(
            registry_pb2.MatchRecordsRequest(
                records=[registry_record(r) for r in todo], seal_as_batch=True
            ),
            timeout=timeout,
            metadata=outgoing_metadata(),
        )
    except grpc.aio.AioRpcError as err:
        raise from_rpc_error(err, fallback_reason="REGISTRY_UNAVAILABLE") from None
    _check_answer(todo, response)
    return _Matched(invalid, already, todo, response)


def _check_answer(todo: list[LocalRecord], response: registry_pb2.MatchRecordsResponse) -> None:
    """Refuses an answer whose outcomes or batch do not line up with the records sent."""
    outcomes = response.outcomes
    if len(outcomes) != len(todo):
        raise RenkeiError(
            "REGISTRY_BAD_ANSWER",
            f"the registry answered {len(outcomes)} outcomes for {len(todo)} records",
        )
    for record, outcome in zip(todo, outcomes, strict=True):
        if outcome.local_person_id != record.local_person_id:
            raise RenkeiError(
                "REGISTRY_BAD_ANSWER",
                f"outcome for {outcome.local_person_id!r}, not {record.local_person_id!r}",
            )
    unique = [i for i, o in enumerate(outcomes) if o.status == registry_pb2.MATCH_STATUS_UNIQUE]
    if list(response.sealed_batch_outcomes) != unique:
        raise RenkeiError(
            "REGISTRY_BAD_ANSWER",
            "the sealed batch does not cover exactly the unique matches, in order",
        )
    if bool(response.sealed_batch) != bool(unique):
        raise RenkeiError(
            "REGISTRY_BAD_ANSWER",
            "a sealed batch without unique matches, or unique matches without one",
        )


def _write_batch(
    store: CommStore,
    facts: PersonFactsStore,
    rows: list[NewBinding],
    handles: dict[str, str],
) -> tuple[list[bool | FailedPrecondition], dict[str, FailedPrecondition]]:
    """The bindings and their handles, one transaction; (per row, handle conflicts)."""
    conflicts: dict[str, FailedPrecondition] = {}

    def keep_handles(conn: Connection, bound: list[str]) -> None:
        conflicts.clear()  # a retried transaction judges again
        pairs = [(local, handles[local]) for local in bound if handles.get(local)]
        conflicts.update(facts.remember_handles(conn, pairs))

    results = store.bind_many(rows, datetime.now(UTC), then=keep_handles)
    return results, conflicts


async def _bind_matched(
    store: AsyncCommStore,
    facts: PersonFactsStore,
    hub_client: HubClient,
    response: registry_pb2.MatchRecordsResponse,
    report: BindReport,
    timeout: float,
) -> None:
    outcomes = response.outcomes
    covered = list(response.sealed_batch_outcomes)
    results: dict[int, bool | RenkeiError] = {}
    if covered:
        try:
            issued, key_version = await hub_client.issue_link_codes(
                bytes(response.sealed_batch), timeout=timeout
            )
        except RenkeiError as err:
            # The hub refuses a batch as a whole: each of its records goes to review.
            results = dict.fromkeys(covered, err)
        else:
            if len(issued) != len(covered):
                raise RenkeiError(
                    "HUB_BAD_ANSWER",
                    f"the hub answered {len(issued)} link codes for {len(covered)} ID codes",
                )
            rows = [
                NewBinding(outcomes[i].local_person_id, code, key_version, id_version)
                for i, (code, id_version) in zip(covered, issued, strict=True)
            ]
            handles = {
                outcomes[i].local_person_id: outcomes[i].subscription_handle for i in covered
            }
            done, conflicts = await store.run(_write_batch, store.store, facts, rows, handles)
            for i, row, written in zip(covered, rows, done, strict=True):
                results[i] = conflicts.get(row.local_person_id, written)
    for i, outcome in enumerate(outcomes):
        local = outcome.local_person_id
        result = results.get(i)
        if isinstance(result, RenkeiError):
            report._review(local, "failed", f"{result.reason}: {result.message}")
        elif result is not None:
            report._count("bound" if result else "already_bound", local)
        else:
            status = _REVIEW.get(outcome.status, "failed")
            report._review(local, status, outcome.reason or "no reason given")


async def bind_agency(
    config: CommConfig,
    records: Source | None,
    *,
    batch: int = 200,
    progress: Callable[[BindReport], None] | None = None,
    ahead: int = AHEAD,
) -> BindReport:
    """``renkei bind``: with this agency's own store, certificate, hub and registry.

    ``records`` None: the person file of the agency's legacy system, read through
    its communication server's legacy client and ``[legacy] format`` mapper.
    """
    if not config.registry_endpoint:
        raise ValueError("the comm config sets no registry_endpoint")
    legacy = None
    if records is None:
        from comm_server.bootstrap import load_format
        from comm_server.legacy.factory import open_legacy_client

        mapper = load_format(config)
        if mapper is None:
            raise ConfigError(
                "[legacy] format: no mapper configured, so the person file cannot be read;"
                " give the records as JSON lines instead"
            )
        legacy = open_legacy_client(config.legacy)
        records = person_file(legacy, mapper)
    store = open_store(config)
    hub = hub_client(config)
    registry = registry_channel(config)
    try:
        return await bulk_bind(
            store,
            hub,
            registry_pb2_grpc.BindingServiceStub(registry),
            records,
            batch=batch,
            progress=progress,
            ahead=ahead,
        )
    finally:
        if legacy is not None:
            await legacy.aclose()
        await registry.close(None)
        await hub.close()
        store.close()
