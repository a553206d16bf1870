"""The communication server's domain: asking as requester, answering as provider (R28).

Requester: a legacy request with a local number -> own link code from the
correspondence table -> hub -> the answer, opened, back to the legacy side.
Provider: hub -> own link code -> local number -> legacy system -> answer
sealed to the requester. Each side writes its share of the log, tied to the
hub's serial, before it answers, whatever the outcome.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric import x25519

from comm_server.hub_client import HubClient
from comm_server.legacy import LegacyClient
from comm_server.store import AsyncCommStore, LogRecord
from renkei import sealing, validate
from renkei.errors import DeadlineExceeded, NotFound, RenkeiError

REQUESTER = "requester"
PROVIDER = "provider"
OK = "OK"
MAX_QUERY_BYTES = 64 * 1024
MAX_ID = 64
SAFETY_NET_SECONDS = 0.05


def query_info(requester: str, provider: str, info_kind: str, item: str) -> bytes:
    return sealing.exchange_info("query", requester, provider, info_kind, item)


def answer_info(serial: int, requester: str, provider: str, info_kind: str, item: str) -> bytes:
    return sealing.exchange_info("answer", serial, requester, provider, info_kind, item)


@dataclass(frozen=True)
class LocalQuery:
    local_person_id: str
    provider_agency_id: str
    info_kind: str
    legal_basis_item: str
    purpose: str
    staff_id: str
    terminal_id: str
    query: bytes


@dataclass(frozen=True)
class QueryResult:
    serial: int
    time: datetime
    legal_basis_item: str
    policy_version: str
    answer: bytes


@dataclass(frozen=True)
class ProvideCall:
    serial: int
    time: datetime
    requester_agency_id: str
    info_kind: str
    legal_basis_item: str
    link_code: str
    sealed_query: bytes
    requester_sealing_public_key: bytes


def _content(payload: bytes) -> str:
    return payload.decode("utf-8", errors="replace")


class Exchange:
    def __init__(
        self,
        *,
        agency_id: str,
        store: AsyncCommStore,
        hub: HubClient,
        legacy: LegacyClient,
        sealing_key: x25519.X25519PrivateKey,
        answer_timeout: float,
        query_timeout: float,
        responder_staff_id: str,
        responder_terminal_id: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.agency_id = agency_id
        self._store = store
        self._hub = hub
        self._legacy = legacy
        self._sealing_key = sealing_key
        self._answer_timeout = answer_timeout
        self._query_timeout = query_timeout
        self._responder = (responder_staff_id, responder_terminal_id)
        self._clock = clock

    def _timeout(self, ceiling: float, time_remaining: float | None, margin: float) -> float:
        timeout = ceiling if time_remaining is None else min(ceiling, time_remaining - margin)
        if timeout <= 0:
            raise DeadlineExceeded("DEADLINE_TOO_SHORT", "no time left for this exchange")
        return timeout

    # -- requester side ------------------------------------------------------

    async def query(self, q: LocalQuery, time_remaining: float | None) -> QueryResult:
        validate.text("local_person_id", q.local_person_id, max_chars=MAX_ID)
        validate.text("provider_agency_id", q.provider_agency_id, max_chars=MAX_ID)
        validate.text("info_kind", q.info_kind, max_chars=200)
        validate.text("legal_basis_item", q.legal_basis_item, max_chars=32)
        validate.text("purpose", q.purpose, max_chars=400)
        validate.text("staff_id", q.staff_id, max_chars=MAX_ID)
        validate.text("terminal_id", q.terminal_id, max_chars=MAX_ID)
        validate.blob("query", q.query, max_bytes=MAX_QUERY_BYTES)
        timeout = self._timeout(self._query_timeout, time_remaining, margin=0.05)
        record = LogRecord(
            serial=None,
            role=REQUESTER,
            logged_at=self._clock(),
            counterpart_agency_id=q.provider_agency_id,
            info_kind=q.info_kind,
            legal_basis_item=q.legal_basis_item,
            local_person_id=q.local_person_id,
            staff_id=q.staff_id,
            terminal_id=q.terminal_id,
            content="",
            purpose=q.purpose,
            outcome=OK,
            reason="",
        )
        try:
            link_code = await self._store.run(self._store.store.link_code_for, q.local_person_id)
            if link_code is None:
                raise NotFound(
                    "LOCAL_PERSON_NOT_BOUND",
                    f"local_person_id {q.local_person_id!r} has no link code in the "
                    "correspondence table",
                    {"field": "local_person_id"},
                )
            # The hub gets what is left of one deadline, so its own (serial-carrying)
            # refusal arrives before this server's safety net fires.
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            async with asyncio.timeout_at(deadline + SAFETY_NET_SECONDS):
                provider_key = await self._hub.sealing_key(q.provider_agency_id, timeout=timeout)
                sealed_query = sealing.seal(
                    q.query,
                    sealing.load_public_key(provider_key, field="provider sealing key"),
                    query_info(
                        self.agency_id, q.provider_agency_id, q.info_kind, q.legal_basis_item
                    ),
                )
                answer = await self._hub.relay(
                    provider_agency_id=q.provider_agency_id,
                    info_kind=q.info_kind,
                    legal_basis_item=q.legal_basis_item,
                    link_code=link_code,
                    sealed_query=sealed_query,
                    timeout=max(0.001, deadline - loop.time()),
                )
            del link_code
            plaintext = sealing.open_sealed(
                answer.sealed_answer,
                self._sealing_key,
                answer_info(
                    answer.serial,
                    self.agency_id,
                    q.provider_agency_id,
                    q.info_kind,
                    q.legal_basis_item,
                ),
                field="sealed_answer",
            )
        except TimeoutError:
            err = DeadlineExceeded("QUERY_TIMEOUT", f"no answer within {timeout:.3f} s")
            await self._store.run(
                self._store.store.append_log,
                replace(record, outcome=err.code.name, reason=err.reason),
            )
            raise err from None
        except RenkeiError as err:
            serial = err.metadata.get("serial")
            await self._store.run(
                self._store.store.append_log,
                replace(
                    record,
                    serial=int(serial) if serial else None,
                    outcome=err.code.name,
                    reason=err.reason,
                ),
            )
            raise
        await self._store.run(
            self._store.store.append_log,
            replace(record, serial=answer.serial, content=_content(plaintext)),
        )
        return QueryResult(
            answer.serial,
            record.logged_at,
            answer.legal_basis_item,
            answer.policy_version,
            plaintext,
        )

    # -- provider side -------------------------------------------------------

    async def provide(self, call: ProvideCall, time_remaining: float | None) -> bytes:
        record = LogRecord(
            serial=call.serial,
            role=PROVIDER,
            logged_at=self._clock(),
            counterpart_agency_id=call.requester_agency_id,
            info_kind=call.info_kind,
            legal_basis_item=call.legal_basis_item,
            local_person_id=None,
            staff_id=self._responder[0],
            terminal_id=self._responder[1],
            content="",
            purpose=None,
            outcome=OK,
            reason="",
        )
        try:
            recipient = sealing.load_public_key(
                call.requester_sealing_public_key, field="requester_sealing_public_key"
            )
            timeout = self._timeout(self._answer_timeout, time_remaining, margin=0.02)
            local_id = await self._store.run(self._store.store.local_person_for, call.link_code)
            if local_id is None:
                raise NotFound(
                    "PERSON_NOT_BOUND",
                    "the provider has no record bound to this person",
                    {"provider_agency_id": self.agency_id},
                )
            record = replace(record, local_person_id=local_id)
            query = (
                sealing.open_sealed(
                    call.sealed_query,
                    self._sealing_key,
                    query_info(
                        call.requester_agency_id,
                        self.agency_id,
                        call.info_kind,
                        call.legal_basis_item,
                    ),
                    field="sealed_query",
                )
                if call.sealed_query
                else b""
            )
            payload = await self._legacy.lookup(local_id, call.info_kind, query, timeout=timeout)
            sealed = sealing.seal(
                payload,
                recipient,
                answer_info(
                    call.serial,
                    call.requester_agency_id,
                    self.agency_id,
                    call.info_kind,
                    call.legal_basis_item,
                ),
            )
        except RenkeiError as err:
            err.metadata.setdefault("serial", str(call.serial))
            await self._store.run(
                self._store.store.append_log,
                replace(record, outcome=err.code.name, reason=err.reason),
            )
            raise
        await self._store.run(
            self._store.store.append_log, replace(record, content=_content(payload))
        )
        return sealed
