"""Binding an agency's whole file by the four facts (R13-R15), resumable.

For each batch of records not yet in the correspondence table, the registry's
side (``renkei.registry.v1.BindingService.MatchRecords``, called with this
agency's certificate) matches the four facts and answers, for a unique match,
the resident's ID code sealed to the hub for this agency. Each sealed code
goes to the hub (``comm_server.binding.bind``) for this agency's link code,
which the correspondence table keeps (up to ``concurrency`` hub calls in
flight, so that their round trips overlap), and the registry's subscription
handle for the person goes to ``registry_handles`` (``comm_server.feed``
follows the person's changes by it). Ambiguous, unmatched and invalid records
go to a review list with the registry's reason; nothing about them is guessed.

The agency never sees a resident code or an ID code, and it sends the hub no
four facts. A crash loses nothing: a rerun skips records already bound (the
table is the progress), and binding the same person again is a no-op.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

import grpc

from comm_server.binding import BindOutcome, bind
from comm_server.config import CommConfig
from comm_server.hub_client import HubClient
from comm_server.person_facts import PersonFactsStore
from comm_server.store import AsyncCommStore, open_store
from renkei import validate
from renkei.config_util import ConfigError
from renkei.errors import RenkeiError, from_rpc_error
from renkei.grpcutil.client import channel
from renkei.grpcutil.handlers import outgoing_metadata
from renkei.registry.v1 import registry_pb2, registry_pb2_grpc

MAX_BATCH = 1000
CONCURRENCY = 16
"""IssueLinkCode calls in flight at once."""
SAMPLES = 20
ReviewStatus = Literal["ambiguous", "none", "invalid", "failed"]


@dataclass(frozen=True, slots=True)
class LocalRecord:
    """One record of the agency's file: its own id and the four facts as it writes them."""

    local_person_id: str
    name: str
    address: str
    birth_date: str
    sex: str
    kana: str = ""
    municipality_hint: str = ""


@dataclass(frozen=True, slots=True)
class ReviewItem:
    """A record that did not bind, and why (for a person to look at)."""

    local_person_id: str
    status: ReviewStatus
    reason: str


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


_FIELDS = ("local_person_id", "name", "kana", "address", "birth_date", "sex", "municipality_hint")
MAX_LOCAL_ID_CHARS = 64
"""As the registry's ``MatchRecords`` checks it (a bad id fails the whole call there)."""


def record_problem(r: LocalRecord) -> str | None:
    """Why this record cannot be sent to the registry, naming the field; None if it can.

    Checked here because these would fail the whole ``MatchRecords`` batch (or
    its encoding) rather than the one record: text that is not Unicode (bytes
    read with ``surrogateescape``: the byte offset in the field is given) and
    a missing, over-long or control-character local id. Everything else about
    the facts the registry judges per record.
    """
    for name in _FIELDS:
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


def _bound_already(store: AsyncCommStore, local_ids: list[str]) -> list[bool]:
    return [store.store.link_code_for(local) is not None for local in local_ids]


def _proto(r: LocalRecord) -> registry_pb2.Record:
    return registry_pb2.Record(
        local_person_id=r.local_person_id,
        name=r.name,
        kana=r.kana,
        address=r.address,
        birth_date=r.birth_date,
        sex=r.sex,
        municipality_hint=r.municipality_hint,
    )


async def bulk_bind(
    store: AsyncCommStore,
    hub_client: HubClient,
    registry_stub: registry_pb2_grpc.BindingServiceAsyncStub,
    records: Source,
    *,
    batch: int = 200,
    progress: Callable[[BindReport], None] | None = None,
    timeout: float = 30.0,
    concurrency: int = CONCURRENCY,
) -> BindReport:
    """Bind every record not yet bound; see the module docstring."""
    if not 1 <= batch <= MAX_BATCH:
        raise ValueError(f"batch must be 1..{MAX_BATCH}, not {batch}")
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, not {concurrency}")
    facts = await store.run(PersonFactsStore, store.store.engine)
    report = BindReport()
    async for chunk in _batches(records, batch):
        todo: list[LocalRecord] = []
        sendable: list[LocalRecord] = []
        for record in chunk:
            if isinstance(record, ReviewItem):
                report._review(record.local_person_id, record.status, record.reason)
                continue
            problem = record_problem(record)
            if problem is not None:
                report._review(
                    _shown(record.local_person_id), "invalid", f"invalid record: {problem}"
                )
            else:
                sendable.append(record)
        # One trip to the store's thread for the whole chunk, not one per record.
        bound = await store.run(_bound_already, store, [r.local_person_id for r in sendable])
        for record, done in zip(sendable, bound, strict=True):
            if done:
                report._count("already_bound", record.local_person_id)
            else:
                todo.append(record)
        if todo:
            await _bind_batch(
                store, facts, hub_client, registry_stub, todo, report, timeout, concurrency
            )
        if progress is not None:
            progress(report)
    return report


async def _bind_batch(
    store: AsyncCommStore,
    facts: PersonFactsStore,
    hub_client: HubClient,
    registry_stub: registry_pb2_grpc.BindingServiceAsyncStub,
    todo: list[LocalRecord],
    report: BindReport,
    timeout: float,
    concurrency: int,
) -> None:
    try:
        response = await registry_stub.MatchRecords(
            registry_pb2.MatchRecordsRequest(records=[_proto(r) for r in todo]),
            timeout=timeout,
            metadata=outgoing_metadata(),
        )
    except grpc.aio.AioRpcError as err:
        raise from_rpc_error(err, fallback_reason="REGISTRY_UNAVAILABLE") from None
    if len(response.outcomes) != len(todo):
        raise RenkeiError(
            "REGISTRY_BAD_ANSWER",
            f"the registry answered {len(response.outcomes)} outcomes for {len(todo)} records",
        )
    for record, outcome in zip(todo, response.outcomes, strict=True):
        if outcome.local_person_id != record.local_person_id:
            raise RenkeiError(
                "REGISTRY_BAD_ANSWER",
                f"outcome for {outcome.local_person_id!r}, not {record.local_person_id!r}",
            )
    # The hub's IssueLinkCode is one call a record: keep several in flight so
    # that round trips overlap; outcomes are still reported in file order.
    gate = asyncio.Semaphore(concurrency)

    async def bind_one(local: str, sealed: bytes, handle: str) -> BindOutcome | RenkeiError:
        async with gate:
            try:
                done = await bind(store, hub_client, local, sealed)
                if handle:
                    await store.run(facts.remember_handle, local, handle)
                return done
            except RenkeiError as err:
                return err

    unique = [
        i
        for i, o in enumerate(response.outcomes)
        if o.status == registry_pb2.MATCH_STATUS_UNIQUE and o.sealed_id_code
    ]
    outcomes = response.outcomes
    done = await asyncio.gather(
        *(
            bind_one(
                outcomes[i].local_person_id,
                bytes(outcomes[i].sealed_id_code),
                outcomes[i].subscription_handle,
            )
            for i in unique
        )
    )
    results = dict(zip(unique, done, strict=True))
    for i, outcome in enumerate(outcomes):
        local = outcome.local_person_id
        result = results.get(i)
        if isinstance(result, RenkeiError):
            report._review(local, "failed", f"{result.reason}: {result.message}")
        elif result is not None:
            report._count("bound" if result.newly_bound else "already_bound", local)
        else:
            status = _REVIEW.get(outcome.status, "failed")
            report._review(local, status, outcome.reason or "no reason given")


async def bind_agency(
    config: CommConfig,
    records: Source | None,
    *,
    batch: int = 200,
    progress: Callable[[BindReport], None] | None = None,
    concurrency: int = CONCURRENCY,
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
        from comm_server.person_file import person_file  # it imports this module

        mapper = load_format(config)
        if mapper is None:
            raise ConfigError(
                "[legacy] format: no mapper configured, so the person file cannot be read;"
                " give the records as JSON lines instead"
            )
        legacy = open_legacy_client(config.legacy)
        records = person_file(legacy, mapper)
    store = open_store(config)
    hub = HubClient(
        config.hub_endpoint, config.tls, insecure_development=config.insecure_development
    )
    registry = channel(
        config.registry_endpoint, config.tls, insecure_development=config.insecure_development
    )
    try:
        return await bulk_bind(
            store,
            hub,
            registry_pb2_grpc.BindingServiceStub(registry),
            records,
            batch=batch,
            progress=progress,
            concurrency=concurrency,
        )
    finally:
        if legacy is not None:
            await legacy.aclose()
        await registry.close(None)
        await hub.close()
        store.close()
