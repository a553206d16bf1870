"""In-memory fakes of the exchange pipelines' ports: no database, no socket, no sleep.

``Agencies`` wires a real requester pipeline to a real provider pipeline
through ``FakeHub`` (which numbers exchanges and translates link codes as the
hub does, minus the policy), each with a ``FakeStore``, and the provider with
a ``FakeLegacy``. Run it on ``support.virtual_time`` so that a slow legacy
system costs no wall time.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from comm_server.hub_client import BulkRelayAnswer, RelayAnswer
from comm_server.log_receipts import LogReceipt, ShareReceipt
from comm_server.mapping.errors import MappingError
from comm_server.mapping.layout import new_record
from comm_server.provider.pipeline import Provider
from comm_server.provider.types import ProvideCall, ProvideItem
from comm_server.requester.pipeline import Requester
from comm_server.staff_register import Grant, parse, render
from comm_server.store import LogRecord, Ticket
from renkei import exchange_cert, sealing
from renkei.errors import NotFound, RenkeiError
from renkei.layout.v1 import layout_pb2
from support.exchange_certs import FakeAgenciesCa
from support.log_fakes import FakeHubLog

CITY, PENSION = "city", "pension"
PENSION_INFO = "年金給付関係情報"
ITEM = "二十七"
STAFF, TERMINAL = "S-1", "T-1"
NOW = datetime(2026, 4, 1, 3, 0, tzinfo=UTC)


class FakeStore:
    """The store port: a correspondence table, the log and the tickets, in dicts."""

    def __init__(self, bound: dict[str, str] | None = None) -> None:
        self.codes = dict(bound or {})  # local person id -> link code
        self.logs: list[LogRecord] = []
        self.tickets: dict[tuple[str, str], Ticket] = {}
        # The hub's log receipts, kept with the rows of their exchange.
        self.receipts: list[ShareReceipt] = []

    async def append_log(self, record: LogRecord, receipts: Sequence[ShareReceipt] = ()) -> None:
        self.logs.append(record)
        self.receipts.extend(receipts)

    async def append_logs(
        self, records: list[LogRecord], receipts: Sequence[ShareReceipt] = ()
    ) -> None:
        self.logs.extend(records)
        self.receipts.extend(receipts)

    async def link_code_for(self, local_person_id: str) -> str | None:
        return self.codes.get(local_person_id)

    async def link_codes_for(self, local_person_ids: list[str]) -> dict[str, str]:
        return {i: self.codes[i] for i in local_person_ids if i in self.codes}

    async def local_person_for(self, link_code: str) -> str | None:
        return next((i for i, c in self.codes.items() if c == link_code), None)

    async def local_persons_for(self, link_codes: list[str]) -> dict[str, str]:
        by_code = {c: i for i, c in self.codes.items()}
        return {c: by_code[c] for c in link_codes if c in by_code}

    async def add_ticket(self, ticket: Ticket) -> None:
        self.tickets[(ticket.role, ticket.ticket)] = ticket

    async def ticket(self, role: str, ticket: str) -> Ticket | None:
        return self.tickets.get((role, ticket))

    async def take_ticket(self, role: str, ticket: str) -> bool:
        return self.tickets.pop((role, ticket), None) is not None


class FakeLegacy:
    """A legacy system: a record per local id; ``slow`` ids answer after that many seconds,
    ``failing`` ids raise what is given."""

    def __init__(self, records: dict[str, bytes]) -> None:
        self.records = records
        self.slow: dict[str, float] = {}
        self.failing: dict[str, BaseException] = {}
        self.asked: list[str] = []

    async def lookup(
        self, local_person_id: str, info_kind: str, query: bytes, *, timeout: float
    ) -> bytes:
        self.asked.append(local_person_id)
        if local_person_id in self.slow:
            await asyncio.sleep(self.slow[local_person_id])
        if local_person_id in self.failing:
            raise self.failing[local_person_id]
        record = self.records.get(local_person_id)
        if record is None:
            raise NotFound("RECORD_NOT_FOUND", f"no record of {local_person_id}")
        return record + b"|" + query

    async def list_persons(self, after: str | None, limit: int, *, timeout: float) -> list[bytes]:
        return []

    async def aclose(self) -> None:
        pass


class FakeBatchLegacy(FakeLegacy):
    """A legacy system that answers by file: an answer is there once ``ready`` is set."""

    def __init__(self, records: dict[str, bytes]) -> None:
        super().__init__(records)
        self.poll_interval = 0.2
        self.ready = False
        self.submitted: dict[str, str] = {}

    async def submit(
        self, local_person_id: str, info_kind: str, query: bytes, *, timeout: float
    ) -> str:
        legacy_ticket = f"L-{len(self.submitted) + 1}"
        self.submitted[legacy_ticket] = local_person_id
        return legacy_ticket

    async def collect(self, ticket: str, *, timeout: float) -> bytes | None:
        return self.records[self.submitted[ticket]] if self.ready else None


class PensionMapper:
    """A mapper whose legacy format is ``<amount>|<query>``; anything else is refused."""

    format = "fake_pension"
    kinds = (PENSION_INFO,)

    def decode(self, kind: str, raw: bytes) -> layout_pb2.StandardRecord:
        amount, _, _ = raw.partition(b"|")
        if not amount.isdigit():
            raise MappingError("not a number", field="amount", where="bytes 0-", raw=raw)
        record = new_record(kind)
        assert isinstance(record, layout_pb2.StandardRecord)
        record.pension_benefit.annual_amount_yen = int(amount)
        return record

    def encode(self, kind: str, record: layout_pb2.StandardRecord) -> bytes:
        return str(record.pension_benefit.annual_amount_yen).encode()


class FakeHub:
    """The hub port: numbers each person's exchange and hands the call to the provider."""

    def __init__(
        self,
        provider: Provider,
        provider_key: bytes,
        requester_key: bytes,
        provider_cert: bytes = b"",
        requester_cert: bytes = b"",
    ) -> None:
        self.provider = provider
        self.provider_key = provider_key
        self.requester_key = requester_key
        # What the directory hands out: the requester gets the provider's, and back.
        self.provider_cert = provider_cert
        self.requester_cert = requester_cert
        self.codes: dict[str, str] = {}  # requester's link code -> provider's link code
        self.next_serial = 100
        self.calls = 0
        # With a log, the hub's receipts travel with calls and answers (its tree on).
        self.log: FakeHubLog | None = None

    def _serial(self) -> int:
        self.next_serial += 1
        return self.next_serial

    async def exchange_certificate(self, agency_id: str, *, timeout: float) -> bytes:
        return self.provider_cert

    def forget_certificate(self, agency_id: str) -> None:
        pass

    async def relay(
        self,
        *,
        provider_agency_id: str,
        info_kind: str,
        legal_basis_item: str,
        link_code: str,
        sealed_query: bytes,
        query_signature: bytes,
        timeout: float,
    ) -> RelayAnswer:
        self.calls += 1
        serial = self._serial()
        begun = None if self.log is None else self.log.exchange_entry(serial, CITY, PENSION)
        call = ProvideCall.single(
            log_receipt=begun,
            serial=serial,
            time=NOW,
            requester_agency_id=CITY,
            info_kind=info_kind,
            legal_basis_item=legal_basis_item,
            link_code=self.codes[link_code],
            sealed_query=sealed_query,
            requester_sealing_public_key=self.requester_key,
            requester_exchange_certificate=self.requester_cert,
            query_signature=query_signature,
        )
        try:
            provided = await self.provider.provide(call, timeout)
        except RenkeiError as err:
            err.metadata["serial"] = str(serial)
            if begun is not None:  # as the hub does: the refusal names the exchange's entry
                err.metadata["log_leaf_index"] = str(begun.leaf_index)
                err.metadata["log_entry"] = base64.b64encode(begun.entry).decode()
            raise
        return RelayAnswer(
            serial,
            legal_basis_item,
            "v1",
            provided.sealed_answer,
            provided.ticket,
            provided.answer_signature,
            self._receipts(begun, serial, None),
        )

    def _receipts(
        self, begun: LogReceipt | None, serial: int, error: object
    ) -> tuple[LogReceipt, ...]:
        if self.log is None or begun is None:
            return ()
        outcome = "OK" if error is None else "REFUSED"
        return (begun, self.log.outcome_entry(serial, CITY, PENSION, outcome))

    async def bulk_relay(
        self,
        *,
        provider_agency_id: str,
        info_kind: str,
        legal_basis_item: str,
        link_codes: list[str],
        sealed_queries: bytes,
        query_signature: bytes,
        timeout: float,
    ) -> BulkRelayAnswer:
        self.calls += 1
        items = []
        for i, code in enumerate(link_codes):
            serial = self._serial()
            begun = None if self.log is None else self.log.exchange_entry(serial, CITY, PENSION)
            items.append(ProvideItem(serial, i, self.codes[code], begun))
        provided = await self.provider.provide(
            ProvideCall(
                NOW,
                CITY,
                info_kind,
                legal_basis_item,
                items,
                sealed_queries,
                self.requester_key,
                item_count=len(items),
                bulk=True,
                requester_exchange_certificate=self.requester_cert,
                query_signature=query_signature,
            ),
            timeout,
        )
        return BulkRelayAnswer(
            legal_basis_item,
            "v1",
            provided.results,
            provided.sealed_answer,
            provided.answer_signature,
            []
            if self.log is None
            else [
                self._receipts(item.log_receipt, serial, error)
                for item, (serial, error) in zip(items, provided.results, strict=True)
            ],
        )

    async def fetch_answer(self, serial: int, ticket: str, *, timeout: float) -> RelayAnswer:
        raise NotImplementedError


@dataclass
class Holder:
    """The staff port: a register in force."""

    register: object


@dataclass
class Agencies:
    """The city asks the pension service through a fake hub; persons ``P-<n>`` / ``L-<n>``."""

    persons: int = 3
    legacy: FakeLegacy = field(default_factory=lambda: FakeLegacy({}))
    mapper: PensionMapper | None = None
    clock: Callable[[], datetime] = lambda: NOW

    def __post_init__(self) -> None:
        self.ca = ca = FakeAgenciesCa.new()
        self.city_keys, self.city_cert = city_keys, city_cert = ca.agency(CITY)
        pension_keys, pension_cert = ca.agency(PENSION)
        self.city_store = FakeStore({f"P-{n}": f"city-code-{n}" for n in range(self.persons)})
        self.pension_store = FakeStore({f"L-{n}": f"pension-code-{n}" for n in range(self.persons)})
        if not self.legacy.records:
            self.legacy.records.update(
                {f"L-{n}": f"{1000 * (n + 1)}".encode() for n in range(self.persons)}
            )
        self.provider = Provider(
            agency_id=PENSION,
            store=self.pension_store,
            legacy=self.legacy,
            keys=pension_keys,
            peers=ca.verifier(),
            answer_timeout=2.0,
            bulk_answer_timeout=30.0,
            responder_staff_id="SYSTEM",
            responder_terminal_id="COMM",
            mapper=self.mapper,
            clock=self.clock,
        )
        self.hub = FakeHub(
            self.provider,
            sealing.public_key_bytes(pension_keys.sealing),
            sealing.public_key_bytes(city_keys.sealing),
            pension_cert,
            city_cert,
        )
        self.hub.codes = {f"city-code-{n}": f"pension-code-{n}" for n in range(self.persons)}
        grants = [Grant(STAFF, (TERMINAL,), (PENSION_INFO,))]
        self.requester = Requester(
            agency_id=CITY,
            store=self.city_store,
            hub=self.hub,
            keys=city_keys,
            peers=ca.verifier(),
            query_timeout=5.0,
            bulk_query_timeout=60.0,
            staff=Holder(parse(render(grants))),
            mapper=self.mapper,
            clock=self.clock,
        )

    def query_signature(self, sealed: bytes, info_kind: str = PENSION_INFO) -> bytes:
        """The city's signature over ``sealed``, as its requester signs a query to the pension
        service (for calls built by hand)."""
        return exchange_cert.sign(
            self.city_keys.signing,
            exchange_cert.query_context(CITY, PENSION, info_kind, ITEM, sealed),
        )

    def unbind_at_provider(self, n: int) -> None:
        del self.pension_store.codes[f"L-{n}"]
